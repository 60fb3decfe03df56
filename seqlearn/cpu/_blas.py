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
