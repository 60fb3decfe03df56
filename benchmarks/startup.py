"""Start-up: seconds from launching `seqlearn train` in a fresh process to the end of its first
training step, with an empty compile cache (cold: every kernel compiles) and with the cache the
cold run left (warm: kernels load from disk).

Each run is `python -m seqlearn train [TEXT] --cell C --steps 2 --log-every 1 ...` in a fresh
subprocess with NUMBA_CACHE_DIR pointing at a temporary directory (empty for the cold run); the
clock runs from just before the launch until the "step 1 |" line arrives on its stdout (printed
right after the first step), then the process is stopped. Also timed, warm: bare interpreter
start, `import seqlearn.cli.main` (the CLI) and `import seqlearn.cpu` (the backend).

    python benchmarks/startup.py                      # lstm and gru, defaults of seqlearn train
    python benchmarks/startup.py --cell lstm --repeats 5 --hidden 512
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, median, today  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def first_step(args, cell, cache, out):
    cmd = [sys.executable, "-m", "seqlearn", "train", *([args.text] if args.text else []), "--cell", cell,
           "--hidden", str(args.hidden), "--layers", str(args.layers), "--steps", "2", "--log-every", "1",
           "--eval-every", "1000", "--out", out, "--force"]
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    dt = None
    for line in p.stdout:
        if line.startswith("step 1 "):
            dt = time.perf_counter() - t0
            break
    p.kill()
    err = p.stderr.read()
    p.wait()
    if dt is None:
        raise RuntimeError(f"no first step from {' '.join(cmd)}:\n{err}")
    return dt


def python_c(code, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("text", nargs="?", help="training text (default: seqlearn train's built-in corpus)")
    ap.add_argument("--cell", choices=["lstm", "gru"], action="append", help="default: both")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="warm runs per cell (median reported)")
    ap.add_argument("--cold", type=int, default=1, help="cold runs per cell (each with a new empty cache)")
    args = ap.parse_args(argv)
    cells = args.cell or ["lstm", "gru"]
    tmp = tempfile.mkdtemp(prefix="seqlearn-startup-")
    try:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"# {machine()}; {today()}; load average {load:.2f}")
        print(f"# seqlearn train --hidden {args.hidden} --layers {args.layers} (other options at their defaults); "
              f"seconds from launch to the end of the first step")
        base = os.path.join(tmp, "base")
        python_c("import seqlearn.cpu", base)        # fill a cache for the import timings
        imp = {name: median([python_c(code, base) for _ in range(args.repeats)])
               for name, code in (("python -c pass", "pass"), ("import seqlearn.cli.main", "import seqlearn.cli.main"),
                                  ("import seqlearn.cpu", "import seqlearn.cpu"))}
        print("# warm imports (median): " + ", ".join(f"{k} {v:.2f} s" for k, v in imp.items()))
        print(f"{'cell':5} | {'cold (compile) s':>16} | {'warm s (median)':>15} {'min-max':>13}")
        for cell in cells:
            colds, cache = [], None
            for i in range(args.cold):
                cache = os.path.join(tmp, f"{cell}-cache{i}")
                colds.append(first_step(args, cell, cache, os.path.join(tmp, "run")))
            warm = [first_step(args, cell, cache, os.path.join(tmp, "run")) for _ in range(args.repeats)]
            print(f"{cell:5} | {median(colds):>16.2f} | {median(warm):>15.2f} {min(warm):>6.2f}-{max(warm):<6.2f}",
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
