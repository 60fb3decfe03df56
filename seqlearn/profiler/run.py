"""The driver: run_profile builds the model, runs warm-up, measured and sampling steps, and
aggregates the events into the report."""
import statistics
import time

import numpy as np

from ..model import CharLM
from .compile_stats import CompileListener, _backend_modules, compile_report
from .dwhh import _dwhh_estimator, _time_once
from .generation import time_generation
from .gpu import KernelTimer, _is_simulator
from .machine import _machine, measure_peak
from .memory import _nbytes, activation_memory, peak_rss_bytes
from .optimizer import _Optimizer
from .phases import fuses_input, label, model_flops, phase_flops, sample_flops
from .proxy import Recorder, _BackendProxy, _classifier, _hooks
from .text import _batches, encode, load_text


def _cpu_threads():
    from ..cpu import _threads
    return _threads.NUM_THREADS


def run_profile(text=None, cell="lstm", gru_variant="torch", peephole=False, hidden=128, layers=2,
                embed=0, batch=32, seq_len=64, steps=10, warmup=2, device="cpu", dtype="float32",
                sample_chars=20, seed=0, peak_n=2048, encoding="utf-8", optimizer="adam", clip=5.0):
    """Profile `steps` training steps (after `warmup`); return the report as a dict (see
    docs/profile.md for every field)."""
    if steps < 1 or warmup < 1:
        raise ValueError("--steps and --warmup must be at least 1")
    simulator = device == "cuda" and _is_simulator()
    vocab, ids = encode(text if text is not None else load_text(None, encoding))
    T, B = seq_len, batch
    listener = CompileListener()
    t_start = time.perf_counter()
    with listener.installed(cuda=device == "cuda"):
        model = CharLM(vocab, cell=cell, hidden_size=hidden, num_layers=layers, embed_dim=embed,
                       peephole=peephole, gru_variant=gru_variant, dtype=dtype, device=device, seed=seed)
        sync = lambda: None  # noqa: E731
        if device == "cuda":
            from numba import cuda
            sync = cuda.synchronize
        rec = Recorder(sync)
        opt = _Optimizer(model, optimizer, clip)
        classify = _classifier(model)
        plain_backend, plain_mod = model.backend, model.cell_impl.mod
        proxy = _BackendProxy(plain_backend, rec, classify, opt.mod)
        proxy_mod = getattr(proxy, cell)
        plain_optim = opt.mod

        hooks = _hooks(plain_mod, rec)

        def use(instrumented):
            model.backend = proxy if instrumented else plain_backend
            model.cell_impl.mod = proxy_mod if instrumented else plain_mod
            for name, (orig, wrapped) in hooks.items():
                setattr(plain_mod, name, wrapped if instrumented else orig)
            return proxy.optim if (instrumented and opt.mod is not None) else plain_optim

        rng = np.random.default_rng(seed)
        data = _batches(ids, B, T, warmup + 2 * steps, rng)
        est = _dwhh_estimator(device, model, T, B)
        est_times = []
        kt = KernelTimer(simulator) if device == "cuda" else None
        kt_error = None
        if kt:
            try:
                kt.install()
            except (ImportError, AttributeError) as e:    # another numba-cuda layout
                kt_error = f"CUDA per-kernel events unavailable with this numba-cuda ({e})"
                kt = None
        state = None
        plain_ms, inst_ms, step_bounds = [], [], []
        try:
            # warm-up: compiles (or loads from the cache) every kernel; first-call times recorded
            optim = use(True)
            for i in range(warmup):
                x, y = data[i]
                _, state = model.forward_backward(x, y, state)
                opt.step(optim)
            sync()
            # measured steps: plain and instrumented alternate
            for i in range(2 * steps):
                instrumented = i % 2 == 1
                optim = use(instrumented)
                x, y = data[warmup + i]
                if instrumented:
                    rec.step = len(inst_ms)
                    if kt:
                        kt.step = rec.step
                t0 = time.perf_counter()
                _, state = model.forward_backward(x, y, state)
                opt.step(optim)
                sync()
                t1 = time.perf_counter()
                if instrumented:
                    inst_ms.append((t1 - t0) * 1e3)
                    step_bounds.append((t0, t1))
                    rec.step = None
                    if kt:
                        kt.step = None
                    if est is not None and not rec.sub_events:
                        # outside the timed step, beside it in time; only while dW_hh is not timed
                        # in place (its 5 MiB of operands evicted the model's data from the L3, and
                        # the plain step after it ran 7% slower: LSTM H=128 on the cpu)
                        est_times += [_time_once(est[0]) for _ in range(model.L)]
                else:
                    plain_ms.append((t1 - t0) * 1e3)
            # batch-1 sampling: one character per call, state carried, host-side draw
            use(True)
            s_state = None
            c = np.array([[int(ids[0])]])
            sample_ms, sample_events = [], []
            srng = np.random.default_rng(seed)
            for j in range(1 + sample_chars):
                rec.step = None if j == 0 else ("sample", j - 1)
                t0 = time.perf_counter()
                nxt = rec.timed("sample_b1", "model.logits", _sample_one, (model, c, s_state, srng), {})
                t1 = time.perf_counter()
                z, s_state = nxt
                c = z
                if j:
                    sample_ms.append((t1 - t0) * 1e3)
            rec.step = None
        finally:
            use(False)
            if kt:
                kt.uninstall()
        kernels = kt.report(steps) if kt else None
        # what `seqlearn sample` costs per character (its compile, if any, counts below)
        generation = time_generation(model, max(256, 10 * sample_chars) if sample_chars else 0, seed,
                                     simulator=simulator)
        compile_rep = compile_report(listener, _backend_modules(model, opt), rec)
    wall_s = time.perf_counter() - t_start

    # ---- per-phase aggregation over the instrumented steps
    per_phase = {}
    calls = {}
    for phase, fname, t0, t1, step in rec.events:
        if isinstance(step, tuple):
            continue
        per_phase[phase] = per_phase.get(phase, 0.0) + (t1 - t0) * 1e3
        calls[phase] = calls.get(phase, 0) + 1
    moved_in_place = 0
    for phase, fname, t0, t1, step, parent in rec.sub_events:
        per_phase[parent] = per_phase.get(parent, 0.0) - (t1 - t0) * 1e3
        per_phase[phase] = per_phase.get(phase, 0.0) + (t1 - t0) * 1e3
        calls[phase] = calls.get(phase, 0) + 1
        moved_in_place += 1
    dwhh_note = None
    measured = moved_in_place > 0
    if measured:
        est = None
        dwhh_note = (f"dW_hh timed in place: the backend's backward calls "
                     f"{', '.join(sorted({e[1] for e in rec.sub_events}))} from Python; that time is moved "
                     f"from recurrent backward to weight-gradient products")
    split = est is not None
    if split:
        est_s, how = statistics.median(est_times), est[1]
        moved = 0.0
        for k in range(model.L):
            key = f"backward_l{k}"
            if key in per_phase:
                take = min(est_s * 1e3, per_phase[key] / steps) * steps
                per_phase[key] -= take
                moved += take
        per_phase["weight_grads"] = per_phase.get("weight_grads", 0.0) + moved
        dwhh_note = (f"dW_hh (one product per layer after the time loop, inside the backend's backward) "
                     f"timed separately between the measured steps: {est_s * 1e3:.3f} ms per layer (median) "
                     f"via {how}; moved from recurrent backward to weight-gradient products")
    flops = phase_flops(model, T, B, split or measured)
    fused_note = ("dense inputs (layers above the first, an embedding) are multiplied inside the recurrent "
                  "forward's time loop: their projection is part of that phase" if fuses_input(model)
                  and (model.L > 1 or model.E) else None)
    peak = measure_peak(device, n=peak_n, simulator=simulator)
    step_inst = statistics.mean(inst_ms)
    step_plain = statistics.mean(plain_ms)
    timed_sum = sum(per_phase.values()) / steps
    order = (["input"] + [f"forward_l{k}" for k in range(model.L)]
             + [f"backward_l{k}" for k in range(model.L - 1, -1, -1)]
             + ["weight_grads", "head_loss", "clip", "optimizer", "other_ops"])
    phases = []
    for name in order:
        available = not (name in ("clip", "optimizer") and opt.mod is None)
        ms = per_phase.get(name, 0.0) / steps
        fl = flops.get(name, 0.0)
        gf = fl / (ms * 1e-3) / 1e9 if fl and ms > 0 else None
        ph = {"name": name, "label": label(name), "calls": calls.get(name, 0) / steps,
              "ms_per_step": ms if available else None,
              "share": ms / step_inst if available else None,
              "gflops": gf, "peak_fraction": gf / peak["gflops"] if gf and peak["gflops"] else None,
              "flops_per_step": fl}
        if split and (name == "weight_grads" or name.startswith("backward_")):
            ph["estimated"] = True
        if not available:
            ph["note"] = "n/a: the backend has no optim module yet"
        phases.append(ph)
    glue = max(step_inst - timed_sum, 0.0)
    phases.append({"name": "glue", "label": label("glue"), "calls": None, "ms_per_step": glue,
                   "share": glue / step_inst, "gflops": None, "peak_fraction": None, "flops_per_step": 0.0})
    s_ms = statistics.median(sample_ms) if sample_ms else None
    s_fl = sample_flops(model)
    s_gf = s_fl / (s_ms * 1e-3) / 1e9 if s_ms else None
    sample = {"name": "sample_b1", "label": label("sample_b1"), "calls": 1, "ms_per_char": s_ms,
              "gflops": s_gf, "peak_fraction": s_gf / peak["gflops"] if s_gf and peak["gflops"] else None,
              "how": "model.logits on a (1, 1) input with the state carried, then a host-side draw"}
    g_ms = generation["ms_per_char"]
    g_gf = s_fl / (g_ms * 1e-3) / 1e9 if g_ms else None
    generation.update(label=label("generate_b1"), calls=1, gflops=g_gf,
                      peak_fraction=g_gf / peak["gflops"] if g_gf and peak["gflops"] else None)
    mflops = model_flops(model, T, B)
    P_bytes = _nbytes(model.flat)
    report = {
        "config": {"cell": cell, "gru_variant": gru_variant, "peephole": peephole, "hidden": hidden,
                   "layers": layers, "embed": embed, "batch": B, "seq_len": T, "vocab": model.V,
                   "params": model.num_params, "dtype": str(model.dtype), "device": device,
                   "steps": steps, "warmup": warmup, "optimizer": optimizer, "clip": clip,
                   "threads": _cpu_threads() if device == "cpu" else None},
        "machine": _machine(device, simulator),
        "times_meaningful": not simulator,
        "step_ms": step_plain,
        "step_ms_instrumented": step_inst,
        "step_ms_median": statistics.median(plain_ms),
        "step_ms_instrumented_median": statistics.median(inst_ms),
        "instrumentation_overhead": statistics.median(inst_ms) / statistics.median(plain_ms) - 1.0,
        "step_ms_samples": {"plain": plain_ms, "instrumented": inst_ms},
        "timed_ms_per_step": timed_sum,
        "chars_per_s": T * B / (step_plain * 1e-3),
        "model_gflops": mflops / (step_plain * 1e-3) / 1e9,
        "model_flops_per_step": mflops,
        "peak": peak,
        "phases": phases,
        "sample": sample,
        "generate": generation,
        "compile": compile_rep,
        "memory": {"activations": activation_memory(model, T, B), "params_bytes": P_bytes,
                   "grads_bytes": _nbytes(model.grad_flat),
                   "optimizer_bytes": opt.state_bytes(),
                   "peak_rss_bytes": peak_rss_bytes()},
        "kernels": kernels,
        "notes": [n for n in [dwhh_note, fused_note] if n],
        "wall_s": wall_s,
        "_events": rec.events,
        "_step_bounds": step_bounds,
        "_dwhh_est_ms": est_s * 1e3 if split else None,
        "_sub_events": rec.sub_events,
        "_layers": model.L,
    }
    if opt.mod is None:
        report["notes"].append("clipping and optimizer update: n/a (seqlearn.optim or this backend's optim "
                               "kernels are not available)")
    if kt_error:
        report["notes"].append(kt_error)
    if simulator:
        report["notes"].append("CUDA simulator: every time here is Python time; none says anything "
                               "about a GPU")
    return report


def _sample_one(model, c, state, rng):
    z, state = model.logits(c, state, host_state=False)
    v = z[0, -1].astype(np.float64)
    p = np.exp(v - v.max())
    p /= p.sum()
    nxt = int(rng.choice(len(p), p=p))
    return np.array([[nxt]]), state
