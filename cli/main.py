"""The click group `seqlearn`; each command lives in its own module."""
import click

import seqlearn

from .eval import eval_
from .experiment import experiment
from .gradcheck import gradcheck
from .inspect import inspect_
from .plot import plot
from .prepare import prepare
from .sample import sample
from .train import train
from .profile import profile


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(seqlearn.__version__, prog_name="seqlearn")
def cli():
    """Train character-level LSTM/GRU language models with hand-written backward passes.

    \b
    Examples:
      seqlearn train                                  # the built-in corpus, a few minutes
      seqlearn train input.txt --out runs/mine --max-time 10m
      seqlearn sample runs/mine --prime "The " --temperature 0.8
      seqlearn eval runs/mine held_out.txt
      seqlearn plot runs/mine
      seqlearn inspect runs/mine held_out.txt --out page.html
      seqlearn gradcheck --cell gru --gru-variant cho
      seqlearn prepare big.txt                        # a token file for big corpora and MPI
    """


cli.add_command(train)
cli.add_command(sample)
cli.add_command(eval_)
cli.add_command(plot)
cli.add_command(gradcheck)
cli.add_command(profile)
cli.add_command(experiment)
cli.add_command(inspect_)
cli.add_command(prepare)
