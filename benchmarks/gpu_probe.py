"""First look at a lent GPU: versions, launch overhead, grid-barrier cost, shared-memory opt-in,
and the cuDNN LSTM/GRU baseline. Prints a short table; no seqlearn code involved (only its numpy
shim).

    python benchmarks/gpu_probe.py
"""
import json
import os
import sys
import time

import numpy as np

import seqlearn.numpy_compat  # noqa: F401 - np.row_stack for numba-cuda 0.30, before numba.cuda

results = {}


def section(name):
    def deco(fn):
        t0 = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as e:  # noqa: BLE001 - report and go on
            results[name] = f"FAILED: {type(e).__name__}: {e}"
        print(f"== {name} ({time.perf_counter() - t0:.1f}s): {results[name]}", flush=True)
        return fn
    return deco


@section("env")
def env():
    import numba
    from numba import cuda
    d = cuda.get_current_device()
    out = {"python": sys.version.split()[0], "numba": numba.__version__,
           "impl": getattr(cuda, "implementation", "?"), "device": d.name.decode() if isinstance(d.name, bytes) else d.name,
           "cc": d.compute_capability, "sms": d.MULTIPROCESSOR_COUNT,
           "smem_block_optin": getattr(d, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", None)}
    try:
        import numba_cuda
        out["numba_cuda"] = numba_cuda.__version__
    except Exception:  # noqa: BLE001
        pass
    return out


@section("launch_overhead_us")
def launch():
    from numba import cuda

    @cuda.jit
    def k0():
        pass

    @cuda.jit
    def k4(a, b, c, d):
        pass

    @cuda.jit
    def k12(a, b, c, d, e, f, g, h, i, j, k, l):  # noqa: E741
        pass
    arrs = [cuda.device_array(16, np.float32) for _ in range(12)]
    out = {}
    for name, k, args in (("0", k0, []), ("4", k4, arrs[:4]), ("12", k12, arrs)):
        kk = k[1, 32]
        kk(*args)
        cuda.synchronize()
        n = 5000
        t0 = time.perf_counter()
        for _ in range(n):
            kk(*args)
        cuda.synchronize()
        out[name] = round((time.perf_counter() - t0) / n * 1e6, 2)
    return out


@section("grid_sync")
def grid_sync():
    from numba import cuda, int32

    @cuda.jit
    def spin(n, out):
        g = cuda.cg.this_grid()
        for _ in range(n):
            g.sync()
        if cuda.grid(1) == 0:
            out[0] = n
    out = cuda.device_array(1, np.int32)
    sig = (int32, cuda.types.int32[:]) if hasattr(cuda, "types") else None
    spin[1, 32](1, out)
    cuda.synchronize()
    ov = list(spin.overloads.values())[0]
    maxb = ov.max_cooperative_grid_blocks(256)
    blocks = min(132, maxb)
    res = {"max_coop_blocks_256": maxb}
    for nblk in (blocks,):
        spin[nblk, 256](10, out)
        cuda.synchronize()
        n = 10000
        t0 = time.perf_counter()
        spin[nblk, 256](n, out)
        cuda.synchronize()
        res[f"us_per_sync_{nblk}x256"] = round((time.perf_counter() - t0) / n * 1e6, 3)
    return res


@section("dyn_smem_optin")
def dyn_smem():
    from numba import cuda, float32

    @cuda.jit
    def use(out, n):
        s = cuda.shared.array(0, float32)
        i = cuda.threadIdx.x
        while i < n:
            s[i] = i
            i += cuda.blockDim.x
        cuda.syncthreads()
        if cuda.threadIdx.x == 0:
            out[0] = s[n - 1]
    out = cuda.device_array(1, np.float32)
    use[1, 128, 0, 1024](out, 256)
    cuda.synchronize()
    ov = list(use.overloads.values())[0]
    res = {}
    try:
        from cuda.bindings import driver
        fn = ov._codelibrary.get_cufunc()
        handle = getattr(fn, "handle", fn)
        h = handle.value if hasattr(handle, "value") else handle
        attr = driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        r = driver.cuFuncSetAttribute(driver.CUfunction(int(h)) if not isinstance(h, driver.CUfunction) else h, attr, 200 * 1024)
        res["setattr"] = str(r)
    except Exception as e:  # noqa: BLE001
        res["setattr"] = f"{type(e).__name__}: {e}"
    try:
        n = 200 * 1024 // 4
        use[1, 128, 0, 200 * 1024](out, n)
        cuda.synchronize()
        res["launch_200KB"] = float(out.copy_to_host()[0]) == n - 1
    except Exception as e:  # noqa: BLE001
        res["launch_200KB"] = f"{type(e).__name__}: {str(e)[:200]}"
    return res


@section("cudnn_ms")
def cudnn():
    import torch
    res = {}
    dev = "cuda"
    for cell in ("lstm", "gru"):
        for H, B in ((512, 32), (512, 64), (1024, 32), (1024, 64)):
            for tf32 in (False, True):
                torch.backends.cudnn.allow_tf32 = tf32
                torch.backends.cuda.matmul.allow_tf32 = tf32
                mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](H, H, 1).to(dev)
                x = torch.randn(100, B, H, device=dev, requires_grad=True)
                def fwd():
                    return mod(x)[0]
                def fb():
                    y = mod(x)[0]
                    y.sum().backward()
                out = []
                for f in (fwd, fb):
                    for _ in range(5):
                        f()
                    ts = []
                    for _ in range(20):
                        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        s.record(); f(); e.record(); torch.cuda.synchronize()
                        ts.append(s.elapsed_time(e))
                    out.append(round(float(np.median(ts)), 3))
                res[f"{cell} H{H} B{B} tf32={int(tf32)}"] = out
    return res


if __name__ == "__main__":
    outdir = os.environ.get("OUT")
    if outdir:
        with open(os.path.join(outdir, "gpu_probe.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)
    print("\ncuDNN, T=100, one layer: [forward ms, forward+backward ms]")
    c = results.get("cudnn_ms")
    if isinstance(c, dict):
        for k, v in c.items():
            print(f"  {k:<28} {v}")
