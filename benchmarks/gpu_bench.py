"""seqlearn's cuda backend on a real GPU: environment, persistent-kernel fit and resources, launch
overhead, correctness at benchmark sizes, and the timing table against PyTorch/cuDNN.

    python benchmarks/gpu_bench.py [--out DIR] [--quick]

Every section is guarded: a failure is printed and the next section still runs. Timings are
medians of CUDA-event measurements after warm-up, all on the default stream of one process.
The table compares, per (cell, H, B), T = 100, one layer, float32:

  layer:  seqlearn one-hot projection + recurrent forward + backward (incl. weight gradients)
          vs torch nn.LSTM / nn.GRU (cuDNN) forward + backward on the dense one-hot input
  model:  seqlearn CharLM.forward_backward (layer + linear head + mean cross-entropy, loss back
          on the host) vs torch nn.LSTM/GRU + nn.Linear + cross_entropy, forward + backward
ratio = torch ms / seqlearn ms (> 1: seqlearn faster), for cuDNN with TF32 off and on.
With --ablations, after the table (written first, so that a timeout keeps it): the weight-gradient
product's paths and the persistent kernels' staging, each timed both ways in this run (`wgrad ...`
and `ablation ...` lines).
"""
import argparse
import json
import os
import statistics
import sys
import time
import traceback

import numpy as np

import seqlearn.numpy_compat  # noqa: F401 - np.row_stack for numba-cuda 0.30, before numba.cuda

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "0")
RESULTS = {}
PEAK = {}
V = 65          # vocabulary of the benchmark (tiny-shakespeare size)
T = 100


def section(name):
    def deco(fn):
        t0 = time.perf_counter()
        print(f"\n== {name}", flush=True)
        try:
            RESULTS[name] = fn()
            status = "ok"
        except Exception as e:  # noqa: BLE001 - report and go on
            traceback.print_exc()
            RESULTS[name] = {"FAILED": f"{type(e).__name__}: {e}"}
            status = "FAILED"
        print(f"-- {name}: {status} ({time.perf_counter() - t0:.1f}s)", flush=True)
        return fn
    return deco


def show(obj):
    print(json.dumps(obj, indent=1, default=str), flush=True)
    return obj


ARGS = None


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT"))
    ap.add_argument("--quick", action="store_true", help="H=512 only, fewer repetitions")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--per-step", action="store_true", help="also time the per-step path (slow)")
    ap.add_argument("--table", default=None, help="also write the final markdown table to this file")
    ap.add_argument("--ablations", action="store_true",
                    help="after the table, time the weight-gradient paths and the staging both ways (~30 s)")
    ARGS = ap.parse_args()

    @section("env")
    def env():
        import numba
        from numba import cuda
        out = {"python": sys.version.split()[0], "numpy": np.__version__, "numba": numba.__version__}
        try:
            import numba_cuda
            out["numba_cuda"] = numba_cuda.__version__
        except Exception as e:  # noqa: BLE001
            out["numba_cuda"] = f"? {e}"
        try:
            import torch
            out["torch"] = torch.__version__
            out["cudnn"] = torch.backends.cudnn.version()
        except Exception as e:  # noqa: BLE001
            out["torch"] = f"absent: {e}"
        d = cuda.get_current_device()
        name = d.name.decode() if isinstance(d.name, bytes) else d.name
        out.update(device=name, cc=d.compute_capability, sms=d.MULTIPROCESSOR_COUNT,
                   smem_per_block=d.MAX_SHARED_MEMORY_PER_BLOCK,
                   smem_optin=getattr(d, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", None),
                   implementation=getattr(cuda, "implementation", "?"))
        return show(out)

    @section("persistent fit")
    def fit():
        from seqlearn.cuda import persist
        out = {"optin_supported": persist.optin_supported()}
        lim = persist.device_limits()
        out["smem_limit_used"] = lim["smem_limit"]
        out["sms"] = lim["sms"]
        plans = {}
        for cell in ("lstm", "gru"):
            for H in (512, 1024):
                for B in (32, 64):
                    plans[f"{cell} H={H} B={B} f32"] = persist.plan(cell, B, H, 4)
        out["plans"] = plans
        out["declined"] = {str(k): v for k, v in persist.STATUS["declined"].items()}
        return show(out)

    @section("kernel resources")
    def resources():
        from numba import cuda
        from seqlearn.cuda import persist
        out = {}
        d = cuda.get_current_device()
        plans = (RESULTS.get("persistent fit") or {}).get("plans") or {}
        for cell in ("lstm", "gru"):
            for J in (4, 8):
                for bw in (False, True):
                    key = f"{cell} J={J} {'bwd' if bw else 'fwd'} f32"
                    try:
                        ov = persist.compiled(cell, J, "float32", bw)
                        r = {}
                        try:
                            attrs = ov._codelibrary.get_cufunc().attrs
                            r.update(regs=attrs.regs, local=attrs.local, static_shared=attrs.shared,
                                     maxthreads=attrs.maxthreads)
                        except Exception as e:  # noqa: BLE001
                            r["attrs_error"] = str(e)
                        shapes = {(256, 32 * 1024), (512, 32 * 1024), (256, 200 * 1024), (512, 200 * 1024)}
                        for pk, pl in plans.items():
                            if pl and pk.startswith(cell) and pl["J"] == J:
                                shapes.add((pl["bwd_threads" if bw else "fwd_threads"], pl["bwd_smem" if bw else "fwd_smem"]))
                        for thr, sm in sorted(shapes):
                            try:
                                if sm > 48 * 1024:
                                    persist.set_max_dynamic_smem(ov, sm)
                                r[f"coop_blocks@{thr}thr,{sm // 1024}KB"] = ov.max_cooperative_grid_blocks(thr, sm)
                            except Exception as e:  # noqa: BLE001
                                r[f"coop_blocks@{thr}thr,{sm // 1024}KB"] = f"{type(e).__name__}: {e}"
                        out[key] = r
                    except Exception as e:  # noqa: BLE001
                        out[key] = f"{type(e).__name__}: {e}"
        out["sms"] = d.MULTIPROCESSOR_COUNT
        return show(out)

    @section("peak and products")
    def peak():
        """The fp32 ceiling measured here (torch matmul, TF32 off) and seqlearn's register-tiled
        product on the weight-gradient shapes."""
        from seqlearn.cuda import ops
        out = {}
        try:
            import torch
            torch.backends.cuda.matmul.allow_tf32 = False
            n = 8192
            a, b = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
            ms = _torch_ms(lambda: a @ b, 5, warm=2)
            out["torch_fp32_matmul_tflops"] = round(2 * n ** 3 / ms / 1e9, 1)
            PEAK["fp32"] = 2 * n ** 3 / ms / 1e9
            del a, b
        except Exception as e:  # noqa: BLE001
            out["torch_error"] = f"{type(e).__name__}: {e}"
        for M, N, Kd in ((2048, 512, 3200), (4096, 1024, 6400)):
            A = ops.to_device(np.random.default_rng(0).standard_normal((Kd, M)).astype(np.float32))
            Bm = ops.to_device(np.random.default_rng(1).standard_normal((Kd, N)).astype(np.float32))
            Cm = ops.zeros((M, N), np.float32)
            ms = _median_ms(lambda: ops.matmul(A, Bm, Cm, ta=True, accumulate=True), 5, warm=2)
            ref_ = (ops.to_host(A).T.astype(np.float64) @ ops.to_host(Bm).astype(np.float64))
            Cm2 = ops.zeros((M, N), np.float32)
            ops.matmul(A, Bm, Cm2, ta=True)
            err = float(np.abs(ops.to_host(Cm2) - ref_).max() / np.abs(ref_).max())
            out[f"seqlearn_matmul_ta {M}x{N}x{Kd}"] = {"ms": round(ms, 3), "tflops": round(2 * M * N * Kd / ms / 1e9, 1),
                                                       "rel_err": err}
        return show(out)

    @section("launch overhead")
    def launch_overhead():
        from numba import cuda
        from seqlearn.cuda import _launch, lstm, ops
        B, H = 32, 512
        xg, a = ops.zeros((B, 4 * H), np.float32), ops.zeros((B, 4 * H), np.float32)
        c, gates, c2, h2 = (ops.zeros((B, H), np.float32), ops.zeros((B, 4 * H), np.float32),
                            ops.zeros((B, H), np.float32), ops.zeros((B, H), np.float32))
        p = ops.dummy2(np.float32)
        args = (xg, a, c, p, 0, gates, c2, h2)
        grid = ((B * H + 255) // 256, 256)
        kern = lstm.k_lstm_fwd_step
        kern[grid](*args)
        cuda.synchronize()
        n = 2000
        t0 = time.perf_counter()
        for _ in range(n):
            kern[grid](*args)
        cuda.synchronize()
        slow = (time.perf_counter() - t0) / n * 1e6
        _launch.launch(kern, grid, args)
        t0 = time.perf_counter()
        for _ in range(n):
            _launch.launch(kern, grid, args)
        cuda.synchronize()
        fast = (time.perf_counter() - t0) / n * 1e6
        return show({"dispatcher_us_8args": round(slow, 1), "cached_overload_us_8args": round(fast, 1),
                     "fast_path": dict(_launch.FAST)})

    @section("correctness at benchmark sizes")
    def correctness():
        from seqlearn import ref
        from seqlearn.cells import Cell
        import seqlearn.cuda as C
        from seqlearn.cuda import config, ops, persist
        out = {}
        for cell, Hs, B, Tc, dt in (("lstm", 512, 32, 20, np.float32), ("gru", 512, 32, 20, np.float32),
                                    ("lstm", 1024, 64, 10, np.float32), ("gru", 1024, 64, 10, np.float32),
                                    ("lstm", 96, 8, 6, np.float64), ("gru", 96, 8, 6, np.float64)):
            rng = np.random.default_rng(0)
            G = 4 if cell == "lstm" else 3
            k = 1 / np.sqrt(Hs)
            xg = rng.uniform(-1, 1, (Tc, B, G * Hs)).astype(dt)
            W = rng.uniform(-k, k, (G * Hs, Hs)).astype(dt)
            b = rng.uniform(-k, k, G * Hs).astype(dt)
            h0 = rng.uniform(-0.5, 0.5, (B, Hs)).astype(dt)
            dhs = rng.standard_normal((Tc, B, Hs)).astype(dt)
            res = {}
            for mode in ("always", "never"):
                config.PERSISTENT = mode
                cc = Cell(C, cell, Hs)
                ws = cc.workspace(Tc, B, dt)
                c0 = ops.to_device(h0 * 0.5) if cell == "lstm" else None
                try:
                    cc.forward(ws, ops.to_device(xg), ops.to_device(W), ops.to_device(b), None, ops.to_device(h0), c0)
                    dxg = ops.zeros(xg.shape, dt)
                    dW, db = ops.zeros(W.shape, dt), ops.zeros(b.shape, dt)
                    dh0, dc0 = ops.zeros((B, Hs), dt), (ops.zeros((B, Hs), dt) if cell == "lstm" else None)
                    cc.backward(ws, ops.to_device(xg), ops.to_device(W), ops.to_device(b), None, ops.to_device(dhs),
                                None, None, dxg, dW, db, None, dh0, dc0)
                    res[mode] = {"hs": ops.to_host(ws["hs"]), "dxg": ops.to_host(dxg), "dW": ops.to_host(dW),
                                 "dh0": ops.to_host(dh0)}
                    res[mode + "_path"] = dict(persist.STATUS["last_forward"] or {}) if mode == "always" else "per-step"
                except Exception as e:  # noqa: BLE001
                    res[mode] = f"{type(e).__name__}: {e}"
            config.PERSISTENT = "auto"
            key = f"{cell} H={Hs} B={B} T={Tc} {np.dtype(dt).name}"
            if isinstance(res.get("always"), dict) and isinstance(res.get("never"), dict):
                d = {}
                for name in res["always"]:
                    a_, b_ = res["always"][name].astype(np.float64), res["never"][name].astype(np.float64)
                    d[name] = float(np.abs(a_ - b_).max() / max(np.abs(b_).max(), 1e-30))
                # and the oracle
                cr = Cell(ref, cell, Hs)
                wr = cr.workspace(Tc, B, np.float64)
                cr.forward(wr, xg.astype(np.float64), W.astype(np.float64), b.astype(np.float64), None,
                           h0.astype(np.float64), (h0 * 0.5).astype(np.float64) if cell == "lstm" else None)
                d["hs_vs_ref"] = float(np.abs(res["always"]["hs"] - wr["hs"]).max())
                out[key] = {"persistent_vs_per_step_rel": d, "path": res["always_path"]}
            else:
                out[key] = {k: v for k, v in res.items() if not isinstance(v, dict)}
        return show(out)

    @section("timing")
    def timing():
        return bench_table()

    if ARGS.out:
        os.makedirs(ARGS.out, exist_ok=True)
        with open(os.path.join(ARGS.out, "gpu_bench.json"), "w") as f:
            json.dump(RESULTS, f, indent=1, default=str)
        print(f"\nwrote {os.path.join(ARGS.out, 'gpu_bench.json')}")


# ------------------------------------------------------------------------------------------------
def _median_ms(fn, reps, warm=3, sync_events="numba"):
    """Median of CUDA-event timings of fn() (events on the default stream)."""
    from numba import cuda
    for _ in range(warm):
        fn()
    cuda.synchronize()
    ts = []
    for _ in range(reps):
        e0, e1 = cuda.event(timing=True), cuda.event(timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        ts.append(cuda.event_elapsed_time(e0, e1))
    return statistics.median(ts)


def _torch_ms(fn, reps, warm=3):
    import torch
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        ts.append(e0.elapsed_time(e1))
    return statistics.median(ts)


def seqlearn_runners(cell, H, B):
    import seqlearn
    from seqlearn.cuda import ops
    m = seqlearn.CharLM("".join(chr(32 + i) for i in range(V)), cell=cell, hidden_size=H, num_layers=1,
                        device="cuda", dtype="float32", seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))

    def model_step():
        m.forward_backward(x, y)

    # the layer alone: projection + recurrent forward/backward + weight gradients
    xd = ops.to_device(np.ascontiguousarray(x.T, np.int64))
    ws = m._workspace(T, B)
    p, g = m._p, m._g
    h0 = ops.zeros((B, H), np.float32)
    c0 = ops.zeros((B, H), np.float32) if cell == "lstm" else None
    dhs = ops.to_device(rng.standard_normal((T, B, H)).astype(np.float32) * 0.01)
    lw, xg, dxg = ws["layers"][0], ws["xgs"][0], ws["dxg"]
    cimpl = m.cell_impl
    dh0, dc0 = ws["dh0"][0], ws["dc0"][0]

    def layer_step():
        ops.project_onehot(p["rnn.weight_ih_l0"], p["rnn.bias_ih_l0"], xd, xg)
        cimpl.forward(lw, xg, p["rnn.weight_hh_l0"], p["rnn.bias_hh_l0"], None, h0, c0)
        cimpl.backward(lw, xg, p["rnn.weight_hh_l0"], p["rnn.bias_hh_l0"], None, dhs, None, None, dxg,
                       g["rnn.weight_hh_l0"], g["rnn.bias_hh_l0"], None, dh0, dc0 if cell == "lstm" else None)
        ops.project_onehot_backward(dxg, xd, g["rnn.weight_ih_l0"], g["rnn.bias_ih_l0"])

    def fwd_step():
        ops.project_onehot(p["rnn.weight_ih_l0"], p["rnn.bias_ih_l0"], xd, xg)
        cimpl.forward(lw, xg, p["rnn.weight_hh_l0"], p["rnn.bias_hh_l0"], None, h0, c0)

    return layer_step, model_step, fwd_step


def torch_runners(cell, H, B):
    import torch
    dev = "cuda"
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](V, H, 1).to(dev)
    dec = torch.nn.Linear(H, V).to(dev)
    xi = torch.randint(0, V, (T, B), device=dev)
    yi = torch.randint(0, V, (T, B), device=dev)
    x1 = torch.nn.functional.one_hot(xi, V).float()
    dy = torch.randn(T, B, H, device=dev) * 0.01

    def layer_step():
        mod.zero_grad(set_to_none=False)
        out, _ = mod(x1)
        out.backward(dy)

    def model_step():
        mod.zero_grad(set_to_none=False)
        dec.zero_grad(set_to_none=False)
        out, _ = mod(torch.nn.functional.one_hot(xi, V).float())
        loss = torch.nn.functional.cross_entropy(dec(out).reshape(T * B, V), yi.reshape(-1))
        loss.backward()
        return loss.item()

    return layer_step, model_step


def bench_table():
    from seqlearn.cuda import _launch, config, persist
    reps = 7 if ARGS.quick else ARGS.reps
    Hs = (512,) if ARGS.quick else (512, 1024)
    rows, out = [], {}
    try:
        import torch
        have_torch = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        have_torch = False
    for cell in ("lstm", "gru"):
        for H in Hs:
            for B in (32, 64):
                key = f"{cell} H={H} B={B}"
                r = {}
                try:
                    config.PERSISTENT = "auto"
                    persist.STATUS["last_forward"] = persist.STATUS["last_backward"] = None
                    layer, model, fwd_only = seqlearn_runners(cell, H, B)
                    r["sl_layer"] = _median_ms(layer, reps)
                    r["path"] = "persistent" if persist.STATUS["last_forward"] else "per-step"
                    r["path_bwd"] = "persistent" if persist.STATUS["last_backward"] else "per-step"
                    r["plan"] = persist.STATUS["last_forward"]
                    r["sl_fwd"] = _median_ms(fwd_only, reps)
                    r["sl_model"] = _median_ms(model, reps)
                    if ARGS.per_step and r["path"] == "persistent":
                        config.PERSISTENT = "never"
                        r["sl_layer_per_step"] = _median_ms(layer, 3, warm=1)
                        config.PERSISTENT = "auto"
                except Exception as e:  # noqa: BLE001
                    traceback.print_exc()
                    r["seqlearn_error"] = f"{type(e).__name__}: {e}"
                if have_torch:
                    for tf32 in (False, True):
                        try:
                            torch.backends.cudnn.allow_tf32 = tf32
                            torch.backends.cuda.matmul.allow_tf32 = tf32
                            tl, tm = torch_runners(cell, H, B)
                            r[f"torch_layer_tf32={int(tf32)}"] = _torch_ms(tl, reps)
                            r[f"torch_model_tf32={int(tf32)}"] = _torch_ms(tm, reps)
                        except Exception as e:  # noqa: BLE001
                            r[f"torch_error_tf32={int(tf32)}"] = f"{type(e).__name__}: {e}"
                out[key] = r
                print(key, json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()},
                                      default=str), flush=True)
    config.PERSISTENT = "auto"
    peak = PEAK.get("fp32")
    head = ("| cell | H | B | path | sl fwd ms | sl layer ms | cuDNN layer ms off / on | ratio off / on "
            "| % fp32 peak | sl model ms | torch model ms off / on | ratio off / on |")
    rows.append(head)
    rows.append("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def f(v):
        return f"{v:.2f}" if isinstance(v, float) else "-"

    def ratio(a, b):
        return f"{a / b:.2f}" if isinstance(a, float) and isinstance(b, float) and b > 0 else "-"
    for key, r in out.items():
        cell, Hs_, Bs_ = key.split()
        Hn, Bn = int(Hs_[2:]), int(Bs_[2:])
        G = 4 if cell == "lstm" else 3
        sl, slm = r.get("sl_layer"), r.get("sl_model")
        t0, t1 = r.get("torch_layer_tf32=0"), r.get("torch_layer_tf32=1")
        m0, m1 = r.get("torch_model_tf32=0"), r.get("torch_model_tf32=1")
        # recurrent products of forward, backward-data and weight gradient: 3 x 2 G B T H^2
        gfl = 6 * G * Bn * T * Hn * Hn / 1e9
        pk = f"{100 * gfl / sl / peak:.0f}%" if isinstance(sl, float) and peak else "-"
        rows.append(f"| {cell} | {Hn} | {Bn} | {r.get('path', '?')}/{r.get('path_bwd', '?')} | {f(r.get('sl_fwd'))} | "
                    f"{f(sl)} | {f(t0)} / {f(t1)} | {ratio(t0, sl)} / {ratio(t1, sl)} | {pk} | {f(slm)} | "
                    f"{f(m0)} / {f(m1)} | {ratio(m0, slm)} / {ratio(m1, slm)} |")
    rows.append(f"fp32 peak measured (torch matmul 8192^3, TF32 off): "
                f"{peak:.1f} TFLOP/s" if peak else "fp32 peak: not measured")
    for key, r in out.items():
        pl = r.get("plan")
        if pl:
            rows.append(f"plan {key}: J={pl['J']} blocks={pl['blocks']} fwd {pl['fwd_threads']} thr "
                        f"{pl['fwd_smem'] // 1024} KB kc={pl.get('fwd_kc')} rb={pl.get('fwd_rb')}; bwd "
                        f"{pl['bwd_threads']} thr {pl['bwd_smem'] // 1024} KB rc={pl.get('bwd_rc')} rb={pl.get('bwd_rb')}")
    lo = RESULTS.get("launch overhead") or {}
    rows.append(f"launch us (8 args): dispatcher {lo.get('dispatcher_us_8args')}, K.launch {lo.get('cached_overload_us_8args')}")
    out["_fast_launch"] = dict(_launch.FAST)
    out["_declined"] = {str(k): v for k, v in persist.STATUS["declined"].items()}
    rows.append(f"fast launch: {out['_fast_launch']}")
    rows.append(f"declined: {out['_declined']}")
    pr = RESULTS.get("peak and products") or {}
    rows.append("products: " + json.dumps({k: v for k, v in pr.items() if k.startswith("seqlearn")}))
    if ARGS.table:      # written now and again after the ablations (a timeout keeps this one)
        with open(ARGS.table, "w") as fh:
            fh.write("\n".join(rows) + "\n")
    if not ARGS.ablations:
        print("\n" + "\n".join(rows), flush=True)
        out["_table"] = rows
        return out
    # the weight-gradient product's switches (config.MM_WG, MM_SPLITK) and the
    # staging, each timed both ways in this run: first the products alone, then layers and a model
    wg = products_ablation()
    out["_products_ablation"] = wg
    for k, v in wg.items():
        rows.append(f"wgrad {k}: " + (" | ".join(f"{n} {x['ms']} ms {x['tflops']} TF/s err {x['rel_err']:.0e}"
                                                  if isinstance(x, dict) else f"{n} {x}" for n, x in v.items())
                                      if isinstance(v, dict) else str(v)))
    abl = switch_ablations()
    print("ablations:", json.dumps(abl, default=str), flush=True)
    for k, v in abl.items():
        rows.append(f"ablation {k}: " + (f"{v['ms']} ms" if isinstance(v, dict) else v))
    print("\n" + "\n".join(rows), flush=True)
    if ARGS.table:
        with open(ARGS.table, "w") as fh:
            fh.write("\n".join(rows) + "\n")
    out["_ablations"] = abl
    out["_table"] = rows
    return out


_RT = {"MM_WG": False, "MM_SPLITK": 1}   # the weight gradients before 2026-11-27
ABLATIONS = (   # (cell, H, B, name, config switches, "layer" | "model"); "default": config.py as is
    ("lstm", 1024, 64, "default", {}, "layer"),
    ("lstm", 1024, 64, "matmul_rt (MM_WG off)", _RT, "layer"),
    ("lstm", 1024, 64, "one K slice (MM_SPLITK 1)", {"MM_SPLITK": 1}, "layer"),
    ("lstm", 512, 32, "default", {}, "layer"),
    ("lstm", 512, 32, "matmul_rt (MM_WG off)", _RT, "layer"),
    ("lstm", 1024, 64, "staging pipelined", {"PERSIST_PIPELINE": True}, "layer"),
    ("lstm", 512, 32, "staging pipelined", {"PERSIST_PIPELINE": True}, "layer"),
    ("lstm", 1024, 64, "default", {}, "model"),
    ("lstm", 1024, 64, "matmul_rt (MM_WG off)", _RT, "model"))


def switch_ablations():
    """Layers and models with the switches of ABLATIONS set, each next to its default in this run."""
    from seqlearn.cuda import config
    abl = {}
    for cell, H, B, name, knobs, what in ABLATIONS:
        old = {k: getattr(config, k) for k in knobs}
        key = f"{cell} H={H} B={B} {what} {name}"
        try:
            for k, v in knobs.items():
                setattr(config, k, v)
            layer, model, _ = seqlearn_runners(cell, H, B)
            abl[key] = {"ms": round(_median_ms(layer if what == "layer" else model, 5, warm=2), 3)}
        except Exception as e:  # noqa: BLE001
            abl[key] = f"{type(e).__name__}: {e}"
        finally:
            for k, v in old.items():
                setattr(config, k, v)
    return abl


WG_SHAPES = ((2048, 512, 3200, False), (4096, 1024, 6400, False), (65, 1024, 6400, False), (4096, 1024, 6400, True))


def products_ablation():
    """The weight-gradient products C += A.T @ B (A (K, M), B (K, N)) each way: the register-tiled
    matmul_rt, build_matmul_wg with one K slice and split over K (partials + fixed-order pass; the
    default), with the bias-gradient column sums (fused into the product on the wg path). Measured
    once and no longer timed here (docs/gpu.md, third device run): atomics for the K slices,
    launch bounds for 3 blocks per SM, the column sums as a separate launch. Shapes: lstm H = 512, B = 32
    and H = 1024, B = 64 (T = 100), and the head's dW at V = 65, H = 1024, B = 64. rel_err against
    float64 on the host."""
    from seqlearn.cuda import config, ops
    variants = (("rt", {"MM_WG": False}), ("wg S=1", {"MM_WG": True, "MM_SPLITK": 1}),
                ("wg split", {"MM_WG": True, "MM_SPLITK": 0}))
    out = {}
    for M, N, Kd, fuse in WG_SHAPES:
        key = f"{M}x{N}x{Kd}" + (" +colsum" if fuse else "")
        res = {}
        try:
            rng = np.random.default_rng(0)
            An = rng.standard_normal((Kd, M)).astype(np.float32)
            Bn = rng.standard_normal((Kd, N)).astype(np.float32)
            A, Bm = ops.to_device(An), ops.to_device(Bn)
            want = An.T.astype(np.float64) @ Bn.astype(np.float64)
            wb = An.astype(np.float64).sum(0)
            C, db = ops.zeros((M, N), np.float32), ops.zeros(M, np.float32)
            vs = variants if not fuse else (("rt", {"MM_WG": False}), ("wg split fused", {"MM_WG": True, "MM_SPLITK": 0}))
            for name, knobs in vs:
                old = {k: getattr(config, k) for k in knobs}
                try:
                    for k, v in knobs.items():
                        setattr(config, k, v)
                    d = db if fuse else None
                    ms = _median_ms(lambda: ops.matmul_wgrad(A, Bm, C, d), 7, warm=2)
                    ops.fill_zero(C)
                    ops.fill_zero(db)
                    ops.matmul_wgrad(A, Bm, C, d)
                    err = float(np.abs(ops.to_host(C) - want).max() / np.abs(want).max())
                    if fuse:
                        err = max(err, float(np.abs(ops.to_host(db) - wb).max() / np.abs(wb).max()))
                    plan = ops.wg_plan(M, N, Kd) if config.MM_WG else None
                    res[name] = {"ms": round(ms, 3), "tflops": round(2 * M * N * Kd / ms / 1e9, 1), "rel_err": err,
                                 "plan": plan}
                except Exception as e:  # noqa: BLE001
                    res[name] = f"{type(e).__name__}: {e}"
                finally:
                    for k, v in old.items():
                        setattr(config, k, v)
        except Exception as e:  # noqa: BLE001
            res = f"{type(e).__name__}: {e}"
        out[key] = res
        print("wgrad", key, json.dumps(res, default=str), flush=True)
    return out


if __name__ == "__main__":
    main()
