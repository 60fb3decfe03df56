"""seqlearn train: truncated-BPTT training with checkpoints, evaluation and exact resume."""
import os
import shutil
import sys
import time

import click

from seqlearn import dist
from seqlearn.config import OPTIONS, RESUME_OVERRIDES, group
from seqlearn.train import Trainer

from .errors import friendly
from .options import config_options, model_options, set_threads, threads_option


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
@config_options("dropout", "dropout_top", "dtype", "seq_len", "batch", *group("optimizer"), *group("schedule"),
                "steps", "epochs", "max_time", "val_frac", "eval_every", "log_every")
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Run directory [default: runs/<date-time>].")
@click.option("--resume", type=click.Path(), default=None,
              help="Continue the run in this directory exactly where it stopped.")
@click.option("--force", is_flag=True, help="Start over in an existing run directory.")
@click.option("--from-best", is_flag=True,
              help="With --resume: continue from best.npz (when last.npz is damaged); last.npz is kept aside.")
@config_options("seed", "device")
@threads_option()
@config_options("encoding")
@click.pass_context
@friendly
def train(ctx, text, resume, out, force, from_best, **opts):
    """Train a character-level language model on TEXT (default: Python's built-in documentation).

    Writes last.npz, best.npz, metrics.jsonl and config.json into the run directory, prints a
    log line every --log-every steps and a sample at every evaluation. Ctrl-C saves last.npz;
    --resume continues bit-identically.

    With --max-time and neither --hidden nor --layers (nor --steps, --epochs), the model is sized
    to the budget: cell, size, dropout, batch and rate from the text's size and this machine's
    measured speed, with a cosine schedule that ends with the time (options given still win).

    \b
    Examples:
      seqlearn train                                   # 2x128 LSTM on the built-in corpus
      seqlearn train input.txt --max-time 60m           # the best model an hour buys here
      seqlearn train input.txt --cell gru --hidden 256 --dropout 0.2 --epochs 20
      seqlearn train input.txt --optimizer sgd --lr 0.5 --momentum 0.9 --schedule cosine --steps 5000
      seqlearn train --resume runs/shakespeare --steps 20000
      mpiexec -n 4 seqlearn train big.txt --batch 256     # data-parallel: 64 streams per rank
    """
    world = dist.world()                            # one process, unless started by mpiexec / srun
    if world.size > 1 and not os.environ.get("SEQLEARN_NUM_THREADS"):
        set_threads(dist.default_threads(world))
    progress = StatusLine() if sys.stdout.isatty() and world.root else None

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
        trainer = Trainer.resume(resume, echo=echo, progress=progress, from_best=from_best, **overrides)
    else:
        if from_best:
            raise click.UsageError("--from-best goes with --resume RUN")
        if out is None:
            out = os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
        config = {"text": text, **opts}            # every other option is a training option
        given = {k for k in opts if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
        sized = (opts["max_time"] and not given & {"hidden", "layers", "steps", "epochs"} and world.size == 1)
        trainer = Trainer(config, out, force=force, echo=echo, progress=progress, auto=given if sized else None)
    summary = trainer.run()
    if summary["interrupted"]:
        ctx.exit(128 + summary.get("signal", 2))


_missing = {o.name for o in OPTIONS if o.cli} - {p.name for p in train.params}
assert not _missing, f"training options without a --flag on seqlearn train: {sorted(_missing)}"
