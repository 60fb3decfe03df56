"""kill -9 a training run at random moments, resume it each time, and compare the end with a run
that was never killed.

    python benchmarks/kill_trials.py --kills 60            # the figures in docs/reliability.md

Each trial starts `seqlearn train` (or `--resume`) as a child process and sends SIGKILL after a
random delay: most land while it trains (a step, a validation, a checkpoint write: every few
steps evaluates and writes last.npz), some during its start. After every kill: last.npz, when
there is one, loads; every line of metrics.jsonl is whole and their steps increase. At the end,
last.npz and best.npz equal the unkilled run's bit for bit (arrays, checksum and metadata but the
elapsed time), metrics.jsonl holds the same steps with the same losses, and no temporary file is
left. Prints one line per kill and a summary; exits 1 on any difference.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "data", "tiny.txt")
CONFIG = ["--hidden", "96", "--layers", "2", "--batch", "8", "--seq-len", "32", "--eval-every", "5",
          "--log-every", "1", "--val-frac", "0.2", "--threads", "1"]
CLI = [sys.executable, "-m", "seqlearn", "train"]
TMP = ".run-tmp-"


def _cmd(out, steps, resume):
    # --threads is not part of a run's configuration (the cpu backend's sums split by thread, so
    # the count is named on every start, as a user on one machine gets the same default each time)
    return CLI + (["--resume", out, "--threads", "1"] if resume
                  else [TINY, *CONFIG, "--steps", str(steps), "--out", out, "--force"])


class Child:
    """A training process whose stdout is drained; .training is set once it prints its header."""

    def __init__(self, cmd):
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.training = threading.Event()
        self.err = []
        threading.Thread(target=self._drain, args=(self.p.stdout, True), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.p.stderr, False), daemon=True).start()

    def _drain(self, stream, out):
        for line in stream:
            if out and line.startswith(("training ", "resuming at step")):
                self.training.set()
            elif not out:
                self.err.append(line)


def _metrics(out):
    path = os.path.join(out, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        raw = f.read()
    assert raw == "" or raw.endswith("\n"), "metrics.jsonl ends in a torn line"
    recs = [json.loads(line) for line in raw.splitlines()]
    steps = [r["step"] for r in recs]
    assert steps == sorted(set(steps)), f"metrics.jsonl steps repeat or go back: {steps}"
    return recs


def _checkpoint(path):
    from seqlearn.checkpoint_file import read
    meta, arrays = read(path)                    # refuses a damaged or partial file
    meta["train"].pop("elapsed_s", None)
    return meta, arrays


def _same_checkpoint(a, b):
    (ma, xa), (mb, xb) = _checkpoint(a), _checkpoint(b)
    return ma == mb and sorted(xa) == sorted(xb) and all(
        xa[k].dtype == xb[k].dtype and xa[k].shape == xb[k].shape and xa[k].tobytes() == xb[k].tobytes() for k in xa)


KEYS = ("step", "epoch", "train_loss", "lr", "grad_norm", "val_loss", "val_bpc")


def compare(ref, out):
    """Differences between the finished runs ref and out (an empty list: none)."""
    bad = [f"{name} differs" for name in ("last.npz", "best.npz")
           if not _same_checkpoint(os.path.join(ref, name), os.path.join(out, name))]
    strip = lambda recs: [{k: r.get(k) for k in KEYS} for r in recs]   # noqa: E731
    if strip(_metrics(ref)) != strip(_metrics(out)):
        bad.append("metrics.jsonl differs")
    left = [n for n in os.listdir(out) if n.startswith(TMP)]
    if left:
        bad.append(f"temporary files left: {left}")
    return bad


def trials(workdir, kills, steps, seed=0, window=0.8, startup_share=0.2, echo=print):
    """Run the reference and the killed run under workdir; returns a summary dict."""
    rng = random.Random(seed)
    ref, out = os.path.join(workdir, "reference"), os.path.join(workdir, "killed")
    t = time.perf_counter()
    subprocess.run(_cmd(ref, steps, False), check=True, stdout=subprocess.DEVNULL)
    ref_s = time.perf_counter() - t
    stats = {"kills": 0, "in_startup": 0, "in_a_write": 0, "restarts": 0, "resumes": 0, "reference_s": ref_s}
    last_step = 0
    while True:
        resume = os.path.exists(os.path.join(out, "last.npz"))
        stats["resumes" if resume else "restarts"] += 1
        child = Child(_cmd(out, steps, resume))
        if stats["kills"] >= kills:
            rc = child.p.wait()
            assert rc == 0, f"the final resume failed (exit {rc}): {''.join(child.err)[-500:]}"
            break
        early = rng.random() < startup_share
        deadline = time.monotonic() + 120
        while not early and not child.training.wait(0.01) and child.p.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the child never started training: " + "".join(child.err)[-500:])
        try:
            child.p.wait(rng.uniform(0, window if not early else 0.6))
        except subprocess.TimeoutExpired:
            writing = child.training.is_set() and os.path.isdir(out) and any(n.startswith(TMP) for n in os.listdir(out))
            child.p.send_signal(signal.SIGKILL)
            child.p.wait()
            stats["kills"] += 1
            stats["in_startup"] += not child.training.is_set()
            stats["in_a_write"] += writing
            recs = _metrics(out)
            step = _checkpoint(os.path.join(out, "last.npz"))[0]["train"]["step"] \
                if os.path.exists(os.path.join(out, "last.npz")) else 0
            assert step >= last_step, f"last.npz went back from step {last_step} to {step}"
            last_step = step
            echo(f"kill {stats['kills']:3d}: last.npz at step {step:4d}, {len(recs)} metric lines"
                 + (", during a checkpoint write" if writing else "")
                 + ("" if child.training.is_set() else ", before training began"))
            continue
        if child.p.returncode != 0:
            raise RuntimeError(f"exit {child.p.returncode}: {''.join(child.err)[-500:]}")
        if _checkpoint(os.path.join(out, "last.npz"))[0]["train"]["step"] >= steps:
            break                                 # finished before the kills ran out
    stats["differences"] = compare(ref, out)
    return stats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=60)
    ap.add_argument("--steps", type=int, default=None, help="[default: 70 per kill]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--window", type=float, default=0.8, help="Largest delay after training begins (s).")
    ap.add_argument("--dir", default=None, help="Keep the two runs here [default: a temporary folder].")
    a = ap.parse_args(argv)
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        work = a.dir or tmp
        os.makedirs(work, exist_ok=True)
        t = time.perf_counter()
        s = trials(work, a.kills, a.steps or 70 * a.kills, a.seed, a.window)
        print(f"{s['kills']} kills ({s['in_startup']} before training began, {s['in_a_write']} during a "
              f"checkpoint write), {s['resumes']} resumes, {s['restarts']} fresh starts; "
              f"{time.perf_counter() - t:.0f} s in all (the unkilled run: {s['reference_s']:.1f} s)")
        print("differences from the unkilled run: " + ("; ".join(s["differences"]) or "none (bit-identical)"))
        return 1 if s["differences"] else 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
