"""LSTM against GRU on real text, at equal parameter counts and equal wall-clock budgets.

For every size (the plain lstm's hidden size; each other cell gets the hidden size whose parameter
count is nearest to that lstm's) every cell is trained by the project's Trainer on the same text,
with the same data order, optimizer and seed, for the same number of seconds of *training* time
(validation during the run is not counted). Every `seconds / points` seconds the validation bpc on
a fixed slice of the validation split is recorded (the curve); at the end the bpc over the whole
validation split is the result.

    rows, curves = run("tinyshakespeare.txt", sizes=(32, 64), seconds=20)
"""
import math
import os
import tempfile
import time

from ..data import Vocab, evaluate, read_text
from ..params import layout, offsets
from ..train import Trainer, bpc

CELLS = {"lstm": ("lstm", "torch", False), "gru-torch": ("gru", "torch", False), "gru-cho": ("gru", "cho", False),
         "lstm-peephole": ("lstm", "torch", True), "rnn": ("rnn", "torch", False)}
DEFAULT_CELLS = ("lstm", "gru-torch")
DEFAULT_SIZES = (32, 64, 128)
QUICK_SIZES = (32, 64)


def count_params(cell, V, H, L, peephole=False):
    return offsets(layout(cell, V, H, L, 0, peephole))[1]


def hidden_for_budget(cell, V, L, budget, peephole=False):
    """The hidden size whose parameter count (one-hot input, L layers) is nearest to budget."""
    best = None
    for H in range(1, 8 * int(math.sqrt(budget)) + 8):
        d = abs(count_params(cell, V, H, L, peephole) - budget)
        if best is None or d < best[0]:
            best = (d, H)
    return best[1]


# cpu: this process's CPU time (with one BLAS thread, the wall-clock time the same work takes on an
# idle machine, whatever else runs beside it); wall: elapsed time, which on a shared machine
# also measures the neighbours' load.
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


class _TimedRun(Trainer):
    """A Trainer that stops after `budget` seconds of training time and records the validation bpc
    on a fixed slice every `every` seconds of training time (that evaluation is not counted)."""

    def setup(self, budget, every, val_slice_chars, clock="cpu"):
        self.budget, self.every = float(budget), float(every)
        self.clock = CLOCKS[clock]
        val = self.val_chunks
        # the first chunks of every validation stream hold about val_slice_chars characters
        per_chunk = val[0][0].size if val else 1
        self.small_val = val[:max(1, val_slice_chars // per_chunk)]
        self.curve = []
        self.eval_time = 0.0

    def _point(self, train_time):
        te = self.clock()
        v = evaluate(self.model, self.small_val)
        self.eval_time += self.clock() - te
        self.curve.append({"seconds": round(train_time, 3), "step": self.step, "val_bpc": bpc(v)})

    def after_step(self):
        train_time = self.clock() - self.t_start - self.eval_time
        if train_time >= self.next_point or train_time >= self.budget:
            self._point(train_time)
            self.next_point += self.every
        if train_time >= self.budget:
            self.train_time = train_time
            return True
        return False

    def timed_run(self):
        # compile every kernel (and build the workspaces) before the clock starts
        x, y = self.streams.batch(0)
        self.model.forward_backward(x, y)
        evaluate(self.model, self.small_val[:1])
        self.t_start = self.clock()
        self.next_point = self.every
        self.train_time = None
        self._point(0.0)
        self.run()
        if self.train_time is None:          # the step limit came first (not with the defaults)
            self.train_time = self.clock() - self.t_start - self.eval_time
        return self.train_time


def run(text, sizes=DEFAULT_SIZES, cells=DEFAULT_CELLS, *, seconds=120.0, points=12, layers=1, batch=32,
        seq_len=64, lr=2e-3, clip=5.0, val_frac=0.1, val_slice=16384, clock="cpu", match="params", seed=0,
        device="cpu", out=None, log=None, on_row=None):
    """Train every (size, cell) pair; returns (rows, curves). match="params": every cell has the
    parameter count of an lstm of hidden size `size`; "hidden": every cell has hidden size `size`.
    rows: one dict per run; curves:
    {run label: [{"seconds", "step", "val_bpc"}, ...]}."""
    bad = [c for c in cells if c not in CELLS]
    if bad:
        raise ValueError(f"unknown cell {bad[0]!r}; choose from {', '.join(CELLS)}")
    if match not in ("params", "hidden"):
        raise ValueError(f"unknown match {match!r}; choose params or hidden")
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}; choose cpu or wall")
    if not seconds > 0:
        raise ValueError("seconds must be positive")
    quiet = lambda msg: None  # noqa: E731
    rows, curves = [], {}
    with tempfile.TemporaryDirectory(prefix="seqlearn-compare-") as tmp:
        base = out or tmp
        V = len(Vocab.from_text(read_text(text)))      # the Trainer's vocabulary: every character
        for size in sizes:
            for name in cells:
                cell, variant, peep = CELLS[name]
                cfg = {"text": os.fspath(text), "cell": cell, "gru_variant": variant, "peephole": peep,
                       "layers": layers, "batch": batch, "seq_len": seq_len, "lr": lr, "clip": clip,
                       "val_frac": val_frac, "seed": seed, "device": device, "steps": 10 ** 9,
                       "eval_every": 10 ** 9, "log_every": 10 ** 9, "sample_len": 1}
                budget = count_params("lstm", V, size, layers)
                H = hidden_for_budget(cell, V, layers, budget, peep) if match == "params" else size
                label = f"{name} H={H}"
                t = _TimedRun(dict(cfg, hidden=H), os.path.join(base, f"{name}-h{H}"), force=True, echo=quiet)
                t.setup(seconds, seconds / points, val_slice, clock)
                w0 = time.perf_counter()
                if log:
                    log(f"{label}: {t.model.num_params:,} params, {seconds:g} s of training ...")
                train_time = t.timed_run()
                v = t.validate()
                row = {"cell": cell, "variant": variant if cell == "gru" else ("peephole" if peep else "-"),
                       "name": name, "size": size, "match": match, "hidden": H, "layers": layers,
                       "params": t.model.num_params,
                       "seconds": round(train_time, 2), "clock": clock,
                       "wall_seconds": round(time.perf_counter() - w0, 2), "steps": t.step,
                       "ms_per_step": round(1e3 * train_time / max(t.step, 1), 2),
                       "chars": t.step * t.streams.B * t.streams.T, "val_bpc": bpc(v),
                       "val_slice_bpc": t.curve[-1]["val_bpc"]}
                row["curve"] = t.curve
                rows.append(row)
                curves[label] = t.curve
                if log:
                    log(f"{label}: {t.step} updates ({row['ms_per_step']:.1f} ms each), val bpc {row['val_bpc']:.3f}")
                if on_row:
                    on_row(row)
    return rows, curves
