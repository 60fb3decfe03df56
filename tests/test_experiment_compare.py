"""`seqlearn experiment compare`: equal parameter counts, equal training time, one tiny run."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from seqlearn import CharLM
from seqlearn.cli.main import cli
from seqlearn.experiments import compare as C
from seqlearn.experiments.threads import blas_threads


@pytest.fixture
def text(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the ", "cat ", "sat ", "on ", "a ", "mat.\n", "dog ", "ran "]
    p = tmp_path / "tiny.txt"
    p.write_text("".join(rng.choice(words, 1500)))
    return p


@pytest.mark.parametrize("cell,peep", [("lstm", False), ("gru", False), ("lstm", True), ("rnn", False)])
def test_count_params_matches_model(cell, peep):
    m = CharLM("abcdefg", cell=cell, hidden_size=5, num_layers=2, peephole=peep, device="ref")
    assert C.count_params(cell, 7, 5, 2, peep) == m.num_params


def test_budget_matching_is_nearest():
    V, L = 65, 1
    budget = C.count_params("lstm", V, 128, L)
    H = C.hidden_for_budget("gru", V, L, budget)
    n = C.count_params("gru", V, H, L)
    assert abs(n - budget) <= abs(C.count_params("gru", V, H + 1, L) - budget)
    assert abs(n - budget) <= abs(C.count_params("gru", V, H - 1, L) - budget)
    assert abs(n - budget) / budget < 0.02


def test_cli_compare_tiny_run(text, tmp_path):
    out = tmp_path / "runs"
    r = CliRunner().invoke(cli, ["experiment", "compare", str(text), "--sizes", "4", "--seconds", "0.3",
                                 "--points", "2", "--batch", "4", "--seq-len", "8", "--device", "ref",
                                 "--out", str(out), "--json", "-q"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [row["name"] for row in rows] == ["lstm", "gru-torch"]
    lstm, gru = rows
    assert lstm["hidden"] == 4 and gru["hidden"] >= 4
    assert abs(gru["params"] - lstm["params"]) <= 0.2 * lstm["params"]
    for row in rows:
        assert row["steps"] >= 1 and row["seconds"] >= 0.3
        assert np.isfinite(row["val_bpc"])
        # the curve starts untrained (about log2 V bits) and its points are in training-time order
        secs = [p["seconds"] for p in row["curve"]]
        assert secs[0] == 0.0 and secs == sorted(secs) and len(secs) >= 2
        assert row["curve"][-1]["step"] == row["steps"]
        assert (out / f"{row['name']}-h{row['hidden']}" / "config.json").exists()
    r = CliRunner().invoke(cli, ["experiment", "compare", str(text), "--sizes", "4", "--seconds", "0.2",
                                 "--cells", "gru-cho", "--batch", "4", "--seq-len", "8", "--device", "ref",
                                 "-q"])
    assert r.exit_code == 0, r.output
    assert "| 4 | gru-cho |" in r.output
    # --match hidden: the same hidden size for every cell, so the gru is the smaller model
    r = CliRunner().invoke(cli, ["experiment", "compare", str(text), "--sizes", "6", "--seconds", "0.2",
                                 "--match", "hidden", "--batch", "4", "--seq-len", "8", "--device", "ref",
                                 "--json", "-q"])
    assert r.exit_code == 0, r.output
    lstm, gru = json.loads(r.output)
    assert lstm["hidden"] == gru["hidden"] == 6
    assert gru["params"] < lstm["params"]


def test_cli_compare_plot(text, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "c.png"
    r = CliRunner().invoke(cli, ["experiment", "compare", str(text), "--sizes", "3,4", "--seconds", "0.2",
                                 "--points", "2", "--batch", "4", "--seq-len", "8", "--device", "ref", "-q",
                                 "--plot", str(png)])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_compare_errors(tmp_path):
    r = CliRunner().invoke(cli, ["experiment", "compare", str(tmp_path / "missing.txt")])
    assert r.exit_code != 0
    p = tmp_path / "t.txt"
    p.write_text("hello world\n" * 100)
    r = CliRunner().invoke(cli, ["experiment", "compare", str(p), "--cells", "lstm,mamba"])
    assert r.exit_code != 0 and "mamba" in r.output


def test_blas_threads_restores():
    from seqlearn.experiments import threads
    before = threads.current()
    with blas_threads(1):
        inside = threads.current()
        assert all(n == 1 for n in inside)
    assert threads.current()[:len(before)] == before
