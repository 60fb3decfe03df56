"""The machine: what it is (CPUs, versions, GPU) and its float32 product peak."""
import math
import os
import sys
import time

import numpy as np


_SGEMM = {}


def _njit_sgemm():
    """njit np.dot: the BLAS the cpu backend uses (SciPy's OpenBLAS, not numpy's)."""
    if "f" not in _SGEMM:
        import numba

        def sgemm(a, b, out):
            np.dot(a, b, out)
        try:
            _SGEMM["f"] = numba.njit(cache=True, nogil=True)(sgemm)
        except RuntimeError:       # no writable cache location
            _SGEMM["f"] = numba.njit(nogil=True)(sgemm)
    return _SGEMM["f"]


def measure_peak(device, n=2048, repeats=3, simulator=False):
    """Best float32 GFLOP/s of an n x n x n product through the backend's BLAS: numpy `@` (ref),
    njit np.dot (cpu: one product on each of the backend's threads at once, GFLOP/s summed), the
    cuda backend's own product kernel (ops.linear). None under the simulator."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    out = np.empty((n, n), np.float32)
    work = 1                       # products per timed call
    if device == "ref":
        how = "numpy matmul (numpy's BLAS)"
        run = lambda: np.matmul(a, b, out=out)  # noqa: E731
    elif device == "cpu":
        # The backend runs its kernels on its own threads, each calling a one-thread BLAS: the
        # peak is that product on every one of those threads at once (one product each), so the
        # phases' GFLOP/s, which are totals over the threads, compare with it.
        from ..cpu import _threads
        nth = _threads.NUM_THREADS
        how = (f"njit np.dot (SciPy's OpenBLAS, as the cpu backend), one product on each of its "
               f"{nth} thread{'s' if nth > 1 else ''} at once")
        f = _njit_sgemm()
        w = np.ones((8, 8), np.float32)
        f(w, w, w.copy())
        args = [(a, b, out)] + [(a.copy(), b.copy(), np.empty_like(out)) for _ in range(nth - 1)]
        run = lambda: _threads.run(f, args)  # noqa: E731
        work = nth
    else:
        if simulator:
            return {"gflops": None, "n": n, "how": "not measured under the CUDA simulator"}
        try:                       # cuBLAS through CuPy, when present: the GPU's real sgemm peak
            import cupy
            ca, cb = cupy.asarray(a), cupy.asarray(b)
            cupy.matmul(ca, cb)
            cupy.cuda.Device().synchronize()
            best = math.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                cupy.matmul(ca, cb)
                cupy.cuda.Device().synchronize()
                best = min(best, time.perf_counter() - t0)
            return {"gflops": 2.0 * n ** 3 / best / 1e9, "n": n, "how": "cuBLAS sgemm via CuPy"}
        except Exception:  # noqa: BLE001 - no CuPy: the backend's own product kernel
            pass
        from numba import cuda
        from .. import backends
        ops = backends.get("cuda").ops
        how = "the cuda backend's ops.linear (x @ W.T + b)"
        da, db_, dout = ops.to_device(a), ops.to_device(b), ops.zeros((n, n), np.float32)
        bias = ops.zeros((n,), np.float32)

        def run():
            ops.linear(da, db_, bias, dout)
            cuda.synchronize()
    run()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return {"gflops": work * 2.0 * n ** 3 / best / 1e9, "n": n, "how": how}


def _machine(device, simulator):
    out = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        import numba
        out["numba"] = numba.__version__
        out["numba_threads"] = numba.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    if device == "cuda":
        if simulator:
            out["gpu"] = "CUDA simulator"
        else:
            try:
                from numba import cuda
                out["gpu"] = cuda.get_current_device().name
                if isinstance(out["gpu"], bytes):
                    out["gpu"] = out["gpu"].decode()
            except Exception:  # noqa: BLE001
                out["gpu"] = "?"
    return out
