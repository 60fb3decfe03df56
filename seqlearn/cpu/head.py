"""Linear decoder and mean softmax cross-entropy, jitted: per chunk of rows one product for the
logits, one fused pass for the softmax, its loss and its gradient, one product for dh; then dW
as one product split by output rows (all on the worker threads, see _threads.py)."""
import math

import numpy as np

from . import _threads
from ._act import exp_
from ._blas import N_, T_, consts, rgemm
from ._jit import jit
from .wgrad import wgrad


@jit
def _rowmax(zr, V):
    """max(zr[:V]) over four interleaved partial maxima: one running max is a chain of V
    dependent compares that LLVM does not vectorise (no fast-math)."""
    m0 = m1 = m2 = m3 = zr[0]
    V4 = V - V % 4
    for v in range(0, V4, 4):
        m0 = max(m0, zr[v])
        m1 = max(m1, zr[v + 1])
        m2 = max(m2, zr[v + 2])
        m3 = max(m3, zr[v + 3])
    for v in range(V4, V):
        m0 = max(m0, zr[v])
    return max(max(m0, m1), max(m2, m3))


@jit
def _rowsum(zr, V):
    """sum(zr[:V]) over four interleaved partial sums (as _rowmax: one running sum is a chain of
    V dependent additions)."""
    zero = zr.dtype.type(0.0)
    s0 = s1 = s2 = s3 = zero
    V4 = V - V % 4
    for v in range(0, V4, 4):
        s0 += zr[v]
        s1 += zr[v + 1]
        s2 += zr[v + 2]
        s3 += zr[v + 3]
    for v in range(V4, V):
        s0 += zr[v]
    return (s0 + s1) + (s2 + s3)


@jit
def _rows(h, W, b, y, z, dh, grad, n0, n1):
    """Logits of rows n0:n1 into z; their summed loss; with grad, z becomes d(mean loss)/dz and
    dh[n0:n1] = z @ W."""
    H = h.shape[1]
    V, N = W.shape[0], z.shape[0]
    ab = consts(z)
    isz = z.itemsize
    rgemm(ab, N_, T_, n1 - n0, V, H, h.ctypes.data + n0 * H * isz, H, W.ctypes.data, H, False,
          z.ctypes.data + n0 * V * isz, V)
    total = 0.0
    inv_n = z.dtype.type(1.0 / N)
    for n in range(n0, n1):
        zr = z[n]
        for v in range(V):
            zr[v] += b[v]
        if y.shape[0] == 0:
            continue
        m = _rowmax(zr, V)
        zy = zr[y[n]] - m
        for v in range(V):                     # vectorised (exp_ is arithmetic-only in float32)
            zr[v] = exp_(zr[v] - m)
        s = _rowsum(zr, V)
        total += math.log(s) - zy
        if grad:
            sc = inv_n / s
            for v in range(V):
                zr[v] = zr[v] * sc
            zr[y[n]] -= inv_n
    if grad:
        rgemm(ab, N_, N_, n1 - n0, H, V, z.ctypes.data + n0 * V * isz, V, W.ctypes.data, H, False,
              dh.ctypes.data + n0 * H * isz, H)
    return total


def _run_rows(h, W, b, y, z, dh, grad):
    parts = _threads.run(_rows, [(h, W, b, y, z, dh, grad, n0, n1) for n0, n1 in _threads.chunks(h.shape[0])])
    return sum(parts)


def loss(h, W, b, y):
    """Mean cross-entropy (nats) of the targets y (N,) under softmax(h @ W.T + b)."""
    z = np.empty((h.shape[0], W.shape[0]), h.dtype)
    return float(_run_rows(h, W, b, y, z, z, False) / h.shape[0])


def loss_backward(h, W, b, y, dh, dW, db):
    """Return the mean loss; write dh, accumulate dW, db (gradients of the mean)."""
    z = np.empty((h.shape[0], W.shape[0]), h.dtype)
    out = _run_rows(h, W, b, y, z, dh, True) / h.shape[0]
    wgrad(z, h, dW, db, consts(z))
    return float(out)


def logits(h, W, b, out):
    _run_rows(h, W, b, np.zeros(0, np.int64), out, out, False)
