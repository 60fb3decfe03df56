"""BLAS access of the cpu kernels: SciPy's OpenBLAS through its CBLAS entry points.

The library (``scipy.libs/libscipy_openblas*.so`` of the SciPy wheel: the one njit ``np.dot``
would use) is opened with ctypes WITHOUT importing ``scipy.linalg`` (that import alone took
0.1-0.2 s of start-up), set to one thread (see _threads.py), and its ``cblas_sgemm``,
``cblas_dgemm``, ``cblas_sgemv``, ``cblas_dgemv`` are registered with LLVM under fixed names
(``seqlearn_cblas_*``), so the jitted kernels call them directly and stay cacheable (a cached
kernel refers to the name; the address is registered again at every import, before any kernel
loads). Where the wheel's library is not found (SciPy built against a system BLAS), the
libraries ``scipy.linalg.cython_blas`` loads are searched for the same CBLAS symbols.

``rgemm`` computes row-major products with leading dimensions and beta = 0 or 1: products of
sub-blocks (a batch chunk, a column block) and accumulating products (``dW += dG.T @ h``) need
no copies and no temporaries.
"""
import ctypes
import glob
import importlib.util
import os

import numpy as np
from llvmlite import binding as _ll
from numba import types

from ._jit import jit
from ._sync import barrier

_NAMES = ("sgemm", "dgemm", "sgemv", "dgemv")


def _candidate_libs():
    spec = importlib.util.find_spec("scipy")
    for d in (spec.submodule_search_locations or []) if spec else []:
        libs = os.path.join(os.path.dirname(d), "scipy.libs")
        yield from sorted(glob.glob(os.path.join(libs, "*openblas*.so*")))


def _maps_libs():
    """Shared libraries mapped after importing scipy.linalg.cython_blas (the fallback)."""
    import scipy.linalg.cython_blas  # noqa: F401
    with open("/proc/self/maps") as f:
        return sorted({ln.split()[-1] for ln in f if ".so" in ln and "/" in ln})


def _find(libs):
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_cblas_", "cblas_"):
            fns = [getattr(lib, prefix + n, None) for n in _NAMES]
            if all(f is not None for f in fns):
                return path, lib, fns
    return None


def _load():
    found = _find(_candidate_libs())
    if found is None:
        try:
            found = _find(_maps_libs())
        except (ImportError, OSError):
            found = None
    if found is None:
        raise ImportError("seqlearn.cpu needs a CBLAS (cblas_sgemm ...): SciPy's OpenBLAS was not found")
    path, lib, fns = found
    for n, f in zip(_NAMES, fns):
        _ll.add_symbol("seqlearn_cblas_" + n, ctypes.cast(f, ctypes.c_void_p).value)
    return path, lib


LIB_PATH, LIB = _load()

_i = types.intc
_p = types.voidptr
_sgemm = types.ExternalFunction("seqlearn_cblas_sgemm", types.void(
    _i, _i, _i, _i, _i, _i, types.float32, types.intp, _i, types.intp, _i, types.float32, types.intp, _i))
_dgemm = types.ExternalFunction("seqlearn_cblas_dgemm", types.void(
    _i, _i, _i, _i, _i, _i, types.float64, types.intp, _i, types.intp, _i, types.float64, types.intp, _i))
_sgemv = types.ExternalFunction("seqlearn_cblas_sgemv", types.void(
    _i, _i, _i, _i, types.float32, types.intp, _i, types.intp, _i, types.float32, types.intp, _i))
_dgemv = types.ExternalFunction("seqlearn_cblas_dgemv", types.void(
    _i, _i, _i, _i, types.float64, types.intp, _i, types.intp, _i, types.float64, types.intp, _i))

ROW_MAJOR = 101
N_ = 111    # CblasNoTrans
T_ = 112    # CblasTrans


@jit
def consts(dtype_like):
    """[1, 0] in the dtype of dtype_like: carries the dtype of rgemm's products."""
    c = np.zeros(2, dtype_like.dtype)
    c[0] = 1
    return c


# Explicit signatures: callers pass literal transposes and flags (N_, T_, False), which would
# otherwise compile one rgemm per combination (7 at first, ~0.16 s each).
_ri = types.intp
_GEMM_SIGS = [types.void(types.Array(dt, 1, "C"), _ri, _ri, _ri, _ri, _ri, _ri, _ri, _ri, _ri, types.boolean, _ri, _ri)
              for dt in (types.float32, types.float64)]
_GEMV_SIGS = [types.void(types.Array(dt, 1, "C"), _ri, _ri, _ri, _ri, _ri, types.boolean, _ri)
              for dt in (types.float32, types.float64)]


@jit(_GEMM_SIGS)
def rgemm(ab, ta, tb, m, n, k, pa, lda, pb, ldb, accumulate, pc, ldc):
    """Row-major C (m, n) = op(A) (m, k) @ op(B) (k, n) [+ C when accumulate].
    pa, pb, pc: addresses of the first elements; lda, ldb, ldc: row strides in elements;
    ta, tb: N_ or T_ (op(X) = X or X.T as stored); ab: consts() of the dtype."""
    if m <= 0 or n <= 0:
        return
    if ab.itemsize == 4:
        _sgemm(ROW_MAJOR, ta, tb, m, n, k, np.float32(1.0), pa, lda, pb, ldb,
               np.float32(1.0) if accumulate else np.float32(0.0), pc, ldc)
    else:
        _dgemm(ROW_MAJOR, ta, tb, m, n, k, 1.0, pa, lda, pb, ldb, 1.0 if accumulate else 0.0, pc, ldc)


@jit(_GEMV_SIGS)
def rgemv(ab, m, n, pw, ldw, px, accumulate, py):
    """y (m,) = W (m, n) @ x (n,) [+ y]; W row-major with row stride ldw; contiguous x, y."""
    if ab.itemsize == 4:
        _sgemv(ROW_MAJOR, N_, m, n, np.float32(1.0), pw, ldw, px, 1,
               np.float32(1.0) if accumulate else np.float32(0.0), py, 1)
    else:
        _dgemv(ROW_MAJOR, N_, m, n, 1.0, pw, ldw, px, 1, 1.0 if accumulate else 0.0, py, 1)


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


@jit
def copy2(src, dst):
    """dst[...] = src for 2-D arrays of one shape (an explicit loop compiles faster than a slice
    assignment)."""
    R, C = src.shape
    for r in range(R):
        s = src[r]
        d = dst[r]
        for c in range(C):
            d[c] = s[c]


@jit
def gemm_nt_probe(a, b, c):
    """c = a @ b (C-contiguous 2-D arrays) through the backend's BLAS (its peak, for benchmarks)."""
    m, k = a.shape
    n = b.shape[1]
    rgemm(consts(c), N_, N_, m, n, k, a.ctypes.data, k, b.ctypes.data, n, False, c.ctypes.data, n)


@jit
def split_k_finish(d2, dW, db, tmp, tdb, n0, n1, k, r0, r1, bar, nth, sum_db=True):
    """The end of thread k of a weight-gradient product split over the N rows, once its partial dW
    is in dW (k = 0) or tmp[k - 1]: the bias gradient of its rows n0:n1 into tdb[k] (unless
    sum_db is False: the product summed it there already); after a barrier, rows r0:r1 of the
    partial sums added into dW, db."""
    O = d2.shape[1]
    I = dW.shape[1]
    if sum_db:
        s = tdb[k]
        for o in range(O):
            s[o] = 0
        for n in range(n0, n1):
            a = d2[n]
            for o in range(np.uint64(O)):
                s[o] += a[o]
    barrier(bar, nth, 0)
    for o in range(r0, r1):
        w = dW[o]
        for p in range(tmp.shape[0]):
            t = tmp[p, o]
            for i in range(np.uint64(I)):
                w[i] += t[i]
        for p in range(tdb.shape[0]):
            db[o] += tdb[p, o]


@jit
def _wgrad_split_k(d2, x2, dW, db, tmp, tdb, n0, n1, k, r0, r1, ab, bar, nth):
    """Thread k of a weight-gradient product split over the N rows: its rows n0:n1 go into dW, db
    (k = 0, accumulating) or into tmp[k - 1], tdb[k] (overwritten); after a barrier, rows r0:r1 of
    the partial sums are added into dW, db."""
    N, O = d2.shape
    I = x2.shape[1]
    isz = d2.itemsize
    if k == 0:
        dst = dW.ctypes.data
    else:
        dst = tmp[k - 1].ctypes.data
    rgemm(ab, T_, N_, O, I, n1 - n0, d2.ctypes.data + n0 * O * isz, O, x2.ctypes.data + n0 * I * isz, I,
          k == 0, dst, I)
    split_k_finish(d2, dW, db, tmp, tdb, n0, n1, k, r0, r1, bar, nth)


# Weight-gradient products are split over the N (= T B) rows, each thread a partial dW that is
# summed afterwards, while dW has at most this many elements; above it, by output rows. Measured
# (LSTM shapes, quiet machine, 2 threads, GFLOP/s, rows of N / output rows): (3200 x 1024)^T @
# (3200 x 256) 159 / 141-154; (6400 x 2048)^T @ (6400 x 512) 179 / 170; (3200 x 4096)^T @
# (3200 x 1024) 187 / 187. One thread: 84, 89, 96.
SPLIT_K_MAX = 1 << 21


WIDE = True     # wide d2 through _tn_wide (False: OpenBLAS's TN product; benchmarks compare both)


def wgrad(d2, x2, dW, db, ab):
    """dW += d2.T @ x2, db += d2.sum(0), on the worker threads (see SPLIT_K_MAX). While d2's rows
    take at most _tn.TN_MAX_BYTES, the product is _tn.wgrad_split's (no transposed copy of d2),
    beyond that _tn_wide.wgrad_wide's (d2 transposed block by block into the register tiles)."""
    from . import _threads, _tn, _tn_wide
    N, O = d2.shape
    I = x2.shape[1]
    parts = _threads.chunks(N, _threads.MIN_WROWS)
    dense = d2.flags.c_contiguous and x2.flags.c_contiguous and dW.flags.c_contiguous
    narrow = dense and O * d2.itemsize <= _tn.TN_MAX_BYTES and O * I <= SPLIT_K_MAX
    wide = dense and WIDE and not narrow
    if narrow or ((wide or len(parts) > 1) and O * I <= SPLIT_K_MAX):
        nth = len(parts)
        tmp = np.empty((nth - 1, O, I), d2.dtype)     # per call: concurrent models never share it
        tdb = np.empty((nth, O), d2.dtype)
        bar = np.zeros(8, np.int64)
        rows = [(O * k // nth, O * (k + 1) // nth) for k in range(nth)]
        if narrow:
            tail = (bar, nth, _tn.kc_for(O, d2.itemsize))
        else:
            tail = (bar, nth, False, _tn_wide.KC, _tn_wide.MC) if wide else (ab, bar, nth)
        fn = _tn.wgrad_split if narrow else _tn_wide.wgrad_wide if wide else _wgrad_split_k
        jobs = [(d2, x2, dW, db, tmp, tdb, n0, n1, k, r0, r1) + tail for k, ((n0, n1), (r0, r1))
                in enumerate(zip(parts, rows))]
        _threads.run_sync(fn, jobs)
        return
    orows = _threads.chunks(O, _threads.MIN_WROWS)
    if wide:
        tmp, tdb, bar = np.empty((0, O, I), d2.dtype), np.empty((1, O), d2.dtype), np.zeros(8, np.int64)
        _threads.run(_tn_wide.wgrad_wide, [(d2, x2, dW, db, tmp, tdb, 0, N, 0, r0, r1, bar, 1, True, _tn_wide.KC,
                                            _tn_wide.MC) for r0, r1 in orows])
        return
    _threads.run(wgrad_rows, [(d2, x2, dW, db, r0, r1, ab) for r0, r1 in orows])
