"""The cpu benchmark scripts run end to end on tiny configurations and print their tables (their
numbers are measurements, never asserted; with PyTorch installed the comparison columns run too)."""
import importlib.util
import json
import math
import os
import re
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def _load(name):
    sys.path.insert(0, BENCH)
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(BENCH, f"{name}.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(BENCH)


@pytest.fixture
def no_pause(monkeypatch):
    sys.path.insert(0, BENCH)
    import common
    sys.path.remove(BENCH)
    monkeypatch.setattr(common, "SETTLE_S", 0.0)


def _torch():
    return importlib.util.find_spec("torch") is not None


def test_train_speed_prints_a_row(capsys, no_pause):
    mod = _load("train_speed")
    mod.sgemm_peak = lambda _f=mod.sgemm_peak: _f(256, 1)      # a small peak product
    mod.main(["--config", "lstm:16,1,4,5", "--seconds", "0.2", "--repeats", "1"])
    out = capsys.readouterr().out
    row = [ln for ln in out.splitlines() if ln.startswith("lstm")]
    assert len(row) == 1 and ("|" in row[0])
    if _torch():
        assert re.search(r"\|\s+\d+\.\d\d$", row[0]), row[0]       # the ratio column


def test_sample_speed_prints_both_sizes(capsys, no_pause):
    mod = _load("sample_speed")
    mod.copy_bandwidth = lambda mib=256, reps=5, _f=mod.copy_bandwidth: _f(8, 1)
    mod.main(["--hidden", "16", "24", "--num", "1", "2", "--repeats", "1", "--block-seconds", "0.01"])
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if re.match(r"\s+(16|24) \|", ln)]
    assert len(rows) == 2 and all(len(r.split("|")) == 5 for r in rows), out


def test_step_floor_sums_the_phases(capsys):
    from seqlearn.cpu import _threads
    before = _threads.NUM_THREADS
    mod = _load("step_floor")
    mod.main(["--hidden", "16", "--batch", "4", "--seq-len", "5"])
    assert _threads.NUM_THREADS == before
    out = capsys.readouterr().out
    phases = [float(m.group(1)) for m in re.finditer(r"^(?!floor|measured).*?\s([\d.]+) ms$", out, re.M)]
    floor = float(re.search(r"^floor \(sum\)\s+([\d.]+) ms", out, re.M).group(1))
    assert len(phases) == 7 and abs(sum(phases) - floor) < 0.01
    assert re.search(r"^measured step \(2 threads\)\s+[\d.]+ ms", out, re.M)


def test_dropout_speed_prints_a_row(capsys):
    mod = _load("dropout_speed")
    mod.main(["--config", "8,2,3,4", "--steps", "2"])
    out = capsys.readouterr().out
    row = [s for s in out.splitlines() if s.startswith("| lstm 8x2")]
    assert len(row) == 1 and float(row[0].split("|")[-2]) > 0


def test_wgrad_speed_prints_rows(capsys):
    mod = _load("wgrad_speed")
    mod.main(["--shape", "40,600,20", "--reps", "2", "--config", "lstm:8,2,3,4,2"])
    out = capsys.readouterr().out
    prod = [s for s in out.splitlines() if s.startswith("| 40 x 600 x 20 |")]
    step = [s for s in out.splitlines() if s.startswith("| lstm 8x2")]
    assert len(prod) == 1 and float(prod[0].split("|")[-2]) < 1e-5      # both products agree
    assert len(step) == 1 and float(step[0].split("|")[-2]) > 0



def test_sample_phases_times_the_loop_it_copies(capsys, monkeypatch):
    mod = _load("sample_phases")
    mod.main(["--hidden", "16", "--num", "1", "2", "--repeats", "1", "--chars", "50"])
    out = capsys.readouterr().out
    rows = [ln.split("|") for ln in out.splitlines() if re.match(r"\s+[12]\s+[\d.]+\s", ln)]
    assert len(rows) == 2, out
    for r in rows:
        step = float(r[0].split()[1])
        phases = [float(c) for c in r[1:]]          # one thread at H=16: one number per phase
        assert len(phases) == len(mod.PHASES) and 0 < sum(phases) <= step * 1.05, r
    assert re.search(r"^tiles \(one thread.*4 rows [\d.]+ us", out, re.M)
    # a loop that no longer matches the anchors is refused, not timed
    monkeypatch.setattr(mod, "_EDITS", mod._EDITS + (("no such line", ""),))
    with pytest.raises(RuntimeError, match="anchor"):
        mod.instrumented()


def test_soak_watches_training_and_sampling(tmp_path, capsys):
    """benchmarks/soak.py end to end at a few seconds a phase: the curve's samples and the summary."""
    soak = _load("soak")
    out = tmp_path / "soak.jsonl"
    assert soak.main(["--train-minutes", "0.15", "--sample-minutes", "0.1", "--every", "1", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in open(out)]
    assert {r["phase"] for r in rows} == {"train", "sample"}
    assert all(r["rss_mib"] > 0 and r["fds"] >= 3 for r in rows)
    text = capsys.readouterr().out
    assert "train: " in text and "sample: " in text


def test_quality_prints_a_row_per_budget(capsys):
    """benchmarks/quality.py at a few seconds a budget: the user's command, then PyTorch sized by
    the same rule from its own step times."""
    mod = _load("quality")
    tiny = os.path.join(os.path.dirname(__file__), "..", "data", "tiny.txt")
    assert mod.main(["--text", tiny, "--minutes", "0.1", "--threads", "1"] + ([] if _torch() else ["--no-torch"])) == 0
    out = capsys.readouterr().out
    row = [ln for ln in out.splitlines() if ln.startswith("| 0.1 min")]
    assert len(row) == 1, out
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert float(cells[1].split()[0]) < math.log(40)          # it learnt something
    if _torch():
        assert float(cells[3].split()[0]) < math.log(40) and cells[5].startswith(("+", "-"))
