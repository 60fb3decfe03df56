"""The njit decorator of the cpu backend, and where its on-disk compile cache lives.

Every kernel is compiled with ``cache=True`` so that a second process starts in well under a
second. numba puts the cache beside the source (``__pycache__/``), else under ``~/.cache/numba``,
else wherever ``NUMBA_CACHE_DIR`` points; if none of them is writable, decorating a function with
``cache=True`` raises. A read-only installation must still import, so on that error the cache is
moved to a private directory under the system temp dir, and if even that fails the kernels are
compiled without a cache (slower start, same results).

numba decides whether a cached kernel is current from its own source file's time stamp only. A
kernel that calls (and inlines) a function of another module of this package would keep the old
callee after only that module changed (an edited checkout, an editable install after a pull).
So at import the package's sources are hashed, and wherever the recorded hash differs, this
package's cached kernels are removed (they compile again once).
"""
import glob
import hashlib
import os
import tempfile

import numba
from numba.core import config

# error_model="numpy": no ZeroDivisionError checks inside loops, so divisions vectorise.
# fastmath: contraction into FMA only; no reassociation, no approximate functions, so float64
# kernels compute exactly what the reference computes up to rounding.
OPTIONS = dict(nogil=True, error_model="numpy", fastmath={"contract"})

_fallback = {"dir": None, "disabled": False}
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
STAMP = "seqlearn-cpu-sources.sha1"


def source_digest():
    """Hash of this package's sources and the numba version."""
    h = hashlib.sha1(numba.__version__.encode())
    for p in sorted(glob.glob(os.path.join(_PKG_DIR, "*.py"))):
        h.update(os.path.basename(p).encode())
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def _subpath():
    from numba.core.caching import _CacheLocator
    return _CacheLocator.get_suitable_cache_subpath(os.path.join(_PKG_DIR, "_jit.py"))


def cache_dirs():
    """The directories numba may keep this package's kernels in, the one it uses first: under
    NUMBA_CACHE_DIR (or the fallback directory), else beside the sources when that is writable,
    else under the user-wide numba cache; then the others."""
    intree = os.path.join(_PKG_DIR, "__pycache__")
    dirs = [os.path.join(config.CACHE_DIR, _subpath())] if config.CACHE_DIR else []
    try:
        from numba.misc.appdirs import AppDirs
        userwide = [os.path.join(AppDirs(appname="numba", appauthor=False).user_cache_dir, _subpath())]
    except Exception:  # noqa: BLE001 - no user-wide cache location: nothing to check there
        userwide = []
    if os.access(intree if os.path.isdir(intree) else _PKG_DIR, os.W_OK):
        return dirs + [intree] + userwide
    return dirs + userwide + [intree]


def drop_stale(dirs, digest=None):
    """Remove this package's cached kernels (*.nbi, *.nbc) from every directory of dirs whose
    recorded source hash differs from digest, and record digest there. The first directory is
    created if missing (numba will cache there; a kernel cached before the hash is recorded would
    otherwise be dropped by the next process); unwritable directories are left alone (numba does
    not use them either)."""
    digest = digest or source_digest()
    for n, path in enumerate(dirs):
        stamp = os.path.join(path, STAMP)
        try:
            with open(stamp) as f:
                if f.read().strip() == digest:
                    continue
        except OSError:
            pass
        try:
            if n == 0:
                os.makedirs(path, exist_ok=True)
            if not os.path.isdir(path) or not os.access(path, os.W_OK):
                continue
            for f in glob.glob(os.path.join(path, "*.nb[ic]")):
                os.remove(f)
            with open(stamp, "w") as f:
                f.write(digest)
        except OSError:
            pass


drop_stale(cache_dirs())


def _temp_cache_dir():
    uid = os.getuid() if hasattr(os, "getuid") else "u"
    path = os.path.join(tempfile.gettempdir(), f"seqlearn-numba-cache-{uid}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    if not os.access(path, os.W_OK | os.X_OK):
        raise OSError(f"{path} is not writable")
    return path


def _cached(make):
    """make(cache) -> compiled function, with cache=True where numba can cache (see above)."""
    if not _fallback["disabled"]:
        try:
            return make(True)
        except RuntimeError as e:       # "cannot cache function ...: no locator available"
            if "cannot cache" not in str(e):
                raise
        if _fallback["dir"] is None:
            try:
                _fallback["dir"] = _temp_cache_dir()
                config.CACHE_DIR = _fallback["dir"]
                drop_stale([os.path.join(_fallback["dir"], _subpath())])
            except OSError:
                _fallback["disabled"] = True
        if not _fallback["disabled"]:
            try:
                return make(True)
            except RuntimeError:
                _fallback["disabled"] = True
    return make(False)


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
    return _cached(lambda cache: njit(cache=cache, **opts)(fn))


def cfunc(sig):
    """``numba.cfunc(sig)`` with the options and the cache of jit: a C-callable function, compiled
    (or loaded) now; its ``address`` stays valid while it lives."""
    opts = {k: v for k, v in OPTIONS.items() if k != "nogil"}
    return lambda fn: _cached(lambda cache: numba.cfunc(sig, cache=cache, **opts)(fn))
