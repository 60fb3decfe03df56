"""Schedules fitted to a time budget: the arithmetic, and runs on a clock that ticks per step."""
import math
import os

import numpy as np
import pytest

from seqlearn.budget import Fit, Limit, steps_left
from seqlearn.checkpoint import read
from seqlearn.optim import Schedule
from seqlearn.train import Trainer

from test_train import assert_same_checkpoint, cfg, metrics, quiet

TICK = 0.5          # seconds per training step on the test clock


def test_progress_stays_continuous_when_the_estimate_changes():
    f = Fit(100.0, start=10)
    assert f.progress(0) == f.progress(10) == 0.0         # nothing known yet: the rate stays up
    f.refine(20, 90)                                       # expected end: step 110; until now the peak rate
    assert f.end == 110 and f.progress(20) == 0.0 and f.progress(65) == pytest.approx(0.5)
    p = f.progress(60)
    f.refine(60, 20)                                       # slower than thought: the end comes sooner
    assert f.progress(60) == pytest.approx(p) and f.progress(80) == pytest.approx(1.0)
    assert f.progress(70) == pytest.approx(p + (1 - p) / 2)
    f.refine(70, 1000)                                     # faster: the rest spreads further
    assert f.progress(70) == pytest.approx(p + (1 - p) / 2) and f.progress(1070) == 1.0
    g = Fit.from_state(f.state())
    assert all(g.progress(s) == f.progress(s) for s in range(0, 1200, 7))
    f.refine(5, 40)                                        # during warmup: only the end moves
    assert f.anchor_step == 70 and f.end == 71


def test_steps_left_keeps_the_final_evaluation_and_pays_for_the_others():
    assert steps_left(100.0, 0.5, 0.0, 10) == 200
    assert steps_left(100.0, 0.5, 5.0, 10) == int(95 / 1.0)
    assert steps_left(1.0, 0.5, 5.0, 10) == 0
    lim = Limit(60.0, Fit(60.0))
    assert lim.steps_left(0.0, 10.0, 10) is None           # no step timed yet
    lim.steps.add(9.0, first=True)                         # the first step compiles: not counted
    lim.steps.add(0.5, first=False)
    assert lim.steps_left(0.0, 10.0, 10) == 100
    lim.eval_time = 2.0
    assert not lim.out_of_time(100.0, 57.9) and lim.out_of_time(0.0, 58.0)
    assert Limit(30.0).out_of_time(30.0, 999.0) and not Limit(30.0).out_of_time(29.0, 999.0)
    assert Limit(None).time_left(1e9, 1e9) is None


def test_cosine_with_a_fit_follows_its_progress():
    f = Fit(10.0, start=4)
    f.refine(4, 20)
    s = Schedule("cosine", lr=1.0, warmup=4, fit=f)
    assert [s(i) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert s(4) == 1.0 and s(14) == pytest.approx(0.5) and s(24) == pytest.approx(0.0)


def ticking(trainer):
    """The trainer's clock: TICK seconds per step done (evaluations take no time)."""
    trainer.clock = lambda: 1000.0 + TICK * trainer.step
    return trainer


def fitted(**kw):
    return cfg(**{"schedule": "cosine", "max_time": 30.0, "log_every": 5, "eval_every": 10, **kw})


def test_a_budget_run_fits_its_cosine_to_the_time(tmp_path):
    summary = ticking(Trainer(fitted(warmup=3), tmp_path / "a", echo=quiet)).run()
    assert summary["step"] == 60                           # 30 s at 0.5 s a step
    lrs = [r["lr"] for r in metrics(tmp_path / "a")]
    assert lrs[0] == 2e-3 and all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] < 0.01 * 2e-3                           # the cosine is at its end at the budget's
    meta = read(tmp_path / "a" / "last.npz")[0]["train"]
    assert 60 <= meta["schedule_fit"]["end"] <= 61 and meta["schedule_steps"] is None


def test_a_budget_run_resumes_bit_identically(tmp_path, monkeypatch):
    ticking(Trainer(fitted(dropout=0.2), tmp_path / "a", echo=quiet)).run()
    monkeypatch.setattr(Trainer, "after_step", lambda self: self.step == 23)
    assert ticking(Trainer(fitted(dropout=0.2), tmp_path / "b", echo=quiet)).run()["step"] == 23
    monkeypatch.undo()
    assert ticking(Trainer.resume(tmp_path / "b", echo=quiet)).run()["step"] == 60
    assert_same_checkpoint(tmp_path / "a", tmp_path / "b")
    for k in ("schedule_fit", "elapsed_s"):
        assert read(tmp_path / "a" / "last.npz")[0]["train"][k] == read(tmp_path / "b" / "last.npz")[0]["train"][k]
    la = {r["step"]: r["lr"] for r in metrics(tmp_path / "a")}
    assert all(la[r["step"]] == r["lr"] for r in metrics(tmp_path / "b"))


def test_a_new_limit_on_resume_spans_the_rest_of_the_schedule(tmp_path):
    ticking(Trainer(fitted(max_time=10.0), tmp_path / "r", echo=quiet)).run()
    lr_end = metrics(tmp_path / "r")[-1]["lr"]
    assert ticking(Trainer.resume(tmp_path / "r", echo=quiet, max_time=10.0)).run()["step"] == 40
    rs = metrics(tmp_path / "r")
    after = [r["lr"] for r in rs if r["step"] > 20]
    assert after[0] <= lr_end and after[-1] < 1e-3 * 2e-3 + 1e-12        # no restart; ends at the end
    meta = read(os.path.join(tmp_path, "r", "last.npz"))[0]["train"]
    assert meta["schedule_fit"]["budget_s"] == pytest.approx(20.0) and meta["elapsed_s"] == pytest.approx(20.0)
    assert ticking(Trainer.resume(tmp_path / "r", echo=quiet, steps=50)).run()["step"] == 50
    assert all(math.isfinite(r["lr"]) for r in metrics(tmp_path / "r"))


def test_max_time_keeps_back_the_final_evaluation(tmp_path):
    """A run whose evaluations take 3 s (on the test clock) stops while the last one still fits."""
    t = ticking(Trainer(cfg(max_time=20.0, log_every=5, eval_every=10), tmp_path / "e", echo=quiet))
    real = t.validate
    extra = [0.0]

    def slow_validate():
        extra[0] += 3.0
        return real()
    t.validate = slow_validate
    t.clock = lambda: 1000.0 + TICK * t.step + extra[0]
    summary = t.run()
    assert summary["elapsed_s"] <= 20.0 + 1e-9
    assert np.isfinite(summary["val_loss"])
