"""seqlearn plot: training and validation curves of a run as a PNG (needs matplotlib)."""
import json
import math
import os

import click

from .errors import friendly


def read_metrics(run):
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.isdir(run):
        raise click.ClickException(f"{run} is not a run directory")
    if not os.path.exists(path):
        raise click.ClickException(f"{run} has no metrics.jsonl")
    recs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    raise click.ClickException(f"{path}, line {n}: not JSON") from None
    if not recs:
        raise click.ClickException(f"{path} is empty; nothing to plot")
    return recs


@click.command()
@click.argument("run")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="PNG to write [default: RUN/curves.png].")
@friendly
def plot(run, out):
    """Write a PNG of RUN's training and validation loss (bits per character) against steps.

    \b
    Examples:
      seqlearn plot runs/shakespeare
      seqlearn plot runs/shakespeare --out curves.png
    """
    recs = read_metrics(run)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise click.ClickException("plotting needs matplotlib: pip install 'seqlearn[plot]' "
                                   "(or pip install matplotlib)") from None
    ln2 = math.log(2)
    tr = [(r["step"], r["train_loss"] / ln2) for r in recs if r.get("train_loss") is not None]
    va = [(r["step"], r["val_bpc"]) for r in recs if r.get("val_bpc") is not None]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if tr:
        ax.plot(*zip(*tr), label="train", lw=1)
    if va:
        ax.plot(*zip(*va), "o-", label="validation", ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.set_title(os.path.basename(os.path.abspath(run)))
    ax.grid(alpha=0.3)
    ax.legend()
    out = out or os.path.join(run, "curves.png")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    click.echo(f"wrote {out}")
