"""BLAS access of the cpu kernels. Every product goes through SciPy's BLAS (the library njit
``np.dot`` uses), so the backend has one BLAS and one thread pool.

``rgemm`` calls the BLAS gemm that numba itself links (``numba_xxgemm`` of numba's helper
library, which forwards to SciPy's ``sgemm``/``dgemm``) with row-major semantics, leading
dimensions and beta = 0 or 1: products of sub-blocks (a batch chunk, a column block) and
accumulating products (``dW += dG.T @ h``) need no copies and no temporaries.
"""
import numpy as np
from numba import types

from ._jit import jit

_sig = types.intc(types.char, types.char, types.char, types.intp, types.intp, types.intp,
                  types.intp, types.intp, types.intp, types.intp, types.intp, types.intp,
                  types.intp, types.intp)
_xxgemm = types.ExternalFunction("numba_xxgemm", _sig)

_sigv = types.intc(types.char, types.char, types.intp, types.intp, types.intp, types.intp, types.intp,
                   types.intp, types.intp, types.intp)
_xxgemv = types.ExternalFunction("numba_xxgemv", _sigv)

N_ = 78     # 'N'
T_ = 84     # 'T'


@jit
def consts(dtype_like):
    """[1, 0] in the dtype of dtype_like: alpha and the beta = 0 value for rgemm."""
    c = np.zeros(2, dtype_like.dtype)
    c[0] = 1
    return c


@jit
def rgemm(ab, ta, tb, m, n, k, pa, lda, pb, ldb, accumulate, pc, ldc):
    """Row-major C (m, n) = op(A) (m, k) @ op(B) (k, n) [+ C when accumulate].
    pa, pb, pc: addresses of the first elements; lda, ldb, ldc: row strides in elements;
    ta, tb: N_ or T_ (op(X) = X or X.T as stored); ab: consts() of the dtype."""
    kind = np.int8(115) if ab.itemsize == 4 else np.int8(100)
    pone = ab.ctypes.data
    pbeta = pone if accumulate else pone + ab.itemsize
    # row-major C = op(A) op(B)  <=>  column-major C' = op(B') op(A') on the same memory
    _xxgemm(kind, np.int8(tb), np.int8(ta), n, m, k, pone, pb, ldb, pa, lda, pbeta, pc, ldc)


@jit
def rgemv(ab, m, n, pw, ldw, px, accumulate, py):
    """y (m,) = W (m, n) @ x (n,) [+ y]; W row-major with row stride ldw; contiguous x, y."""
    kind = np.int8(115) if ab.itemsize == 4 else np.int8(100)
    pone = ab.ctypes.data
    pbeta = pone if accumulate else pone + ab.itemsize
    # row-major W is column-major W' (n, m): y = W'.T x
    _xxgemv(kind, np.int8(T_), n, m, pone, pw, ldw, px, pbeta, py)


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
        for o in range(r0, r1):
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
    """c = a @ b through the backend's BLAS (for measuring its peak in the benchmarks)."""
    np.dot(a, b, c)


def wgrad(d2, x2, dW, db, ab):
    """dW += d2.T @ x2, db += d2.sum(0), split by output rows over the worker threads."""
    from . import _threads
    O = d2.shape[1]
    _threads.run(wgrad_rows, [(d2, x2, dW, db, r0, r1, ab) for r0, r1 in _threads.chunks(O, _threads.MIN_WROWS)])

