"""seqlearn eval: loss of a trained model on any text file."""
import math

import click

from seqlearn.checkpoint import load
from seqlearn.data import DataError, Vocab, describe_unknown, eval_chunks, evaluate, read_text
from seqlearn.scoring import char_logprobs, records, write_jsonl

from . import terminal
from .errors import friendly
from .options import check_output, device_option, threads_option
from .sample import resolve_checkpoint


def known_text(path, encoding, vocab, unk, what):
    """(the file's text, its indices under vocab): characters outside the vocabulary are an error
    naming them, or dropped (unk "skip"); fewer than 2 known characters is an error."""
    s = read_text(path, encoding)
    bad = vocab.unknown(s)
    if bad and unk == "error":
        raise DataError(f"{path} holds {describe_unknown(bad)} not in the model's vocabulary "
                        f"(--unk skip drops them)")
    data = vocab.encode(s, unk="skip")
    if len(data) < 2:
        raise DataError(f"{path} has fewer than 2 characters the model knows; nothing to {what}")
    return s, data


@click.command("eval")
@click.argument("run_or_checkpoint")
@click.argument("text")
@click.option("--unk", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="Characters outside the model's vocabulary: an error, or dropped from the text.")
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Parallel streams (the text is cut into this many pieces, state carried within each).")
@click.option("--seq-len", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--per-char", "per_char", type=click.Path(dir_okay=False), default=None,
              help="Write each character's log-probability as JSON lines to this file (- for stdout); "
                   "the text is then read as one stream from its first character.")
@device_option()
@threads_option()
@friendly
def eval_(run_or_checkpoint, text, unk, encoding, batch, seq_len, per_char, device):
    """Print nats, bits per character and perplexity of RUN_OR_CHECKPOINT on TEXT.

    \b
    Examples:
      seqlearn eval runs/shakespeare held_out.txt
      seqlearn eval runs/shakespeare/last.npz other.txt --unk skip
      seqlearn eval runs/shakespeare held_out.txt --per-char scores.jsonl
    """
    ckpt = resolve_checkpoint(run_or_checkpoint)
    if per_char not in (None, "-"):
        check_output(per_char, [text, ckpt])
    model = load(ckpt, device=device)
    vocab = Vocab(model.vocab)
    s, data = known_text(text, encoding, vocab, unk, "evaluate")
    if per_char:
        lp, _ = char_logprobs(model, data, seq_len)
        shown = terminal.writer(terminal.is_terminal())      # no terminal escapes from the text
        write_jsonl(per_char, records(vocab.decode(data[1:]), lp, 1), lambda m, nl: click.echo(shown(m), nl=nl))
        nats, n = -float(lp.mean()), len(lp)
    else:
        chunks = eval_chunks(data, batch, seq_len)
        nats = evaluate(model, chunks)
        n = sum(x.size for x, _ in chunks)
    skipped = f", {len(s) - len(data):,} unknown skipped" if len(s) != len(data) else ""
    echo = click.echo if per_char != "-" else lambda m: click.echo(m, err=True)
    echo(f"nats {nats:.4f} | bpc {nats / math.log(2):.4f} | perplexity {math.exp(nats):.3f} | "
               f"{n:,} characters predicted{skipped}")
