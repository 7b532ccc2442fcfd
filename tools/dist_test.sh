#!/usr/bin/env bash
# Distributed testing through torchrun (works with CUDA/NCCL and CPU/gloo).
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args...]
# One node: torchrun --standalone picks a free port itself (no port race); set PORT
# to use a fixed one. Multi-node: set NNODES, NODE_RANK, MASTER_ADDR, PORT on each node.
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
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
"$PYTHON" -m torch.distributed.run "${RDZV[@]}" --nproc_per_node="$NPROC" \
    "$HERE/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
