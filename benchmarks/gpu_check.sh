#!/usr/bin/env bash
# cuda_standalone vs cpp_standalone on a GPU machine: exactness on deterministic input, and
# the QUIET and WIDE workloads timed side by side (benchmarks/gpu_check.py). At most 5
# minutes; without a GPU it stops at once (exit 2) with one line saying so.
#   bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec timeout --kill-after=10 300 "$PY" benchmarks/gpu_check.py "$@"
