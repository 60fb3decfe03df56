"""Optimizer update kernels on the GPU over the whole flat parameter buffer (torch.optim rules;
spec: seqlearn/ref/optim.py and docs/backends.md). Hyperparameters are kernel arguments."""
import math

from numba import cuda

from . import ops
from ._launch import launch


@cuda.jit
def k_sgd(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        d = g[i] + weight_decay * p[i]
        if momentum != 0.0:
            if first:
                bv = d
            else:
                bv = momentum * buf[i] + (1.0 - dampening) * d
            buf[i] = bv
            if nesterov:
                d = d + momentum * bv
            else:
                d = bv
        p[i] = p[i] - lr * d


@cuda.jit
def k_adagrad(p, g, s, lr, eps, weight_decay):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        d = g[i] + weight_decay * p[i]
        sv = s[i] + d * d
        s[i] = sv
        p[i] = p[i] - lr * d / (math.sqrt(sv) + eps)


@cuda.jit
def k_rmsprop(p, g, s, lr, alpha, eps, weight_decay):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        d = g[i] + weight_decay * p[i]
        sv = alpha * s[i] + (1.0 - alpha) * d * d
        s[i] = sv
        p[i] = p[i] - lr * d / (math.sqrt(sv) + eps)


@cuda.jit
def k_adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, bc1, bc2_sqrt):
    """bc1 = 1 - beta1**step, bc2_sqrt = sqrt(1 - beta2**step) (computed on the host)."""
    step_size = lr / bc1
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        pv = p[i]
        d = g[i]
        if decoupled:
            pv = pv * (1.0 - lr * weight_decay)
        else:
            d = d + weight_decay * pv
        mv = beta1 * m[i] + (1.0 - beta1) * d
        vv = beta2 * v[i] + (1.0 - beta2) * d * d
        m[i] = mv
        v[i] = vv
        p[i] = pv - step_size * mv / (math.sqrt(vv) / bc2_sqrt + eps)


@cuda.jit
def k_scale(g, s):
    for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        g[i] = g[i] * s



def sgd(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    if p.size:
        if not momentum:
            buf = p  # never read or written without momentum
        launch(k_sgd, ops.stride_grid(p.size), (p, g, buf, float(lr), float(momentum), float(dampening),
                                          int(bool(nesterov)), float(weight_decay), int(bool(first))))


def adagrad(p, g, s, lr, eps, weight_decay):
    if p.size:
        launch(k_adagrad, ops.stride_grid(p.size), (p, g, s, float(lr), float(eps), float(weight_decay)))


def rmsprop(p, g, s, lr, alpha, eps, weight_decay):
    if p.size:
        launch(k_rmsprop, ops.stride_grid(p.size), (p, g, s, float(lr), float(alpha), float(eps), float(weight_decay)))


def adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """step counts from 1; moments are bias-corrected (the corrections are computed here)."""
    if p.size:
        bc1 = 1.0 - beta1 ** step
        bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
        launch(k_adam, ops.stride_grid(p.size), (p, g, m, v, float(lr), float(beta1), float(beta2), float(eps),
                                           float(weight_decay), int(bool(decoupled)), bc1, bc2_sqrt))


def sumsq(g):
    """Sum of squares as a Python float, accumulated in float64 on the device."""
    return ops.total(g, square=True, acc="float64")


def scale(g, s):
    if g.size:
        launch(k_scale, ops.stride_grid(g.size), (g, float(s)))


def clip_value(g, c):
    ops.clip_all(g, -float(c), float(c))
