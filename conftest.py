"""Root conftest: GPU code runs under numba's CUDA simulator unless the caller chose otherwise.

NUMBA_ENABLE_CUDASIM must be set before numba is first imported, so it is set here, before any
test module is collected. On a real GPU run the tests with NUMBA_ENABLE_CUDASIM=0.
"""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
