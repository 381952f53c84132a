#!/usr/bin/env bash
# The GPU check in one command, for the device machine (issue 11; results go into docs/gpu.md):
#   bash scripts/gpu_check.sh            # writes $OUT/gpu_check.json and $OUT/gpu_check.log
# Nothing is installed: the GPU machine's python3 has CuPy, NumPy, PyTorch and pytest; the project runs
# from this checkout. About 7 minutes at most (each section has its own limit: see scripts/gpu_check.py).
set -o pipefail
OUT="${OUT:-gpu_check_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 CUPY_TF32=0
python3 scripts/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
