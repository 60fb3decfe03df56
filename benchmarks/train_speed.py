"""Training throughput of seqlearn (device cpu) against PyTorch on the same configuration.

One invocation runs both, alternating blocks of steps, and prints characters per second for each,
the ratio, the achieved GFLOP/s and its fraction of a float32 product peak measured in the same
invocation. The setup is the one of the performance table (docs/performance.md): one-hot input ->
L recurrent layers -> linear head, mean cross-entropy, Adam, gradient-norm clipping at 5, truncated
BPTT carrying (detached) state, PyTorch on 2 threads. Vocabulary: 65 characters (tiny Shakespeare's), random tokens.

    python benchmarks/train_speed.py --quick               # lstm and gru at H=128 (well under a minute)
    python benchmarks/train_speed.py                       # the 8 rows of the performance table
    python benchmarks/train_speed.py --config lstm:512,2,64,100 --config gru:256,2,32,100

PyTorch is optional (pip install torch==2.13.0); without it only seqlearn runs.
FLOPs per step: per layer and time step forward 2*B*G*H*(I+H) (G = 4 lstm, 3 gru; I = V for the
one-hot first layer, H above), training = 3x forward, plus the head 3*2*B*H*V per time step.
"""
import argparse
import sys
import time

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import machine, median, settle, sgemm_peak, today  # noqa: E402

ROWS = [("lstm", 128, 1, 32, 64), ("lstm", 256, 2, 32, 100), ("lstm", 512, 2, 64, 100),
        ("lstm", 1024, 1, 32, 100), ("gru", 128, 1, 32, 64), ("gru", 256, 2, 32, 100),
        ("gru", 512, 2, 64, 100), ("gru", 1024, 1, 32, 100)]
V = 65
G = {"lstm": 4, "gru": 3, "rnn": 1}


def parse_config(s):
    cell, rest = s.split(":")
    H, L, B, T = (int(v) for v in rest.split(","))
    return cell, H, L, B, T


def flops_per_step(cell, H, L, B, T):
    f = 0
    for k in range(L):
        I = V if k == 0 else H
        f += 3 * 2 * B * G[cell] * H * (I + H)
    return T * (f + 3 * 2 * B * H * V)


def stream(B, T, steps, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T * steps + 1))


class Seqlearn:
    def __init__(self, cell, H, L, B, T, lr=2e-3):
        import seqlearn
        self.m = seqlearn.CharLM([chr(33 + i) for i in range(V)], cell=cell, hidden_size=H, num_layers=L,
                                 device="cpu", dtype="float32", seed=0)
        try:
            from seqlearn.optim import Optimizer
            self.opt = Optimizer(self.m, "adam", lr=lr, clip=5.0)
            self.optim_name = "seqlearn.optim.Optimizer(adam, clip 5)"
        except ImportError:
            self.opt = None
            self.optim_name = "numpy Adam (seqlearn.optim absent)"
            n = self.m.flat.shape[0]
            self.mom, self.vel, self.t, self.lr = np.zeros(n, np.float32), np.zeros(n, np.float32), 0, lr
        self.state = None

    def step(self, x, y):
        loss, self.state = self.m.forward_backward(x, y, self.state)
        if self.opt is not None:
            self.opt.clip_grads()
            self.opt.step()
        else:
            g, p = self.m.grad_flat, self.m.flat
            norm = float(np.sqrt(np.dot(g, g)))
            if norm > 5.0:
                g *= 5.0 / norm
            self.t += 1
            self.mom *= 0.9
            self.mom += 0.1 * g
            self.vel *= 0.999
            self.vel += 0.001 * g * g
            mh = self.mom / (1 - 0.9 ** self.t)
            vh = self.vel / (1 - 0.999 ** self.t)
            p -= self.lr * mh / (np.sqrt(vh) + 1e-8)
        return loss


class Torch:
    def __init__(self, cell, H, L, B, T, threads, lr=2e-3):
        import torch
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.torch = torch
        mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        self.rnn = mod(V, H, L, batch_first=True)
        self.dec = torch.nn.Linear(H, V)
        self.params = list(self.rnn.parameters()) + list(self.dec.parameters())
        self.opt = torch.optim.Adam(self.params, lr=lr)
        self.state = None
        self.optim_name = "torch.optim.Adam, clip_grad_norm_ 5"

    def step(self, x, y):
        torch = self.torch
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        inp = torch.nn.functional.one_hot(xt, V).float()
        if self.state is not None:
            self.state = tuple(s.detach() for s in self.state) if isinstance(self.state, tuple) else self.state.detach()
        out, self.state = self.rnn(inp, self.state)
        loss = torch.nn.functional.cross_entropy(self.dec(out).reshape(-1, V), yt.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 5.0)
        self.opt.step()
        return loss.item()


def run_block(impl, data, T, first, n):
    t0 = time.perf_counter()
    for s in range(first, first + n):
        x = data[:, s * T:(s + 1) * T]
        y = data[:, s * T + 1:(s + 1) * T + 1]
        impl.step(np.ascontiguousarray(x), np.ascontiguousarray(y))
    return time.perf_counter() - t0


def bench(cfg, args, peak):
    cell, H, L, B, T = cfg
    chars = B * T
    fl = flops_per_step(*cfg)
    budget = args.seconds
    impls = {"seqlearn": Seqlearn(cell, H, L, B, T)}
    if args.torch:
        impls["pytorch"] = Torch(cell, H, L, B, T, args.threads)
    # warm-up (compile, caches, allocator) and a step-time estimate per implementation
    est = {}
    for name, impl in impls.items():
        data = stream(B, T, 3, seed=1)
        run_block(impl, data, T, 0, 1)
        est[name] = run_block(impl, data, T, 1, 2) / 2
    nstep = {k: max(1, int(budget / args.repeats / v)) for k, v in est.items()}
    rates = {k: [] for k in impls}
    data = stream(B, T, max(nstep.values()) + 1, seed=2)
    for r in range(args.repeats):
        order = list(impls) if r % 2 == 0 else list(reversed(impls))   # alternate who goes first
        for name in order:
            settle()
            dt = run_block(impls[name], data, T, 0, nstep[name])
            rates[name].append(nstep[name] * chars / dt)
    out = {}
    for name, rs in rates.items():
        cps = median(rs)
        gf = cps / chars * fl / 1e9
        out[name] = (cps, gf, min(rs), max(rs))
    return out, impls


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--config", action="append", default=[], metavar="CELL:H,L,B,T",
                    help="a configuration (repeatable); default: the 8 rows of the performance table")
    ap.add_argument("--quick", action="store_true", help="only the H=128 rows, shorter blocks")
    ap.add_argument("--cell", choices=["lstm", "gru"], help="only rows of this cell")
    ap.add_argument("--seconds", type=float, default=None,
                    help="timed seconds per implementation and configuration (default 8, quick 3)")
    ap.add_argument("--repeats", type=int, default=5, help="alternating blocks per implementation")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--no-torch", dest="torch", action="store_false", help="seqlearn only")
    args = ap.parse_args(argv)
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 8.0
    cfgs = [parse_config(c) for c in args.config] or [r for r in ROWS if not args.quick or r[1] == 128]
    if args.cell:
        cfgs = [c for c in cfgs if c[0] == args.cell]
    if args.torch:
        try:
            import torch
            tv = torch.__version__
        except ImportError:
            print("PyTorch not installed (pip install torch==2.13.0): running seqlearn only")
            args.torch, tv = False, None
    import numba
    peak_np, peak_nb = sgemm_peak()
    print(f"# {machine()}; numba {numba.__version__}" + (f"; torch {tv} ({args.threads} threads)" if args.torch else ""))
    import os
    print(f"# load average at start: {os.getloadavg()[0]:.2f}; seqlearn threads: "
          f"{__import__('seqlearn.cpu._threads', fromlist=['x']).NUM_THREADS}")
    print(f"# {today()}; sgemm 2048^3 float32 peak: numpy {peak_np:.0f} GFLOP/s, seqlearn's BLAS (1 thread) "
          f"{peak_nb:.0f} GFLOP/s; fractions below are of the larger")
    peak = max(peak_np, peak_nb)
    print(f"# medians of {args.repeats} alternating blocks of ~{args.seconds / args.repeats:.1f} s each; min-max in brackets")
    hdr = f"{'cell':5} {'H':>5} {'L':>2} {'B':>3} {'T':>4} | {'seqlearn chars/s':>26} {'GFLOP/s':>8} {'%peak':>5}"
    if args.torch:
        hdr += f" | {'pytorch chars/s':>26} {'GFLOP/s':>8} | {'ratio':>5}"
    print(hdr)
    optim_note = None
    for cfg in cfgs:
        res, impls = bench(cfg, args, peak)
        optim_note = [f"{k}: {v.optim_name}" for k, v in impls.items()]
        s = res["seqlearn"]
        line = (f"{cfg[0]:5} {cfg[1]:>5} {cfg[2]:>2} {cfg[3]:>3} {cfg[4]:>4} | "
                f"{s[0]:>9,.0f} [{s[2]:>7,.0f}-{s[3]:>7,.0f}] {s[1]:>8.1f} {100 * s[1] / peak:>4.0f}%")
        if args.torch:
            t = res["pytorch"]
            line += f" | {t[0]:>9,.0f} [{t[2]:>7,.0f}-{t[3]:>7,.0f}] {t[1]:>8.1f} | {s[0] / t[0]:>5.2f}"
        print(line, flush=True)
    print(f"# load average at end: {__import__('os').getloadavg()[0]:.2f}")
    if optim_note:
        print("# optimizer step: " + "; ".join(optim_note))


if __name__ == "__main__":
    main()
