"""The trainer: pinned losses, exact resume (also after Ctrl-C), divergence, run directories."""
import importlib.util
import json
import os
import signal

import numpy as np
import pytest

from seqlearn.checkpoint import read
from seqlearn.train import Trainer, TrainingError

TINY = os.path.join(os.path.dirname(__file__), "..", "data", "tiny.txt")
HAS_CPU = importlib.util.find_spec("seqlearn.cpu.lstm") is not None
DEVICE = "cpu" if HAS_CPU else "ref"


def cfg(**kw):
    c = {"text": TINY, "hidden": 16, "layers": 2, "batch": 4, "seq_len": 10, "eval_every": 10,
         "log_every": 5, "device": DEVICE, "sample_len": 20}
    c.update(kw)
    return c


def quiet(*a):
    pass


def metrics(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def assert_same_checkpoint(a, b):
    ma, xa = read(os.path.join(a, "last.npz"))
    mb, xb = read(os.path.join(b, "last.npz"))
    assert sorted(xa) == sorted(xb)
    for k in xa:
        np.testing.assert_array_equal(xa[k], xb[k], err_msg=k)
    for k in ("step", "epoch", "optim_steps", "rng", "best_val_loss", "val_loss"):
        assert ma["train"][k] == mb["train"][k], k


# First 10 training losses of a seeded run on data/tiny.txt (2x16 LSTM, B=4, T=10, Adam 2e-3).
# Computed in float64; float32 runs agree to ~1e-8 relative.
GOLDEN = [3.6473727371, 3.6774046018, 3.6888825474, 3.6830942547, 3.7047615423,
          3.6456235467, 3.6298729292, 3.6466520811, 3.6683010103, 3.6639856461]


def _first_losses(tmp_path, **kw):
    Trainer(cfg(log_every=1, steps=10, **kw), tmp_path / "r", echo=quiet).run()
    return [r["train_loss"] for r in metrics(tmp_path / "r")]


@pytest.mark.skipif(not HAS_CPU, reason="the cpu backend is absent")
def test_golden_losses_cpu(tmp_path):
    np.testing.assert_allclose(_first_losses(tmp_path, device="cpu"), GOLDEN, rtol=1e-6)


def test_golden_losses_ref_float64(tmp_path):
    np.testing.assert_allclose(_first_losses(tmp_path, device="ref", dtype="float64"), GOLDEN, rtol=1e-9)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_resume_is_bit_identical_with_dropout(tmp_path, cell):
    c = cfg(cell=cell, dropout=0.3, steps=37)
    Trainer(c, tmp_path / "a", echo=quiet).run()
    Trainer(dict(c, steps=13), tmp_path / "b", echo=quiet).run()     # stops mid-epoch, off the eval grid
    assert read(tmp_path / "b" / "last.npz")[0]["train"]["step"] == 13
    Trainer.resume(tmp_path / "b", echo=quiet, steps=37).run()
    assert_same_checkpoint(tmp_path / "a", tmp_path / "b")
    ra, rb = metrics(tmp_path / "a"), metrics(tmp_path / "b")
    la = {r["step"]: r["train_loss"] for r in ra}
    later = [r for r in rb if r["step"] >= 20]        # windows after the first log since resuming
    assert later and all(la[r["step"]] == r["train_loss"] for r in later)


def test_ctrl_c_saves_last_and_resume_is_exact(tmp_path, monkeypatch):
    c = cfg(dropout=0.2, steps=30)
    Trainer(c, tmp_path / "a", echo=quiet).run()
    before = signal.getsignal(signal.SIGINT)     # SIG_IGN when the runner was started in the background

    def hook(self):
        if self.step == 7:
            os.kill(os.getpid(), signal.SIGINT)            # what Ctrl-C sends
    monkeypatch.setattr(Trainer, "after_step", hook)
    lines = []
    summary = Trainer(c, tmp_path / "b", echo=lines.append).run()
    assert summary["interrupted"] and summary["step"] == 7
    assert any("interrupted at step 7" in s and "--resume" in s for s in lines)
    assert signal.getsignal(signal.SIGINT) is before          # the caller's handler is restored
    monkeypatch.undo()
    Trainer.resume(tmp_path / "b", echo=quiet).run()
    assert_same_checkpoint(tmp_path / "a", tmp_path / "b")


def test_keyboard_interrupt_inside_a_step_keeps_the_run_exact(tmp_path, monkeypatch):
    """A KeyboardInterrupt raised during the forward pass (after the dropout masks were drawn)
    rolls the step back: last.npz holds the previous step and resuming stays exact."""
    c = cfg(dropout=0.2, steps=25)
    Trainer(c, tmp_path / "a", echo=quiet).run()
    t = Trainer(c, tmp_path / "b", echo=quiet)
    orig = t.model.forward_backward

    def fb(*a, **kw):
        out = orig(*a, **kw)
        if t.step == 11:
            raise KeyboardInterrupt
        return out
    monkeypatch.setattr(t.model, "forward_backward", fb)
    assert t.run()["interrupted"]
    assert read(tmp_path / "b" / "last.npz")[0]["train"]["step"] == 11
    Trainer.resume(tmp_path / "b", echo=quiet).run()
    assert_same_checkpoint(tmp_path / "a", tmp_path / "b")


def test_injected_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    t = Trainer(cfg(steps=30), tmp_path / "r", echo=quiet)
    orig = t.model.forward_backward

    def fb(*a, **kw):
        loss, state = orig(*a, **kw)
        return (float("nan") if t.step == 14 else loss), state
    monkeypatch.setattr(t.model, "forward_backward", fb)
    snapshot = {}

    def hook(self):
        if self.step == 10:
            snapshot["last"] = (tmp_path / "r" / "last.npz").read_bytes()
    monkeypatch.setattr(Trainer, "after_step", hook)
    with pytest.raises(TrainingError, match=r"training loss became nan at step 15 .*last good checkpoint"):
        t.run()
    assert (tmp_path / "r" / "last.npz").read_bytes() == snapshot["last"]
    assert read(tmp_path / "r" / "last.npz")[0]["train"]["step"] == 10


def test_huge_learning_rate_diverges_with_a_clear_error(tmp_path):
    with pytest.raises(TrainingError, match=r"became (nan|inf).*lower --lr"):
        Trainer(cfg(optimizer="sgd", lr=1e30, clip=0, steps=50), tmp_path / "r", echo=quiet).run()
    last = tmp_path / "r" / "last.npz"
    if last.exists():                                  # whatever is there is finite
        _, arrays = read(last)
        assert all(np.isfinite(v).all() for v in arrays.values())


def test_metrics_fields_and_checkpoints(tmp_path):
    lines = []
    Trainer(cfg(steps=20), tmp_path / "r", echo=lines.append).run()
    recs = metrics(tmp_path / "r")
    assert [r["step"] for r in recs] == [5, 10, 15, 20]
    for r in recs:
        assert {"step", "epoch", "train_loss", "lr", "grad_norm", "chars_per_s", "elapsed_s"} <= set(r)
    assert {"val_loss", "val_bpc"} <= set(recs[1]) and "val_loss" not in recs[0]
    assert recs[1]["val_bpc"] == pytest.approx(recs[1]["val_loss"] / np.log(2))
    assert recs[0]["elapsed_s"] <= recs[-1]["elapsed_s"]
    assert any(s.startswith("step 5 | loss ") and " chars/s" in s for s in lines)
    assert sum(s.startswith("sample at step") for s in lines) == 2
    assert {"last.npz", "best.npz", "metrics.jsonl", "config.json"} <= set(os.listdir(tmp_path / "r"))
    conf = json.load(open(tmp_path / "r" / "config.json"))
    assert conf["text"]["path"] == os.path.abspath(TINY) and len(conf["text"]["sha256"]) == 64
    assert conf["config"]["hidden"] == 16
    best = read(tmp_path / "r" / "best.npz")[0]
    assert best["val_loss"] == min(r["val_loss"] for r in recs if "val_loss" in r)
    assert not [n for n in os.listdir(tmp_path / "r") if n.startswith(".tmp")]


def test_epochs_max_time_and_step_schedule(tmp_path):
    s = Trainer(cfg(epochs=2, schedule="step", lr_decay=0.5, lr_decay_after=1, log_every=1),
                tmp_path / "e", echo=quiet)
    nb = s.streams.num_batches
    assert s.run()["step"] == 2 * nb
    lrs = {r["step"]: r["lr"] for r in metrics(tmp_path / "e")}
    assert lrs[nb] == 2e-3 and lrs[nb + 1] == 1e-3
    r = Trainer(cfg(max_time=1e-6), tmp_path / "t", echo=quiet).run()
    assert r["step"] == 1 and r["val_loss"] is not None          # stopped by time, evaluated once


def test_existing_run_directory_is_never_overwritten(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(TrainingError, match="already exists.*--resume.*--force"):
        Trainer(cfg(steps=2), run, echo=quiet)
    assert os.listdir(run) == ["notes.txt"]
    Trainer(cfg(steps=2), run, force=True, echo=quiet).run()
    assert (run / "notes.txt").read_text() == "mine"
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(TrainingError, match="not a directory"):
        Trainer(cfg(steps=2), f, echo=quiet)


def test_resume_refuses_changed_or_vanished_text(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(open(TINY).read())
    Trainer(cfg(text=str(text), steps=3), tmp_path / "r", echo=quiet).run()
    text.write_text(open(TINY).read().replace("lamp", "lump"))
    with pytest.raises(TrainingError, match="has changed since the run started"):
        Trainer.resume(tmp_path / "r", echo=quiet, steps=6)
    text.unlink()
    with pytest.raises(TrainingError, match="is gone"):
        Trainer.resume(tmp_path / "r", echo=quiet, steps=6)
    with pytest.raises(TrainingError, match="no last.npz"):
        Trainer.resume(tmp_path, echo=quiet)
    with pytest.raises(TrainingError, match="cannot change"):
        Trainer.resume(tmp_path / "r", echo=quiet, hidden=8)


def test_resume_at_target_does_nothing(tmp_path):
    Trainer(cfg(steps=3), tmp_path / "r", echo=quiet).run()
    lines = []
    assert Trainer.resume(tmp_path / "r", echo=lines.append).run()["step"] == 3
    assert "nothing to do" in lines[0]


def test_small_corpus_shrinks_the_batch_with_a_warning(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("abcdefghij" * 30)
    lines = []
    t = Trainer(cfg(text=str(text), batch=50, seq_len=50, steps=2), tmp_path / "r", echo=lines.append)
    assert (t.streams.B, t.streams.T) == (5, 50)
    assert any(s.startswith("warning:") and "--batch 5" in s for s in lines)
    t.run()
    assert json.load(open(tmp_path / "r" / "config.json"))["config"]["batch"] == 5


def test_limits_given_on_resume_replace_the_saved_ones(tmp_path):
    Trainer(cfg(epochs=1), tmp_path / "r", echo=quiet).run()
    with Trainer.resume(tmp_path / "r", echo=quiet, steps=30) as t:     # holds the directory's lock
        assert t.target_steps() == 30 and t.config["epochs"] is None
    t = Trainer.resume(tmp_path / "r", echo=quiet, eval_every=3)
    assert t.target_steps() == t.streams.num_batches


def test_the_last_line_names_the_best_model_and_its_step(tmp_path):
    """The run's last line names best.npz, its validation loss and the step it came from; the
    step survives a resume (it is in the checkpoint's training state)."""
    lines = []
    cfg = {"steps": 6, "eval_every": 2, "hidden": 8, "layers": 1, "batch": 4, "seq_len": 8, "device": "ref",
           "lr": 1e-2}
    summary = Trainer(cfg, tmp_path / "r", echo=lines.append).run()
    best, step = summary["best_val_loss"], summary["best_step"]
    assert step in (2, 4, 6) and best is not None
    assert lines[-1].endswith(f"; best val loss {best:.4f} at step {step} in {tmp_path / 'r' / 'best.npz'}")
    lines.clear()
    again = Trainer.resume(tmp_path / "r", echo=lines.append, steps=8)
    assert again.best_step == step
    s2 = again.run()
    assert f"at step {s2['best_step']} in" in lines[-1] and s2["best_step"] in (step, 8)


def test_runs_of_versions_without_top_dropout_resume_without_it(tmp_path):
    """--dropout-top defaults to --dropout for new runs; a checkpoint of a version without the
    option (no dropout_top anywhere in it) resumes as it trained: no dropout before the head."""
    from test_faults import _reseal
    Trainer(cfg(dropout=0.3, dropout_top=0.0, steps=20), tmp_path / "a", echo=quiet).run()
    t = Trainer(cfg(dropout=0.3, steps=20), tmp_path / "n", echo=quiet)
    assert t.config["dropout_top"] == 0.3 and t.model.dropout_top == 0.3
    t.close()
    Trainer(cfg(dropout=0.3, dropout_top=0.0, steps=10), tmp_path / "b", echo=quiet).run()

    def older(meta):
        del meta["dropout_top"], meta["train"]["config"]["dropout_top"]
    _reseal(tmp_path / "b" / "last.npz", older)
    r = Trainer.resume(tmp_path / "b", echo=quiet, steps=20)
    assert r.config["dropout_top"] == 0.0
    r.run()
    assert_same_checkpoint(tmp_path / "a", tmp_path / "b")
