#!/usr/bin/env bash
# Distributed testing through torchrun (see tools/dist_launch.sh for PORT, NNODES...).
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args...]
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "nose_mm: error: usage: bash tools/dist_test.sh CONFIG CHECKPOINT NPROC" \
         "[test.py args...]" >&2
    exit 2
fi
exec bash "$(dirname "$0")/dist_launch.sh" test.py "$3" "$1" "$2" "${@:4}"
