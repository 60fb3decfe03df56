"""Data-parallel training over MPI ranks (seqlearn/dist.py), run with `mpiexec -n 2` on loopback.

The tests that launch ranks skip where mpi4py or mpiexec is absent (pip install '.[mpi]')."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from seqlearn import dist
from seqlearn.checkpoint_file import read
from seqlearn.data import builtin_text

BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN + os.pathsep + os.environ.get("PATH", ""))
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
                               reason="needs mpi4py and mpiexec: pip install '.[mpi]'")
ARGS = ["--steps", "12", "--eval-every", "4", "--log-every", "4", "--batch", "8", "--seq-len", "20",
        "--hidden", "16", "--layers", "2", "--dropout", "0.3", "--threads", "1"]
F64 = ["--device", "ref", "--dtype", "float64"]
CLI = [sys.executable, "-m", "seqlearn", "train"]

# a rank's launcher for the failure tests: rank 1 fails at its 6th step as MODE says, then the CLI
WRAPPER = """
import os, runpy, sys
mode = sys.argv.pop(1)
if mode == "write" and os.environ.get("PMI_RANK") == "0":    # rank 0's disk fills at step 8
    from seqlearn import rundir
    write, saves = rundir.RunDir._write, [0]
    def full(self, name, fn):
        saves[0] += name == "last.npz"
        if saves[0] == 2:
            raise rundir.TrainingError(f"could not write {name} (No space left on device)")
        return write(self, name, fn)
    rundir.RunDir._write = full
if mode != "write" and os.environ.get("PMI_RANK") == "1":
    from seqlearn import model, train
    if mode == "step":                      # inside a step: the ranks learn of it together
        fb, calls = model.CharLM.forward_backward, [0]
        def failing(self, *a, **k):
            calls[0] += 1
            if calls[0] == 6:
                raise ValueError("injected failure")
            return fb(self, *a, **k)
        model.CharLM.forward_backward = failing
    else:                                   # between steps: outside any exchange
        def after(self):
            if self.step == 6:
                if mode == "kill":
                    os.kill(os.getpid(), 9)
                raise ValueError("injected failure")
        train.Trainer.after_step = after
sys.argv = ["seqlearn", "train", *sys.argv[1:]]
runpy.run_module("seqlearn", run_name="__main__")
"""


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_", "MPI_LOCAL"))}
    env.pop("SEQLEARN_NUM_THREADS", None)
    return env


def run(cmd, timeout=180):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())


def mpi(n, *cmd, opts=()):
    return run([MPIEXEC, *opts, "-n", str(n), *cmd])


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("mpi") / "text.txt"
    path.write_text(builtin_text()[:40000], encoding="utf-8")
    return str(path)


def ok(p):
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p


def arrays(run_dir, name="last.npz"):
    meta, a = read(os.path.join(run_dir, name))
    return meta, a


def losses(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    return [(r["step"], r["train_loss"], r.get("val_loss")) for r in recs]


def assert_close_runs(a, b, rtol, resumed=False):
    (ma, xa), (mb, xb) = arrays(a), arrays(b)
    assert sorted(xa) == sorted(xb) and ma["step"] == mb["step"]
    for k in xa:
        if xa[k].dtype.kind == "f":
            scale = max(np.abs(xa[k]).max(), 1e-30)
            assert np.abs(xa[k] - xb[k]).max() <= rtol * scale, k
    la, lb = losses(a), losses(b)
    if resumed:          # a resumed run logs its stop too, and its first window after it is shorter
        vb = {step: v for step, _, v in lb}
        assert all(abs(v - vb[step]) <= rtol * v for step, _, v in la if step % 4 == 0)
        return
    assert [s for s, *_ in la] == [s for s, *_ in lb]
    for (_, ta, va), (_, tb, vb) in zip(la, lb):
        assert abs(ta - tb) <= rtol * abs(ta)
        assert (va is None) == (vb is None) and (va is None or abs(va - vb) <= rtol * abs(va))


def assert_identical_runs(a, b):
    (ma, xa), (mb, xb) = arrays(a), arrays(b)
    assert sorted(xa) == sorted(xb)
    assert all(np.array_equal(xa[k], xb[k]) for k in xa)
    assert ma["checksum"] == mb["checksum"] and ma["step"] == mb["step"]
    vb = {step: v for step, _, v in losses(b)}
    assert all(v == vb[step] for step, _, v in losses(a) if step in vb and step % 4 == 0)


# ---- one process and two ranks compute the same run -------------------------------------------
@needs_mpi
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_two_ranks_with_half_the_streams_each_give_one_process_run_float64(text, tmp_path, cell):
    """Dropout between the layers, the state carried, validation reduced: 12 Adam steps on two
    ranks of 4 streams equal one process with 8 streams to 1e-12 (losses and every parameter,
    optimizer moment and carried state)."""
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    ok(run([*CLI, text, "--out", one, "--cell", cell, *ARGS, *F64]))
    ok(mpi(2, *CLI, text, "--out", two, "--cell", cell, *ARGS, *F64))
    assert_close_runs(one, two, 1e-12)


@needs_mpi
def test_two_ranks_float32_on_the_cpu_backend(text, tmp_path):
    """float32, the cpu kernels: the sums run in another order, so equal to 1e-5 of each array's
    largest entry after 12 steps (measured: 4e-7)."""
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    ok(run([*CLI, text, "--out", one, *ARGS]))
    ok(mpi(2, *CLI, text, "--out", two, *ARGS))
    assert_close_runs(one, two, 1e-5)


@needs_mpi
def test_one_rank_under_mpiexec_is_a_plain_run(text, tmp_path):
    one, mpi1 = str(tmp_path / "one"), str(tmp_path / "mpi1")
    ok(run([*CLI, text, "--out", one, *ARGS, *F64]))
    ok(mpi(1, *CLI, text, "--out", mpi1, *ARGS, *F64))
    assert_identical_runs(one, mpi1)


@needs_mpi
def test_resume_under_two_ranks_is_exact(text, tmp_path):
    """A two-rank run stopped at step 6 and resumed on two ranks ends bit-identical to one that
    never stopped; resumed in one process, or a one-process run resumed on two ranks, it ends
    within 1e-12 of a one-process run (the stream layout depends only on --batch)."""
    d = {k: str(tmp_path / k) for k in ("whole2", "whole1", "half1", "half2", "half2b")}
    ok(mpi(2, *CLI, text, "--out", d["whole2"], *ARGS, *F64))
    ok(run([*CLI, text, "--out", d["whole1"], *ARGS, *F64]))
    for half in ("half1", "half2", "half2b"):
        launch = run if half == "half1" else lambda cmd: mpi(2, *cmd)
        ok(launch([*CLI, text, "--out", d[half], *ARGS, *F64, "--steps", "6"]))
    ok(mpi(2, *CLI, "--resume", d["half2"], "--steps", "12"))
    assert_identical_runs(d["half2"], d["whole2"])
    ok(mpi(2, *CLI, "--resume", d["half1"], "--steps", "12"))
    assert_close_runs(d["half1"], d["whole1"], 1e-12, resumed=True)
    ok(run([*CLI, "--resume", d["half2b"], "--steps", "12"]))
    assert_close_runs(d["half2b"], d["whole1"], 1e-12, resumed=True)


@needs_mpi
def test_rank_zero_alone_prints_and_writes(text, tmp_path):
    out = str(tmp_path / "run")
    p = ok(mpi(2, *CLI, text, "--out", out, *ARGS, opts=["-prepend-rank"]))
    lines = [x for x in p.stdout.splitlines() if x.strip()]
    assert lines and all(x.startswith("[0]") for x in lines), [x for x in lines if not x.startswith("[0]")][:3]
    assert "2 ranks of 4 streams" in lines[0]
    assert sorted(os.listdir(out)) == [".lock", "best.npz", "config.json", "last.npz", "metrics.jsonl"]
    assert [s for s, *_ in losses(out)] == [4, 8, 12]
    from seqlearn import tokens
    assert tokens.fresh(text, "utf-8") is not None          # made on first use under mpiexec
    assert json.load(open(os.path.join(out, "config.json")))["text"]["tokens"] == tokens.paths(text)[0]


# ---- refusals and failures --------------------------------------------------------------------
def _errors(p):
    return [x for x in (p.stdout + p.stderr).splitlines() if "Error" in x or "error" in x]


@needs_mpi
def test_a_batch_that_does_not_split_is_refused_once(text, tmp_path):
    out = str(tmp_path / "run")
    p = mpi(2, *CLI, text, "--out", out, *ARGS, "--batch", "9")
    assert p.returncode == 1
    assert _errors(p) == ["Error: --batch 9 does not split into 2 equal shares of streams; give a "
                          "multiple of 2 (the number of ranks)"]
    assert not os.path.exists(os.path.join(out, "config.json"))


@needs_mpi
def test_ranks_started_with_different_configurations_are_refused(text, tmp_path):
    out = str(tmp_path / "run")
    a = [*CLI, text, "--out", out, *ARGS]
    p = run([MPIEXEC, "-n", "1", *a, "--hidden", "16", ":", "-n", "1", *a, "--hidden", "24"])
    assert p.returncode == 1
    assert _errors(p) == ["Error: rank 1 was started with another --hidden than rank 0 (24, rank 0: 16); "
                          "every rank must run the same command on the same files"]
    assert not os.path.exists(os.path.join(out, "config.json"))


@needs_mpi
@pytest.mark.parametrize("mode", ["step", "hook", "kill", "write"])
def test_a_failing_rank_ends_every_rank(text, tmp_path, mode):
    """Rank 1 raises inside a step (every rank stops with one line naming it, exit 1), raises
    between steps (its line, then MPI_Abort ends the job) or is killed (mpiexec ends the others);
    rank 0 cannot write last.npz (every rank stops, one line); never a hang, and last.npz of
    step 4 stays whole and resumable."""
    out = str(tmp_path / "run")
    wrapper = tmp_path / "rank.py"
    wrapper.write_text(WRAPPER)
    p = mpi(2, sys.executable, str(wrapper), mode, text, "--out", out, *ARGS)
    assert p.returncode != 0
    if mode == "step":
        assert p.returncode == 1 and _errors(p) == ["Error: rank 1: injected failure"]
    elif mode == "write":
        assert p.returncode == 1 and _errors(p) == ["Error: could not write last.npz (No space left on device)"]
    elif mode == "hook":
        assert "Error: rank 1: injected failure" in _errors(p)
    meta, _ = arrays(out)
    assert meta["step"] == 4
    ok(run([*CLI, "--resume", out, "--steps", "8"]))
    assert arrays(out)[0]["step"] == 8


@needs_mpi
def test_sigterm_to_mpiexec_stops_every_rank_at_one_step_and_saves(text, tmp_path):
    """mpiexec hands SIGTERM (Slurm's time limit, kill) to every rank; the ranks agree in a step's
    exchange, stop after the same step, rank 0 saves it, exit 143."""
    import signal
    import time
    out = str(tmp_path / "run")
    cmd = [MPIEXEC, "-n", "2", *CLI, text, "--out", out, *ARGS, "--steps", "1000000", "--log-every", "1"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    metrics = os.path.join(out, "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 143, stderr[-2000:]
    step = int(stdout.split("interrupted at step ")[1].split(";")[0])
    assert arrays(out)[0]["step"] == step > 0
    assert "Error" not in stderr


# ---- without MPI --------------------------------------------------------------------------------
def test_one_process_imports_no_mpi(tmp_path):
    code = ("import sys; from seqlearn.cli.main import cli\n"
            "from seqlearn.train import Trainer; from seqlearn import dist\n"
            f"t = Trainer({{'steps': 2, 'hidden': 8, 'layers': 1, 'batch': 4, 'seq_len': 8, 'device': 'ref'}}, "
            f"{str(tmp_path / 'r')!r}, echo=lambda s: None); t.run()\n"
            "assert 'mpi4py' not in sys.modules and type(dist.world()) is dist.Solo, sys.modules.keys()\n")
    ok(run([sys.executable, "-c", code]))


def test_launched_size_reads_the_launchers_variables(monkeypatch):
    for var in dist._SIZE_VARS:
        monkeypatch.delenv(var, raising=False)
    assert dist.launched_size() == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert dist.launched_size() == 4
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "1")
    assert dist.launched_size() == 1


def test_default_threads_share_the_node(monkeypatch):
    class W:
        local_size = 4
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert dist.default_threads(W) == 4                   # not bound: a quarter of the node
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert dist.default_threads(W) == 3                   # bound by the launcher: its CPUs
    W.local_size = 32
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert dist.default_threads(W) == 1
