"""Small jitted helpers shared by the cpu kernels. Every product goes through njit ``np.dot``
(SciPy's BLAS), so the backend uses one BLAS library and one thread pool."""
import numpy as np

from ._jit import jit


@jit
def acc_tn(dW, A, X):
    """dW += A.T @ X for A (N, O), X (N, I), dW (O, I): one product, then one add."""
    tmp = np.dot(A.T, X)
    O, I = dW.shape
    for o in range(O):
        d = dW[o]
        s = tmp[o]
        for i in range(I):
            d[i] += s[i]


@jit
def acc_colsum(db, A):
    """db += A.sum(0) for A (N, O)."""
    N, O = A.shape
    for n in range(N):
        a = A[n]
        for o in range(O):
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
