"""seqlearn profile: phases add up to the step, JSON and Chrome trace follow docs/profile.md, the GPU
path runs under the CUDA simulator. No timing assertions beyond the phases-sum consistency."""
import importlib
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from seqlearn import profiler
from seqlearn.cli.main import cli

TEXT = ("the quick brown fox jumps over the lazy dog. " * 40)
TRAIN_PHASES = {"input", "head_loss", "weight_grads", "other_ops"}


def _has_optim(device):
    try:
        importlib.import_module("seqlearn.optim")
        importlib.import_module(f"seqlearn.{device}.optim")
        return True
    except ImportError:
        return False


@pytest.mark.parametrize("cell,kw", [("lstm", {}), ("gru", {"gru_variant": "cho"})])
def test_phases_add_up_to_the_step(cell, kw):
    # Sizes where the kernels, not the per-step Python glue, take most of the step.
    r = profiler.run_profile(TEXT, cell=cell, hidden=32, layers=2, batch=8, seq_len=24, steps=8,
                             warmup=1, device="ref", sample_chars=2, peak_n=128, **kw)
    steps = r["config"]["steps"]
    # the same measured intervals: every timed call lies inside its step ...
    bounds = r["_step_bounds"]
    assert len(bounds) == steps
    per_step = np.zeros(steps)
    for phase, _fn, t0, t1, step in r["_events"]:
        if isinstance(step, tuple):
            continue
        s0, s1 = bounds[step]
        assert s0 <= t0 <= t1 <= s1
        per_step[step] += t1 - t0
    # ... and the timed phases cover at least 90% of the instrumented step time, summed over steps
    total = sum(b - a for a, b in bounds)
    assert per_step.sum() <= total
    assert per_step.sum() >= 0.9 * total, (per_step.sum(), total)
    timed = sum(p["ms_per_step"] for p in r["phases"] if p["name"] != "glue" and p["ms_per_step"])
    assert timed == pytest.approx(r["timed_ms_per_step"], rel=1e-9)
    shares = sum(p["share"] for p in r["phases"] if p["share"] is not None)
    assert shares == pytest.approx(1.0, abs=1e-6)
    names = {p["name"] for p in r["phases"]}
    assert {"forward_l0", "forward_l1", "backward_l0", "backward_l1"} <= names
    assert TRAIN_PHASES <= names


def _check_json(doc, layers):
    assert isinstance(doc["step_ms"], float) and doc["step_ms"] > 0
    assert doc["step_ms_instrumented"] > 0
    assert isinstance(doc["phases"], list) and doc["phases"]
    for p in doc["phases"]:
        assert set(p) >= {"name", "ms_per_step", "share", "gflops", "calls", "label"}
        assert p["gflops"] is None or p["gflops"] > 0
    names = [p["name"] for p in doc["phases"]]
    for k in range(layers):
        assert f"forward_l{k}" in names and f"backward_l{k}" in names
    assert {"input", "weight_grads", "head_loss", "clip", "optimizer", "glue"} <= set(names)
    assert "functions" in doc["compile"] and "entry_points" in doc["compile"]
    for e in doc["compile"]["entry_points"]:
        assert set(e) >= {"name", "first_call_ms", "steady_ms"}
    for f in doc["compile"]["functions"]:
        assert set(f) >= {"name", "compile_s", "cache_hits", "cache_misses"}
    assert doc["sample"]["ms_per_char"] > 0
    g = doc["generate"]
    assert g["name"] == "generate_b1" and (g["ms_per_char"] is None or g["ms_per_char"] > 0)
    m = doc["memory"]
    assert m["activations"]["total"] > 0 and m["peak_rss_bytes"] > 0
    assert "gflops" in doc["peak"]


def _check_trace(tr, steps, layers, with_optim):
    assert isinstance(tr["traceEvents"], list)
    slices = [e for e in tr["traceEvents"] if e["ph"] == "X"]
    for e in slices:
        assert set(e) >= {"name", "cat", "ph", "ts", "dur", "pid", "tid", "args"}
        assert e["dur"] >= 0 and e["ts"] >= 0
    want = {"input", "head_loss", "weight_grads"} | {f"forward_l{k}" for k in range(layers)} \
        | {f"backward_l{k}" for k in range(layers)}
    if with_optim:
        want |= {"clip", "optimizer"}
    for i in range(steps):
        cats = {e["cat"] for e in slices if e["tid"] == 1 and e["args"].get("step") == i}
        assert want <= cats, (i, want - cats)
        assert "step" in cats
    assert any(e["cat"] == "sample_b1" for e in slices)


def test_cli_json_and_trace(tmp_path):
    src = tmp_path / "t.txt"
    src.write_text(TEXT, encoding="utf-8")
    trace = tmp_path / "trace.json"
    res = CliRunner().invoke(cli, ["profile", str(src), "--device", "ref", "--hidden", "16", "--layers", "2",
                                   "--embed", "4", "--batch", "4", "--seq-len", "8", "--steps", "3",
                                   "--warmup", "1", "--sample-chars", "2", "--peak-size", "64",
                                   "--json", "--trace", str(trace)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    _check_json(doc, 2)
    assert doc["config"]["embed"] == 4 and doc["times_meaningful"] is True
    _check_trace(json.loads(trace.read_text()), 3, 2, _has_optim("ref"))


def test_cli_table(tmp_path):
    res = CliRunner().invoke(cli, ["profile", "--device", "ref", "--cell", "rnn", "--hidden", "8",
                                   "--layers", "1", "--batch", "2", "--seq-len", "4", "--steps", "2",
                                   "--sample-chars", "1", "--peak-size", "64"])
    assert res.exit_code == 0, res.output
    out = res.output
    for row in ("input gather/projection", "recurrent forward L0", "recurrent backward L0",
                "weight-gradient products", "head and loss", "clipping", "optimizer update",
                "sampling step, batch 1", "without instrumentation", "JIT compile", "peak RSS",
                "activations"):
        assert row in out, row
    assert "generation, batch 1" not in out       # ref samples through the sampling step itself


def test_cli_header_names_the_cpu_threads(monkeypatch):
    from seqlearn.cpu import _threads
    monkeypatch.setattr(_threads, "NUM_THREADS", _threads.NUM_THREADS)
    monkeypatch.setenv("SEQLEARN_NUM_THREADS", "1")
    res = CliRunner().invoke(cli, ["profile", "--threads", "1", "--cell", "rnn", "--hidden", "8", "--layers", "1",
                                   "--batch", "2", "--seq-len", "4", "--steps", "1", "--warmup", "1",
                                   "--sample-chars", "1", "--peak-size", "64"])
    assert res.exit_code == 0, res.output
    assert "device=cpu (1 thread)  1 steps" in res.output.splitlines()[0]
    assert re.search(r"^generation, batch 1 \(per char\)\s+1\s+[\d.]+", res.output, re.M)


@pytest.mark.parametrize("args,msg", [
    (["--seq-len", "5000"], "characters"),
    (["--hidden", "0"], "hidden"),
])
def test_cli_bad_input(tmp_path, args, msg):
    src = tmp_path / "t.txt"
    src.write_text("abcabc", encoding="utf-8")
    res = CliRunner().invoke(cli, ["profile", str(src), "--device", "ref", "--steps", "1"] + args)
    assert res.exit_code != 0
    assert msg in res.output
    assert "Traceback" not in res.output


def test_cli_empty_and_binary_files(tmp_path):
    empty = tmp_path / "e.txt"
    empty.write_bytes(b"")
    res = CliRunner().invoke(cli, ["profile", str(empty), "--device", "ref"])
    assert res.exit_code != 0 and "empty" in res.output
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\xff\xfe\x00\x80" * 10)
    res = CliRunner().invoke(cli, ["profile", str(binary), "--device", "ref"])
    assert res.exit_code != 0 and "utf-8" in res.output


def test_cpu_backend_compile_report():
    pytest.importorskip("seqlearn.cpu.lstm")
    r = profiler.run_profile(TEXT, cell="lstm", hidden=16, layers=1, batch=4, seq_len=8, steps=2,
                             warmup=1, device="cpu", sample_chars=1, peak_n=64)
    doc = json.loads(json.dumps(profiler.to_json(r), default=str))
    _check_json(doc, 1)
    funcs = {f["name"]: f for f in doc["compile"]["functions"]}
    assert any(n.startswith("seqlearn.cpu.lstm.") for n in funcs)
    for f in funcs.values():   # numba's own counters: each compiled signature was a hit or a miss
        if f["cache_hits"] is not None and f["signatures"]:
            assert f["cache_hits"] + f["cache_misses"] >= 1
    assert "njit np.dot" in doc["peak"]["how"]
    # the loop `seqlearn sample` runs is timed too (marginal per character, after its compile)
    assert doc["generate"]["ms_per_char"] > 0 and "sample_kernels" in doc["generate"]["how"]
    assert doc["generate"]["chars"] == 256
    # dW_hh is either timed in place (a Python-level hook in the backward) or estimated beside it
    assert any("dW_hh" in n for n in doc["notes"])
    wg = next(p for p in doc["phases"] if p["name"] == "weight_grads")
    assert wg["flops_per_step"] > 0
    if r["_sub_events"]:
        assert "estimated" not in wg
        tr = profiler.chrome_trace(r)
        assert any(e.get("args", {}).get("inside") == "backward_l0" for e in tr["traceEvents"])
    else:
        assert wg["estimated"] and "recurrent backward L0 *" in profiler.format_report(r)


def test_subphase_hook_moves_time_to_its_phase():
    import types
    mod = types.ModuleType("fakecell")
    exec("import time\n"
         "def wgrad(x):\n    time.sleep(0.002)\n    return x\n"
         "def backward(x):\n    time.sleep(0.001)\n    return wgrad(x) + 1\n", mod.__dict__)
    rec = profiler.Recorder()
    hooks = profiler._hooks(mod, rec)
    assert set(hooks) == {"wgrad"}
    mod.wgrad = hooks["wgrad"][1]
    rec.step = 0
    assert rec.timed("backward_l0", "fakecell.backward", mod.backward, (1,), {}) == 2
    rec.step = None
    assert mod.wgrad(5) == 5                    # outside a measured step: passes through
    (phase, fname, t0, t1, step, parent), = rec.sub_events
    assert (phase, fname, step, parent) == ("weight_grads", "fakecell.wgrad", 0, "backward_l0")
    (_, _, o0, o1, _), = rec.events
    assert o0 <= t0 <= t1 <= o1


def test_gpu_path_under_the_simulator():
    import os
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        pytest.skip("run with NUMBA_ENABLE_CUDASIM=1 (the root conftest sets it)")
    try:
        importlib.import_module("seqlearn.cuda.lstm")
    except Exception as e:  # noqa: BLE001 - the cuda backend may not exist yet
        pytest.skip(f"seqlearn.cuda.lstm does not import: {e}")
    import sys
    old = sys.getswitchinterval()
    sys.setswitchinterval(5e-4)      # simulator barriers ~7x cheaper (docs NUMBA.md)
    try:
        r = _sim_profile()
    finally:
        sys.setswitchinterval(old)
    _check_sim(r)


def _sim_profile():
    return profiler.run_profile("abcdabcdab" * 4, cell="lstm", hidden=4, layers=1, batch=2, seq_len=2,
                                steps=1, warmup=1, device="cuda", sample_chars=1)


def _check_sim(r):
    assert r["times_meaningful"] is False
    assert r["peak"]["gflops"] is None
    assert r["kernels"], "no kernel launches recorded"
    for k in r["kernels"]:
        assert k["launches_per_step"] > 0 and k["regs_per_thread"] is None
    text = profiler.format_report(r)
    assert "MEANINGLESS" in text and "CUDA kernels" in text
    doc = json.loads(json.dumps(profiler.to_json(r), default=str))
    assert doc["times_meaningful"] is False
    tr = profiler.chrome_trace(r)
    assert any(e.get("cat") == "forward_l0" for e in tr["traceEvents"])


@pytest.mark.parametrize("fuse", [True, False])
def test_phase_flops_follow_the_fused_input(fuse, monkeypatch):
    """Where the cpu lstm multiplies a dense input inside its time loop, that projection's FLOPs
    belong to the layer's recurrent forward, not to the input phase; the gru writes it first."""
    import seqlearn
    from seqlearn.cpu import lstm
    from seqlearn.profiler.phases import fuses_input, phase_flops
    if not fuse:
        monkeypatch.setattr(lstm, "fused_input", None)      # as a backend without the fused loop
    T, B, H = 4, 3, 8
    N = T * B
    m = seqlearn.CharLM("abcde", cell="lstm", hidden_size=H, num_layers=2, device="cpu")
    f = phase_flops(m, T, B, True)
    assert fuses_input(m) is fuse
    assert f["forward_l0"] == 2.0 * N * 4 * H * H
    assert f["forward_l1"] == 2.0 * N * 4 * H * (2 * H if fuse else H)
    assert f["input"] == (0.0 if fuse else 2.0 * N * 4 * H * H)
    g = seqlearn.CharLM("abcde", cell="gru", hidden_size=H, num_layers=2, device="cpu")
    assert not fuses_input(g) and phase_flops(g, T, B, True)["input"] == 2.0 * N * 3 * H * H


@pytest.mark.parametrize("nth", [1, 2])
def test_cpu_peak_runs_a_product_on_every_backend_thread(nth, monkeypatch):
    """The phases' GFLOP/s are totals over the backend's threads, so its peak is too."""
    pytest.importorskip("seqlearn.cpu.lstm")
    from seqlearn.cpu import _threads
    calls = []
    real = _threads.run
    monkeypatch.setattr(_threads, "NUM_THREADS", nth)
    monkeypatch.setattr(_threads, "run", lambda fn, args: calls.append(len(args)) or real(fn, args))
    pk = profiler.measure_peak("cpu", n=64, repeats=2)
    assert calls and set(calls) == {nth}
    assert pk["gflops"] > 0 and f"{nth} thread" in pk["how"] and "njit np.dot" in pk["how"]

