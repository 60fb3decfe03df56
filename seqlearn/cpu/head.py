"""Linear decoder and mean softmax cross-entropy, jitted: one product for the logits, one fused
pass for the softmax, its loss and its gradient, then two products for dW and dh."""
import math

import numpy as np

from ._blas import acc_colsum, acc_tn
from ._jit import jit


@jit
def _logits(h, W, b, z):
    np.dot(h, W.T, z)
    N, V = z.shape
    for n in range(N):
        zr = z[n]
        for v in range(V):
            zr[v] += b[v]


@jit
def _softmax_xent(z, y, grad):
    """Mean cross-entropy of z (N, V) holding logits; with grad, z becomes d(mean loss)/dz."""
    N, V = z.shape
    total = 0.0
    inv_n = z.dtype.type(1.0 / N)
    for n in range(N):
        zr = z[n]
        m = zr[0]
        for v in range(1, V):
            m = max(m, zr[v])
        zy = zr[y[n]] - m
        s = z.dtype.type(0.0)
        for v in range(V):
            e = math.exp(zr[v] - m)
            zr[v] = e
            s += e
        total += math.log(s) - zy
        if grad:
            inv_s = z.dtype.type(1.0) / s
            for v in range(V):
                zr[v] = zr[v] * inv_s
            zr[y[n]] -= 1
            for v in range(V):
                zr[v] = zr[v] * inv_n
    return total / N


@jit
def _loss(h, W, b, y):
    z = np.empty((h.shape[0], W.shape[0]), h.dtype)
    _logits(h, W, b, z)
    return _softmax_xent(z, y, False)


@jit
def _loss_backward(h, W, b, y, dh, dW, db):
    z = np.empty((h.shape[0], W.shape[0]), h.dtype)
    _logits(h, W, b, z)
    out = _softmax_xent(z, y, True)
    acc_tn(dW, z, h)
    acc_colsum(db, z)
    np.dot(z, W, dh)
    return out


def loss(h, W, b, y):
    """Mean cross-entropy (nats) of the targets y (N,) under softmax(h @ W.T + b)."""
    return float(_loss(h, W, b, y))


def loss_backward(h, W, b, y, dh, dW, db):
    """Return the mean loss; write dh, accumulate dW, db (gradients of the mean)."""
    return float(_loss_backward(h, W, b, y, dh, dW, db))


def logits(h, W, b, out):
    _logits(h, W, b, out)
