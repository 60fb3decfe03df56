"""Options shared by several commands, defined once."""
import os
import sys

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


def _set_threads(ctx, param, value):
    if value is not None:
        os.environ["SEQLEARN_NUM_THREADS"] = str(value)       # read when seqlearn.cpu is imported
        threads = sys.modules.get("seqlearn.cpu._threads")
        if threads is not None:                               # already imported: set it now
            threads.set_num_threads(value)
    return value


def threads_option():
    """--threads N: worker threads of the cpu backend (like OMP_NUM_THREADS / torch.set_num_threads)."""
    return click.option("--threads", type=click.IntRange(min=1), default=None, expose_value=False,
                        callback=_set_threads,
                        help="Threads of the cpu backend [default: the CPUs this process may use, or "
                             "SEQLEARN_NUM_THREADS].")
