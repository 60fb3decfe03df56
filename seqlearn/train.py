"""The training loop: truncated BPTT with the state carried between batches, evaluation, checkpoints.

The run directory (config.json, last.npz, best.npz, metrics.jsonl) and resuming from it are in
rundir.py.

`Trainer(config, out).run()` starts a run; `Trainer.resume(out).run()` continues one bit-identically:
the data position follows from the step count, the learning rate is a pure function of (step,
epoch), the samples printed at evaluations use a generator seeded from (seed, step), and everything
else is restored from last.npz.
"""
import json
import math
import os
import signal
import threading
import time
import warnings

import numpy as np

from .data import Streams, Vocab, eval_chunks, evaluate, fit_batch, split
from .model import CharLM
from .optim import DEFAULT_LR, Optimizer, Schedule
from .rundir import RESUME_OVERRIDES, RunDir, TrainingError  # noqa: F401 - RESUME_OVERRIDES re-exported (cli)
from .sample import Sampler

LN2 = math.log(2.0)
DEFAULT_STEPS = 2000          # when none of steps / epochs / max_time is given

DEFAULTS = {
    # model
    "cell": "lstm", "gru_variant": "torch", "peephole": False, "hidden": 128, "layers": 2, "embed": 0,
    "dropout": 0.0, "dtype": "float32",
    # data
    "text": None, "encoding": "utf-8", "val_frac": 0.1, "seq_len": 50, "batch": 50,
    # optimizer
    "optimizer": "adam", "lr": None, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0,
    "clip": 5.0, "clip_mode": "norm",
    # schedule
    "schedule": "constant", "warmup": 0, "lr_decay": 0.97, "lr_decay_after": 10,
    # length and reporting
    "steps": None, "epochs": None, "max_time": None, "eval_every": 200, "log_every": 10,
    "sample_len": 200, "sample_temperature": 0.8,
    "seed": 0, "device": "cpu",
}




def bpc(nats):
    return nats / LN2


def _fmt_rate(x):
    return f"{x / 1e6:.2f}M" if x >= 1e6 else (f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}")


def _cpu_threads():
    from .cpu import _threads
    n = _threads.NUM_THREADS
    return f", {n} thread{'s' if n != 1 else ''}"


def _fmt_time(s):
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def _check_config(c):
    unknown = sorted(set(c) - set(DEFAULTS))
    if unknown:
        raise TrainingError(f"unknown training options {unknown}")
    for k in ("hidden", "layers", "seq_len", "batch"):
        if not isinstance(c[k], int) or c[k] < 1:
            raise TrainingError(f"{k.replace('_', '-')} must be a positive integer, got {c[k]!r}")
    if c["embed"] < 0:
        raise TrainingError(f"embed must be 0 (one-hot) or positive, got {c['embed']}")
    for k in ("steps", "epochs", "eval_every", "log_every"):
        if c[k] is not None and c[k] < 1:
            raise TrainingError(f"{k.replace('_', '-')} must be a positive integer, got {c[k]}")
    if c["max_time"] is not None and not c["max_time"] > 0:
        raise TrainingError(f"max-time must be positive, got {c['max_time']}")
    if not 0 <= c["dropout"] < 1:
        raise TrainingError(f"dropout must be in [0, 1), got {c['dropout']}")


class _Interrupt:
    """While active in the main thread, the first SIGINT only sets a flag (the loop stops after the
    current step and saves); a second one raises KeyboardInterrupt as usual."""

    def __init__(self):
        self.flag = False
        self._old = None

    def _handler(self, signum, frame):
        self.flag = True
        signal.signal(signal.SIGINT, self._old)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


class Trainer(RunDir):
    """One run: Trainer(config, out, force=False).run(), or Trainer.resume(out, **overrides).run().

    echo(str) prints a line; progress(str) redraws a status line (None: status lines are printed
    as log lines every log_every steps instead)."""

    def __init__(self, config, out, force=False, echo=print, progress=None, _resume=None):
        self.echo, self.progress = echo, progress
        self.out = os.fspath(out)
        c = dict(DEFAULTS)
        c.update({k: v for k, v in config.items()})
        _check_config(c)
        if _resume is None:
            self._check_dir(force)
            text, self.text_info = self._load_text(c)
        else:
            text, self.text_info = _resume["text"], _resume["text_info"]
        vocab = Vocab.from_text(text)
        data = vocab.encode(text)
        train, val = split(data, c["val_frac"])
        if _resume is None:
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                c["batch"], c["seq_len"] = fit_batch(len(train), c["batch"], c["seq_len"])
            for x in w:
                self.echo(f"warning: {x.message}")
            if c["lr"] is None:
                c["lr"] = DEFAULT_LR[c["optimizer"]]
        self.config = c
        self.streams = Streams(train, c["batch"], c["seq_len"])
        self.val_chunks = eval_chunks(val, c["batch"], c["seq_len"]) if len(val) else []
        self.vocab = vocab
        self.model = CharLM(vocab.chars, cell=c["cell"], hidden_size=c["hidden"], num_layers=c["layers"],
                            embed_dim=c["embed"], peephole=c["peephole"], gru_variant=c["gru_variant"],
                            dropout=c["dropout"], dtype=c["dtype"], device=c["device"], seed=c["seed"])
        self.opt = Optimizer(self.model, c["optimizer"], lr=c["lr"], momentum=c["momentum"],
                             nesterov=c["nesterov"], weight_decay=c["weight_decay"], clip=c["clip"],
                             clip_mode=c["clip_mode"])
        nb = self.streams.num_batches
        if _resume is None:
            sched_total = min(x for x in (c["steps"], c["epochs"] and c["epochs"] * nb) if x) \
                if (c["steps"] or c["epochs"]) else None
            if c["schedule"] == "cosine" and sched_total is None and c["max_time"] is None:
                sched_total = DEFAULT_STEPS
            self.schedule_steps = sched_total
        else:
            self.schedule_steps = _resume["schedule_steps"]
        self.schedule = Schedule(c["schedule"], lr=c["lr"], warmup=c["warmup"], total_steps=self.schedule_steps,
                                 decay=c["lr_decay"], decay_after=c["lr_decay_after"])
        self.step = 0
        self.state = None
        self.best_val = math.inf
        self.last_val = None
        self.elapsed_before = 0.0
        self.interrupted = False
        self._phase = None          # "forward" / "update" while a step is half done
        if _resume is None:
            self._init_dir()
            self._write_config()
            open(self._path("metrics.jsonl"), "w").close()


    # ---- the loop -----------------------------------------------------------------------------
    def target_steps(self):
        c, nb = self.config, self.streams.num_batches
        limits = [x for x in (c["steps"], c["epochs"] and c["epochs"] * nb) if x]
        if limits:
            return min(limits)
        return None if c["max_time"] else DEFAULT_STEPS

    def sample_text(self, length=None, temperature=None, seed_extra=0):
        """A sample drawn with a generator seeded from (seed, step): reproducible, and it leaves
        every other random stream untouched."""
        rng = np.random.default_rng([self.config["seed"], self.step, seed_extra])
        s = Sampler(self.model, rng=rng)
        return s.sample(length or self.config["sample_len"],
                        temperature=temperature or self.config["sample_temperature"])[0]

    def validate(self):
        return evaluate(self.model, self.val_chunks) if self.val_chunks else None

    def _diverged(self, what, value, lr):
        saved = os.path.exists(self._path("last.npz"))
        where = f"the last good checkpoint is {self._path('last.npz')}" if saved else "no checkpoint was written"
        return TrainingError(f"{what} became {value} at step {self.step + 1} (lr {lr:.3g}); stopped, "
                             f"{where}. Try a lower --lr or clipping (--clip)")

    def after_step(self):
        """Called after every completed step (a hook for tests and tools); return True to end
        the run there (last.npz is written as at any other stop)."""

    def run(self):
        """Train until the step, epoch or time limit; returns a summary dict. Ctrl-C stops after
        the current step and saves last.npz (summary["interrupted"] is then True)."""
        c, m, opt = self.config, self.model, self.opt
        nb, B, T = self.streams.num_batches, self.streams.B, self.streams.T
        target = self.target_steps()
        t0 = time.perf_counter()
        elapsed = lambda: self.elapsed_before + time.perf_counter() - t0  # noqa: E731
        if target is not None and self.step >= target:
            self.echo(f"the run is already at step {self.step} (target {target}); nothing to do")
            return self._summary(elapsed())
        self.echo(f"{'resuming at step ' + str(self.step) if self.step else 'training'} {m} on "
                  f"{len(self.streams.x.ravel()):,} characters ({nb} batches of {B}x{T} per epoch), "
                  f"{len(self.vocab)} symbols, {c['optimizer']} lr {c['lr']:g}"
                  + (f", until step {target}" if target else "")
                  + (f", at most {_fmt_time(c['max_time'])}" if c["max_time"] else "")
                  + (_cpu_threads() if m.device == "cpu" else "")
                  + f" -> {self.out}")
        metrics = open(self._path("metrics.jsonl"), "a", encoding="utf-8")
        win_t, win_steps, win_loss = time.perf_counter(), 0, 0.0
        train_time, step_time = 0.0, 0.0
        start_step = self.step
        loss = float("nan")
        try:
            with _Interrupt() as intr:
                try:
                    out_of_time = False
                    while (target is None or self.step < target) and not intr.flag and not out_of_time:
                        ts = time.perf_counter()
                        epoch, i = divmod(self.step, nb)
                        if i == 0:
                            self.state = None
                        x, y = self.streams.batch(i)
                        lr = self.schedule(self.step, epoch)
                        rng_before = m.rng.bit_generator.state
                        self._phase = "forward"
                        try:
                            loss, state = m.forward_backward(x, y, self.state)
                            if not math.isfinite(loss):
                                raise self._diverged("the training loss", loss, lr)
                            norm = opt.clip_grads()
                            if not math.isfinite(norm):
                                raise self._diverged("the gradient norm", norm, lr)
                            self._phase = "update"
                            opt.step(lr)
                            self.state = state
                            self.step += 1
                            self._phase = None
                        except KeyboardInterrupt:
                            if self._phase == "forward":           # nothing changed but the RNG
                                m.rng.bit_generator.state = rng_before
                                self._phase = None
                            raise
                        dt = time.perf_counter() - ts
                        train_time += dt
                        step_time = dt if self.step == start_step + 1 else 0.9 * step_time + 0.1 * dt
                        win_steps += 1
                        win_loss += loss
                        out_of_time = bool(c["max_time"]) and time.perf_counter() - t0 >= c["max_time"]
                        final = self.step == target or out_of_time
                        do_log = self.step % c["log_every"] == 0 or final
                        do_eval = self.step % c["eval_every"] == 0 or final
                        rec = None
                        if do_log or do_eval:
                            now = time.perf_counter()
                            rate = win_steps * B * T / max(now - win_t, 1e-9)
                            rec = {"step": self.step, "epoch": round(self.step / nb, 4),
                                   "train_loss": win_loss / win_steps, "lr": lr, "grad_norm": norm,
                                   "chars_per_s": round(rate, 1), "ms_per_step": round(1e3 * step_time, 3),
                                   "elapsed_s": round(elapsed(), 3)}
                            win_t, win_steps, win_loss = now, 0, 0.0
                        if rec is not None:
                            self._report(rec, target, t0)
                            if do_eval:
                                self._evaluate(rec, elapsed)
                                win_t = time.perf_counter()      # the rate counts training only
                            metrics.write(json.dumps(rec) + "\n")
                            metrics.flush()
                        elif self.progress is not None:
                            self.progress(self._status(loss, None, step_time, target, t0))
                        if self.after_step():
                            break
                except KeyboardInterrupt:
                    if self._phase == "update":
                        self._end_progress()
                        self.echo(f"interrupted during an update at step {self.step}; last.npz not "
                                  f"written (the previous one is kept)")
                        self.interrupted = True
                        return self._summary(elapsed())
                    intr.flag = True
                self.interrupted = intr.flag
        finally:
            metrics.close()
        self._end_progress()
        self.save_last(elapsed())
        if self.interrupted:
            self.echo(f"interrupted at step {self.step}; saved {self._path('last.npz')}. "
                      f"Continue with: seqlearn train --resume {self.out}")
        else:
            self.echo(f"done: step {self.step}, epoch {self.step / nb:.2f}, "
                      + (f"val loss {self.last_val:.4f} (bpc {bpc(self.last_val):.3f}), "
                         if self.last_val is not None else "")
                      + f"{_fmt_time(elapsed())}; saved {self._path('last.npz')}")
        return self._summary(elapsed())

    def _summary(self, elapsed):
        return {"step": self.step, "val_loss": self.last_val,
                "best_val_loss": None if math.isinf(self.best_val) else self.best_val,
                "elapsed_s": elapsed, "interrupted": self.interrupted, "out": self.out}

    def _evaluate(self, rec, elapsed):
        v = self.validate()
        if v is not None:
            if not math.isfinite(v):
                raise self._diverged("the validation loss", v, rec["lr"])
            rec.update(val_loss=v, val_bpc=bpc(v), val_ppl=math.exp(min(v, 700)))
            self.last_val = v
            if v < self.best_val:
                self.best_val = v
                self.save_best(elapsed())
        self.save_last(elapsed())
        self._end_progress()
        if v is not None:
            self.echo(f"step {rec['step']} | val loss {v:.4f} | val bpc {bpc(v):.3f} | "
                      f"val ppl {rec['val_ppl']:.2f}" + (" | best" if v == self.best_val else ""))
        self.echo(f"sample at step {self.step} (temperature {self.config['sample_temperature']:g}):\n"
                  f"{self.sample_text()}\n{'-' * 40}")

    def _status(self, loss, rate, step_time, target, t0):
        left = None
        if target is not None:
            left = (target - self.step) * step_time
        if self.config["max_time"]:
            t_left = self.config["max_time"] - (time.perf_counter() - t0)
            left = t_left if left is None else min(left, t_left)
        rate = rate if rate is not None else self.streams.B * self.streams.T / max(step_time, 1e-9)
        bar = ""
        if target:
            done = int(20 * self.step / target)
            bar = "[" + "#" * done + "." * (20 - done) + f"] {self.step}/{target} "
        else:
            bar = f"step {self.step} "
        return (f"{bar}| loss {loss:.4f} | bpc {bpc(loss):.3f} | {_fmt_rate(rate)} chars/s"
                + (f" | {_fmt_time(max(0.0, left))} left" if left is not None else ""))

    def _report(self, rec, target, t0):
        if self.progress is not None:
            self.progress(self._status(rec["train_loss"], rec["chars_per_s"], rec["ms_per_step"] / 1e3,
                                       target, t0))
            return
        self.echo(f"step {rec['step']} | loss {rec['train_loss']:.4f} | bpc {bpc(rec['train_loss']):.3f} | "
                  f"lr {rec['lr']:.3g} | {rec['ms_per_step']:.1f} ms | {_fmt_rate(rec['chars_per_s'])} chars/s")

    def _end_progress(self):
        if self.progress is not None:
            self.progress(None)

