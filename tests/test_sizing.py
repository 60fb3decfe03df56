"""The sizing rule (seqlearn/sizing.py): deterministic for given step times, options given win."""
import json
import os

import pytest
from click.testing import CliRunner

import seqlearn
from seqlearn import sizing
from seqlearn.cli.main import cli as main
from seqlearn.train import Trainer

from test_train import TINY, cfg, quiet


def table(cell, H, L, B, T):
    """Step times that grow as H^2 (0.1 s at H=256)."""
    return 0.1 * (H / 256) ** 2 * (0.75 if cell == "gru" else 1.0) + 0.005


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_parameter_count_is_the_models(cell):
    m = seqlearn.CharLM("abcdefghij", cell=cell, hidden_size=12, num_layers=3, device="ref")
    assert sizing.num_params(cell, 10, 12, 3) == m.num_params


def test_the_largest_rung_that_still_gets_enough_steps():
    n_train = 10 ** 7                               # no parameter cap in sight
    picks = {}
    for minutes in (5, 15, 60, 240):
        chosen, why = sizing.choose(n_train, n_train // 9, 65, 60.0 * minutes, table)
        picks[minutes] = chosen["hidden"]
        n = int(why.split("about ")[1].split(" steps")[0].replace(",", ""))
        assert n >= sizing.MIN_STEPS or chosen["hidden"] == sizing.LADDER[0]
        bigger = [H for H in sizing.LADDER if H > chosen["hidden"]]
        if bigger:                                 # the next rung would get too few steps
            t = table(sizing.CELL, bigger[0], 2, 32, 100)
            assert sizing.steps_left(60.0 * minutes, t, t * (n_train // 9) / 9600, 200) < sizing.MIN_STEPS
    assert picks[5] <= picks[15] <= picks[60] <= picks[240] and picks[5] < picks[240]
    assert sizing.choose(n_train, 0, 65, 3600.0, table) == sizing.choose(n_train, 0, 65, 3600.0, table)


def test_a_small_text_caps_the_parameters_and_raises_dropout():
    small, _ = sizing.choose(20_000, 2_000, 27, 3600.0, table)
    big, _ = sizing.choose(10 ** 7, 10 ** 6, 27, 3600.0, table)
    assert sizing.num_params(small["cell"], 27, small["hidden"], 2) <= sizing.PARAMS_PER_CHAR * 20_000
    assert small["hidden"] < big["hidden"]
    assert small["dropout"] > big["dropout"] and small["dropout"] <= sizing.DROPOUT_MAX
    assert small["batch"] * small["seq_len"] < 20_000


def test_dropout_grows_with_the_passes_over_the_text():
    d = [sizing.dropout_for(e) for e in (1, sizing.DROPOUT_FROM, 16, 64, 10 ** 6)]
    assert d[0] == d[1] == 0.0 and 0 < d[2] < d[3] <= d[4] == sizing.DROPOUT_MAX


def test_a_rung_is_timed_by_the_median_after_the_warm_up(monkeypatch):
    clock = iter([0.0, 0.2, 1.0, 1.2, 2.0, 9.0, 10.0, 10.2, 11.0, 11.2])     # one of five steps slowed
    monkeypatch.setattr(sizing.time, "perf_counter", lambda: next(clock))
    calls = []
    assert sizing.typical_step(lambda: calls.append(1), warm=2, timed=5) == pytest.approx(0.2)
    assert len(calls) == 7                          # the warm-up calls ran and were not timed


def test_options_given_win():
    fixed = {"cell": "lstm", "hidden": 100, "dropout": 0.05, "lr": 1e-3, "batch": 16}
    chosen, _ = sizing.choose(10 ** 6, 10 ** 5, 65, 600.0, table, fixed)
    assert {k: chosen[k] for k in fixed} == fixed and chosen["dropout_top"] == 0.05


def test_a_sized_run_records_what_it_chose_and_why(tmp_path):
    lines = []
    t = Trainer(cfg(max_time=3.0, hidden=128, layers=2), tmp_path / "s", echo=lines.append, auto={"max_time", "eval_every"})
    assert t.sizing and lines[0].startswith("sized to the budget") and "ms a step here" in lines[0]
    assert t.config["schedule"] == "cosine" and t.limit.fit is not None
    t.run()
    doc = json.load(open(os.path.join(tmp_path, "s", "config.json")))
    assert doc["sizing"]["chosen"]["hidden"] == doc["config"]["hidden"] and doc["sizing"]["given"] == ["eval_every"]
    resumed = Trainer.resume(tmp_path / "s", echo=quiet)          # a resume keeps the sizes, measures nothing
    assert resumed.sizing is None and resumed.config["hidden"] == doc["config"]["hidden"]
    resumed.close()


def test_the_cli_sizes_only_when_the_size_is_not_given(tmp_path):
    r = CliRunner().invoke(main, ["train", TINY, "--max-time", "2", "--out", str(tmp_path / "a"), "--eval-every", "5",
                                  "--device", "ref"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("sized to the budget") and "gru 2x" in r.output
    r = CliRunner().invoke(main, ["train", TINY, "--max-time", "2", "--hidden", "8", "--out", str(tmp_path / "b"),
                                  "--device", "ref"])
    assert r.exit_code == 0 and "sized" not in r.output and "H=8," in r.output
