"""Outputs of a profile report: JSON, a Chrome trace, the text table."""
from .phases import label


def to_json(report):
    """The report without private fields, JSON-ready."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def chrome_trace(report):
    """{"traceEvents": [...]}: per instrumented step one "step N" slice on tid 1 and, nested in it,
    one slice per timed backend call named by its phase; sampling calls on tid 2. Times in µs from
    the first event."""
    evs = report["_events"]
    bounds = report["_step_bounds"]
    if not evs and not bounds:
        return {"traceEvents": []}
    origin = min([e[2] for e in evs] + [b[0] for b in bounds])
    us = lambda t: round((t - origin) * 1e6, 3)  # noqa: E731
    out = [{"name": "process_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "seqlearn profile"}},
           {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "training step"}},
           {"name": "thread_name", "ph": "M", "pid": 1, "tid": 2, "args": {"name": "sampling, batch 1"}}]
    for i, (t0, t1) in enumerate(bounds):
        out.append({"name": f"step {i}", "cat": "step", "ph": "X", "ts": us(t0), "dur": us(t1) - us(t0),
                    "pid": 1, "tid": 1, "args": {"step": i}})
    est = report.get("_dwhh_est_ms")
    for phase, fname, t0, t1, step in evs:
        if isinstance(step, tuple):
            out.append({"name": label(phase), "cat": phase, "ph": "X", "ts": us(t0), "dur": us(t1) - us(t0),
                        "pid": 1, "tid": 2, "args": {"fn": fname, "char": step[1]}})
            continue
        if est is not None and phase.startswith("backward_l"):
            cut = max(t0, t1 - est * 1e-3)
            out.append({"name": label(phase), "cat": phase, "ph": "X", "ts": us(t0), "dur": us(cut) - us(t0),
                        "pid": 1, "tid": 1, "args": {"fn": fname, "step": step}})
            out.append({"name": label("weight_grads"), "cat": "weight_grads", "ph": "X", "ts": us(cut),
                        "dur": us(t1) - us(cut), "pid": 1, "tid": 1,
                        "args": {"fn": fname, "step": step, "estimated": True}})
            continue
        out.append({"name": label(phase), "cat": phase, "ph": "X", "ts": us(t0), "dur": us(t1) - us(t0),
                    "pid": 1, "tid": 1, "args": {"fn": fname, "step": step}})
    for phase, fname, t0, t1, step, _parent in report.get("_sub_events", []):
        out.append({"name": label(phase), "cat": phase, "ph": "X", "ts": us(t0), "dur": us(t1) - us(t0),
                    "pid": 1, "tid": 1, "args": {"fn": fname, "step": step, "inside": _parent}})
    return {"traceEvents": out, "displayTimeUnit": "ms"}


def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def _mib(b):
    for unit, k in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if b >= k:
            return f"{b / k:.1f} {unit}"
    return f"{b} B"


def format_report(r):
    c = r["config"]
    extra = " peephole" if c["peephole"] else (f" {c['gru_variant']}" if c["cell"] == "gru" else "")
    lines = [f"profile {c['cell']}{extra}  H={c['hidden']} L={c['layers']} E={c['embed']} V={c['vocab']} "
             f"B={c['batch']} T={c['seq_len']}  {c['params']:,} params {c['dtype']}  device={c['device']}"
             + (f" ({c['threads']} thread{'s' if c['threads'] != 1 else ''})" if c.get("threads") else "")
             + f"  {c['steps']} steps after {c['warmup']} warm-up"]
    if not r["times_meaningful"]:
        lines.append("!! CUDA simulator: the times below are MEANINGLESS (Python emulation, not a GPU)")
    pk = r["peak"]
    lines.append(f"step {r['step_ms']:.3f} ms without instrumentation, {r['step_ms_instrumented']:.3f} ms with "
                 f"(means; medians {r['step_ms_median']:.3f} and {r['step_ms_instrumented_median']:.3f}: "
                 f"{r['instrumentation_overhead'] * 100:+.1f}%)")
    lines.append(f"{r['chars_per_s']:,.0f} chars/s  |  {r['model_gflops']:.1f} GFLOP/s by the model FLOP formula "
                 f"of docs/profile.md ({r['model_flops_per_step'] / 1e9:.3f} GFLOP per step)")
    lines.append("float32 product peak: " + (f"{pk['gflops']:.1f} GFLOP/s ({pk['n']}^3, {pk['how']})"
                                             if pk["gflops"] else pk["how"]))
    lines.append("")
    hdr = f"{'phase':<32} {'calls':>6} {'ms/step':>9} {'share':>7} {'GFLOP/s':>8} {'of peak':>8}"
    lines += [hdr, "-" * len(hdr)]
    for ph in r["phases"]:
        name = ph["label"] + (" *" if ph.get("estimated") else "")
        if ph["ms_per_step"] is None:
            lines.append(f"{name:<32} {'':>6} {'n/a':>9}")
            continue
        lines.append(f"{name:<32} {_fmt(ph['calls'], 'g', ''):>6} {ph['ms_per_step']:9.3f} "
                     f"{ph['share'] * 100:6.1f}% {_fmt(ph['gflops'], '.1f'):>8} "
                     f"{_fmt(None if ph['peak_fraction'] is None else ph['peak_fraction'] * 100, '.0f'):>7}"
                     f"{'' if ph['peak_fraction'] is None else '%'}")
    lines.append("-" * len(hdr))
    lines.append(f"{'step (instrumented)':<32} {'':>6} {r['step_ms_instrumented']:9.3f} {100.0:6.1f}%")
    for s in (r["sample"], r.get("generate")):
        if s and s["ms_per_char"] is not None:
            lines.append(f"{s['label'] + ' (per char)':<32} {1:>6} {s['ms_per_char']:9.3f} {'':>7} "
                         f"{_fmt(s['gflops'], '.1f'):>8} "
                         f"{_fmt(None if s['peak_fraction'] is None else s['peak_fraction'] * 100, '.0f'):>7}"
                         f"{'' if s['peak_fraction'] is None else '%'}")
    for n in r["notes"]:
        lines.append(f"* {n}" if "timed separately" in n else f"  {n}")
    m = r["memory"]
    a = m["activations"]
    lines.append("")
    lines.append(f"memory: activations {_mib(a['total'])} for (T={c['seq_len']}, B={c['batch']}) "
                 f"(cell workspaces {_mib(a['cell_workspaces'])}, model buffers {_mib(a['model_buffers'])}); "
                 f"params {_mib(m['params_bytes'])}, grads {_mib(m['grads_bytes'])}, "
                 f"optimizer {_mib(m['optimizer_bytes'])}; peak RSS {_mib(m['peak_rss_bytes'])}")
    cp = r["compile"]
    lines.append("")
    lines.append(f"JIT compile: {cp['total_compile_s']:.2f} s compiling in this run (numba:compile events; "
                 f"numba-cuda's CUDADispatcher.compile on a GPU; 0 when everything came from the cache)")
    if cp["functions"]:
        h2 = f"  {'jitted function':<44} {'sigs':>4} {'compile s':>9} {'self s':>7} {'cache hit/miss':>14}"
        lines.append(h2)
        for f in cp["functions"]:
            hm = "-" if f["cache_hits"] is None else f"{f['cache_hits']}/{f['cache_misses']}"
            nm = f["name"].replace("seqlearn.", "", 1).replace(".<locals>", "")
            lines.append(f"  {nm:<44} {f['signatures']:>4} {f['compile_s']:9.3f} {f['compile_self_s']:7.3f} "
                         f"{hm:>14}")
    lines.append(f"  {'entry point (what the model calls)':<44} {'first call ms':>13} {'steady ms':>10}")
    for e in cp["entry_points"]:
        lines.append(f"  {e['name']:<44} {e['first_call_ms']:13.3f} {_fmt(e['steady_ms'], '10.3f'):>10}")
    if r.get("kernels"):
        lines.append("")
        lines.append("CUDA kernels (events" + (", simulator: meaningless" if not r["times_meaningful"] else "") + ")")
        lines.append(f"  {'kernel':<32} {'launches/step':>13} {'ms/step':>9} {'regs/thr':>8} {'shared B/blk':>12} "
                     f"{'local B/thr':>11}")
        for k in r["kernels"]:
            lines.append(f"  {k['name']:<32} {k['launches_per_step']:13g} {k['ms_per_step']:9.3f} "
                         f"{_fmt(k['regs_per_thread'], 'd', 'n/a'):>8} "
                         f"{_fmt(k['shared_mem_per_block'], 'd', 'n/a'):>12} "
                         f"{_fmt(k['local_mem_per_thread'], 'd', 'n/a'):>11}")
    return "\n".join(lines)
