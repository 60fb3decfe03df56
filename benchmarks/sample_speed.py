"""Generation latency at batch 1 (and throughput with N sequences at once): seqlearn's jitted
loop (seqlearn.cpu.sample_kernels) against PyTorch's step-by-step nn.LSTM loop and a plain numpy
loop, same configuration, alternating, one invocation.

    python benchmarks/sample_speed.py                  # LSTM, L=2, H=256 and 512, V=65
    python benchmarks/sample_speed.py --hidden 256 --num 1 4 16

Batch-1 generation reads every weight once per character (the first layer's W_ih only one column):
the "MB/char" column counts those bytes and "GB/s" the rate seqlearn reads them at, next to a
memory copy rate (numpy, 256 MiB, read + write bytes) measured in the same invocation.
"""
import argparse
import sys
import time

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import machine, median, settle, today  # noqa: E402

V = 65


def numpy_loop(params, H, L, n_chars, rng):
    """Plain numpy LSTM sampling loop (float32), one character at a time, batch 1."""
    h = [np.zeros(H, np.float32) for _ in range(L)]
    c = [np.zeros(H, np.float32) for _ in range(L)]
    x = 0
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    for _ in range(n_chars):
        inp = None
        for k in range(L):
            Wih, Whh, bih, bhh = (params[f"rnn.{n}_l{k}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            a = (Wih[:, x] if k == 0 else Wih @ inp) + bih + Whh @ h[k] + bhh
            i, f, g, o = sig(a[:H]), sig(a[H:2 * H]), np.tanh(a[2 * H:3 * H]), sig(a[3 * H:])
            c[k] = f * c[k] + i * g
            h[k] = o * np.tanh(c[k])
            inp = h[k]
        z = params["decoder.weight"] @ inp + params["decoder.bias"]
        p = np.exp(z - z.max())
        p /= p.sum()
        x = min(int((np.cumsum(p) < rng.random() * p.sum()).sum()), V - 1)


def torch_loop(torch, rnn, dec, n_chars, gen):
    x = torch.zeros((1, 1), dtype=torch.long)
    state = None
    with torch.no_grad():
        for _ in range(n_chars):
            out, state = rnn(torch.nn.functional.one_hot(x, V).float(), state)
            p = torch.softmax(dec(out[:, -1]), -1)
            x = torch.multinomial(p, 1, generator=gen)


def weight_bytes(m):
    """Bytes of weights read per generated character (batch 1): all but layer 0's W_ih, of which
    one column."""
    n = m.flat.nbytes
    W0 = m.params["rnn.weight_ih_l0"]
    return n - W0.nbytes + W0.shape[0] * W0.itemsize


def copy_bandwidth(mib=256, reps=5):
    a = np.ones(mib << 18, np.float32)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--num", type=int, nargs="+", default=[1, 4, 16], help="sequences at once (seqlearn)")
    ap.add_argument("--block-seconds", type=float, default=0.2,
                    help="length of every timed block (characters per block chosen to match)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import seqlearn
    from seqlearn.cpu import sample_kernels as sk
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
        print("PyTorch not installed (pip install torch==2.13.0): skipping its loop")
    import os
    load = os.getloadavg()[0]
    print(f"# {machine()}; {today()}; load average {load:.2f}; LSTM L={args.layers}, V={V}, float32; medians of "
          f"{args.repeats} alternating blocks; seqlearn threads: {sk._threads.NUM_THREADS}")
    print(f"# memory copy (numpy, 256 MiB): {copy_bandwidth():.1f} GB/s (read + write)")
    print(f"{'H':>5} | {'seqlearn us/char (N=1)':>22} {'MB/char':>7} {'GB/s':>5} | {'pytorch us/char':>15} {'ratio':>6} | "
          f"{'numpy us/char':>13} {'ratio':>6} | seqlearn chars/s at N = " + ", ".join(map(str, args.num)))
    for H in args.hidden:
        m = seqlearn.CharLM([chr(33 + i) for i in range(V)], cell="lstm", hidden_size=H, num_layers=args.layers,
                            device="cpu", seed=0)
        params = {k: np.array(v) for k, v in m.params.items()}
        rng = np.random.default_rng(0)
        packed = sk.pack(m)   # packed once per run, as Sampler does

        def ours(n, N=1):
            sk.generate(m, np.zeros((N, V), np.float32), None, rng.random((n, N)), packed=packed)

        impls = {"ours": ours, "numpy": lambda n: numpy_loop(params, H, args.layers, n, rng)}
        if torch is not None:
            rnn = torch.nn.LSTM(V, H, args.layers, batch_first=True)
            dec = torch.nn.Linear(H, V)
            gen = torch.Generator().manual_seed(0)
            impls["torch"] = lambda n: torch_loop(torch, rnn, dec, n, gen)
        # Blocks of the same length in time for every implementation: after the pause, the first
        # milliseconds run slowly (two threads lost up to 9 ms per block here), which a short block
        # would pay per character far more than a long one.
        count = {}
        for name, fn in impls.items():
            fn(5)
            t0 = time.perf_counter()
            fn(20)
            count[name] = max(20, int(args.block_seconds / ((time.perf_counter() - t0) / 20)))
        t = {"ours": [], "torch": [], "numpy": []}
        for _ in range(args.repeats):
            for name, fn in impls.items():
                settle()
                t0 = time.perf_counter()
                fn(count[name])
                t[name].append((time.perf_counter() - t0) / count[name] * 1e6)
        thr = []
        for N in args.num:
            n = max(20, count["ours"] // N)
            ours(2, N)
            ts = []
            for _ in range(args.repeats):
                settle()
                t0 = time.perf_counter()
                ours(n, N)
                ts.append(time.perf_counter() - t0)
            thr.append(N * n / median(ts))
        o = median(t["ours"])
        tt = f"{median(t['torch']):>15.0f} {median(t['torch']) / o:>6.1f}" if t["torch"] else f"{'-':>15} {'-':>6}"
        mb = weight_bytes(m) / 1e6
        print(f"{H:>5} | {o:>22.1f} {mb:>7.2f} {mb / o * 1e3:>5.1f} | {tt} | {median(t['numpy']):>13.0f} "
              f"{median(t['numpy']) / o:>6.1f} | "
              + ", ".join(f"{v:,.0f}" for v in thr), flush=True)


if __name__ == "__main__":
    main()
