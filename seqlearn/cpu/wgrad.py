"""Weight-gradient products dW += D.T @ X, db += D.sum(0) of the cpu kernels, on the worker threads.

``wgrad`` picks the product and the split: D's rows up to config.TN_MAX_BYTES through _tn's
product (D.T read in place), wider rows through _tn_wide's (D transposed block by block); split
over the N rows (each thread a partial dW, summed after a barrier) while dW has at most
config.SPLIT_K_MAX elements, else by output rows. Operands that are not C-contiguous are copied
first. ``wgrad_rows`` is OpenBLAS's TN product (the baseline of benchmarks/wgrad_speed.py). Why
each choice: docs/performance.md, "Weight-gradient products".
"""
import numpy as np

from . import _threads, _tn, _tn_wide, config
from ._blas import N_, T_, rgemm
from ._jit import jit
from ._sync import new_barrier


@jit
def wgrad_rows(d2, x2, dW, db, r0, r1, ab):
    """dW[r0:r1] += d2[:, r0:r1].T @ x2 and db[r0:r1] += d2[:, r0:r1].sum(0);
    d2 (N, O), x2 (N, I), dW (O, I). One product over all N rows."""
    N, O = d2.shape
    I = x2.shape[1]
    isz = d2.itemsize
    if r1 > r0 and N > 0:
        rgemm(ab, T_, N_, r1 - r0, I, N, d2.ctypes.data + r0 * isz, O, x2.ctypes.data, I, True,
              dW.ctypes.data + r0 * I * isz, I)
    for n in range(N):
        a = d2[n]
        for o in range(np.uint64(r0), np.uint64(r1)):     # unsigned: no wraparound test, vectorises
            db[o] += a[o]


def wgrad(d2, x2, dW, db, ab):
    """dW += d2.T @ x2, db += d2.sum(0) (d2 (N, O), x2 (N, I), dW (O, I)), on the worker threads."""
    if not dW.flags.c_contiguous:
        acc = np.ascontiguousarray(dW)
        wgrad(d2, x2, acc, db, ab)
        dW[...] = acc
        return
    d2, x2 = np.ascontiguousarray(d2), np.ascontiguousarray(x2)
    N, O = d2.shape
    I = x2.shape[1]
    parts = _threads.chunks(N, config.MIN_WROWS)
    if O * I <= config.SPLIT_K_MAX:
        nth = len(parts)
        tmp = np.empty((nth - 1, O, I), d2.dtype)     # per call: concurrent models never share it
        tdb = np.empty((nth, O), d2.dtype)
        bar = new_barrier()
        rows = [(O * k // nth, O * (k + 1) // nth) for k in range(nth)]
        if O * d2.itemsize <= config.TN_MAX_BYTES:
            fn, tail = _tn.wgrad_split, (bar, nth, _tn.kc_for(O, d2.itemsize))
        else:
            fn, tail = _tn_wide.wgrad_wide, (bar, nth, False, config.KC, config.MC)
        jobs = [(d2, x2, dW, db, tmp, tdb, n0, n1, k, r0, r1) + tail for k, ((n0, n1), (r0, r1))
                in enumerate(zip(parts, rows))]
        _threads.run_sync(fn, jobs)
        return
    tmp, tdb, bar = np.empty((0, O, I), d2.dtype), np.empty((1, O), d2.dtype), new_barrier()
    _threads.run(_tn_wide.wgrad_wide, [(d2, x2, dW, db, tmp, tdb, 0, N, 0, r0, r1, bar, 1, True, config.KC,
                                        config.MC) for r0, r1 in _threads.chunks(O, config.MIN_WROWS)])
