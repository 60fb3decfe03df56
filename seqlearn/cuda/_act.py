"""Activations for the cuda kernels: the array dtype's libdevice functions (expf for float32)."""
import math

from numba import cuda


@cuda.jit(device=True, inline=True)
def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))
