# nose_mm developer commands. Every target sets the environment up first
# (tools/setup_env.sh is a no-op in seconds when nothing changed).
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup demo test test-fast test-all lint clean wheelhouse gpu-check

setup:  ## create .venv with the tested OpenMMLab stack (set MMCV_WHEEL_DIR to reuse a wheel)
	bash tools/setup_env.sh

demo: setup  ## the built-in demo on scikit-learn's digits, end to end on CPU
	$(PY) tools/demo.py --work-dir work_dirs/demo

test: setup  ## every test, the slow end-to-end runs included
	$(PY) -m pytest

test-fast: setup  ## every test except those marked slow (end-to-end runs)
	$(PY) -m pytest -m 'not slow'

test-all: test  ## kept as an alias of `make test`

wheelhouse:  ## every wheel of the environment in DIR (default wheelhouse/), for offline machines
	PYTHON=$(PY) bash tools/build_wheelhouse.sh $(or $(DIR),wheelhouse)

gpu-check: setup  ## the GPU checks (tools/gpu_check.sh), offline, 8-minute limit
	PYTHON=$(PY) bash tools/gpu_check.sh

lint: setup
	$(PY) -m ruff check nose_mm tools tests configs projects || $(PY) -m flake8 nose_mm tools tests projects

clean:
	rm -rf work_dirs .pytest_cache
