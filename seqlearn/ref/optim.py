"""Optimizer update kernels in numpy, over the whole flat parameter buffer at once.

Every function updates p (and its state arrays) in place; the rules are torch.optim's:
L2 weight_decay is added to the gradient (g + wd * p), except adam(decoupled=True) (AdamW), which
decays the weights directly (p -= lr * wd * p). The gradient g is never modified by an update.
"""
import numpy as np


def sgd(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    d = g + weight_decay * p if weight_decay else g
    if momentum:
        if first:
            buf[...] = d
        else:
            buf *= momentum
            buf += (1.0 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    p -= lr * d


def adagrad(p, g, s, lr, eps, weight_decay):
    d = g + weight_decay * p if weight_decay else g
    s += d * d
    p -= lr * d / (np.sqrt(s) + eps)


def rmsprop(p, g, s, lr, alpha, eps, weight_decay):
    d = g + weight_decay * p if weight_decay else g
    s *= alpha
    s += (1.0 - alpha) * d * d
    p -= lr * d / (np.sqrt(s) + eps)


def adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """step counts from 1; moments are bias-corrected."""
    if weight_decay and decoupled:
        p *= 1.0 - lr * weight_decay
        d = g
    else:
        d = g + weight_decay * p if weight_decay else g
    m *= beta1
    m += (1.0 - beta1) * d
    v *= beta2
    v += (1.0 - beta2) * d * d
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    p -= (lr / bc1) * m / (np.sqrt(v) / np.sqrt(bc2) + eps)


def sumsq(g):
    """Sum of squares (a Python float, accumulated in float64) for clipping by global norm."""
    g = np.asarray(g).ravel()
    return float(np.dot(g.astype(np.float64, copy=False), g.astype(np.float64, copy=False)))


def scale(g, s):
    g *= s


def clip_value(g, c):
    np.clip(g, -c, c, out=g)
