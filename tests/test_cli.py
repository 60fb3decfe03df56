"""The train / sample / eval / plot commands through click's CliRunner, bad input included:
every failure is a non-zero exit with one error line and no traceback."""
import json
import os
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from seqlearn.cli.main import cli

TINY = os.path.join(os.path.dirname(__file__), "..", "data", "tiny.txt")
SMALL = ["--hidden", "16", "--layers", "1", "--batch", "4", "--seq-len", "10", "--eval-every", "10",
         "--log-every", "5"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args):
    r = invoke(*args)
    assert r.exit_code == 0, r.output + repr(r.exception)
    return r.output


def fails(*args, match):
    """match: a substring of the error line (alternatives separated by " | ")."""
    r = invoke(*args)
    assert r.exit_code != 0
    assert isinstance(r.exception, SystemExit), f"uncaught {r.exception!r}"   # no traceback
    assert "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, r.output
    assert any(m.lower() in errors[0].lower() for m in match.split(" | ")), errors[0]
    return r.output


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "run"
    ok("train", TINY, *SMALL, "--steps", 20, "--out", d)
    return d


# ---- working paths ------------------------------------------------------------------------------
def test_help_and_version():
    out = ok("--help")
    for cmd in ("train", "sample", "eval", "plot"):
        assert cmd in out
    assert "Examples" in ok("train", "--help") and "--resume" in ok("train", "--help")
    assert "seqlearn, version" in ok("--version")


def test_train_writes_a_run(run):
    assert {"last.npz", "best.npz", "metrics.jsonl", "config.json"} <= set(os.listdir(run))
    recs = [json.loads(x) for x in open(run / "metrics.jsonl")]
    assert recs[-1]["step"] == 20 and "val_bpc" in recs[-1]


def test_train_log_lines_resume_and_overrides(tmp_path):
    out = ok("train", TINY, *SMALL, "--steps", 10, "--out", tmp_path / "r")
    assert "step 5 | loss " in out and "chars/s" in out and "sample at step 10" in out
    out = ok("train", "--resume", tmp_path / "r", "--steps", 15)
    assert "resuming at step 10" in out and "done: step 15" in out
    fails("train", "--resume", tmp_path / "r", "--hidden", 32, match="--resume takes the configuration")
    fails("train", "--resume", tmp_path / "r", TINY, match="drop TEXT")
    fails("train", "--resume", tmp_path / "nope", match="no such run directory")


def test_train_refuses_an_existing_run_directory(run):
    before = (run / "last.npz").read_bytes()
    fails("train", TINY, *SMALL, "--steps", 2, "--out", run, match="already exists")
    assert (run / "last.npz").read_bytes() == before


def test_sample_is_streamed_and_seeded(run):
    a = ok("sample", run, "--length", 50, "--seed", 3, "--prime", "The ")
    assert a.startswith("The ") and len(a) == 4 + 50 + 1
    assert a == ok("sample", run, "--length", 50, "--seed", 3, "--prime", "The ")
    assert a != ok("sample", run, "--length", 50, "--seed", 4, "--prime", "The ")
    assert ok("sample", run, "--argmax", "-n", 20) == ok("sample", run, "--argmax", "-n", 20, "--seed", 9)
    assert len(ok("sample", run / "last.npz", "-n", 20)) == 21
    many = ok("sample", run, "--num-samples", 3, "--length", 30, "--top-k", 5, "--top-p", 0.9)
    assert many.count("-" * 40) == 2
    assert len(ok("sample", run, "--length", 0)) <= 2


def test_threads_option(run, monkeypatch):
    """--threads sets the cpu backend's worker threads (now, and for a later import through
    SEQLEARN_NUM_THREADS); the text does not depend on it; --resume accepts it."""
    from seqlearn.cpu import _threads
    monkeypatch.setattr(_threads, "NUM_THREADS", _threads.NUM_THREADS)
    monkeypatch.setenv("SEQLEARN_NUM_THREADS", "2")
    monkeypatch.setattr(_threads, "_pool", None)
    two = ok("sample", run, "--length", 60, "--seed", 1, "--threads", 2)
    assert _threads.NUM_THREADS == 2
    one = ok("sample", run, "--length", 60, "--seed", 1, "--threads", 1)
    assert _threads.NUM_THREADS == 1 and os.environ["SEQLEARN_NUM_THREADS"] == "1"
    assert one == two
    for cmd in ("train", "eval", "profile"):
        assert "--threads" in ok(cmd, "--help")
    fails("sample", run, "--threads", 0, match="--threads")


def test_train_header_names_the_threads(tmp_path, monkeypatch):
    from seqlearn.cpu import _threads
    monkeypatch.setattr(_threads, "NUM_THREADS", _threads.NUM_THREADS)
    monkeypatch.setenv("SEQLEARN_NUM_THREADS", "1")
    out = ok("train", TINY, *SMALL, "--steps", 2, "--out", tmp_path / "r", "--threads", 1)
    assert ", 1 thread ->" in out.splitlines()[0]
    out = ok("train", "--resume", tmp_path / "r", "--steps", 3, "--threads", 2)
    assert ", 2 threads ->" in out.splitlines()[0]


def test_sample_prime_file(run, tmp_path):
    p = tmp_path / "prime.txt"
    p.write_text("the sea")
    assert ok("sample", run, "--prime-file", p, "-n", 5).startswith("the sea")


def test_eval_prints_nats_bpc_perplexity(run, tmp_path):
    out = ok("eval", run, TINY)
    nats = float(out.split()[1])
    assert f"bpc {nats / np.log(2):.4f}" in out and "perplexity" in out
    t = tmp_path / "odd.txt"
    t.write_text("the sea — and the ship ∑")
    fails("eval", run, t, match="2 characters ('—' '∑') not in the model's vocabulary")
    assert "unknown skipped" in ok("eval", run, t, "--unk", "skip")


def test_plot_writes_a_png(run, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "c.png"
    ok("plot", run, "--out", out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    fails("plot", run, match="plotting needs matplotlib")


def test_ctrl_c_through_the_command(tmp_path, monkeypatch):
    import signal

    from seqlearn.train import Trainer

    def hook(self):
        if self.step == 4:
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(Trainer, "after_step", hook)
    r = invoke("train", TINY, *SMALL, "--steps", 20, "--out", tmp_path / "r")
    assert r.exit_code == 130 and "Traceback" not in r.output
    assert "interrupted at step 4" in r.output
    monkeypatch.undo()
    assert "resuming at step 4" in ok("train", "--resume", tmp_path / "r")


# ---- bad input ----------------------------------------------------------------------------------
def test_bad_text_files(tmp_path):
    out = tmp_path / "run"
    fails("train", tmp_path / "missing.txt", "--out", out, match="no such file")
    (tmp_path / "empty.txt").write_bytes(b"")
    fails("train", tmp_path / "empty.txt", "--out", out, match="is empty")
    (tmp_path / "bin.dat").write_bytes(bytes(range(256)) * 4)
    fails("train", tmp_path / "bin.dat", "--out", out, match="binary")
    (tmp_path / "latin.txt").write_bytes("café olé ".encode("latin-1") * 100)
    fails("train", tmp_path / "latin.txt", "--out", out, match="not valid utf-8")
    fails("train", tmp_path, "--out", out, match="is a directory")
    fails("train", tmp_path / "latin.txt", "--encoding", "klingon", "--out", out, match="unknown encoding")
    assert not out.exists()                            # nothing was created for a failed start
    ok("train", tmp_path / "latin.txt", "--encoding", "latin-1", *SMALL, "--steps", 2, "--out", out)


def test_corpus_too_small(tmp_path):
    (tmp_path / "two.txt").write_text("ab")
    fails("train", tmp_path / "two.txt", "--out", tmp_path / "r", match="validation split would hold 0")
    (tmp_path / "one.txt").write_text("a")
    fails("train", tmp_path / "one.txt", "--val-frac", 0, "--out", tmp_path / "r2", match="at least 2")
    (tmp_path / "short.txt").write_text("abcdefghij" * 12)
    out = ok("train", tmp_path / "short.txt", "--steps", 1, "--hidden", 8, "--out", tmp_path / "r3")
    assert "warning: the training text (108 characters) is too small for --batch 50 --seq-len 50" in out


@pytest.mark.parametrize("args,match", [
    (["--hidden", "-1"], "--hidden"),
    (["--batch", "0"], "--batch"),
    (["--seq-len", "0"], "--seq-len"),
    (["--layers", "0"], "--layers"),
    (["--cell", "transformer"], "--cell"),
    (["--dropout", "1.5"], "--dropout"),
    (["--lr", "-0.1"], "--lr"),
    (["--val-frac", "1"], "--val-frac"),
    (["--max-time", "soon"], "not a positive duration"),
    (["--optimizer", "sgd", "--nesterov"], "Nesterov momentum needs momentum"),
    (["--peephole", "--cell", "gru"], "peephole"),
    (["--dropout-top", "1"], "--dropout-top"),
    (["--device", "tpu"], "--device"),
])
def test_impossible_options(tmp_path, args, match):
    fails("train", TINY, *args, "--out", tmp_path / "r", match=match)
    assert not (tmp_path / "r").exists()


def _bad_checkpoints(tmp_path, run):
    (tmp_path / "corrupt.npz").write_bytes(b"this is not a zip file at all" * 10)
    data = (run / "last.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    np.savez(tmp_path / "pickled.npz", meta=np.array([{"a": 1}], dtype=object))
    return [("corrupt.npz", "not a .npz checkpoint"), ("truncated.npz", "not a readable"),
            ("foreign.npz", "no seqlearn metadata"), ("pickled.npz", "pickled"),
            ("missing.npz", "no such file")]


def test_bad_checkpoints_for_sample_and_eval(tmp_path, run):
    for name, match in _bad_checkpoints(tmp_path, run):
        fails("sample", tmp_path / name, match=match)
        fails("eval", tmp_path / name, TINY, match=match)
    (tmp_path / "emptyrun").mkdir()
    fails("sample", tmp_path / "emptyrun", match="holds no checkpoint")


def test_bad_checkpoint_on_resume(tmp_path, run):
    bad = tmp_path / "badrun"
    bad.mkdir()
    (bad / "last.npz").write_bytes(b"garbage")
    fails("train", "--resume", bad, match="not a .npz checkpoint")
    best_only = tmp_path / "bestrun"             # weights and metadata without the trainer's arrays
    best_only.mkdir()
    with np.load(run / "best.npz") as z:
        meta = json.loads(str(z["meta"]))
        del meta["checksum"]
        np.savez(best_only / "last.npz", meta=np.array(json.dumps(meta)),
                 **{k: z[k] for k in z.files if k != "meta" and not k.startswith("train.")})
    fails("train", "--resume", best_only, match="incomplete training state")
    from seqlearn import CharLM
    plain = tmp_path / "plainrun"
    plain.mkdir()
    CharLM("abc", hidden_size=4, num_layers=1, device="ref").save(plain / "last.npz")
    fails("train", "--resume", plain, match="no training state")


def test_bad_sample_options(run, tmp_path):
    fails("sample", run, "--prime", "Zebra€", match="the prime holds 2 characters ('Z' '€')")
    fails("sample", run, "--temperature", 0, match="--temperature")
    fails("sample", run, "--top-p", 0, match="--top-p")
    fails("sample", run, "--top-k", -2, match="--top-k")
    fails("sample", run, "--prime", "a", "--prime-file", TINY, match="not both")
    fails("sample", run, "--prime-file", tmp_path / "none.txt", match="no such file")


def test_bad_eval_and_plot_input(run, tmp_path):
    fails("eval", run, tmp_path / "none.txt", match="no such file")
    fails("eval", run, tmp_path, match="directory")
    fails("plot", tmp_path / "none", match="not a run directory")
    fails("plot", tmp_path, match="no metrics.jsonl")
    (tmp_path / "metrics.jsonl").write_text("{not json\n")
    fails("plot", tmp_path, match="not JSON")


def test_changed_text_on_resume(tmp_path):
    t = tmp_path / "t.txt"
    t.write_text(open(TINY).read())
    ok("train", t, *SMALL, "--steps", 2, "--out", tmp_path / "r")
    t.write_text("something else entirely")
    fails("train", "--resume", tmp_path / "r", "--steps", 4, match="has changed since the run started")
    t.unlink()
    fails("train", "--resume", tmp_path / "r", "--steps", 4, match="is gone")
