"""Training steps with dropout: the masks drawn as host random numbers copied into the mask
buffer (the previous version, kept here as the baseline) against the counter-based masks the
backend computes (`ops.dropout_mask`), interleaved step by step in one process, medians.

    python benchmarks/dropout_speed.py                      # LSTM 2x128 B=50 T=50 and 2x512 B=64 T=100
    python benchmarks/dropout_speed.py --config 256,2,32,100 --steps 40 --device cpu
"""
import argparse
import os
import sys

import numpy as np

import seqlearn
from seqlearn.optim import Optimizer

sys.path.insert(0, os.path.dirname(__file__))
from common import interleaved_steps  # noqa: E402

CONFIGS = ("128,2,50,50,200", "512,2,64,100,12")      # H, L, B, T, steps


def host_masks(self, ws, T, B):
    """The previous version of CharLM._draw_masks."""
    keep = 1.0 - self.dropout
    for k in range(self.L - 1):
        m = (self.rng.random((T, B, self.H)) < keep).astype(self.dtype) / self.dtype.type(keep)
        self.backend.ops.copy(self.backend.ops.to_device(m), ws["mask"][k])


def run(H, L, B, T, steps, dropout, device):
    m = seqlearn.CharLM([chr(32 + i) for i in range(65)], cell="lstm", hidden_size=H, num_layers=L,
                        dropout=dropout, seed=1, device=device)
    opt = Optimizer(m, "adam", lr=0.002, clip=5.0)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 65, (B, T)), rng.integers(0, 65, (B, T))
    hashed = type(m)._draw_masks
    try:
        med = interleaved_steps(m, opt, x, y, {"host": lambda: setattr(type(m), "_draw_masks", host_masks),
                                               "hashed": lambda: setattr(type(m), "_draw_masks", hashed)}, steps)
    finally:
        type(m)._draw_masks = hashed
    a, b = med["host"], med["hashed"]
    print(f"| lstm {H}x{L} B={B} T={T} | {device} | {a * 1e3:.1f} | {b * 1e3:.1f} | "
          f"{B * T / a:,.0f} | {B * T / b:,.0f} | {a / b:.3f} |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", action="append", help="H,L,B,T[,steps] (repeatable)")
    ap.add_argument("--steps", type=int, default=None, help="steps per variant (overrides the config's)")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args(argv)
    print(f"dropout {a.dropout}, steps interleaved, median ms per training step (forward, backward, clip, Adam)")
    print("| model | device | host masks ms | hashed masks ms | host chars/s | hashed chars/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for c in a.config or CONFIGS:
        v = [int(s) for s in c.split(",")]
        H, L, B, T = v[:4]
        steps = a.steps or (v[4] if len(v) > 4 else 20)
        run(H, L, B, T, steps, a.dropout, a.device)


if __name__ == "__main__":
    main()
