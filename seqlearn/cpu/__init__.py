"""The Numba CPU backend: the same functions as ``seqlearn.ref`` (see docs/backends.md), with the
time loop inside jitted code, one BLAS product per step, fused pointwise kernels and the weight
gradients as one product after the loop. The optimizer kernels live in ``seqlearn.cpu.optim``
(imported by the optimizer, not here)."""
from . import gru, head, lstm, ops, rnn  # noqa: F401

name = "cpu"
