"""Limit the BLAS thread pools for the duration of an experiment.

The experiments multiply small matrices (H of 16 to 256) one time step at a time. On a machine
with few cores, and all the more on a busy one, OpenBLAS's worker threads then cost far more than
they save (a 1-layer H=32 lstm step measured several times slower with 2 threads than with 1 on a
loaded 2-core machine). numpy and SciPy (which the cpu backend's jitted np.dot calls) each load their
own OpenBLAS; both are limited. threadpoolctl is used when installed, else the OpenBLAS entry
points are called directly; if neither works the limit is silently not applied.
"""
import contextlib
import ctypes
import os

_NAMES = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
          "openblas_set_num_threads64_")


def _openblas_libs():
    """(get, set) function pairs of every OpenBLAS loaded in this process (Linux only)."""
    out, seen = [], set()
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if len(line.split()) >= 6}
    except OSError:
        return out
    paths = {p for p in paths if ".so" in p and "blas" in os.path.basename(p).lower()}
    for path in sorted(paths):
        if not os.path.isfile(path):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for s in _NAMES:
            fset = getattr(lib, s, None)
            fget = getattr(lib, s.replace("set_num", "get_num"), None)
            if fset is not None and fget is not None:
                key = ctypes.cast(fset, ctypes.c_void_p).value
                if key not in seen:
                    seen.add(key)
                    fget.restype = ctypes.c_int
                    out.append((fget, fset))
                break
    return out


@contextlib.contextmanager
def blas_threads(n):
    """Within the block, BLAS libraries use at most n threads (None: leave them alone)."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=int(n), user_api="blas"):
            yield
        return
    # make sure both numpy's and SciPy's BLAS are loaded before looking for them
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        pass
    libs = _openblas_libs()
    before = []
    for fget, fset in libs:
        try:
            before.append((fset, fget()))
            fset(ctypes.c_int(int(n)))
        except Exception:   # a foreign library with the same symbol names: leave it
            pass
    try:
        yield
    finally:
        for fset, old in before:
            fset(ctypes.c_int(old))


def current():
    """Thread counts of the OpenBLAS libraries found (for tests and diagnostics)."""
    return [fget() for fget, _ in _openblas_libs()]
