"""Faults a long run meets: kill -9, a second run in the same directory, failed writes (full disk,
read-only places), a damaged last.npz, SIGTERM, and checkpoints whose metadata names paths."""
import errno
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from seqlearn.checkpoint_file import checksum
from seqlearn.cli.main import cli
from seqlearn.train import Trainer

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "data", "tiny.txt")
SMALL = ["--hidden", "16", "--layers", "1", "--batch", "4", "--seq-len", "10", "--eval-every", "5", "--log-every", "5"]
CLI = [sys.executable, "-m", "seqlearn"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def refused(r, match):
    assert r.exit_code not in (0, None), r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.output.strip().splitlines()
    assert lines and lines[-1].startswith("Error: ") and match in lines[-1], r.output
    assert "Traceback" not in r.output


def files(d):
    return {n: (d / n).read_bytes() for n in sorted(os.listdir(d)) if (d / n).is_file() and n != ".lock"}


@pytest.fixture
def run(tmp_path):
    d = tmp_path / "run"
    r = invoke("train", TINY, *SMALL, "--steps", 10, "--out", d)
    assert r.exit_code == 0, r.output
    return d


# ---- kill -9 ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_kill_9_at_random_moments_ends_bit_identical(tmp_path):
    spec = importlib.util.spec_from_file_location("kill_trials", os.path.join(HERE, "..", "benchmarks", "kill_trials.py"))
    kt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kt)
    s = kt.trials(str(tmp_path), kills=12, steps=300, seed=1, window=0.5, echo=lambda line: None)
    assert s["kills"] >= 6, s                      # the run may finish before every kill lands
    assert s["differences"] == [], s


# ---- one run per directory ----------------------------------------------------------------------
def _holder(d):
    """A process holding d's lock until killed."""
    p = subprocess.Popen([sys.executable, "-c", f"from seqlearn.runlock import RunLock; import sys, time; "
                                    f"lock = RunLock({str(d)!r}); lock.acquire(); print('held', flush=True); time.sleep(600)"],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_run_in_a_running_directory_is_refused_and_a_kill_frees_it(run):
    before = files(run)
    p = _holder(run)
    try:
        refused(invoke("train", "--resume", run, "--steps", 20), f"in use by another seqlearn run (pid {p.pid})")
        refused(invoke("train", TINY, *SMALL, "--steps", 5, "--out", run, "--force"), "in use")
        refused(invoke("train", "--resume", run, "--from-best"), "in use")
    finally:
        p.kill()
        p.wait()
    assert files(run) == before                    # nothing touched while it was held
    r = invoke("train", "--resume", run, "--steps", 15)   # kill -9 left no stuck lock
    assert r.exit_code == 0 and "resuming at step 10" in r.output, r.output


def test_two_trainers_of_one_process_are_told_apart(tmp_path):
    cfg = {"text": TINY, "hidden": 8, "layers": 1, "batch": 4, "seq_len": 10, "steps": 5, "device": "ref"}
    with Trainer(cfg, tmp_path / "r", echo=lambda s: None) as t:
        with pytest.raises(ValueError, match="a Trainer of this process"):
            Trainer(cfg, tmp_path / "r", force=True, echo=lambda s: None)
        t.run()
    Trainer.resume(tmp_path / "r", echo=lambda s: None, steps=8).run()   # run() and close() released it


def test_temporaries_of_a_killed_write_are_removed_and_ignored(run, tmp_path):
    for name in (".run-tmp-abc.npz", ".run-tmp-x.jsonl"):
        (run / name).write_bytes(b"half a file")
    (run / "notes.txt").write_text("mine")        # not the run's: kept
    r = invoke("train", "--resume", run, "--steps", 15)
    assert r.exit_code == 0, r.output
    assert not [n for n in os.listdir(run) if n.startswith(".run-tmp-")] and (run / "notes.txt").exists()
    fresh = tmp_path / "fresh"                     # a directory holding only a lock and temporaries is empty
    fresh.mkdir()
    (fresh / ".lock").write_text("123\n")
    (fresh / ".run-tmp-q.npz").write_bytes(b"x")
    assert invoke("train", TINY, *SMALL, "--steps", 5, "--out", fresh).exit_code == 0


# ---- failed writes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_a_failed_checkpoint_write_stops_with_one_line_and_keeps_the_previous_file(run, monkeypatch, code):
    before = files(run)
    import seqlearn.checkpoint_file as cf
    real = cf.np.savez

    def failing(f, **arrays):
        f.write(b"the first bytes of a checkpoint")
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(cf.np, "savez", failing)
    r = invoke("train", "--resume", run, "--steps", 20)
    monkeypatch.setattr(cf.np, "savez", real)
    refused(r, f"could not write {run / 'best.npz'} ({os.strerror(code)})")
    assert "previous best.npz is intact" in r.output
    after = files(run)
    for name in ("last.npz", "best.npz", "config.json"):
        assert after[name] == before[name]
    assert not [n for n in after if n.startswith(".run-tmp-")]
    r = invoke("train", "--resume", run, "--steps", 20)       # space again: it carries on from step 10
    assert r.exit_code == 0 and "resuming at step 10" in r.output, r.output


def _tmpfs(path, size):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("mount -t tmpfs is not permitted here")


def test_a_real_full_disk_and_a_read_only_one(tmp_path):
    disk = tmp_path / "disk"
    _tmpfs(disk, "600k")
    try:
        d = disk / "run"
        r = invoke("train", TINY, *SMALL, "--steps", 5, "--out", d)
        assert r.exit_code == 0, r.output
        before = files(d)
        (disk / "filler").write_bytes(b"\0" * (os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - 4096))
        r = invoke("train", "--resume", d, "--steps", 10)
        refused(r, "No space left on device")
        assert {k: v for k, v in files(d).items() if k != "metrics.jsonl"} == \
               {k: v for k, v in before.items() if k != "metrics.jsonl"}
        (disk / "filler").unlink()
        before = files(d)       # metrics.jsonl may hold lines past step 5 now: resume drops them
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        refused(invoke("train", "--resume", d, "--steps", 10), "Read-only file system")
        refused(invoke("train", TINY, *SMALL, "--out", disk / "new"), "Read-only file system")
        assert files(d) == before
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ---- damaged last.npz -------------------------------------------------------------------------------
def test_a_damaged_last_checkpoint_is_named_and_best_can_take_over(tmp_path):
    args = [TINY, *SMALL, "--eval-every", 10, "--steps", 20]
    ref, d = tmp_path / "ref", tmp_path / "d"
    assert invoke("train", *args, "--steps", 30, "--out", ref).exit_code == 0
    assert invoke("train", *args, "--out", d).exit_code == 0
    best_step = json.loads(str(np.load(d / "best.npz")["meta"]))["train"]["step"]
    assert best_step == 20                          # the loss still falls: best is the last evaluation
    raw = bytearray((d / "last.npz").read_bytes())
    raw[len(raw) // 2] ^= 0x10
    (d / "last.npz").write_bytes(bytes(raw))
    r = invoke("train", "--resume", d, "--steps", 30)
    refused(r, str(d / "last.npz"))
    assert f"seqlearn train --resume {d} --from-best" in r.output
    r = invoke("train", "--resume", d, "--from-best", "--steps", 30)
    assert r.exit_code == 0 and "last.npz kept as last.damaged.npz" in r.output, r.output
    assert (d / "last.damaged.npz").read_bytes() == bytes(raw)
    a, b = np.load(ref / "last.npz"), np.load(d / "last.npz")     # continued exactly from step 20
    assert checksum({k: a[k] for k in a.files if k != "meta"}) == checksum({k: b[k] for k in b.files if k != "meta"})
    refused(invoke("train", TINY, "--from-best"), "--from-best goes with --resume")


# ---- SIGTERM ----------------------------------------------------------------------------------------
def test_sigterm_saves_and_the_run_resumes(tmp_path):
    d = tmp_path / "r"
    p = subprocess.Popen(CLI + ["train", TINY, *SMALL, "--steps", "1000000", "--out", str(d)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t = time.monotonic()
    while not (d / "last.npz").exists() and time.monotonic() - t < 60:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "interrupted at step" in out and "Traceback" not in err
    step = json.loads(str(np.load(d / "last.npz")["meta"]))["train"]["step"]
    r = invoke("train", "--resume", d, "--steps", step + 3)
    assert r.exit_code == 0 and f"resuming at step {step}" in r.output, r.output


# ---- metadata naming paths ---------------------------------------------------------------------------
def _reseal(path, change=None, arrays_change=None):
    """path rewritten with its metadata and arrays changed, and a checksum that matches them."""
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        arrays = {k: z[k] for k in z.files if k != "meta"}
    if change:
        change(meta)
    if arrays_change:
        arrays_change(arrays)
    meta["checksum"] = {"sha256": checksum(arrays)}
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


@pytest.mark.parametrize("where,match", [
    ("/dev/zero", "is a device"), ("/etc/hostname", "has changed"), ("/nonexistent/../../x", "is gone"),
    (17, "incomplete training state"),
])
def test_a_checkpoint_naming_another_text_is_refused(run, where, match):
    def point(meta):
        meta["train"]["text"]["path"] = where
    _reseal(run / "last.npz", point)
    if isinstance(where, str) and not os.path.exists(where) and match == "has changed":
        pytest.skip(f"{where} is absent here")
    refused(invoke("train", "--resume", run, "--steps", 20), match)


@pytest.mark.parametrize("change,match", [
    (lambda m: m["train"]["config"].update(hidden=10 ** 7), "does not describe the weights"),
    (lambda m: m["train"]["config"].update(layers=50), "does not describe the weights"),
    (lambda m: m["train"].update(step="many"), "incomplete training state"),
    (lambda m: m["train"].update(schedule_steps=-4), "incomplete training state"),
    (lambda m: m["train"].update(rng=[1, 2]), "incomplete training state"),
    (lambda m: m["train"].update(best_val_loss="low"), "incomplete training state"),
])
def test_a_hostile_training_state_is_refused_before_anything_is_built(run, change, match):
    _reseal(run / "last.npz", change)
    refused(invoke("train", "--resume", run, "--steps", 20), match)


def test_a_carried_state_of_the_wrong_shape_is_refused(run):
    def wrong(arrays):
        arrays["train.state_h"] = np.zeros((1, 99, 16), np.float32)
        arrays["train.state_c"] = np.zeros((1, 99, 16), np.float32)
    _reseal(run / "last.npz", arrays_change=wrong)
    refused(invoke("train", "--resume", run, "--steps", 20), "carried state that is not (1, 4, 16)")
