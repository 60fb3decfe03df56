"""Data-parallel throughput here: 1 process x 2 threads against 2 MPI ranks x 1 thread, on two
configurations, in one invocation (blocks alternated, medians), and the share of a step the
gradient allreduce takes on the ranks.

    pip install '.[mpi]'
    python benchmarks/mpi_speed.py                 # ~3 minutes
    python benchmarks/mpi_speed.py --steps 60 --rounds 3

Each block is a fresh `Trainer` run on tiny Shakespeare (the built-in corpus where it is absent)
in a child process; the time of a step is the median over the steps after the first 10 (compile
and warm-up). Under MPI the worker also times Trainer._allreduce_grads (the allreduce and the
averaging) on rank 0.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

CONFIGS = [dict(cell="lstm", hidden=256, layers=2, batch=32, seq_len=100),
           dict(cell="lstm", hidden=512, layers=2, batch=64, seq_len=100)]
SHAKESPEARE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tinyshakespeare.txt")


def worker(cfg, steps, out):
    """One block: train `steps` steps, print {"step_ms", "allreduce_ms"} (rank 0)."""
    from seqlearn import dist
    from seqlearn.train import Trainer
    times, reduce_times = [], []

    class Timed(Trainer):
        def _train_step(self, ctrl_c=None):
            t = time.perf_counter()
            r = super()._train_step(ctrl_c)
            times.append(time.perf_counter() - t)
            return r

        def _allreduce_grads(self):
            t = time.perf_counter()
            super()._allreduce_grads()
            reduce_times.append(time.perf_counter() - t)

    text = SHAKESPEARE if os.path.exists(SHAKESPEARE) else None
    t = Timed(dict(cfg, text=text, steps=steps, eval_every=10 ** 6, log_every=10 ** 6), out, echo=lambda s: None)
    t.run()
    if dist.world().root:
        ms = lambda xs: 1e3 * statistics.median(xs[10:]) if len(xs) > 10 else None  # noqa: E731
        print(json.dumps({"step_ms": ms(times), "allreduce_ms": ms(reduce_times),
                          "params": t.model.num_params}))


def block(cfg, steps, ranks, tmp):
    out = tempfile.mkdtemp(dir=tmp)
    shutil.rmtree(out)
    env = dict(os.environ, SEQLEARN_NUM_THREADS=str(2 // ranks))
    cmd = [sys.executable, __file__, "--worker", json.dumps(cfg), "--steps", str(steps), "--out", out]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        cmd = [mpiexec, "-n", str(ranks), *cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode:
        sys.exit(f"block failed: {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--worker")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    if a.worker:
        return worker(json.loads(a.worker), a.steps, a.out)
    print("| configuration | params | 1 x 2 threads ms/step | 2 ranks x 1 thread ms/step | ranks / threads "
          "| allreduce ms (share of the 2-rank step) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for cfg in CONFIGS:
            one, two, red = [], [], []
            for _ in range(a.rounds):
                r1 = block(cfg, a.steps, 1, tmp)
                r2 = block(cfg, a.steps, 2, tmp)
                one.append(r1["step_ms"])
                two.append(r2["step_ms"])
                red.append(r2["allreduce_ms"])
            s1, s2, sr = statistics.median(one), statistics.median(two), statistics.median(red)
            name = f"{cfg['cell']} {cfg['layers']}x{cfg['hidden']}, B {cfg['batch']}, T {cfg['seq_len']}"
            print(f"| {name} | {r1['params']:,} | {s1:.1f} | {s2:.1f} | {s1 / s2:.2f}x | {sr:.2f} ({sr / s2:.1%}) |",
                  flush=True)


if __name__ == "__main__":
    main()
