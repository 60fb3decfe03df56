"""The numba.cuda backend: the same modules and calling convention as seqlearn.ref, on device
arrays. The optimizer kernels live in seqlearn.cuda.optim (imported by seqlearn.optim on demand);
the GPU sampler in seqlearn.cuda.sample."""
import numpy as _np

if not hasattr(_np, "row_stack"):  # numba-cuda 0.30 registers an overload of it; numpy 2.5 removed it
    _np.row_stack = _np.vstack

from . import gru, head, lstm, ops, rnn  # noqa: E402,F401

name = "cuda"
