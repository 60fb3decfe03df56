"""The training loop: truncated BPTT with the state carried between batches, evaluation, checkpoints.

The options of a run are declared in config.py; its directory (config.json, last.npz, best.npz,
metrics.jsonl) is read and written by rundir.py.

`Trainer(config, out).run()` starts a run; `Trainer.resume(out).run()` continues one bit-identically:
the data position follows from the step count, the learning rate is a pure function of (step,
epoch), the samples printed at evaluations use a generator seeded from (seed, step), and everything
else is restored from last.npz.
"""
import hashlib
import json
import math
import os
import signal
import threading
import time
import warnings

import numpy as np

from . import __version__, dist, sizing, tokens
from .budget import Fit, Limit
from .checkpoint import CheckpointError
from .config import DEFAULT_STEPS, DEFAULTS, RESUME_OVERRIDES, resumed, with_defaults  # noqa: F401 - re-exported
from .data import Streams, eval_chunks, evaluate_sum, fit_batch, split
from .model import CharLM
from .optim import DEFAULT_LR, Optimizer, Schedule
from .rundir import ReadOnlyRunDir, RunDir, TrainingError, load_corpus
from .sample import Sampler

LN2 = math.log(2.0)


def bpc(nats):
    return nats / LN2


def _fmt_rate(x):
    return f"{x / 1e6:.2f}M" if x >= 1e6 else (f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}")


def _cpu_threads():
    from .cpu import _threads
    n = _threads.NUM_THREADS
    return f", {n} thread{'s' if n != 1 else ''}"


def _quiet(*args, **kwargs):
    pass


def _run_dir(out, world):
    if isinstance(out, RunDir):
        return out
    return RunDir(out) if world.root else ReadOnlyRunDir(out)


def _fmt_time(s):
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


class _Interrupt:
    """While active in the main thread, the first SIGINT (Ctrl-C) or SIGTERM (kill, Slurm's time
    limit) only sets a flag: the loop stops after the current step and saves. A second one acts as
    usual (KeyboardInterrupt, or termination)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.flag = False
        self.signum = None
        self._old = {}

    def _handler(self, signum, frame):
        self.flag, self.signum = True, signum
        old = self._old.get(signum)
        signal.signal(signum, signal.SIG_DFL if old is None else old)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)
        return False


class _Meter:
    """The steps since the last record: their number, summed loss and time (for the rate), and
    the smoothed time of one step."""

    def __init__(self, chars_per_step):
        self.chars_per_step, self.step_time = chars_per_step, 0.0
        self.restart()

    def restart(self):
        self.t, self.steps, self.loss = time.perf_counter(), 0, 0.0

    def add(self, loss, dt, first):
        self.step_time = dt if first else 0.9 * self.step_time + 0.1 * dt
        self.steps += 1
        self.loss += loss

    def take(self):
        """(mean loss, characters per second) since the last take or restart; starts a new window."""
        now = time.perf_counter()
        mean, rate = self.loss / self.steps, self.steps * self.chars_per_step / max(now - self.t, 1e-9)
        self.t, self.steps, self.loss = now, 0, 0.0
        return mean, rate


class Trainer:
    """One run: Trainer(config, out, force=False).run(), or Trainer.resume(out, **overrides).run().

    echo(str) prints a line; progress(str) redraws a status line (None: status lines are printed
    as log lines every log_every steps instead). saved: the SavedRun (rundir.py) to continue, with
    its text loaded; config is then the saved one (see Trainer.resume).

    world: the ranks of a data-parallel run (seqlearn/dist.py; default dist.world(): one process
    unless started by an MPI launcher). Rank r trains streams of its share of the batch; only rank
    0 prints, locks and writes the run directory."""

    clock = staticmethod(time.perf_counter)     # seconds; tests replace it

    def __init__(self, config, out, force=False, echo=print, progress=None, saved=None, world=None,
                 refit=False, auto=None):
        self.world = world if world is not None else dist.world()
        self._auto = auto           # a new run sized by seqlearn/sizing.py: the options the user gave
        self.sizing = None
        self._refit = refit         # resumed with a new limit: a fitted schedule spans the new one
        if not self.world.root:
            echo, progress = _quiet, None
        self.echo, self.progress = echo, progress
        self.run_dir = _run_dir(out, self.world)
        self.out = self.run_dir.out
        try:
            if saved is None and self.world.size > 1:
                self.world.together(self._prepare_tokens, config)
            self.world.together(self._build, config, force, saved)
            self.world.digest_check(self._digest())     # the ranks agree before anything is written
            if saved is None:
                self.world.together(self.run_dir.start, self._config_doc())
        except BaseException:
            self.run_dir.release()
            raise

    def _build(self, config, force, saved):
        c = with_defaults(config)
        if saved is None:
            self.run_dir.check_new(force)
            self.vocab, data, self.text_info = load_corpus(c)
        else:
            self.run_dir.acquire()
            (self.vocab, data), self.text_info = saved.corpus, saved.train["text"]
        train, val = split(data, c["val_frac"])
        if saved is None:
            if self._auto is not None:
                self._size(c, len(train), len(val))
            self._settle(c, len(train))
        elif c["dropout_top"] is None:          # a run of a version without it had none
            c["dropout_top"] = 0.0
        self.config = c
        w = self.world
        if c["batch"] % w.size:
            raise TrainingError(f"--batch {c['batch']} does not split into {w.size} equal shares of streams; "
                                f"give a multiple of {w.size} (the number of ranks)")
        self.streams = Streams(train, c["batch"], c["seq_len"], rows=w.rows(c["batch"]))
        self.has_val = len(val) > 0
        self.val_chunks = eval_chunks(val, c["batch"], c["seq_len"], part=(w.rank, w.size)) if len(val) else []
        if w.size > 1 and c["device"] == "cuda":
            dist.select_gpu(w)
        self.model = CharLM(self.vocab.chars, cell=c["cell"], hidden_size=c["hidden"], num_layers=c["layers"],
                            embed_dim=c["embed"], peephole=c["peephole"], gru_variant=c["gru_variant"],
                            dropout=c["dropout"], dtype=c["dtype"], device=c["device"], seed=c["seed"],
                            dropout_top=c["dropout_top"])
        self.opt = Optimizer(self.model, c["optimizer"], lr=c["lr"], momentum=c["momentum"],
                             nesterov=c["nesterov"], weight_decay=c["weight_decay"], clip=c["clip"],
                             clip_mode=c["clip_mode"])
        if w.size > 1:
            self.model.stream_rows = (self.streams.rows[0], self.streams.B)
        self.schedule_steps = self._schedule_steps() if saved is None else saved.train.get("schedule_steps")
        self.limit = Limit(c["max_time"], self._fit(c, saved))
        self.schedule = Schedule(c["schedule"], lr=c["lr"], warmup=c["warmup"], total_steps=self.schedule_steps,
                                 decay=c["lr_decay"], decay_after=c["lr_decay_after"], fit=self.limit.fit)
        self.step = 0
        self.state = None
        self.best_val = math.inf
        self.best_step = None       # the step of best.npz (None: unknown, or no validation yet)
        self.last_val = None
        self.elapsed_before = self.sizing["seconds"] if self.sizing else 0.0   # sizing counts in the budget
        self.interrupted = False
        self.signum = None          # the signal that stopped the run (SIGINT or SIGTERM)
        self._phase = None          # "forward" / "update" while a step is half done
        self._rng_before = None     # the model's RNG state before the step under way
        self._t0 = None             # when run() started
        self._agreed_stop = False
        if saved is None:                          # everything checked: now the directory
            self.run_dir.acquire()
            self.run_dir.check_new(force)          # again, now that no other run can start here
        else:
            self._restore(saved)

    def _prepare_tokens(self, config):
        """Over MPI ranks, the text's token file is made on first use (by rank 0; the others wait),
        so that each rank memory-maps the tokens instead of holding the text."""
        path, encoding = config.get("text"), config.get("encoding", DEFAULTS["encoding"])
        if self.world.root and path is not None and os.path.isfile(path) and tokens.fresh(path, encoding) is None:
            try:
                tokens.prepare(path, encoding)
            except tokens.WriteError:                 # an unwritable folder: each rank reads the text
                return
            self.echo(f"prepared {tokens.paths(path)[0]} (seqlearn prepare): every rank memory-maps it")

    def _digest(self):
        """What every rank must agree on before the first step (dist.MPIWorld.digest_check)."""
        d = {f"--{k.replace('_', '-')}": v for k, v in self.config.items() if k != "text"}
        d.update(text=self.text_info["sha256"], step=self.step, seqlearn=__version__)
        if self.world.size > 1:
            host = np.ascontiguousarray(self.model.backend.ops.to_host(self.model.flat))
            d["weights"] = hashlib.sha256(host.tobytes()).hexdigest()[:16]
        return d

    def close(self):
        """Give up the run directory's lock without running (run() takes it again)."""
        self.run_dir.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @classmethod
    def resume(cls, out, echo=print, progress=None, from_best=False, world=None, **overrides):
        """A Trainer restored from out/last.npz (from_best: out/best.npz, with last.npz set aside);
        overrides may set steps, epochs, max_time, eval_every, log_every and device (None leaves
        the saved value)."""
        world = world if world is not None else dist.world()
        run_dir = _run_dir(out, world)

        def read():
            if os.path.isdir(run_dir.out):
                run_dir.acquire()
            saved = run_dir.read_last("best.npz" if from_best else "last.npz")
            return resumed(saved.train["config"], overrides), saved.load_corpus()

        try:
            config, saved = world.together(read)
        except BaseException:
            run_dir.release()
            raise
        refit = any(overrides.get(k) is not None for k in ("steps", "epochs", "max_time"))
        trainer = cls(config, run_dir, echo=echo, progress=progress, saved=saved, world=world, refit=refit)
        if from_best:                 # only once best.npz has restored: a refusal moves nothing
            try:
                kept = world.together(run_dir.set_aside_last)
            except BaseException:
                trainer.close()
                raise
            trainer.echo(f"resuming from best.npz (step {trainer.step})" + (f"; last.npz kept as {kept}" if kept else ""))
        return trainer

    # ---- starting and continuing ---------------------------------------------------------------
    def _size(self, c, n_train, n_val):
        """The model the time budget buys (seqlearn/sizing.py), over the options not given."""
        t0 = self.clock()
        fixed = {k: c[k] for k in self._auto if k in sizing.SIZED or k == "eval_every"}
        timer = sizing.Timer(self.vocab.chars, device=c["device"], dtype=c["dtype"], seed=c["seed"])
        chosen, why = sizing.choose(n_train, n_val, len(self.vocab), c["max_time"], timer, fixed, c["eval_every"])
        c.update(chosen)
        spent = self.clock() - t0
        self.sizing = {"chosen": chosen, "why": why, "given": sorted(fixed), "seconds": round(spent, 3),
                       "step_ms": {f"{k[0]} {k[2]}x{k[1]} B{k[3]} T{k[4]}": round(1e3 * v, 2)
                                   for k, v in timer.times.items()}}
        d = chosen["dropout"]
        self.echo(f"sized to the budget in {spent:.1f}s: {chosen['cell']} {chosen['layers']}x{chosen['hidden']}, "
                  f"dropout {d:g}" + (f"/{chosen['dropout_top']:g} top" if chosen["dropout_top"] != d else "")
                  + f", batch {chosen['batch']}x{chosen['seq_len']}, lr {chosen['lr']:g} {chosen['schedule']}"
                  f" (warmup {chosen['warmup']}): {why}"
                  + (f"; given: {', '.join('--' + k.replace('_', '-') for k in sorted(fixed))}" if fixed else ""))

    def _settle(self, c, n_train):
        """What a new run decides once and keeps: a batch that fits the text, the optimizer's lr."""
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            c["batch"], c["seq_len"] = fit_batch(n_train, c["batch"], c["seq_len"])
        for x in w:
            self.echo(f"warning: {x.message}")
        if c["lr"] is None:
            c["lr"] = DEFAULT_LR[c["optimizer"]]
        if c["dropout_top"] is None:
            c["dropout_top"] = c["dropout"]

    def _limits(self):
        c = self.config
        return [x for x in (c["steps"], c["epochs"] and c["epochs"] * self.streams.num_batches) if x]

    def target_steps(self):
        limits = self._limits()
        if limits:
            return min(limits)
        return None if self.config["max_time"] else DEFAULT_STEPS

    def _schedule_steps(self):
        """The steps a schedule spans: the run's limit; for cosine without any limit, DEFAULT_STEPS."""
        limits = self._limits()
        if limits:
            return min(limits)
        c = self.config
        return DEFAULT_STEPS if c["schedule"] == "cosine" and c["max_time"] is None else None

    def _fit(self, c, saved):
        """The budget.Fit of a cosine schedule whose length is the time budget (--max-time without
        --steps or --epochs), or None. A resumed run keeps its Fit; resumed with a new limit, the
        rest of the schedule spans it."""
        if c["schedule"] != "cosine" or self.schedule_steps is not None:
            return None
        st = saved.train.get("schedule_fit") if saved is not None else None
        if st is None:
            return Fit(c["max_time"], start=c["warmup"]) if c["max_time"] else None
        try:
            fit = Fit.from_state(st)
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{saved.path} has a damaged schedule state ({e})") from None
        if self._refit:
            step = int(saved.train["step"])
            if c["max_time"]:
                fit.budget_s = float(saved.train.get("elapsed_s", 0.0)) + c["max_time"]
            else:                                  # new --steps / --epochs: the schedule ends there
                fit.refine(step, min(self._limits()) - step)
        return fit

    def _refine(self):
        """A fitted schedule's length from the time left and the measured step and evaluation
        times (rank 0's clock decides for every rank)."""
        if self.limit.fit is None or not self.config["max_time"]:
            return
        left = self.limit.steps_left(self.clock() - self._t0, self._elapsed(), self.config["eval_every"])
        left = self.world.from_root(left)
        if left is not None:
            self.limit.fit.refine(self.step, left)

    def _config_doc(self):
        return {"seqlearn": __version__, "config": self.config, "text": self.text_info,
                **({"sizing": self.sizing} if self.sizing else {}),
                "schedule_steps": self.schedule_steps, "vocab_size": self.model.V,
                "num_params": self.model.num_params, "batches_per_epoch": self.streams.num_batches}

    def _restore(self, saved):
        """Continue where saved stopped: weights, optimizer moments, RNG, step, losses, state."""
        m, t = self.model, saved.train
        if saved.meta["vocab"] != m.vocab:
            raise CheckpointError(f"{saved.path} has a different vocabulary from its text")
        try:
            m.load_state_dict(saved.weights)
            self.opt.load_state_arrays(saved.arrays, t["optim_steps"])
            m.rng.bit_generator.state = t["rng"]
            self.step = int(t["step"])
            self.best_val = float(t["best_val_loss"]) if t.get("best_val_loss") is not None else math.inf
            best_step = t.get("best_step")          # absent in checkpoints of older versions
            self.best_step = best_step if isinstance(best_step, int) and not isinstance(best_step, bool) else None
            self.last_val = None if t.get("val_loss") is None else float(t["val_loss"])
            self.elapsed_before = float(t.get("elapsed_s", 0.0))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{saved.path} has incomplete training state ({e})") from None
        if "state_h" in saved.arrays:
            shape = (m.L, self.streams.B, m.H)
            parts = ("state_h", "state_c") if m.cell == "lstm" else ("state_h",)
            if any(saved.arrays.get(k) is None or saved.arrays[k].shape != shape for k in parts):
                raise CheckpointError(f"{saved.path} has a carried state that is not {shape}")
            r0, r1 = self.streams.rows             # this rank's streams (all of them in one process)
            state = tuple(np.ascontiguousarray(saved.arrays[k][:, r0:r1], m.dtype) for k in parts)
            self.state = state if m.cell == "lstm" else state[0]
        self.run_dir.truncate_metrics(self.step)

    # ---- the loop -----------------------------------------------------------------------------
    def run(self):
        """Train until the step, epoch or time limit; returns a summary dict. Ctrl-C stops after
        the current step and saves last.npz (summary["interrupted"] is then True)."""
        self.run_dir.acquire()
        try:
            return self._run()
        finally:
            self.run_dir.release()

    def _run(self):
        target = self.target_steps()
        self._t0 = self.clock()
        if target is not None and self.step >= target:
            self.echo(f"the run is already at step {self.step} (target {target}); nothing to do")
            return self._summary()
        self.echo(self._header(target))
        with self.run_dir.metrics() as metrics, _Interrupt() as ctrl_c:
            try:
                self._train(target, metrics, ctrl_c)
            except KeyboardInterrupt:                  # inside a step, or a second Ctrl-C
                if self.world.size > 1:                # the ranks are at different points: end the job
                    raise
                if self._phase == "update":
                    return self._stopped_in_update()
                if self._phase == "forward":           # nothing changed but the RNG
                    self.model.rng.bit_generator.state = self._rng_before
                    self._phase = None
                ctrl_c.flag = True
            self.interrupted = self._agreed_stop if self.world.size > 1 else ctrl_c.flag
            self.signum = ctrl_c.signum
        self._end_progress()
        self.save_last(self._elapsed())
        self.echo(self._footer())
        return self._summary()

    def _train(self, target, metrics, ctrl_c):
        """Steps until the target, the time limit, Ctrl-C or after_step; logs, evaluates and
        checkpoints on the way."""
        c = self.config
        meter = _Meter(self.streams.B * self.streams.T)
        first = self.step + 1
        out_of_time = False
        mpi = self.world.size > 1
        self._agreed_stop = False       # over MPI ranks: a rank was interrupted (agreed in a step)
        while ((target is None or self.step < target) and not (self._agreed_stop if mpi else ctrl_c.flag)
               and not out_of_time):
            ts = self.clock()
            lr, loss, norm, stop = self._train_step(ctrl_c)
            dt = self.clock() - ts
            meter.add(loss, dt, first=self.step == first)
            self.limit.steps.add(dt, first=self.step == first)
            if mpi:                                    # what the ranks agreed on during the step
                self._agreed_stop, out_of_time = bool(stop & 1), bool(stop & 2)
            else:
                out_of_time = self._out_of_time()
            final = self.step == target or out_of_time
            do_eval = self.step % c["eval_every"] == 0 or final
            if do_eval or self.step % c["log_every"] == 0:
                rec = self._record(lr, norm, meter)
                self._report(rec, target)
                te = self.clock()
                v = self._evaluate(rec) if do_eval else None
                # the line before the checkpoints: a kill between them leaves a line after the
                # checkpoint's step, which resume drops, never a checkpoint without its line
                metrics.write(json.dumps(rec) + "\n")
                metrics.flush()
                if do_eval:
                    self._checkpoint(v)
                    meter.restart()                    # the rate counts training only
                    self.limit.eval_time = self.clock() - te
                self._refine()
            elif self.progress is not None:
                self.progress(self._status(loss, None, meter.step_time, target))
            if self.after_step():
                break

    def _out_of_time(self):
        return self.limit.out_of_time(self.clock() - self._t0, self._elapsed())

    def _train_step(self, ctrl_c=None):
        """Forward and backward over the next batch, clipping, update; returns (lr, loss, grad norm,
        stop). A non-finite loss or norm raises TrainingError before the update. Over MPI ranks the
        loss and gradients are averaged over the ranks and stop says what they agreed (1: a rank
        was interrupted, 2: a rank ran out of time); in one process stop is 0."""
        m, w = self.model, self.world
        epoch, i = divmod(self.step, self.streams.num_batches)
        if i == 0:
            self.state = None
        x, y = self.streams.batch(i)
        lr = self.schedule(self.step, epoch)
        self._rng_before = m.rng.bit_generator.state
        self._phase = "forward"
        stop = 0
        if w.size > 1:
            err = loss = None
            try:
                loss, state = m.forward_backward(x, y, self.state)
            except Exception as e:         # noqa: BLE001 - raised on every rank by w.step
                err = e
            wish = (1 if ctrl_c is not None and ctrl_c.flag else 0) | (2 if self._out_of_time() else 0)
            loss, stop = w.step(err, loss, wish)
            self._allreduce_grads()
        else:
            loss, state = m.forward_backward(x, y, self.state)
        if not math.isfinite(loss):
            raise self._diverged("the training loss", loss, lr)
        norm = self.opt.clip_grads()
        if not math.isfinite(norm):
            raise self._diverged("the gradient norm", norm, lr)
        self._phase = "update"
        self.opt.step(lr)
        self.state = state
        self.step += 1
        self._phase = None
        return lr, loss, norm, stop

    def _allreduce_grads(self):
        """The mean of the ranks' gradients, in place (through the host unless the MPI library
        takes device arrays: SEQLEARN_CUDA_AWARE_MPI=1)."""
        m, w = self.model, self.world
        g = m.grad_flat
        if m.backend.on_host or dist.cuda_aware():
            w.allreduce_sum(g)
        else:
            host = np.ascontiguousarray(m.backend.ops.to_host(g))
            w.allreduce_sum(host)
            g.copy_to_device(host)
        self.opt.k.scale(g, 1.0 / w.size)

    def after_step(self):
        """Called after every completed step (a hook for tests and tools); return True to end
        the run there (last.npz is written as at any other stop)."""

    def _record(self, lr, norm, meter):
        train_loss, rate = meter.take()
        return {"step": self.step, "epoch": round(self.step / self.streams.num_batches, 4),
                "train_loss": train_loss, "lr": lr, "grad_norm": norm, "chars_per_s": round(rate, 1),
                "ms_per_step": round(1e3 * meter.step_time, 3), "elapsed_s": round(self._elapsed(), 3)}

    def _evaluate(self, rec):
        """The validation loss (None without a validation split), recorded in rec."""
        v = self.validate()
        if v is not None:
            if not math.isfinite(v):
                raise self._diverged("the validation loss", v, rec["lr"])
            rec.update(val_loss=v, val_bpc=bpc(v), val_ppl=math.exp(min(v, 700)))
        return v

    def _checkpoint(self, v):
        """best.npz (a new best) before last.npz: a kill between them leaves a last.npz whose
        best_val_loss matches best.npz, or an older last.npz from which the step is redone."""
        if v is not None:
            self.last_val = v
            if v < self.best_val:
                self.best_val, self.best_step = v, self.step
                self.save_best(self._elapsed())
        self.save_last(self._elapsed())
        self._end_progress()
        if v is not None:
            self.echo(f"step {self.step} | val loss {v:.4f} | val bpc {bpc(v):.3f} | "
                      f"val ppl {math.exp(min(v, 700)):.2f}" + (" | best" if v == self.best_val else ""))
        if self.world.root:
            self.echo(f"sample at step {self.step} (temperature {self.config['sample_temperature']:g}):\n"
                  f"{self.sample_text()}\n{'-' * 40}")

    def validate(self):
        """Mean nats per character over the validation split (None without one); over MPI ranks
        each evaluates its share of the streams and the sums are added."""
        if not self.has_val:
            return None
        total, count = self.world.sums(evaluate_sum(self.model, self.val_chunks))
        return total / count if count else float("nan")

    def sample_text(self, length=None, temperature=None, seed_extra=0):
        """A sample drawn with a generator seeded from (seed, step): reproducible, and it leaves
        every other random stream untouched."""
        rng = np.random.default_rng([self.config["seed"], self.step, seed_extra])
        s = Sampler(self.model, rng=rng)
        return s.sample(length or self.config["sample_len"],
                        temperature=temperature or self.config["sample_temperature"])[0]

    def _diverged(self, what, value, lr):
        last = self.run_dir.path("last.npz")
        where = f"the last good checkpoint is {last}" if os.path.exists(last) else "no checkpoint was written"
        return TrainingError(f"{what} became {value} at step {self.step + 1} (lr {lr:.3g}); stopped, "
                             f"{where}. Try a lower --lr or clipping (--clip)")

    def _stopped_in_update(self):
        self._end_progress()
        self.echo(f"interrupted during an update at step {self.step}; last.npz not "
                  f"written (the previous one is kept)")
        self.interrupted = True
        return self._summary()

    # ---- checkpoints --------------------------------------------------------------------------
    def _meta(self, elapsed):
        return {"seed": self.config["seed"], "device": self.config["device"],
                "step": self.step, "val_loss": self.last_val,
                "train": {"config": self.config, "text": self.text_info, "step": self.step,
                          "epoch": self.step // self.streams.num_batches,
                          "optim_steps": self.opt.steps, "rng": self.model.rng.bit_generator.state,
                          "best_val_loss": None if math.isinf(self.best_val) else self.best_val,
                          "best_step": self.best_step, "val_loss": self.last_val, "elapsed_s": elapsed,
                          "schedule_steps": self.schedule_steps, "seqlearn": __version__,
                          "schedule_fit": None if self.limit.fit is None else self.limit.fit.state(),
                          "full_state": True}}

    def _arrays(self):
        """What a resume needs beside the weights: optimizer moments and the carried state of all
        B streams (over MPI ranks gathered on rank 0; None on the other ranks)."""
        state = {}
        if self.state is not None:
            to_host = self.model.backend.ops.to_host
            parts = self.state if self.model.cell == "lstm" else (self.state,)
            for name, a in zip(("state_h", "state_c"), parts):
                state[name] = self.world.gather_rows(np.array(to_host(a)))
        if not self.world.root:
            return None
        return {**self.opt.state_arrays(), **state}

    def save_last(self, elapsed):
        arrays = self._arrays()

        def write():
            if not math.isfinite(self.opt.k.sumsq(self.model.flat)):
                raise TrainingError(f"the weights are not finite at step {self.step}; last.npz not written")
            self.run_dir.save_last(self.model, self._meta(elapsed), arrays)
        self.world.together(write)

    def save_best(self, elapsed):
        """best.npz holds the whole training state too: a run can continue from it
        (--resume RUN --from-best) when last.npz is damaged."""
        arrays = self._arrays()
        self.world.together(self.run_dir.save_best, self.model, self._meta(elapsed), arrays)

    # ---- what it prints -----------------------------------------------------------------------
    def _elapsed(self):
        return self.elapsed_before + self.clock() - self._t0

    def _summary(self):
        return {"step": self.step, "val_loss": self.last_val,
                "best_val_loss": None if math.isinf(self.best_val) else self.best_val,
                "best_step": self.best_step, "elapsed_s": self._elapsed(), "interrupted": self.interrupted,
                "out": self.out,
                **({"signal": int(self.signum or signal.SIGINT)} if self.interrupted else {})}

    def _header(self, target):
        c, m, s = self.config, self.model, self.streams
        return (f"{'resuming at step ' + str(self.step) if self.step else 'training'} {m} on "
                f"{s.chars:,} characters ({s.num_batches} batches of {s.B}x{s.T} per epoch), "
                f"{len(self.vocab)} symbols, {c['optimizer']} lr {c['lr']:g}"
                + (f", until step {target}" if target else "")
                + (f", at most {_fmt_time(c['max_time'])}" if c["max_time"] else "")
                + (f", cosine fitted to {_fmt_time(self.limit.fit.budget_s)} of training"
                   if self.limit.fit is not None and c["max_time"] else "")
                + (_cpu_threads() if m.device == "cpu" else "")
                + (f" per rank, {self.world.size} ranks of {s.B // self.world.size} streams" if self.world.size > 1 else "")
                + f" -> {self.out}")

    def _footer(self):
        last = self.run_dir.path("last.npz")
        if self.interrupted:
            return f"interrupted at step {self.step}; saved {last}. Continue with: seqlearn train --resume {self.out}"
        return (f"done: step {self.step}, epoch {self.step / self.streams.num_batches:.2f}, "
                + (f"val loss {self.last_val:.4f} (bpc {bpc(self.last_val):.3f}), "
                   if self.last_val is not None else "")
                + f"{_fmt_time(self._elapsed())}; saved {last}" + self._best_line())

    def _best_line(self):
        """Where the run's best model is: best.npz, its validation loss and its step."""
        if math.isinf(self.best_val):
            return ""
        at = f" at step {self.best_step}" if self.best_step is not None else ""
        return f"; best val loss {self.best_val:.4f}{at} in {self.run_dir.path('best.npz')}"

    def _status(self, loss, rate, step_time, target):
        left = None
        if target is not None:
            left = (target - self.step) * step_time
        t_left = self.limit.time_left(self.clock() - self._t0, self._elapsed())
        if t_left is not None:
            left = t_left if left is None else min(left, t_left)
        rate = rate if rate is not None else self.streams.B * self.streams.T / max(step_time, 1e-9)
        if target:
            done = int(20 * self.step / target)
            bar = "[" + "#" * done + "." * (20 - done) + f"] {self.step}/{target} "
        else:
            bar = f"step {self.step} "
        return (f"{bar}| loss {loss:.4f} | bpc {bpc(loss):.3f} | {_fmt_rate(rate)} chars/s"
                + (f" | {_fmt_time(max(0.0, left))} left" if left is not None else ""))

    def _report(self, rec, target):
        if self.progress is not None:
            self.progress(self._status(rec["train_loss"], rec["chars_per_s"], rec["ms_per_step"] / 1e3, target))
            return
        self.echo(f"step {rec['step']} | loss {rec['train_loss']:.4f} | bpc {bpc(rec['train_loss']):.3f} | "
                  f"lr {rec['lr']:.3g} | {rec['ms_per_step']:.1f} ms | {_fmt_rate(rec['chars_per_s'])} chars/s")

    def _end_progress(self):
        if self.progress is not None:
            self.progress(None)
