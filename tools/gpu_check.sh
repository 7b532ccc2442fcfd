#!/usr/bin/env bash
# The checks only a GPU can make, offline, stopped after 8 minutes (GPU_CHECK_TIMEOUT;
# not yet timed on a GPU; tools/gpu_check.py says what):
#   bash tools/gpu_check.sh [--device cuda|cpu] [--out DIR] [--budget-gb 80] ...
# Its environment from a folder of wheels, no registry needed (benchmarks/README.md):
#   PIP_NO_INDEX=1 PIP_FIND_LINKS=WHEELS MMCV_WHEEL_DIR=WHEELS bash tools/setup_env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python
# Nothing may reach the network: the configs' pretrained URLs are not loaded (random weights).
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PY" tools/gpu_check.py "$@"
