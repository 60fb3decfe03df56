"""numba-cuda 0.30 refers to np.row_stack, which numpy 2.5 removed: give it the alias back.
Imported (for its effect) before numba.cuda by seqlearn.cuda_check and seqlearn.cuda."""
import numpy as np

if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack
