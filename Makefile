# nose_mm developer commands. Every target sets the environment up first
# (tools/setup_env.sh is a no-op in seconds when nothing changed).
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup demo test test-all lint clean

setup:  ## create .venv with the tested OpenMMLab stack (set MMCV_WHEEL_DIR to reuse a wheel)
	bash tools/setup_env.sh

demo: setup  ## the built-in demo on scikit-learn's digits, end to end on CPU
	$(PY) tools/demo.py --work-dir work_dirs/demo

test: setup  ## the default test suite (slow tests excluded)
	$(PY) -m pytest

test-all: setup  ## every test, slow ones included
	$(PY) -m pytest -m ''

lint: setup
	$(PY) -m ruff check nose_mm tools tests configs || $(PY) -m flake8 nose_mm tools tests

clean:
	rm -rf work_dirs .pytest_cache
