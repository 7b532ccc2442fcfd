#!/usr/bin/env bash
# A folder holding every wheel nose_mm's environment installs, for a machine without a
# registry (e.g. the GPU machine of tools/gpu_check.sh):
#   bash tools/build_wheelhouse.sh [DIR]      # default wheelhouse/ (about 6 GB: torch's CUDA wheels)
# Carry DIR and the repository there, then, in the repository:
#   PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR MMCV_WHEEL_DIR=DIR bash tools/setup_env.sh
# The wheels are for this machine's Python (3.11) and platform (linux x86_64); the other
# machine needs the same. mmcv 2.1.0 exists only as a source distribution: a wheel with
# compiled ops is taken from MMCV_WHEEL_DIR when it holds one, else built here (~20 min).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-wheelhouse}
PY=${PYTHON:-.venv/bin/python}
REQ=requirements
mkdir -p "$DIR"
"$PY" -m pip download --disable-pip-version-check -d "$DIR" -c "$REQ/constraints.txt" \
  -r "$REQ/torch.txt" -r "$REQ/build.txt" -r "$REQ/runtime.txt" -r "$REQ/deploy.txt" \
  -r "$REQ/tests.txt"
if ls "${MMCV_WHEEL_DIR:-/nonexistent}"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  cp "$MMCV_WHEEL_DIR"/mmcv-2.1.0-*.whl "$DIR"/
else
  MMCV_WITH_OPS=1 "$PY" -m pip wheel --disable-pip-version-check --no-deps \
    --no-build-isolation -w "$DIR" -c "$REQ/constraints.txt" -r "$REQ/mmcv.txt"
fi
echo "[wheelhouse] $(ls "$DIR" | wc -l) files in $DIR"
