"""seqlearn inspect: a self-contained HTML page of what a model computes over a text."""
import click

from seqlearn.checkpoint import load
from seqlearn.checkpoint_file import atomic_write
from seqlearn.data import Vocab
from seqlearn.inspection import collect, render

from .errors import friendly
from .eval import known_text
from .options import check_output, device_option, threads_option
from .sample import resolve_checkpoint


@click.command("inspect")
@click.argument("run_or_checkpoint")
@click.argument("text")
@click.option("--out", "-o", type=click.Path(dir_okay=False), default="inspect.html", show_default=True,
              help="The HTML file to write.")
@click.option("--max-chars", type=click.IntRange(min=2, max=20000), default=2000, show_default=True,
              help="Use the first this many characters of TEXT (the page holds every unit's value per character).")
@click.option("--unk", type=click.Choice(["error", "skip"]), default="error", show_default=True,
              help="Characters outside the model's vocabulary: an error, or dropped from the text.")
@click.option("--encoding", default="utf-8", show_default=True)
@device_option()
@threads_option()
@friendly
def inspect_(run_or_checkpoint, text, out, max_chars, unk, encoding, device):
    """Write an HTML page of RUN_OR_CHECKPOINT reading TEXT: surprisal per character with the
    model's top predictions, any unit's cell state, hidden output or gate coloured over the text,
    the units that track the line position, quotes and words, and gate saturation.

    \b
    Examples:
      seqlearn inspect runs/shakespeare held_out.txt --out page.html
      seqlearn inspect runs/mine/best.npz notes.txt --max-chars 5000
    """
    ckpt = resolve_checkpoint(run_or_checkpoint)
    check_output(out, [text, ckpt])
    model = load(ckpt, device=device)
    vocab = Vocab(model.vocab)
    _, data = known_text(text, encoding, vocab, unk, "show")
    kept = vocab.decode(data)
    cut = kept[:max_chars]
    page = render(collect(model, cut))
    atomic_write(out, lambda f: f.write(page.encode("utf-8")), suffix=".html")
    more = f" (the first {len(cut):,} of {len(kept):,}: --max-chars)" if len(kept) > len(cut) else ""
    click.echo(f"wrote {out}: {len(cut):,} characters{more}, {len(page) / 1e6:.1f} MB")
