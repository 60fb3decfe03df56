"""Optimizer update kernels compiled with numba.njit, over the whole flat parameter buffer.

Same names, arguments and rules as seqlearn/ref/optim.py (torch.optim's). One serial loop per
update: the buffers are small next to the recurrent products, and a prange here would fight the
BLAS thread pool. Hyperparameters are arguments (numba freezes module globals).

The arithmetic is in the parameters' dtype, as torch.optim's and the numpy reference's is (the
hyperparameters are cast to it; bias corrections are computed in float64 first): float64
hyperparameters would make every float32 update run in float64. The sum of squares for clipping
accumulates in float64 over eight interleaved partial sums (a fixed order, so the same on every
run), which vectorises. The timings: docs/performance.md, "Pointwise work, head and optimizer".
"""
import math

import numpy as np

from ._jit import jit

_jit = jit(fastmath=False)   # cached, with the read-only-install fallback of _jit.py


@_jit
def sgd(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    f = p.dtype.type
    lr_, mom, damp, wd = f(lr), f(momentum), f(1.0 - dampening), f(weight_decay)
    for i in range(p.shape[0]):
        d = g[i] + wd * p[i]
        if momentum != 0.0:
            if first:
                b = d
            else:
                b = mom * buf[i] + damp * d
            buf[i] = b
            if nesterov:
                d = d + mom * b
            else:
                d = b
        p[i] = p[i] - lr_ * d


@_jit
def adagrad(p, g, s, lr, eps, weight_decay):
    f = p.dtype.type
    lr_, eps_, wd = f(lr), f(eps), f(weight_decay)
    for i in range(p.shape[0]):
        d = g[i] + wd * p[i]
        si = s[i] + d * d
        s[i] = si
        p[i] = p[i] - lr_ * d / (math.sqrt(si) + eps_)


@_jit
def rmsprop(p, g, s, lr, alpha, eps, weight_decay):
    f = p.dtype.type
    lr_, a, oa, eps_, wd = f(lr), f(alpha), f(1.0 - alpha), f(eps), f(weight_decay)
    for i in range(p.shape[0]):
        d = g[i] + wd * p[i]
        si = a * s[i] + oa * d * d
        s[i] = si
        p[i] = p[i] - lr_ * d / (math.sqrt(si) + eps_)


@_jit
def adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    f = p.dtype.type
    step_size = f(lr / (1.0 - beta1 ** step))
    sbc2 = f(math.sqrt(1.0 - beta2 ** step))
    b1, ob1, b2, ob2 = f(beta1), f(1.0 - beta1), f(beta2), f(1.0 - beta2)
    eps_, wd, decay = f(eps), f(weight_decay), f(1.0 - lr * weight_decay)
    for i in range(p.shape[0]):
        pi = p[i]
        d = g[i]
        if decoupled:
            pi = pi * decay
        else:
            d = d + wd * pi
        mi = b1 * m[i] + ob1 * d
        vi = b2 * v[i] + ob2 * d * d
        m[i] = mi
        v[i] = vi
        p[i] = pi - step_size * mi / (math.sqrt(vi) / sbc2 + eps_)


@_jit
def _sumsq(g):
    n = g.shape[0]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    n8 = n - n % 8
    for i in range(0, n8, 8):
        x0, x1, x2, x3 = np.float64(g[i]), np.float64(g[i + 1]), np.float64(g[i + 2]), np.float64(g[i + 3])
        x4, x5, x6, x7 = np.float64(g[i + 4]), np.float64(g[i + 5]), np.float64(g[i + 6]), np.float64(g[i + 7])
        a0 += x0 * x0
        a1 += x1 * x1
        a2 += x2 * x2
        a3 += x3 * x3
        a4 += x4 * x4
        a5 += x5 * x5
        a6 += x6 * x6
        a7 += x7 * x7
    acc = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    for i in range(n8, n):
        x = np.float64(g[i])
        acc += x * x
    return acc


def sumsq(g):
    """Sum of squares (a Python float, accumulated in float64) for clipping by global norm."""
    return float(_sumsq(g.reshape(-1)))


@_jit
def scale(g, s):
    s_ = g.dtype.type(s)
    for i in range(g.shape[0]):
        g[i] = g[i] * s_


@_jit
def clip_value(g, c):
    c_ = g.dtype.type(c)
    for i in range(g.shape[0]):
        x = g[i]
        if x > c_:
            g[i] = c_
        elif x < -c_:
            g[i] = -c_
