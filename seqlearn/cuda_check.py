"""Whether the cuda backend can run here; a clear error when it cannot."""
import os

from . import numpy_compat  # noqa: F401 - before numba.cuda
from .errors import BackendError


def require():
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
