"""Shared helpers of the benchmarks: machine description, sgemm peak, medians, thread setup."""
import datetime
import os
import platform
import statistics
import time

import numpy as np


def machine():
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def today():
    return datetime.date.today().isoformat()


# Seconds of quiet before every timed block: PyTorch's OpenMP workers and numpy's OpenBLAS
# workers keep spinning for a while after their last parallel region, so without a pause the next
# block (whichever implementation runs it) starts on a machine whose two cores are still busy.
SETTLE_S = 0.3


def settle():
    time.sleep(SETTLE_S)


def median(xs):
    return statistics.median(xs)


def sgemm_peak(n=2048, reps=3):
    """GFLOP/s of a float32 n^3 product: (numpy @ with numpy's threads, seqlearn's BLAS call =
    SciPy's OpenBLAS with the one thread seqlearn gives it). Best of reps (peak: the best the
    machine gives)."""
    from seqlearn.cpu._blas import gemm_nt_probe
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    c = np.empty((n, n), np.float32)
    out = []
    for fn in (lambda: np.matmul(a, b, out=c), lambda: gemm_nt_probe(a, b, c)):
        fn()
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        out.append(2.0 * n ** 3 / best / 1e9)
    return tuple(out)


def interleaved_steps(m, opt, x, y, variants, n, warmup=2):
    """Median seconds per training step (forward, backward, clip, Adam) of each variant: a dict
    name -> function that switches the model or backend to it. The variants take turns step by
    step (the order reversed every other round), warmup rounds untimed; returns {name: median}."""
    names = list(variants)
    times = {k: [] for k in names}
    state = None
    for i in range(n + warmup):
        for k in (names if i % 2 else names[::-1]):
            variants[k]()
            t = time.perf_counter()
            _, state = m.forward_backward(x, y, state)
            opt.clip_grads()
            opt.step()
            if i >= warmup:
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}

