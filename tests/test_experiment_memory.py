"""The remember-the-first-symbol task and the `seqlearn experiment memory` command."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from seqlearn.cli.main import cli
from seqlearn.experiments import memory as M
from seqlearn.experiments.tasks import BLANK, QUERY, RememberFirst


@pytest.mark.parametrize("lag", [2, 3, 7, 50])
def test_layout_and_targets(lag):
    task = RememberFirst(lag)
    x, y = task.batch(np.random.default_rng(lag), 64)
    assert x.shape == y.shape == (64, lag)
    keys = set(task.key_ids.tolist())
    fillers = set(task.filler_ids.tolist())
    assert set(x[:, 0].tolist()) <= keys
    assert set(x[:, 1:lag - 1].ravel().tolist()) <= fillers
    assert (x[:, -1] == task.index[QUERY]).all()
    # every target is the blank except the answer, which is the key lag characters back
    assert (y[:, :-1] == task.index[BLANK]).all()
    assert (y[:, -1] == x[:, 0]).all()
    assert (y[:, -1] == task.answer(x)).all()
    # the answer character follows the inputs in the stream: it sits lag steps after the key
    stream = np.concatenate([x, y[:, -1:]], axis=1)
    assert (stream[:, -1] == stream[:, -1 - lag]).all()


@pytest.mark.parametrize("lag", [3, 20])
def test_answer_depends_only_on_the_character_lag_steps_back(lag):
    task = RememberFirst(lag)
    rng = np.random.default_rng(1)
    x, y = task.batch(rng, 16)
    base = task.answer(x)
    for pos in range(lag):
        for row in range(len(x)):
            x2 = x.copy()
            if pos == 0:
                others = [k for k in task.key_ids if k != x[row, 0]]
                x2[row, 0] = rng.choice(others)
                assert task.answer(x2)[row] == x2[row, 0] != base[row]
            elif pos < lag - 1:
                others = [f for f in task.filler_ids if f != x[row, pos]]
                x2[row, pos] = rng.choice(others)
                assert (task.answer(x2) == base).all()
            # the query mark (pos lag-1) is fixed; changing it makes a different task, not a new answer
    assert (y[:, -1] == base).all()


def test_fillers_carry_no_information_about_the_answer():
    """Whatever the key, the fillers are uniform and independent: their histogram per key is flat."""
    task = RememberFirst(12)
    x, y = task.batch(np.random.default_rng(2), 8000)
    F = len(task.fillers)
    for k in task.key_ids:
        rows = x[y[:, -1] == k, 1:-1]
        assert len(rows) > 1500
        freq = np.array([(rows == f).mean() for f in task.filler_ids])
        assert np.abs(freq - 1 / F).max() < 0.02
    keys = np.array([(y[:, -1] == k).mean() for k in task.key_ids])
    assert np.abs(keys - task.chance).max() < 0.02


def test_bad_arguments():
    with pytest.raises(ValueError):
        RememberFirst(1)
    with pytest.raises(ValueError):
        RememberFirst(5, keys="AB", fillers="Bc")
    with pytest.raises(ValueError):
        RememberFirst(5).answer(np.zeros((2, 4), np.int64))


@pytest.mark.parametrize("cell,peep", [("lstm", False), ("lstm", True), ("gru", False), ("rnn", False)])
def test_param_count_formula_matches_model(cell, peep):
    from seqlearn import CharLM
    task = RememberFirst(5)
    m = CharLM(task.vocab, cell=cell, hidden_size=7, num_layers=1, peephole=peep, device="ref")
    assert m.num_params == M.num_params(cell, len(task.vocab), 7, peep)


def test_equal_budget_hidden_sizes():
    V = len(RememberFirst(5).vocab)
    budget = M.num_params("lstm", V, 32)
    for cell, peep in [("gru", False), ("rnn", False), ("lstm", True)]:
        H = M.hidden_for_budget(cell, V, budget, peep)
        n = M.num_params(cell, V, H, peep)
        assert abs(n - budget) <= min(abs(M.num_params(cell, V, h, peep) - budget) for h in (H - 1, H + 1))
    assert M.hidden_for_budget("lstm", V, budget) == 32
    assert M.hidden_for_budget("rnn", V, budget) > M.hidden_for_budget("gru", V, budget) > 32


def test_carry_bias_sets_forget_and_update_gates():
    from seqlearn import CharLM
    task = RememberFirst(5)
    for cell in ("lstm", "gru"):
        m = CharLM(task.vocab, cell=cell, hidden_size=4, num_layers=1, device="ref")
        before = m.state_dict()
        M.set_carry_bias(m, 2.5)
        after = m.state_dict()
        H = 4
        b = after["rnn.bias_ih_l0"] + after["rnn.bias_hh_l0"]
        assert np.allclose(b[H:2 * H], 2.5)
        assert np.array_equal(after["rnn.bias_ih_l0"][:H], before["rnn.bias_ih_l0"][:H])
        assert np.array_equal(after["rnn.weight_hh_l0"], before["rnn.weight_hh_l0"])


def test_short_lag_is_learned():
    """Lag 3 is easy for any cell: a gru reaches the solve threshold within a few hundred updates."""
    row = M.train_one(RememberFirst(3), "gru", "torch", 8, batch=16, lr=0.02, max_steps=400,
                      eval_every=20, eval_batch=128, test_batch=200, device="ref")
    assert row["steps_to_solve"] is not None
    assert row["accuracy"] > 0.9


def test_cli_memory_json_and_table(tmp_path):
    args = ["experiment", "memory", "--lags", "3,4", "--cells", "rnn,lstm", "--hidden", "4",
            "--max-steps", "10", "--device", "ref", "--batch", "4", "-q"]
    r = CliRunner().invoke(cli, args + ["--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert len(rows) == 4
    for row in rows:
        assert {"cell", "variant", "lag", "accuracy", "steps_to_solve", "hidden", "params"} <= set(row)
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["steps"] <= 10
    assert {(r["cell"], r["lag"]) for r in rows} == {("rnn", 3), ("rnn", 4), ("lstm", 3), ("lstm", 4)}
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "| rnn |" in r.output and "| lag 4 |" in r.output


def test_cli_memory_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "m.png"
    r = CliRunner().invoke(cli, ["experiment", "memory", "--lags", "3", "--cells", "gru-cho", "--hidden", "4",
                                 "--max-steps", "5", "--device", "ref", "-q", "--plot", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_memory_rejects_bad_lists():
    r = CliRunner().invoke(cli, ["experiment", "memory", "--cells", "lstm,transformer"])
    assert r.exit_code != 0 and "transformer" in r.output
    r = CliRunner().invoke(cli, ["experiment", "memory", "--lags", "1"])
    assert r.exit_code != 0


def test_cli_plot_without_matplotlib_is_a_clear_error(monkeypatch, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import matplotlib now raises ImportError
    r = CliRunner().invoke(cli, ["experiment", "memory", "--lags", "3", "--cells", "rnn", "--max-steps", "1",
                                 "--device", "ref", "-q", "--plot", str(tmp_path / "m.png")])
    assert r.exit_code != 0
    assert "matplotlib" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "m.png").exists()
