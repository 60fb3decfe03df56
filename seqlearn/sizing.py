"""The model a time budget buys on a text: cell, size, dropout, batch, sequence length and rate
chosen from the corpus size and the speed of this machine (seqlearn train TEXT --max-time T with
no --hidden and no --layers).

The rule (its sweep: docs/quality.md):
  1. Time training steps of each rung of LADDER (2 layers, B 32, T 100, on this machine and
     backend), smallest first: the median of TIMED_STEPS after WARM_STEPS (typical_step).
  2. The steps the budget buys a rung: budget.steps_left with its step time and an estimate of
     its evaluations (a forward pass over the validation split costs a third of training on as
     many characters).
  3. Take the largest rung that still gets MIN_STEPS updates and has at most PARAMS_PER_CHAR
     parameters per training character; the smallest when none does.
  4. Dropout from the passes over the text it will make (epochs): none below DROPOUT_FROM
     epochs, then DROPOUT_PER_DOUBLING more per doubling, at most DROPOUT_MAX; between the
     layers and on the top layer's output alike.
  5. Adam at LR, warmup over WARMUP steps, cosine fitted to the budget (seqlearn/budget.py).
Options given on the command line always win: the rule fills in the others.
choose() is a pure function of the measured step times (tests give it a table).
"""
import math
import time

import numpy as np

from .budget import steps_left
from .data import fit_batch
from .optim import DEFAULT_LR
from .params import GATES

CELL = "gru"
LADDER = (64, 96, 128, 192, 256, 384, 512, 768, 1024)       # hidden sizes, 2 layers each
LAYERS, BATCH, SEQ_LEN = 2, 32, 100
MIN_STEPS = 3000
PARAMS_PER_CHAR = 3.0
DROPOUT_FROM, DROPOUT_PER_DOUBLING, DROPOUT_MAX = 8.0, 0.25, 0.5    # 0.25 at 40 epochs overfit (docs/quality.md)
LR, WARMUP = DEFAULT_LR["adam"], 100
WARM_STEPS, TIMED_STEPS = 2, 5     # best of 2 read 307 ms for a rung that ran at 220 (docs/quality.md)
SIZED = ("cell", "hidden", "layers", "dropout", "dropout_top", "batch", "seq_len", "lr", "schedule", "warmup")


def num_params(cell, V, H, L):
    """Parameters of an L-layer model with one-hot input and a V-way head."""
    G = GATES[cell]
    return sum(G * H * ((V if k == 0 else H) + H + 2) for k in range(L)) + V * H + V


def dropout_for(epochs):
    if epochs <= DROPOUT_FROM:
        return 0.0
    return round(min(DROPOUT_MAX, DROPOUT_PER_DOUBLING * math.log2(epochs / DROPOUT_FROM)), 2)


def choose(n_train, n_val, V, budget_s, step_time, fixed=None, eval_every=200):
    """(config values, reason): what the rule picks. step_time(cell, H, L, B, T) -> seconds;
    fixed: options the user gave (they stay, and the rule works around them); eval_every: the
    run's (its evaluations take a share of the budget)."""
    fixed = dict(fixed or {})
    cell = fixed.get("cell", CELL)
    B, T = fit_batch(n_train, fixed.get("batch", BATCH), fixed.get("seq_len", SEQ_LEN), warn=False)
    L = fixed.get("layers", LAYERS)
    ladder = [fixed["hidden"]] if "hidden" in fixed else LADDER

    def buys(t):                        # the steps of t seconds, with evaluations, in the budget
        return steps_left(budget_s, t, t * n_val / (3.0 * B * T), eval_every)
    pick = None
    for H in ladder:
        if pick is not None and buys(pick[1] * (H / pick[0]) ** 2) < MIN_STEPS / 2:
            break                       # a rung surely too slow is not timed: steps cost ~H^2
        t = step_time(cell, H, L, B, T)
        n = buys(t)
        fits = num_params(cell, V, H, L) <= PARAMS_PER_CHAR * n_train
        if pick is not None and (n < MIN_STEPS or not fits):
            break
        pick = (H, t, n)
    H, t, n = pick
    epochs = n * B * T / n_train
    d = fixed.get("dropout", dropout_for(epochs))
    chosen = {"cell": cell, "hidden": H, "layers": L, "dropout": d, "dropout_top": fixed.get("dropout_top", d),
              "batch": B, "seq_len": T, "lr": fixed.get("lr", LR), "schedule": fixed.get("schedule", "cosine"),
              "warmup": fixed.get("warmup", min(WARMUP, max(1, n // 20)))}
    span = f"{budget_s / 60:.3g} min" if budget_s >= 120 else f"{budget_s:.3g} s"
    why = (f"{1e3 * t:.0f} ms a step here, so about {n:,} steps ({epochs:.1f} epochs of {n_train:,} "
           f"characters) in {span}; {num_params(cell, V, H, L):,} parameters")
    return chosen, why


def typical_step(step, warm=WARM_STEPS, timed=TIMED_STEPS):
    """Seconds of one call of step(): the median of `timed` calls after `warm` untimed ones (the
    first compiles and allocates); a median, so one step slowed by another process does not move it."""
    for _ in range(warm):
        step()
    times = []
    for _ in range(timed):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


class Timer:
    """step_time for choose(): a few real training steps of each candidate on this backend."""

    def __init__(self, vocab, device="cpu", dtype="float32", seed=0):
        self.vocab, self.device, self.dtype, self.seed = vocab, device, dtype, seed
        self.times = {}

    def __call__(self, cell, H, L, B, T):
        from .model import CharLM
        from .optim import Optimizer
        m = CharLM(self.vocab, cell=cell, hidden_size=H, num_layers=L, dtype=self.dtype, device=self.device,
                   seed=self.seed)
        opt = Optimizer(m, "adam", lr=LR)
        rng = np.random.default_rng(self.seed)
        x, y = rng.integers(0, len(self.vocab), (2, B, T))

        def step():
            m.forward_backward(x, y)
            opt.clip_grads()
            opt.step()
        t = self.times[(cell, H, L, B, T)] = typical_step(step)
        return t
