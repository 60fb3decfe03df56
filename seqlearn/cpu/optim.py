"""Optimizer update kernels compiled with numba.njit, over the whole flat parameter buffer.

Same names, arguments and rules as seqlearn/ref/optim.py (torch.optim's). One serial loop per
update: the buffers are small next to the recurrent products, and a prange here would fight the
BLAS thread pool. Hyperparameters are arguments (numba freezes module globals).
"""
import math

import numpy as np

from ._jit import jit

_jit = jit(fastmath=False)   # cached, with the read-only-install fallback of _jit.py


@_jit
def sgd(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    n = p.shape[0]
    for i in range(n):
        d = g[i] + weight_decay * p[i]
        if momentum != 0.0:
            if first:
                b = d
            else:
                b = momentum * buf[i] + (1.0 - dampening) * d
            buf[i] = b
            if nesterov:
                d = d + momentum * b
            else:
                d = b
        p[i] = p[i] - lr * d


@_jit
def adagrad(p, g, s, lr, eps, weight_decay):
    n = p.shape[0]
    for i in range(n):
        d = g[i] + weight_decay * p[i]
        si = s[i] + d * d
        s[i] = si
        p[i] = p[i] - lr * d / (math.sqrt(si) + eps)


@_jit
def rmsprop(p, g, s, lr, alpha, eps, weight_decay):
    n = p.shape[0]
    for i in range(n):
        d = g[i] + weight_decay * p[i]
        si = alpha * s[i] + (1.0 - alpha) * d * d
        s[i] = si
        p[i] = p[i] - lr * d / (math.sqrt(si) + eps)


@_jit
def adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    n = p.shape[0]
    bc1 = 1.0 - beta1 ** step
    sbc2 = math.sqrt(1.0 - beta2 ** step)
    step_size = lr / bc1
    decay = 1.0 - lr * weight_decay
    for i in range(n):
        pi = p[i]
        d = g[i]
        if decoupled:
            pi = pi * decay
        else:
            d = d + weight_decay * pi
        mi = beta1 * m[i] + (1.0 - beta1) * d
        vi = beta2 * v[i] + (1.0 - beta2) * d * d
        m[i] = mi
        v[i] = vi
        p[i] = pi - step_size * mi / (math.sqrt(vi) / sbc2 + eps)


@_jit
def _sumsq(g):
    acc = 0.0
    for i in range(g.shape[0]):
        x = np.float64(g[i])
        acc += x * x
    return acc


def sumsq(g):
    """Sum of squares (a Python float, accumulated in float64) for clipping by global norm."""
    return float(_sumsq(g.reshape(-1)))


@_jit
def scale(g, s):
    for i in range(g.shape[0]):
        g[i] = g[i] * s


@_jit
def clip_value(g, c):
    for i in range(g.shape[0]):
        x = g[i]
        if x > c:
            g[i] = c
        elif x < -c:
            g[i] = -c
