"""seqlearn eval: loss of a trained model on any text file."""
import math

import click

from seqlearn.checkpoint import load
from seqlearn.data import DataError, Vocab, describe_unknown, eval_chunks, evaluate, read_text

from .errors import friendly
from .options import device_option, threads_option
from .sample import resolve_checkpoint


@click.command("eval")
@click.argument("run_or_checkpoint")
@click.argument("text")
@click.option("--unk", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="Characters outside the model's vocabulary: an error, or dropped from the text.")
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Parallel streams (the text is cut into this many pieces, state carried within each).")
@click.option("--seq-len", type=click.IntRange(min=1), default=100, show_default=True)
@device_option()
@threads_option()
@friendly
def eval_(run_or_checkpoint, text, unk, encoding, batch, seq_len, device):
    """Print nats, bits per character and perplexity of RUN_OR_CHECKPOINT on TEXT.

    \b
    Examples:
      seqlearn eval runs/shakespeare held_out.txt
      seqlearn eval runs/shakespeare/last.npz other.txt --unk skip
    """
    model = load(resolve_checkpoint(run_or_checkpoint), device=device)
    s = read_text(text, encoding)
    vocab = Vocab(model.vocab)
    bad = vocab.unknown(s)
    if bad and unk == "error":
        raise DataError(f"{text} holds {describe_unknown(bad)} not in the model's vocabulary "
                        f"(--unk skip drops them)")
    data = vocab.encode(s, unk="skip")
    if len(data) < 2:
        raise DataError(f"{text} has fewer than 2 characters the model knows; nothing to evaluate")
    chunks = eval_chunks(data, batch, seq_len)
    nats = evaluate(model, chunks)
    n = sum(x.size for x, _ in chunks)
    skipped = f", {len(s) - len(data):,} unknown skipped" if len(s) != len(data) else ""
    click.echo(f"nats {nats:.4f} | bpc {nats / math.log(2):.4f} | perplexity {math.exp(nats):.3f} | "
               f"{n:,} characters predicted{skipped}")
