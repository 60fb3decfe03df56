"""Peak memory (maximum resident set size) of training: seqlearn (device cpu) against PyTorch on the
same configuration, each in a fresh subprocess.

Each child builds the model of benchmarks/train_speed.py (one-hot -> L layers -> linear head,
Adam, gradient-norm clipping at 5, truncated BPTT carrying the state), runs --steps training
steps and reports `resource.getrusage(RUSAGE_SELF).ru_maxrss`: once right after its imports
(interpreter, numpy, numba or torch: the fixed cost) and once after the steps.

    python benchmarks/memory.py                                # LSTM 512x2, B 64, T 100
    python benchmarks/memory.py --config gru:1024,1,32,100 --steps 3
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, today  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def child(impl, cfg, steps, threads):
    import resource
    import numpy as np  # noqa: F401
    from train_speed import Seqlearn, Torch, parse_config, run_block, stream
    cell, H, L, B, T = parse_config(cfg)
    if impl == "seqlearn":
        import seqlearn.cpu  # noqa: F401
        import seqlearn.cpu.optim  # noqa: F401
    else:
        import torch  # noqa: F401
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    m = Seqlearn(cell, H, L, B, T) if impl == "seqlearn" else Torch(cell, H, L, B, T, threads)
    run_block(m, stream(B, T, steps), T, 0, steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_kib": base, "peak_kib": peak}))


def measure(impl, cfg, steps, threads):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", impl, "--config", cfg,
                          "--steps", str(steps), "--threads", str(threads)],
                         check=True, capture_output=True, text=True, cwd=HERE)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--config", action="append", default=[], metavar="CELL:H,L,B,T",
                    help="configuration (repeatable); default lstm:512,2,64,100")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--no-torch", dest="torch", action="store_false")
    ap.add_argument("--child", choices=["seqlearn", "pytorch"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    cfgs = args.config or ["lstm:512,2,64,100"]
    if args.child:
        child(args.child, cfgs[0], args.steps, args.threads)
        return
    impls = ["seqlearn"]
    if args.torch:
        try:
            import importlib.util
            if importlib.util.find_spec("torch") is None:
                raise ImportError
            impls.append("pytorch")
        except ImportError:
            print("PyTorch not installed (pip install torch==2.13.0): seqlearn only")
    print(f"# {machine()}; {today()}; load average {os.getloadavg()[0]:.2f}; peak RSS (ru_maxrss) after {args.steps} training steps, fresh process each")
    print(f"{'config':22} | {'impl':8} | {'after imports MiB':>17} | {'peak MiB':>8} | {'peak - imports MiB':>18}")
    for cfg in cfgs:
        res = {}
        for impl in impls:
            r = measure(impl, cfg, args.steps, args.threads)
            res[impl] = r
            print(f"{cfg:22} | {impl:8} | {r['base_kib'] / 1024:>17.0f} | {r['peak_kib'] / 1024:>8.0f} | "
                  f"{(r['peak_kib'] - r['base_kib']) / 1024:>18.0f}", flush=True)
        if len(res) == 2:
            print(f"{cfg:22} | ratio seqlearn / pytorch peak: {res['seqlearn']['peak_kib'] / res['pytorch']['peak_kib']:.2f}")


if __name__ == "__main__":
    main()
