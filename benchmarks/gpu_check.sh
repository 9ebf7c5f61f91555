#!/usr/bin/env bash
# cuda_standalone vs cpp_standalone on a GPU machine: exactness on deterministic input, and
# the QUIET and WIDE workloads timed side by side (benchmarks/gpu_check.py). At most 5
# minutes for the check; without a GPU it stops at once (exit 2) with one line saying so.
#   bash benchmarks/gpu_check.sh
# Runs in one call on a machine without network: where $PYTHON (default .venv/bin/python,
# else python3) lacks brian2cuda or brainsleep, the wheels of benchmarks/gpu_wheels.txt
# (brian2 2.10.1, brian2cuda 1.0b1 and brian2's pure-Python dependencies; numpy is the
# machine's own) are installed from $GPU_WHEELS (default benchmarks/wheels, downloaded as
# gpu_wheels.txt says) into a temporary directory, and this checkout is put beside them
# as the brainsleep package (models/ as brainsleep.models, as an install lays it out).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi -L lists none); run it on a GPU machine" >&2
    exit 2
fi
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
WHEELS=${GPU_WHEELS:-benchmarks/wheels}
# -P: not the checkout's own brainsleep/ (no models/ in it), the one an install lays out
ready() { "$PY" -P -c 'import brian2cuda, brainsleep.models' 2>/dev/null; }
if ! ready; then
    if [ ! -d "$WHEELS" ]; then
        echo "gpu_check: $PY lacks brian2cuda or brainsleep and $WHEELS holds no wheels to" \
            "install; download them as benchmarks/gpu_wheels.txt says" >&2
        exit 2
    fi
    SITE=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_site.XXXXXX")
    trap 'rm -rf "$SITE"' EXIT
    # --target and --no-deps: every missing package is in the list, nothing else is
    # touched (the machine's Python, a venv or not, keeps its numpy, torch and xarray).
    "$PY" -m pip install --quiet --no-index --no-deps --disable-pip-version-check \
        --find-links "$WHEELS" --target "$SITE" -r benchmarks/gpu_wheels.txt >&2
    mkdir "$SITE/brainsleep"
    for entry in "$PWD"/brainsleep/*; do ln -s "$entry" "$SITE/brainsleep/"; done
    ln -s "$PWD/models" "$SITE/brainsleep/models"
    # First on the path, and read as a site directory: its .pth files run (setuptools'
    # distutils shim, which brian2 imports and Python 3.12 no longer ships).
    printf 'import os, site\nsite.addsitedir(os.path.dirname(__file__))\n' >"$SITE/sitecustomize.py"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    if ! ready; then
        echo "gpu_check: brian2cuda or brainsleep still does not import with $PY after" \
            "installing the wheels of $WHEELS: $("$PY" -P -c 'import brian2cuda, brainsleep.models' 2>&1 | tail -n 1)" >&2
        exit 2
    fi
fi
timeout --kill-after=10 300 "$PY" benchmarks/gpu_check.py "$@"
