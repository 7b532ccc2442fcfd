#!/usr/bin/env bash
# torchrun for tools/dist_train.sh and tools/dist_test.sh (works with CUDA/NCCL and CPU/gloo);
# through tools/dist_run.py, so a failed process's one line is not followed by torchrun's traceback.
#   bash tools/dist_launch.sh TOOL NPROC [TOOL args...]
# One node: torchrun --standalone picks a free port itself (no port race); set PORT
# to use a fixed one. Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, PORT on each node.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "nose_mm: error: usage: bash tools/dist_launch.sh TOOL NPROC [TOOL args...]" >&2
    exit 2
fi
TOOL=$1
NPROC=$2
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
    echo "nose_mm: error: NPROC must be a whole number of processes >= 1, got '$NPROC'" >&2
    exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)

if [ "$NNODES" = 1 ] && [ -z "$PORT" ]; then
    RDZV=(--standalone)
else
    RDZV=(--nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR"
          --master_port="${PORT:-29500}")
fi
PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" "$HERE/dist_run.py" "${RDZV[@]}" --nproc_per_node="$NPROC" \
    "$HERE/$TOOL" "${@:3}" --launcher pytorch
