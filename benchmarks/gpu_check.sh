#!/usr/bin/env bash
# One run on a lent GPU (H100/H200) that fits in 295 seconds of wall time: environment (~10 s),
# the benchmark (fit, kernel resources, measured fp32 peak, launch overhead, correctness at
# benchmark sizes, the timing table vs cuDNN with TF32 off and on; <= 120 s: 75-105 s on an
# H200, most of it compiling; GPU_CHECK_ABLATIONS=1 adds the weight-gradient paths and the staging
# timed both ways, ~30 s, and dropout masks on the device against host masks, <= 40 s: raise
# GPU_CHECK_BUDGET by 70 with it),
# the cuda tests on the real device (<= 150 s; 147 s on an H200, 82 s on an H100 with fewer
# tests; the PTX tier is skipped: it needs no GPU), an end-to-end train and sample (~25-37 s), and
# the compact markdown table printed LAST. Every section runs even when an earlier one fails.
# Logs go to $OUT (if set) or /tmp/seqlearn_gpu_check.
#
#   bash benchmarks/gpu_check.sh            # from the repository root
set -u
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOG=${OUT:-/tmp/seqlearn_gpu_check}
mkdir -p "$LOG"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"   # no install needed (no internet there)
export NUMBA_ENABLE_CUDASIM=0
export NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS=0
PY=${PYTHON:-python3}
T0=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-295}
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }

stamp "== 1. environment" | tee "$LOG/env.log"
{
  timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm --format=csv 2>&1 || true
  timeout 30 $PY - <<'PY' 2>&1
import numpy as np
import seqlearn.numpy_compat  # noqa: F401 - np.row_stack for numba-cuda 0.30
import sys, numba
print("python", sys.version.split()[0], "numpy", np.__version__, "numba", numba.__version__)
try:
    import numba_cuda; print("numba-cuda", numba_cuda.__version__)
except Exception as e: print("numba-cuda ?", e)
try:
    import cuda.core as cc; print("cuda-core", cc.__version__)
except Exception as e: print("cuda-core ?", e)
from numba import cuda
d = cuda.get_current_device()
print("device", d.name, "cc", d.compute_capability, "SMs", d.MULTIPROCESSOR_COUNT,
      "smem opt-in", getattr(d, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", "?"))
PY
} 2>&1 | tee -a "$LOG/env.log" || stamp "environment section failed"

stamp "== 2. benchmark (fit, resources, peak, launch overhead, correctness, timing)" | tee "$LOG/bench.log"
B_LIM=$(( $(left) - 165 )); [ "$B_LIM" -gt 120 ] && B_LIM=120
[ "${GPU_CHECK_ABLATIONS:-0}" = 1 ] && B_LIM=$(( B_LIM + 30 )) && ABL=--ablations
timeout "$B_LIM" $PY benchmarks/gpu_bench.py --out "$LOG" --reps 9 --table "$LOG/table.md" ${ABL:-} 2>&1 \
  | grep --line-buffered -v "NumbaPerformanceWarning\|warn(errors" | tee -a "$LOG/bench.log" \
  || stamp "benchmark section failed or timed out (partial results above)"

T_LIM=$(( $(left) - 35 )); [ "$T_LIM" -gt 150 ] && T_LIM=150
if [ "$T_LIM" -ge 20 ]; then
  stamp "== 3. cuda tests on the device (NUMBA_ENABLE_CUDASIM=0, timeout ${T_LIM}s)" | tee "$LOG/tests.log"
  timeout "$T_LIM" $PY -m pytest -q -rs -p no:cacheprovider -p no:warnings tests/test_cuda_kernels.py \
    tests/test_cuda_sample.py 2>&1 | tail -40 | tee -a "$LOG/tests.log" \
    || stamp "tests section: failures or timeout (see above)" | tee -a "$LOG/tests.log"
else
  stamp "== 3. cuda tests skipped (time budget)" | tee "$LOG/tests.log"
fi
if [ "${GPU_CHECK_ABLATIONS:-0}" = 1 ]; then
  stamp "== 3a. dropout masks on the device against host masks (timeout 40s)" | tee "$LOG/dropout.log"
  timeout 40 $PY benchmarks/dropout_speed.py --device cuda --config 512,2,64,100,10 --config 1024,2,64,100,10 2>&1 \
    | grep --line-buffered -v "NumbaPerformanceWarning\|warn(errors" | tee -a "$LOG/dropout.log" || true
fi
stamp "== 3b. end to end: seqlearn train and sample on --device cuda (timeout 50s)" | tee "$LOG/e2e.log"
# without an install, seqlearn.cli (the top-level cli/ folder, mapped by pyproject.toml) needs a link
if [ ! -e seqlearn/cli ]; then ln -s ../cli seqlearn/cli && trap 'rm -f "$ROOT/seqlearn/cli"' EXIT; fi
{
  timeout 40 $PY -m seqlearn train data/tiny.txt --device cuda --steps 30 --eval-every 15 --log-every 10 \
    --seq-len 32 --batch 8 --hidden 64 --out "$LOG/run_cuda" --force 2>&1 | tail -12
  timeout 10 $PY -m seqlearn sample "$LOG/run_cuda" --device cuda --length 120 --num-samples 2 --seed 1 2>&1 | tail -6
} 2>&1 | grep --line-buffered -v "NumbaPerformanceWarning\|warn(errors" | tee -a "$LOG/e2e.log" \
  || stamp "end-to-end section failed"
stamp "== 4. PTX tier skipped here (no GPU needed: run tests/test_cuda_ptx.py on any machine)"

stamp "done; logs in $LOG"
echo
echo "== tests: $(grep -E 'passed|failed|error' "$LOG/tests.log" | tail -1)"
echo "== table (seqlearn vs cuDNN, one layer, T=100, fp32; ratio = cuDNN ms / seqlearn ms)"
cat "$LOG/table.md" 2>/dev/null || echo "(no table: the benchmark did not reach the timing section)"
