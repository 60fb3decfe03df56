"""Optimizer update kernels on the GPU over the whole flat parameter buffer (torch.optim rules;
spec: seqlearn/ref/optim.py and docs/backends.md). Hyperparameters are kernel arguments."""
import math

from . import config, ops
from . import kernels as K


def _grid(n):
    t = config.THREADS
    return max(1, min(config.MAX_BLOCKS, (n + t - 1) // t)), t


def sgd(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    if p.size:
        if not momentum:
            buf = p  # never read or written without momentum
        K.launch(K.k_sgd, _grid(p.size), (p, g, buf, float(lr), float(momentum), float(dampening),
                                          int(bool(nesterov)), float(weight_decay), int(bool(first))))


def adagrad(p, g, s, lr, eps, weight_decay):
    if p.size:
        K.launch(K.k_adagrad, _grid(p.size), (p, g, s, float(lr), float(eps), float(weight_decay)))


def rmsprop(p, g, s, lr, alpha, eps, weight_decay):
    if p.size:
        K.launch(K.k_rmsprop, _grid(p.size), (p, g, s, float(lr), float(alpha), float(eps), float(weight_decay)))


def adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """step counts from 1; moments are bias-corrected (the corrections are computed here)."""
    if p.size:
        bc1 = 1.0 - beta1 ** step
        bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
        K.launch(K.k_adam, _grid(p.size), (p, g, m, v, float(lr), float(beta1), float(beta2), float(eps),
                                           float(weight_decay), int(bool(decoupled)), bc1, bc2_sqrt))


def sumsq(g):
    """Sum of squares as a Python float, accumulated in float64 on the device."""
    return ops.total(g, square=True, acc="float64")


def scale(g, s):
    if g.size:
        K.launch(K.k_scale, _grid(g.size), (g, float(s)))


def clip_value(g, c):
    ops.clip_all(g, -float(c), float(c))
