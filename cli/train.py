"""seqlearn train: truncated-BPTT training with checkpoints, evaluation and exact resume."""
import os
import re
import shutil
import sys
import time

import click

from seqlearn.model import DTYPES
from seqlearn.optim import CLIP_MODES, OPTIMIZERS, SCHEDULES
from seqlearn.train import DEFAULT_STEPS, RESUME_OVERRIDES, Trainer

from .errors import friendly
from .options import device_option, threads_option, model_options


class Duration(click.ParamType):
    """Seconds as a number, or with a unit: 90, 90s, 3m, 1.5h."""
    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(value))
        if not m or float(m.group(1)) <= 0:
            self.fail(f"{value!r} is not a positive duration (for example 90, 90s, 3m, 1.5h)", param, ctx)
        return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


class StatusLine:
    """A status line redrawn in place on a terminal (\\r), cleared before other output."""

    def __init__(self):
        self.width, self.last = 0, 0.0

    def __call__(self, text):
        if text is None:
            self.clear()
            return
        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        cols = shutil.get_terminal_size((100, 20)).columns - 1
        text = text[:cols]
        click.echo("\r" + text.ljust(self.width), nl=False)
        self.width = len(text)

    def clear(self):
        if self.width:
            click.echo("\r" + " " * self.width + "\r", nl=False)
            self.width = 0


@click.command()
@click.argument("text", required=False)
@model_options
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Dropout between recurrent layers.")
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=50, show_default=True,
              help="Time steps per batch (truncated BPTT length).")
@click.option("--batch", type=click.IntRange(min=1), default=50, show_default=True,
              help="Parallel streams per batch.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate [default: 2e-3 for adam/adamw/rmsprop, 0.05 adagrad, 0.1 sgd].")
@click.option("--momentum", type=click.FloatRange(min=0), default=0.0, show_default=True, help="SGD momentum.")
@click.option("--nesterov/--no-nesterov", default=False, show_default=True, help="Nesterov momentum (sgd).")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="L2 penalty (adamw: decoupled weight decay).")
@click.option("--clip", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Gradient clipping threshold (0: off).")
@click.option("--clip-mode", type=click.Choice(CLIP_MODES), default="norm", show_default=True,
              help="norm: rescale by the global L2 norm; value: clamp each entry.")
@click.option("--schedule", type=click.Choice(SCHEDULES), default="constant", show_default=True,
              help="step: multiply by --lr-decay each epoch from --lr-decay-after on; cosine: to 0 at the end.")
@click.option("--warmup", type=click.IntRange(min=0), default=0, show_default=True,
              help="Linear warmup steps.")
@click.option("--lr-decay", type=click.FloatRange(0, 1, min_open=True), default=0.97, show_default=True)
@click.option("--lr-decay-after", type=click.IntRange(min=0), default=10, show_default=True,
              help="First epoch whose end decays the rate (step schedule).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help=f"Total steps of the run (also when resuming) [default: {DEFAULT_STEPS} when neither "
                   "--epochs nor --max-time is given].")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Stop after this many epochs.")
@click.option("--max-time", type=Duration(), default=None,
              help="Stop after this much time in this invocation (90, 90s, 3m, 1.5h).")
@click.option("--val-frac", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Fraction of the text (its tail) held out for validation.")
@click.option("--eval-every", type=click.IntRange(min=1), default=200, show_default=True,
              help="Validate, checkpoint and print a sample every N steps.")
@click.option("--log-every", type=click.IntRange(min=1), default=10, show_default=True,
              help="Log a line and a metrics.jsonl record every N steps.")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Run directory [default: runs/<date-time>].")
@click.option("--resume", type=click.Path(), default=None,
              help="Continue the run in this directory exactly where it stopped.")
@click.option("--force", is_flag=True, help="Start over in an existing run directory.")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option()
@threads_option()
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of TEXT.")
@click.pass_context
@friendly
def train(ctx, text, resume, out, force, **opts):
    """Train a character-level language model on TEXT (default: Python's built-in documentation).

    Writes last.npz, best.npz, metrics.jsonl and config.json into the run directory, prints a
    log line every --log-every steps and a sample at every evaluation. Ctrl-C saves last.npz;
    --resume continues bit-identically.

    \b
    Examples:
      seqlearn train                                   # 2x128 LSTM on the built-in corpus
      seqlearn train input.txt --out runs/shakespeare --max-time 10m
      seqlearn train input.txt --cell gru --hidden 256 --dropout 0.2 --epochs 20
      seqlearn train input.txt --optimizer sgd --lr 0.5 --momentum 0.9 --schedule cosine --steps 5000
      seqlearn train --resume runs/shakespeare --steps 20000
    """
    progress = StatusLine() if sys.stdout.isatty() else None

    def echo(line):
        if progress is not None:
            progress.clear()
        click.echo(line)

    if resume is not None:
        given = [name for name in ["text", "out", "force", *opts]
                 if name not in RESUME_OVERRIDES
                 and ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT]
        if given:
            names = ", ".join("TEXT" if n == "text" else "--" + n.replace("_", "-") for n in given)
            raise click.UsageError(f"--resume takes the configuration from the run; drop {names}")
        overrides = {k: opts[k] for k in RESUME_OVERRIDES
                     if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
        trainer = Trainer.resume(resume, echo=echo, progress=progress, **overrides)
    else:
        if out is None:
            out = os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
        config = {"text": text, "cell": opts["cell"], "gru_variant": opts["gru_variant"],
                  "peephole": opts["peephole"], "hidden": opts["hidden"], "layers": opts["layers"],
                  "embed": opts["embed"]}
        config.update({k: opts[k] for k in (
            "dropout", "dtype", "seq_len", "batch", "optimizer", "lr", "momentum", "nesterov",
            "weight_decay", "clip", "clip_mode", "schedule", "warmup", "lr_decay", "lr_decay_after",
            "steps", "epochs", "max_time", "val_frac", "eval_every", "log_every", "seed", "device",
            "encoding")})
        trainer = Trainer(config, out, force=force, echo=echo, progress=progress)
    summary = trainer.run()
    if summary["interrupted"]:
        ctx.exit(130)
