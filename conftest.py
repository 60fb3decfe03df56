"""Root conftest: GPU code runs under numba's CUDA simulator unless the caller chose otherwise.

NUMBA_ENABLE_CUDASIM must be set before numba is first imported, so it is set here, before any
test module is collected. On a real GPU run the tests with NUMBA_ENABLE_CUDASIM=0.
"""
import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")


def _serialise_simulator_shared_arrays():
    """numba's simulator hands out a block's static shared array with an unlocked check-then-set
    (FakeCUDAShared.array): when the GIL switches between the two, two threads of one block get
    different arrays, and a thread reads values its neighbours never wrote into its copy (seen as
    a rare NaN in a full-suite run). This is the same method with the lookup under a lock. Arrays
    are keyed by the caller's file and line, as numba keys them."""
    import sys
    import threading

    import numpy as np
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    if getattr(kernelapi.FakeCUDAShared.array, "seqlearn_locked", False):
        return
    lock = threading.Lock()

    def array(self, shape, dtype):
        if isinstance(dtype, kernelapi.types.Type):
            dtype = numpy_support.as_dtype(dtype)
        if shape == 0:      # dynamic shared memory: one buffer, allocated with the block
            count = self._dynshared_size // dtype.itemsize
            return np.frombuffer(self._dynshared.data, dtype=dtype, count=count)
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = self._allocations[caller] = np.empty(shape, dtype)
        return res

    array.seqlearn_locked = True
    kernelapi.FakeCUDAShared.array = array


if os.environ["NUMBA_ENABLE_CUDASIM"] == "1":
    _serialise_simulator_shared_arrays()
