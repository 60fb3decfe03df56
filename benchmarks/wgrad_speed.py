"""Weight-gradient products for a wide D (dW += D.T @ X, D's rows over 2 KiB): OpenBLAS's TN
product (split by output rows over the threads) against `seqlearn.cpu.wgrad.wgrad` (for these
shapes `_tn_wide`'s: D transposed block by block into the register tiles), in one process,
alternating.

1. The products alone on both threads, as a training step calls them: the LSTM/GRU shapes of
   the performance table (dW_hh and layer 2's dW_ih share a shape), GFLOP/s, medians.
2. Training steps (forward, backward, clip, Adam; one-hot input, V = 65), the two versions
   interleaved step by step, median ms per step.

    python benchmarks/wgrad_speed.py
    python benchmarks/wgrad_speed.py --config lstm:512,2,64,100,16 --no-products
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

import seqlearn
from seqlearn.cpu import _blas, _threads, config, gru, lstm, wgrad
from seqlearn.optim import Optimizer

sys.path.insert(0, os.path.dirname(__file__))
from common import interleaved_steps  # noqa: E402

CONFIGS = ("lstm:256,2,32,100,40", "lstm:512,2,64,100,12", "lstm:1024,1,32,100,12",
           "gru:256,2,32,100,40", "gru:512,2,64,100,12", "gru:1024,1,32,100,12")
SHAPES = ((3200, 1024, 256), (6400, 2048, 512), (3200, 4096, 1024),     # N = T B, O = G H, I = H
          (3200, 768, 256), (6400, 1536, 512), (3200, 3072, 1024))


def openblas(d2, x2, dW, db, ab):
    """dW += d2.T @ x2, db += d2.sum(0) through OpenBLAS's TN product, by output rows on the threads."""
    _threads.run(wgrad.wgrad_rows, [(d2, x2, dW, db, r0, r1, ab) for r0, r1 in _threads.chunks(d2.shape[1], config.MIN_WROWS)])


PRODUCT = {False: openblas, True: wgrad.wgrad}


def use(v):
    """The cells' weight-gradient product: OpenBLAS's (False) or the backend's (True)."""
    lstm.wgrad = gru.wgrad = PRODUCT[v]


def timed(fn, reps):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def products(reps, shapes):
    print("| N x O x I (dW += D.T @ X) | OpenBLAS GFLOP/s | tn_wide GFLOP/s | ratio | max rel diff |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for N, O, I in shapes:
        d2 = rng.standard_normal((N, O), dtype=np.float32)
        x2 = rng.standard_normal((N, I), dtype=np.float32)
        W = {v: np.zeros((O, I), np.float32) for v in (False, True)}
        db = np.zeros(O, np.float32)
        for v in (False, True):
            PRODUCT[v](d2, x2, W[v], db, _blas.consts(d2))
        diff = float(np.abs(W[True] - W[False]).max() / np.abs(W[False]).max())
        t = {False: [], True: []}
        for i in range(reps):
            for v in ((False, True) if i % 2 else (True, False)):
                t[v] += timed(lambda: PRODUCT[v](d2, x2, W[v], db, _blas.consts(d2)), 1)
        a, b = (2.0 * N * O * I / statistics.median(t[v]) / 1e9 for v in (False, True))
        print(f"| {N} x {O} x {I} | {a:.1f} | {b:.1f} | {b / a:.3f} | {diff:.1e} |", flush=True)


def steps(cell, H, L, B, T, n):
    m = seqlearn.CharLM([chr(32 + i) for i in range(65)], cell=cell, hidden_size=H, num_layers=L, seed=1)
    opt = Optimizer(m, "adam", lr=0.002, clip=5.0)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 65, (B, T)), rng.integers(0, 65, (B, T))
    try:
        med = interleaved_steps(m, opt, x, y, {v: (lambda v=v: use(v)) for v in (False, True)}, n)
    finally:
        use(True)
    a, b = med[False], med[True]
    print(f"| {cell} {H}x{L} B={B} T={T} | {a * 1e3:.1f} | {b * 1e3:.1f} | {B * T / a:,.0f} | "
          f"{B * T / b:,.0f} | {a / b:.3f} |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", action="append", help="cell:H,L,B,T[,steps] (repeatable)")
    ap.add_argument("--shape", action="append", help="N,O,I of a product (repeatable)")
    ap.add_argument("--reps", type=int, default=9, help="product timings per version")
    ap.add_argument("--no-products", action="store_true")
    ap.add_argument("--no-steps", action="store_true")
    a = ap.parse_args(argv)
    if not a.no_products:
        products(a.reps, [tuple(int(v) for v in s.split(",")) for s in a.shape] if a.shape else SHAPES)
        print()
    if not a.no_steps:
        print("training steps interleaved, median ms per step (forward, backward, clip, Adam)")
        print("| model | OpenBLAS ms | tn_wide ms | OpenBLAS chars/s | tn_wide chars/s | ratio |")
        print("|---|---|---|---|---|---|")
        for c in a.config or CONFIGS:
            cell, rest = c.split(":")
            v = [int(s) for s in rest.split(",")]
            steps(cell, *v[:4], v[4] if len(v) > 4 else 12)


if __name__ == "__main__":
    main()
