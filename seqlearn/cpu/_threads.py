"""How the cpu backend uses the cores: its own worker threads, one-thread BLAS in each.

A time step's products are small (B x H by H x G*H). A multi-threaded BLAS splits each of them
across its threads and synchronises twice per product, T times per sequence; on a shared 2-core
machine that hand-off dominated (docs/performance.md, "How the cpu backend spends the cores"). Here
instead every thread runs the whole time loop on its share (config.SPLIT: batch chunks, which need
no synchronisation, or unit slices, which meet at one spin barrier per step), calling BLAS with one
thread. Products over all steps (weight gradients) are split by output rows.

SciPy's OpenBLAS (the library the kernels call, see _blas.py; njit ``np.dot`` uses the same one)
is set to one thread when this module is imported; numpy's own BLAS is untouched. Threads:
``SEQLEARN_NUM_THREADS``, else the CPUs this process may run on. If SciPy's BLAS thread count
cannot be set, the default is one thread (to avoid oversubscription).
"""
import os
import threading

import numpy as np

from . import config
from ._blas import LIB
from ._sync import bump, wait_above, wait_reach


def _set_scipy_blas_threads(n):
    """Set the thread count of the BLAS the kernels call (see _blas.py); True when it could be done."""
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
    global NUM_THREADS
    NUM_THREADS = max(1, int(n))
    _drop_pool()


def chunks(n, min_rows=None):
    """Split range(n) into at most NUM_THREADS contiguous (lo, hi) ranges of >= min_rows each
    (config.MIN_ROWS by default)."""
    min_rows = config.MIN_ROWS if min_rows is None else min_rows
    k = max(1, min(NUM_THREADS, n // max(1, min_rows)))
    return [(n * i // k, n * (i + 1) // k) for i in range(k)]


def unit_chunks(H):
    """Split range(H) into at most NUM_THREADS (lo, hi) slices starting at multiples of
    config.UNIT_ALIGN."""
    a = config.UNIT_ALIGN
    k = max(1, min(NUM_THREADS, H // a))
    cuts = [0] + [min(H, (H * i // k + a // 2) // a * a) for i in range(1, k)] + [H]
    return [(lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]


def plan(B, H, w_bytes, direction="forward"):
    """[(b0, b1, u0, u1), ...], one per thread, for a time loop over a batch of B rows and H units
    whose recurrent weights take w_bytes (see config.SPLIT)."""
    mode = config.SPLIT
    if mode == "auto":
        mode = "units" if w_bytes >= config.UNITS_MIN_BYTES[direction] else "batch"
    if mode == "units" and NUM_THREADS > 1:
        us = unit_chunks(H)
        if len(us) > 1:
            return [(0, B, u0, u1) for u0, u1 in us]
    return [(b0, b1, 0, H) for b0, b1 in chunks(B)]


def nsync(parts):
    """Threads of a plan() that meet at barriers: all of them when they split the units, else 1."""
    return len(parts) if len(parts) > 1 and parts[0][0] == parts[-1][0] else 1


class Pool:
    """Persistent worker threads for run(): each has a job slot and two counters in one int64
    array (jobs posted, jobs done; a cache line apart). A posted job is seen by a worker spinning
    in a jitted nogil loop (_sync.wait_above), so it starts within microseconds of the caller's own
    share; after config.SPIN loads without a job the worker sleeps on a condition instead. The
    caller waits for the done counters spinning (it yields the core after a few thousand loads).
    Faster than concurrent.futures (no Future per job): docs/performance.md, "Worker threads"."""

    def __init__(self, n):
        self.n = n
        self.flags = np.zeros(16 * n, np.int64)     # worker k: posted at 16 k, done at 16 k + 8
        self.jobs = [None] * n
        self.results = [None] * n
        self.posted = [0] * n
        self.lock = threading.Lock()                 # one run() at a time
        self.wake = threading.Condition()
        self.stop = False
        self.sleeps = 0                              # times a worker gave up spinning (tests)
        self.sleeping = 0                            # workers waiting on the condition now
        self.threads = [threading.Thread(target=self._work, args=(k,), daemon=True, name=f"seqlearn-cpu-{k}")
                        for k in range(n)]
        for t in self.threads:
            t.start()

    def _work(self, k):
        flags, seen = self.flags, 0
        while True:
            if not wait_above(flags, 16 * k, seen, config.SPIN):
                self.sleeps += 1
                with self.wake:
                    self.sleeping += 1          # before the check: see run()
                    while flags[16 * k] <= seen:
                        self.wake.wait()
                    self.sleeping -= 1
            seen += 1
            if self.stop:
                return
            fn, args = self.jobs[k]
            try:
                self.results[k] = (True, fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the caller, raised there
                self.results[k] = (False, e)
            bump(flags, 16 * k + 8)

    def _post(self, k, job):
        self.jobs[k] = job
        self.posted[k] += 1
        bump(self.flags, 16 * k)

    def run(self, fn, arg_lists):
        with self.lock:
            m = len(arg_lists) - 1
            for k in range(m):
                self._post(k, (fn, arg_lists[k + 1]))
            # A worker counts itself as sleeping, under the condition's lock, before it checks its
            # counter: one not counted yet will see the job posted above and not wait.
            if self.sleeping:
                with self.wake:
                    self.wake.notify_all()
            try:
                first = fn(*arg_lists[0])
            finally:
                for k in range(m):
                    wait_reach(self.flags, 16 * k + 8, self.posted[k])
                done = self.results[:m]
                self.results[:m] = self.jobs[:m] = [None] * m     # no references kept to the arrays
            for ok, value in done:
                if not ok:
                    raise value
            return [first] + [value for _, value in done]

    def close(self):
        with self.lock:
            self.stop = True
            for k in range(self.n):
                self._post(k, None)
            with self.wake:
                self.wake.notify_all()
        for t in self.threads:
            t.join()


def _drop_pool():
    global _pool
    if _pool is not None:
        _pool.close()
        _pool = None


def _forget_pool():
    global _pool
    _pool = None        # in a forked child: the workers were not copied


os.register_at_fork(after_in_child=_forget_pool)


def _ensure_pool(n):
    global _pool
    if _pool is not None and _pool.n < n:
        _drop_pool()
    if _pool is None:
        _pool = Pool(max(1, n, NUM_THREADS - 1))
    return _pool


def run_sync(fn, arg_lists):
    """Like run, for kernels that meet at barriers (_sync.barrier): every call has its own thread."""
    return run(fn, arg_lists)


def run(fn, arg_lists):
    """fn(*args) for every args in arg_lists, concurrently, each on its own thread, the first on the
    calling thread. fn must be a nogil njit function. Returns the results in order."""
    if len(arg_lists) == 1:
        return [fn(*arg_lists[0])]
    return _ensure_pool(len(arg_lists) - 1).run(fn, arg_lists)
