#!/usr/bin/env bash
# Distributed training through torchrun (see tools/dist_launch.sh for PORT, NNODES...).
#   bash tools/dist_train.sh CONFIG NPROC [train.py args...]
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "nose_mm: error: usage: bash tools/dist_train.sh CONFIG NPROC [train.py args...]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/dist_launch.sh" train.py "$2" "$1" "${@:3}"
