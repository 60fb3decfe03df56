#!/usr/bin/env bash
# One run on a lent GPU (H100/H200), under 5 minutes: environment, the cuda tests for real, the PTX
# tier, and seqlearn vs cuDNN timings. Every section runs even when an earlier one fails.
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
PY=${PYTHON:-python3}
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

stamp "== 1. environment" | tee "$LOG/env.log"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
  $PY - <<'PY' 2>&1
import numpy as np
if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack
import sys, numba
print("python", sys.version.split()[0], "numpy", np.__version__, "numba", numba.__version__)
try:
    import numba_cuda; print("numba-cuda", numba_cuda.__version__)
except Exception as e: print("numba-cuda ?", e)
try:
    import torch; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version(), "cuda ok", torch.cuda.is_available())
except Exception as e: print("torch ?", e)
from numba import cuda
d = cuda.get_current_device()
print("device", d.name, "cc", d.compute_capability, "SMs", d.MULTIPROCESSOR_COUNT,
      "smem/block", d.MAX_SHARED_MEMORY_PER_BLOCK, "smem opt-in", getattr(d, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", "?"))
import seqlearn, seqlearn.cuda
print("seqlearn from", seqlearn.__file__, "cuda backend", seqlearn.cuda.name)
PY
} 2>&1 | tee -a "$LOG/env.log" || stamp "environment section failed"

stamp "== 2. cuda tests on the device (NUMBA_ENABLE_CUDASIM=0)" | tee "$LOG/tests.log"
timeout 150 $PY -m pytest -q -rs -p no:cacheprovider tests/test_cuda_kernels.py 2>&1 | tail -60 | tee -a "$LOG/tests.log" \
  || stamp "tests section: failures or timeout (see above)"

stamp "== 3. benchmark (persistent fit, resources, launch overhead, correctness, timing)" | tee "$LOG/bench.log"
timeout 170 $PY benchmarks/gpu_bench.py --out "$LOG" 2>&1 | tee -a "$LOG/bench.log" \
  || stamp "benchmark section failed or timed out (see above; partial results are printed as they come)"

if [ $(( $(date +%s) - T0 )) -lt 220 ]; then
  stamp "== 4. PTX tier (compile every kernel for sm_90)" | tee "$LOG/ptx.log"
  timeout $(( 285 - ($(date +%s) - T0) )) $PY -m pytest -q -p no:cacheprovider tests/test_cuda_ptx.py 2>&1 | tail -15 | tee -a "$LOG/ptx.log" \
    || stamp "PTX section failed or timed out"
else
  stamp "== 4. PTX tier skipped (time budget)"
fi
stamp "done; logs in $LOG"
