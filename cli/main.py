"""The click group `seqlearn`; each command lives in its own module."""
import click

import seqlearn

from .gradcheck import gradcheck
from .profile import profile


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(seqlearn.__version__, prog_name="seqlearn")
def cli():
    """Train character-level LSTM/GRU language models with hand-written backward passes.

    \b
    Examples:
      seqlearn gradcheck --cell gru --gru-variant cho
    """


cli.add_command(gradcheck)
cli.add_command(profile)
