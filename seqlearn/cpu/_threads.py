"""How the cpu backend uses the cores: its own worker threads, one-thread BLAS in each.

A time step's products are small (B x H by H x G*H). A multi-threaded BLAS splits each of them
across its threads and synchronises twice per product, T times per sequence; on a shared 2-core
machine that hand-off dominated (median 0.75 ms for a 57 us product under load). Here instead
every thread runs the whole time loop on its share (see SPLIT below: batch chunks, which need no
synchronisation, or unit slices, which meet at one spin barrier per step), calling BLAS with one
thread. Products over all steps (weight gradients) are split by output rows.

SciPy's OpenBLAS (the library the kernels call, see _blas.py; njit ``np.dot`` uses the same one)
is set to one thread when this module is imported; numpy's own BLAS is untouched. Threads:
``SEQLEARN_NUM_THREADS``, else the CPUs this process may run on. If SciPy's BLAS thread count cannot be set, the default is one
thread (to avoid oversubscription).
"""
import os
from concurrent.futures import ThreadPoolExecutor

MIN_ROWS = 8        # fewest batch rows per chunk (products on fewer rows waste the BLAS kernel)
MIN_WROWS = 32      # fewest output rows per chunk of a weight-gradient product
# How a recurrent time loop is shared out: "batch" (rows of the batch, no synchronisation),
# "units" (hidden units: every thread takes the whole batch and its own slice of every gate, so
# each streams only its part of W_hh; one spin barrier per time step, see _sync.py), or "auto"
# (units when W_hh is at least UNITS_MIN_BYTES[direction], else batch). SEQLEARN_SPLIT overrides.
# Measured on the quiet 2-core machine with the packed products of _gemm.py (LSTM, T = 100,
# us per time step, batch / units): forward H=128 B=32 37 / 48, H=256 B=32 118 / 138, H=512 B=64
# 801 / 811, H=1024 B=32 2077 / 1828; backward (with dW_hh) 67 / 78, 231 / 247, 1572 / 1589,
# 3652 / 3402 (docs/performance.md).
SPLIT = os.environ.get("SEQLEARN_SPLIT", "auto")
UNITS_MIN_BYTES = {"forward": 4 << 20, "backward": 4 << 20}
UNIT_ALIGN = 16     # unit slices start at multiples of this (vector loads stay aligned)


def _set_scipy_blas_threads(n):
    """Set the thread count of the BLAS the kernels call (see _blas.py); True when it could be done."""
    from ._blas import LIB
    for sym in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
        fn = getattr(LIB, sym, None)
        if fn is not None:
            fn(int(n))
            return True
    return False


def _default_threads():
    env = os.environ.get("SEQLEARN_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


_blas_single = _set_scipy_blas_threads(1)
NUM_THREADS = _default_threads() if (_blas_single or os.environ.get("SEQLEARN_NUM_THREADS")) else 1
_pool = None


def set_num_threads(n):
    """Worker threads used by the cpu kernels (1: everything on the calling thread)."""
    global NUM_THREADS, _pool
    NUM_THREADS = max(1, int(n))
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None


def chunks(n, min_rows=MIN_ROWS):
    """Split range(n) into at most NUM_THREADS contiguous (lo, hi) ranges of >= min_rows each."""
    k = max(1, min(NUM_THREADS, n // max(1, min_rows)))
    return [(n * i // k, n * (i + 1) // k) for i in range(k)]


def unit_chunks(H):
    """Split range(H) into at most NUM_THREADS (lo, hi) slices starting at multiples of UNIT_ALIGN."""
    k = max(1, min(NUM_THREADS, H // UNIT_ALIGN))
    cuts = [0] + [min(H, (H * i // k + UNIT_ALIGN // 2) // UNIT_ALIGN * UNIT_ALIGN) for i in range(1, k)] + [H]
    return [(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]


def plan(B, H, w_bytes, direction="forward"):
    """[(b0, b1, u0, u1), ...], one per thread, for a time loop over a batch of B rows and H units
    whose recurrent weights take w_bytes (see SPLIT)."""
    mode = SPLIT
    if mode == "auto":
        mode = "units" if w_bytes >= UNITS_MIN_BYTES[direction] else "batch"
    if mode == "units" and NUM_THREADS > 1:
        us = unit_chunks(H)
        if len(us) > 1:
            return [(0, B, u0, u1) for u0, u1 in us]
    return [(b0, b1, 0, H) for b0, b1 in chunks(B)]


def nsync(parts):
    """Threads of a plan() that meet at barriers: all of them when they split the units, else 1."""
    return len(parts) if len(parts) > 1 and parts[0][0] == parts[-1][0] else 1


def _ensure_pool(n):
    global _pool
    if _pool is not None and _pool._max_workers < n:
        _pool.shutdown(wait=True)
        _pool = None
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(1, n, NUM_THREADS - 1), thread_name_prefix="seqlearn-cpu")
    return _pool


def run_sync(fn, arg_lists):
    """Like run, for kernels that meet at barriers (_sync.barrier): every call gets its own thread
    (a queued call would never reach the barrier)."""
    return run(fn, arg_lists, len(arg_lists) - 1)


def run(fn, arg_lists, need=0):
    """fn(*args) for every args in arg_lists, concurrently; the first on the calling thread.
    fn must be a nogil njit function. Returns the results in order."""
    if len(arg_lists) == 1:
        return [fn(*arg_lists[0])]
    pool = _ensure_pool(need)
    futs = [pool.submit(fn, *a) for a in arg_lists[1:]]
    first = fn(*arg_lists[0])
    return [first] + [f.result() for f in futs]
