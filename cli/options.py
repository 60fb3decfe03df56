"""Options shared by several commands, defined once."""
import click

from seqlearn.model import CELLS, VARIANTS


def model_options(fn=None, *, hidden=128, layers=2):
    """--cell --gru-variant --peephole --hidden --layers --embed"""
    if fn is None:
        return lambda f: model_options(f, hidden=hidden, layers=layers)
    for opt in reversed([
        click.option("--cell", type=click.Choice(CELLS), default="lstm", show_default=True,
                     help="Recurrent cell."),
        click.option("--gru-variant", type=click.Choice(VARIANTS), default="torch", show_default=True,
                     help="torch: reset after the hidden product (PyTorch/cuDNN); cho: before it (the lecture's)."),
        click.option("--peephole/--no-peephole", default=False, show_default=True,
                     help="Diagonal peephole connections (lstm only)."),
        click.option("--hidden", type=click.IntRange(min=1), default=hidden, show_default=True,
                     help="Hidden size H."),
        click.option("--layers", type=click.IntRange(min=1), default=layers, show_default=True,
                     help="Number of stacked recurrent layers L."),
        click.option("--embed", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Embedding size E (0: one-hot input)."),
    ]):
        fn = opt(fn)
    return fn


def device_option(default="cpu"):
    return click.option("--device", type=click.Choice(["cpu", "cuda", "ref"]), default=default,
                        show_default=True, help="Backend: cpu (Numba), cuda (numba.cuda GPU) or ref (numpy).")
