"""How the cpu backend uses the cores: batch chunks on worker threads, one-thread BLAS in each.

A time step's products are small (B x H by H x G*H). A multi-threaded BLAS splits each of them
across its threads and synchronises twice per product, T times per sequence; on a shared 2-core
machine that hand-off dominated (median 0.75 ms for a 57 us product under load). Here instead
the batch is cut into chunks and every chunk runs its whole time loop on its own thread (the
rows of a batch are independent through time), calling BLAS with one thread: one hand-off per
call, not per step. Products over all steps (weight gradients) are split by output rows.

SciPy's OpenBLAS (the library the kernels call, see _blas.py; njit ``np.dot`` uses the same one)
is set to one thread when this module is imported; numpy's own BLAS is untouched. Threads: ``SEQLEARN_NUM_THREADS``, else
the CPUs this process may run on. If SciPy's BLAS thread count cannot be set, the default is one
thread (to avoid oversubscription).
"""
import os
from concurrent.futures import ThreadPoolExecutor

MIN_ROWS = 8        # fewest batch rows per chunk (products on fewer rows waste the BLAS kernel)
MIN_WROWS = 32      # fewest output rows per chunk of a weight-gradient product


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


def run(fn, arg_lists):
    """fn(*args) for every args in arg_lists, concurrently; the first on the calling thread.
    fn must be a nogil njit function. Returns the results in order."""
    global _pool
    if len(arg_lists) == 1:
        return [fn(*arg_lists[0])]
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(1, NUM_THREADS - 1), thread_name_prefix="seqlearn-cpu")
    futs = [_pool.submit(fn, *a) for a in arg_lists[1:]]
    first = fn(*arg_lists[0])
    return [first] + [f.result() for f in futs]
