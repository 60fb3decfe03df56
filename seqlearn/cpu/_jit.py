"""The njit decorator of the cpu backend, and where its on-disk compile cache lives.

Every kernel is compiled with ``cache=True`` so that a second process starts in well under a
second. numba puts the cache beside the source (``__pycache__/``), else under ``~/.cache/numba``,
else wherever ``NUMBA_CACHE_DIR`` points; if none of them is writable, decorating a function with
``cache=True`` raises. A read-only installation must still import, so on that error the cache is
moved to a private directory under the system temp dir, and if even that fails the kernels are
compiled without a cache (slower start, same results).
"""
import os
import tempfile

import numba
from numba.core import config

# error_model="numpy": no ZeroDivisionError checks inside loops, so divisions vectorise.
# fastmath: contraction into FMA only; no reassociation, no approximate functions, so float64
# kernels compute exactly what the reference computes up to rounding.
OPTIONS = dict(nogil=True, error_model="numpy", fastmath={"contract"})

_fallback = {"dir": None, "disabled": False}


def _temp_cache_dir():
    uid = os.getuid() if hasattr(os, "getuid") else "u"
    path = os.path.join(tempfile.gettempdir(), f"seqlearn-numba-cache-{uid}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    if not os.access(path, os.W_OK | os.X_OK):
        raise OSError(f"{path} is not writable")
    return path


def jit(fn=None, **kw):
    """``numba.njit(cache=True, **OPTIONS)``, falling back as described above. ``jit(sigs)`` with
    a list of signatures compiles (or loads) exactly those, eagerly."""
    if fn is None:
        return lambda f: jit(f, **kw)
    if isinstance(fn, list):
        return lambda f: jit(f, _sigs=fn, **kw)
    sigs = kw.pop("_sigs", None)
    opts = dict(OPTIONS, **kw)
    njit = (lambda **o: numba.njit(sigs, **o)) if sigs else numba.njit
    if not _fallback["disabled"]:
        try:
            return njit(cache=True, **opts)(fn)
        except RuntimeError as e:       # "cannot cache function ...: no locator available"
            if "cannot cache" not in str(e):
                raise
        if _fallback["dir"] is None:
            try:
                _fallback["dir"] = _temp_cache_dir()
                config.CACHE_DIR = _fallback["dir"]
            except OSError:
                _fallback["disabled"] = True
        if not _fallback["disabled"]:
            try:
                return njit(cache=True, **opts)(fn)
            except RuntimeError:
                _fallback["disabled"] = True
    return njit(cache=False, **opts)(fn)
