"""Whether the cuda backend can run here; a clear error when it cannot."""
import os


def require():
    from .backends import BackendError
    import numpy as np
    if not hasattr(np, "row_stack"):  # numba-cuda 0.30 launches fail on numpy 2.5 without it
        np.row_stack = np.vstack
    try:
        from numba import cuda
    except ImportError as e:  # pragma: no cover - numba is a dependency
        raise BackendError(f"the cuda device needs numba with CUDA support ({e})") from None
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return
    try:
        ok = cuda.is_available()
    except Exception:  # noqa: BLE001 - any driver failure means "not available"
        ok = False
    if not ok:
        raise BackendError("no usable CUDA GPU found (install a driver and `pip install 'seqlearn[cuda]'`, "
                           "or use --device cpu)")
