"""Linear decoder and mean softmax cross-entropy, jitted: per chunk of rows one product for the
logits, one fused pass for the softmax, its loss and its gradient, one product for dh; then dW
as one product split by output rows (all on the worker threads, see _threads.py)."""
import math

import numpy as np

from . import _threads
from ._act import exp_
from ._blas import N_, T_, consts, rgemm, wgrad
from ._jit import jit


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
        m = zr[0]
        for v in range(1, V):
            m = max(m, zr[v])
        zy = zr[y[n]] - m
        for v in range(V):                     # vectorised (exp_ is arithmetic-only in float32)
            zr[v] = exp_(zr[v] - m)
        s = z.dtype.type(0.0)
        for v in range(V):
            s += zr[v]
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
