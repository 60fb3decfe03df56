"""Kernel launches without numba-cuda's per-call argument re-typing.

`kern[grid, block](*args)` re-types and re-wraps every argument on every call (see docs/gpu.md,
'Launch overhead'). After a kernel's first call `launch` keeps the compiled overload per (kernel,
argument kinds) and calls cuda.core's `launch` itself with the arguments numba-cuda would build:
the per-array pieces (meminfo, parent, size, itemsize, pointer, shape, strides) once per array
object (held by a weak reference), scalars per call, the LaunchConfig per (grid, block, shared,
cooperative). cuda.core needs a Stream object, never an int (numba-cuda's own
`driver._to_core_stream(0)` for the default stream). Any error turns the fast path off for the
process and is kept in FAST["error"].
"""
import weakref

import numpy as np

from ._jit import SIMULATOR

FAST = {"enabled": not SIMULATOR, "error": None, "fast_calls": 0, "slow_calls": 0}
_OVERLOADS = {}
_ARGP = {}       # id(array) -> (weakref, [kernel-argument pieces])
_CFG = {}
_CORE = {}


def _kind(a):
    if isinstance(a, np.ndarray):
        return ("np", a.dtype.str, a.ndim, bool(a.flags["C_CONTIGUOUS"]), bool(a.flags["F_CONTIGUOUS"]))
    if hasattr(a, "is_c_contiguous"):
        return (a.dtype.str, a.ndim, a.is_c_contiguous(), a.is_f_contiguous())
    return type(a).__name__


def _dims(d):
    if isinstance(d, tuple):
        return d + (1,) * (3 - len(d))
    return (d, 1, 1)


def _core():
    """cuda.core's launch, LaunchConfig and the default stream as numba-cuda itself builds them."""
    if not _CORE:
        from cuda.core import LaunchConfig, launch as core_launch
        from numba.cuda.cudadrv import driver as _drv
        try:
            from numba.cuda._compat import CUDA_CORE_GE_1_0
        except Exception:  # noqa: BLE001
            CUDA_CORE_GE_1_0 = True
        _CORE.update(launch=core_launch, LaunchConfig=LaunchConfig, stream=_drv._to_core_stream(0),
                     ge10=CUDA_CORE_GE_1_0)
    return _CORE


def _config(grid, block, smem, coop):
    key = (grid, block, smem, coop)
    cfg = _CFG.get(key)
    if cfg is None:
        c = _core()
        if c["ge10"]:
            cfg = c["LaunchConfig"](grid=grid, block=block, shmem_size=smem, is_cooperative=coop)
        else:
            cfg = c["LaunchConfig"](grid=grid, block=block, shmem_size=smem, cooperative_launch=coop)
        _CFG[key] = cfg
    return cfg


def _drop(key):
    return lambda _ref: _ARGP.pop(key, None)


def _fast_launch(ov, grid, block, args, smem):
    """What numba-cuda's _Kernel.launch does (non-debug kernels), with the array pieces cached."""
    c = _core()
    stream = c["stream"]
    kernelargs = []
    for t, v in zip(ov.argument_types, args):
        if hasattr(v, "__cuda_array_interface__") and not isinstance(v, np.ndarray):
            e = _ARGP.get(id(v))
            if e is None or e[0]() is not v:
                pieces, retr = [], []
                ov._prepare_args(t, v, stream, retr, pieces)
                if retr:
                    raise RuntimeError("argument needs a write-back")
                try:
                    ref = weakref.ref(v, _drop(id(v)))
                except TypeError:
                    kernelargs.extend(pieces)
                    continue
                e = _ARGP[id(v)] = (ref, pieces)
            kernelargs.extend(e[1])
        else:
            retr = []
            ov._prepare_args(t, v, stream, retr, kernelargs)
            if retr:
                raise RuntimeError("argument needs a write-back")
    cfg = _config(grid, block, smem, bool(ov.cooperative))
    c["launch"](stream, cfg, ov._codelibrary.get_cufunc().kernel, *kernelargs)


def launch(kern, config, args, smem=0):
    """kern[config[0], config[1], 0, smem](*args), through the cached compiled overload when the
    fast path is on (real GPU) and the argument kinds were seen before."""
    grid, block = config
    if FAST["enabled"]:
        key = (id(kern),) + tuple(_kind(a) for a in args)
        ov = _OVERLOADS.get(key)
        if ov is not None:
            try:
                _fast_launch(ov, _dims(grid), _dims(block), args, smem)
                FAST["fast_calls"] += 1
                return
            except Exception as e:  # noqa: BLE001 - fall back for good, and say why
                FAST["enabled"] = False
                FAST["error"] = f"{type(e).__name__}: {e}"
    kern[grid, block, 0, smem](*args)
    FAST["slow_calls"] += 1
    if FAST["enabled"]:
        try:
            types = tuple(kern.typeof_pyval(a) for a in args)
            ov = kern.overloads[types]
            if getattr(ov, "debug", False):
                raise RuntimeError("debug kernels take the normal path")
            _OVERLOADS[key] = ov
        except Exception as e:  # noqa: BLE001
            FAST["enabled"] = False
            FAST["error"] = f"{type(e).__name__}: {e}"

