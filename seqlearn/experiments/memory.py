"""Long-range memory: which cells carry one character across `lag` steps of distractors.

Every cell (rnn, gru torch, gru cho, lstm, lstm with peepholes) is trained from scratch on the
remember-the-first-symbol task (seqlearn.experiments.tasks.RememberFirst) for each lag, at an equal
parameter budget: the plain lstm gets hidden size `hidden`, every other cell the hidden size whose
parameter count is nearest to the lstm's. Training stops as soon as the answer accuracy on a fixed
evaluation batch reaches `solve_acc`, or after `max_steps` updates or `max_seconds` seconds.

    rows = run(lags=(5, 20), quick=True)         # list of dicts, one per (cell, lag)
"""
import math
import time

import numpy as np

from ..model import CharLM
from ..optim import Optimizer
from ..params import GATES
from .tasks import RememberFirst

# (name, cell, variant): variant is the gru form or "peephole"/"-" for lstm/rnn
CELLS = (("rnn", "rnn", "-"), ("gru-torch", "gru", "torch"), ("gru-cho", "gru", "cho"),
         ("lstm", "lstm", "-"), ("lstm-peephole", "lstm", "peephole"))
CELL_NAMES = tuple(c[0] for c in CELLS)
DEFAULT_LAGS = (5, 20, 50, 100, 200)
QUICK_LAGS = (5, 20, 50)


def num_params(cell, V, H, peephole=False):
    """Parameters of a one-layer one-hot CharLM (recurrent layer + linear head)."""
    G = GATES[cell]
    return G * H * (V + H + 2) + (3 * H if peephole else 0) + H * V + V


def hidden_for_budget(cell, V, budget, peephole=False):
    """The hidden size whose parameter count is nearest to budget (ties: the smaller)."""
    best = None
    for H in range(1, 4 * int(math.sqrt(budget)) + 8):
        d = abs(num_params(cell, V, H, peephole) - budget)
        if best is None or d < best[0]:
            best = (d, H)
    return best[1]


def set_carry_bias(model, bias):
    """Initial bias of the gate that keeps the memory: the lstm forget gate f, the gru update gate z
    (both the rows H:2H of the layer's biases). b_ih gets `bias`, b_hh zero, so their sum is `bias`.
    No effect on the plain rnn."""
    if model.cell == "rnn":
        return
    H = model.H
    sd = model.state_dict()
    for k in range(model.L):
        sd[f"rnn.bias_ih_l{k}"][H:2 * H] = bias
        sd[f"rnn.bias_hh_l{k}"][H:2 * H] = 0.0
    model.load_state_dict(sd)


def answer_metrics(model, task, x, y):
    """(accuracy, mean cross-entropy in nats) at the answer position only."""
    z, _ = model.logits(x)
    z = z[:, -1, :].astype(np.float64)
    target = y[:, -1]
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float((z.argmax(axis=1) == target).mean()), float(-logp[np.arange(len(target)), target].mean())


def train_one(task, cell, variant, hidden, *, batch=32, lr=1e-2, clip=1.0, clip_mode="norm",
              carry_bias=3.0, max_steps=3000, max_seconds=None, eval_every=25, eval_batch=256,
              test_batch=1000, solve_acc=0.99, seed=0, device="cpu", dtype="float32", log=None,
              on_model=None):
    """Train one cell on one task; return a result row (dict). on_model(model, task, row) sees the
    trained model."""
    model = CharLM(task.vocab, cell=cell, hidden_size=hidden, num_layers=1,
                   peephole=(variant == "peephole"), gru_variant=variant if cell == "gru" else "torch",
                   dtype=dtype, device=device, seed=seed)
    set_carry_bias(model, carry_bias)
    opt = Optimizer(model, "adam", lr=lr, clip=clip, clip_mode=clip_mode)
    rng = np.random.default_rng(seed + 1)
    xe, ye = task.batch(np.random.default_rng(10_000 + seed), eval_batch)
    t0, c0 = time.perf_counter(), time.process_time()
    solved, step, acc, best = None, 0, 0.0, 0.0
    diverged = False
    while step < max_steps:
        x, y = task.batch(rng, batch)
        loss, _ = model.forward_backward(x, y)
        if not math.isfinite(loss):
            diverged = True
            break
        opt.clip_grads()
        opt.step()
        step += 1
        if step % eval_every == 0 or step == max_steps:
            acc, ce = answer_metrics(model, task, xe, ye)
            best = max(best, acc)
            if log:
                log(f"  {cell}{'' if variant == '-' else '-' + variant} lag {task.lag:>3} step {step:>5} "
                    f"| answer acc {acc:.3f} | answer loss {ce:.3f} | {time.perf_counter() - t0:.1f} s")
            if acc >= solve_acc:
                solved = step
                break
            if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
                break
    seconds = time.perf_counter() - t0
    if diverged:
        final_acc, final_ce = float("nan"), float("nan")
    else:
        xt, yt = task.batch(np.random.default_rng(20_000 + seed), test_batch)
        final_acc, final_ce = answer_metrics(model, task, xt, yt)
    row = {"cell": cell, "variant": variant, "lag": task.lag, "hidden": hidden,
           "params": model.num_params, "accuracy": final_acc, "answer_loss": final_ce,
           "steps_to_solve": solved, "steps": step, "seconds": round(seconds, 2),
           "cpu_seconds": round(time.process_time() - c0, 2),
           "diverged": diverged, "chance": task.chance}
    if on_model and not diverged:
        on_model(model, task, row)
    return row


def run(lags=DEFAULT_LAGS, cells=CELL_NAMES, *, hidden=32, batch=32, lr=1e-2, clip=1.0,
        clip_mode="norm", carry_bias=3.0, max_steps=3000, max_seconds=None, eval_every=25,
        solve_acc=0.99, seed=0, device="cpu", dtype="float32", log=None, on_row=None, on_model=None):
    """All (cell, lag) runs; returns the rows in cell-major order. on_model(model, task, row): see
    train_one (the row has no "name" yet)."""
    table = {c[0]: c for c in CELLS}
    unknown = [c for c in cells if c not in table]
    if unknown:
        raise ValueError(f"unknown cell {unknown[0]!r}; choose from {', '.join(CELL_NAMES)}")
    rows = []
    for lag in lags:
        task = RememberFirst(lag)
        budget = num_params("lstm", len(task.vocab), hidden)
        for name in cells:
            _, cell, variant = table[name]
            H = hidden_for_budget(cell, len(task.vocab), budget, variant == "peephole")
            row = train_one(task, cell, variant, H, batch=batch, lr=lr, clip=clip, clip_mode=clip_mode,
                            carry_bias=carry_bias, max_steps=max_steps, max_seconds=max_seconds,
                            eval_every=eval_every, solve_acc=solve_acc, seed=seed, device=device,
                            dtype=dtype, log=log, on_model=on_model)
            row["name"] = name
            rows.append(row)
            if on_row:
                on_row(row)
    order = {n: i for i, n in enumerate(cells)}
    rows.sort(key=lambda r: (order[r["name"]], r["lag"]))
    return rows
