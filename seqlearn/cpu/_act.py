"""Activations for the cpu kernels, chosen by dtype when a kernel compiles.

float64: the exact functions (``math.tanh``, ``1 / (1 + exp(-x))``, as the reference computes them).
float32: arithmetic only, so the fused loops vectorise (numba has no vector libm): a rational
minimax tanh (odd degree-13 / even degree-6, Eigen's ``ptanh_float``; max abs error 4e-7 over
all floats, a few float32 ulps) and sigmoid(x) = 0.5 tanh(x / 2) + 0.5 (max abs error 2.3e-7).
Derivatives are always taken from the stored activations (s (1 - s), 1 - t^2), so forward and
backward stay consistent with each other whichever form computed them.

``exp_`` (the head's softmax, N x V calls per step): float64 ``math.exp``; float32 arithmetic
only as well (Cephes ``expf``: n = round(x log2 e), a degree-5 polynomial on the remainder, times
2^n built from its exponent bits; max relative error 1e-7 over [-87, 88]; 0 below -87, where
exp < 1.7e-38; inputs above 88 clamped), so the softmax loop vectorises instead of calling libm once per logit.
"""
import math

import numpy as np
from numba import types
from numba.extending import intrinsic, overload, register_jitable

from ._jit import OPTIONS

_f = np.float32
# Eigen ptanh_float coefficients
_A1, _A3, _A5, _A7 = _f(4.89352455891786e-03), _f(6.37261928875436e-04), _f(1.48572235717979e-05), _f(5.12229709037114e-08)
_A9, _A11, _A13 = _f(-8.60467152213735e-11), _f(2.00018790482477e-13), _f(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = _f(4.89352518554385e-03), _f(2.26843463243900e-03), _f(1.18534705686654e-04), _f(1.19825839466702e-06)
_CLAMP = _f(7.90531110763549805)
_HALF, _ONE = _f(0.5), _f(1.0)
# Cephes expf
_LOG2E, _C1, _C2 = _f(1.44269504088896341), _f(0.693359375), _f(-2.12194440e-4)
_P0, _P1, _P2 = _f(1.9875691500e-4), _f(1.3981999507e-3), _f(8.3334519073e-3)
_P3, _P4, _P5 = _f(4.1665795894e-2), _f(1.6666665459e-1), _f(5.0000001201e-1)
_XLO, _XHI, _ROUND = _f(-87.0), _f(88.0), _f(12582912.0)   # 1.5 * 2^23: adding it rounds to an integer


def tanh_(x):
    """tanh, exact in float64, rational approximation in float32 (see module docstring)."""
    return math.tanh(x)


def sigmoid_(x):
    return 1.0 / (1.0 + math.exp(-x))


def exp_(x):
    """exp, exact in float64, arithmetic-only in float32 (see module docstring)."""
    return math.exp(x)


@intrinsic
def _f32_from_bits(typingctx, i):
    """The float32 whose bit pattern is the int32 i."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


@register_jitable
def _tanh32(x):
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return p / q


@register_jitable
def _exp32(x):
    lo = x < _XLO
    x = min(max(x, _XLO), _XHI)
    fn = (x * _LOG2E + _ROUND) - _ROUND          # round(x log2 e), as a float
    r = (x - fn * _C1) - fn * _C2
    r2 = r * r
    p = (((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5) * r2 + r + _ONE
    e = p * _f32_from_bits((np.int32(fn) + np.int32(127)) << np.int32(23))
    return _f(0.0) if lo else e


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


@overload(exp_, jit_options=_JO)
def _ov_exp(x):
    if x == types.float32:
        return _exp32
    if isinstance(x, types.Float):
        return lambda x: math.exp(x)
