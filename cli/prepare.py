"""seqlearn prepare: encode a text once into a memory-mapped token file (seqlearn/tokens.py)."""
import click

from seqlearn import tokens

from .errors import friendly
from .options import config_options


@click.command()
@click.argument("text", type=click.Path())
@config_options("encoding")
@friendly
def prepare(text, encoding):
    """Encode TEXT into TEXT.tokens.npy and TEXT.tokens.json, once.

    `seqlearn train TEXT` then memory-maps the tokens instead of reading the text (for a corpus
    bigger than memory, and for MPI ranks, which each read only the streams they own). The files
    are used while TEXT is unchanged (its size and modification time); under mpiexec they are made
    on first use.

    \b
    Example:
      seqlearn prepare big.txt && mpiexec -n 4 seqlearn train big.txt --batch 256
    """
    info = tokens.prepare(text, encoding)
    click.echo(f"wrote {tokens.paths(info['text'])[0]}: {info['chars']:,} characters, {len(info['vocab'])} "
               f"symbols, {info['dtype']}; seqlearn train {text} uses it while {text} is unchanged")
