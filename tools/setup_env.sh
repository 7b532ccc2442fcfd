#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment with the OpenMMLab stack.
#
# Usage: bash tools/setup_env.sh            (or: make setup)
#
# Environment variables:
#   VENV            where the virtual environment lives. Defaults to .venv
#   PYTHON          the interpreter that creates it. Defaults to python3
#   MMCV_WHEEL_DIR  a folder holding a prebuilt mmcv-2.1.0 wheel (built with ops
#                   against torch 2.12.1). Without it mmcv is built from source,
#                   which takes about 25 minutes on 2 cores.
#
# Order matters: the torch pair first (pinned by requirements/constraints.txt),
# then build tools, then mmcv with compiled ops (it compiles against the torch in
# the venv, so no build isolation), then the rest, then nose_mm in editable mode.
# A second run with nothing changed only checks imports and exits in seconds.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
REQ=requirements
CONSTRAINTS="-c $REQ/constraints.txt"
STAMP="$VENV/.nose_mm_setup_stamp"

fingerprint() {
  cat "$REQ"/*.txt pyproject.toml | sha256sum | cut -d' ' -f1
}

check_imports() {
  "$VENV/bin/python" - <<'EOF' >/dev/null 2>&1
import mmcv, mmcv.ops  # noqa: F401  (compiled ops present)
import mmengine, mmpretrain.models, mmseg.models, timm  # noqa: F401
import onnx, onnxruntime  # noqa: F401  (deploy: tools/deploy/, benchmark --runtime)
import nose_mm  # noqa: F401
EOF
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ] && check_imports; then
  echo "[setup] $VENV is up to date."
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
pip_install() {
  # Quiet pip; drop the "Location ... is ignored" noise that a machine-wide
  # pip.conf with absent local indexes produces, keep every other message.
  set +e
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" 2>&1 \
    | grep -v 'is ignored: it is neither a file nor a directory'
  local rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

echo "[setup] 1/5 torch + torchvision (pinned pair, ~2 minutes on first install)"
pip_install $CONSTRAINTS -r "$REQ/torch.txt"

echo "[setup] 2/5 build tools"
pip_install $CONSTRAINTS -r "$REQ/build.txt"

echo "[setup] 3/5 mmcv 2.1.0 with compiled ops"
if "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" >/dev/null 2>&1; then
  echo "[setup]     already installed"
elif [ -n "${MMCV_WHEEL_DIR:-}" ] && ls "$MMCV_WHEEL_DIR"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  echo "[setup]     from prebuilt wheel in $MMCV_WHEEL_DIR"
  pip_install $CONSTRAINTS --find-links "$MMCV_WHEEL_DIR" --only-binary mmcv -r "$REQ/mmcv.txt"
else
  if [ -n "${MMCV_WHEEL_DIR:-}" ]; then
    echo "[setup]     NOTE: no mmcv-2.1.0 wheel in MMCV_WHEEL_DIR=$MMCV_WHEEL_DIR"
  fi
  echo "[setup]     NOTE: building mmcv 2.1.0 from source with compiled ops."
  echo "[setup]     This takes about 25 minutes on 2 cores (pip caches the wheel afterwards)."
  export MMCV_WITH_OPS=1
  pip_install $CONSTRAINTS --no-build-isolation -r "$REQ/mmcv.txt"
fi

echo "[setup] 4/5 OpenMMLab packages, timm, ONNX / onnxruntime / OpenVINO and test tools"
pip_install $CONSTRAINTS -r "$REQ/runtime.txt" -r "$REQ/deploy.txt" -r "$REQ/tests.txt"

echo "[setup] 5/5 nose_mm (editable)"
pip_install $CONSTRAINTS --no-deps --no-build-isolation -e .

if ! check_imports; then
  echo "[setup] ERROR: the environment was installed but imports still fail:" >&2
  "$VENV/bin/python" -c "import mmcv.ops, mmpretrain.models, mmseg.models, timm, onnx, onnxruntime, nose_mm" >&2
  exit 1
fi
fingerprint > "$STAMP"
echo "[setup] done: $VENV"
