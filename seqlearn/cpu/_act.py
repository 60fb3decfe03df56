"""Activations for the cpu kernels, chosen by dtype when a kernel compiles.

float64: the exact functions (``math.tanh``, ``1 / (1 + exp(-x))``, as the reference computes them).
float32: arithmetic only, so the fused loops vectorise (numba has no vector libm): a rational
minimax tanh (odd degree-13 / even degree-6, Eigen's ``ptanh_float``; max abs error 4e-7 over
all floats, a few float32 ulps) and sigmoid(x) = 0.5 tanh(x / 2) + 0.5 (max abs error 2.3e-7).
Derivatives are always taken from the stored activations (s (1 - s), 1 - t^2), so forward and
backward stay consistent with each other whichever form computed them.

The ``exp_`` used by the softmax stays libm in both dtypes (it is called N x V times per step,
not per gate, and must be accurate over a wide range).
"""
import math

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

from ._jit import OPTIONS

_f = np.float32
# Eigen ptanh_float coefficients
_A1, _A3, _A5, _A7 = _f(4.89352455891786e-03), _f(6.37261928875436e-04), _f(1.48572235717979e-05), _f(5.12229709037114e-08)
_A9, _A11, _A13 = _f(-8.60467152213735e-11), _f(2.00018790482477e-13), _f(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = _f(4.89352518554385e-03), _f(2.26843463243900e-03), _f(1.18534705686654e-04), _f(1.19825839466702e-06)
_CLAMP = _f(7.90531110763549805)
_HALF, _ONE = _f(0.5), _f(1.0)


def tanh_(x):
    """tanh, exact in float64, rational approximation in float32 (see module docstring)."""
    return math.tanh(x)


def sigmoid_(x):
    return 1.0 / (1.0 + math.exp(-x))


@register_jitable
def _tanh32(x):
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return p / q


_JO = {"fastmath": OPTIONS["fastmath"], "error_model": OPTIONS["error_model"]}


@overload(tanh_, jit_options=_JO)
def _ov_tanh(x):
    if x == types.float32:
        return _tanh32
    if isinstance(x, types.Float):
        return lambda x: math.tanh(x)


@overload(sigmoid_, jit_options=_JO)
def _ov_sigmoid(x):
    if x == types.float32:
        return lambda x: _HALF * _tanh32(_HALF * x) + _HALF
    if isinstance(x, types.Float):
        return lambda x: 1.0 / (1.0 + math.exp(-x))
