"""The numba.cuda backend: the same modules and calling convention as seqlearn.ref, on device
arrays. The optimizer kernels live in seqlearn.cuda.optim (imported by seqlearn.optim on demand);
the GPU sampler in seqlearn.cuda.sample."""
from .. import numpy_compat  # noqa: F401 - before numba.cuda
from . import gru, head, lstm, ops, rnn  # noqa: F401

name = "cuda"
