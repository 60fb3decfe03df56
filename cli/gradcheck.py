"""seqlearn gradcheck: central differences against the hand-written backward pass."""
import click
import numpy as np

from seqlearn import CharLM
from seqlearn.gradcheck import check_model

from .errors import friendly
from .options import device_option, model_options


@click.command()
@model_options(hidden=8, layers=2)
@click.option("--vocab-size", type=click.IntRange(min=2), default=6, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--tol", type=float, default=1e-6, show_default=True, help="Largest relative error that passes.")
@click.option("--max-entries", type=click.IntRange(min=1), default=64, show_default=True,
              help="Entries checked per parameter (a random subset when larger).")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Dropout between layers (the masks are held fixed across the differences).")
@click.option("--dropout-top", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Dropout on the top layer's output.")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option()
@friendly
def gradcheck(cell, gru_variant, peephole, hidden, layers, embed, vocab_size, batch, seq_len, tol,
              max_entries, dropout, dropout_top, seed, device):
    """Check the backward pass of the chosen cell on the chosen device in float64.

    Prints the relative error per parameter and exits non-zero when any exceeds --tol.

    \b
    Examples:
      seqlearn gradcheck
      seqlearn gradcheck --cell gru --gru-variant cho --layers 2 --embed 4
      seqlearn gradcheck --cell lstm --peephole --device ref
      seqlearn gradcheck --dropout 0.3 --dropout-top 0.5
    """
    vocab = "".join(chr(ord("a") + i) for i in range(vocab_size)) if vocab_size <= 26 else \
        "".join(chr(0x100 + i) for i in range(vocab_size))
    m = CharLM(vocab, cell=cell, hidden_size=hidden, num_layers=layers, embed_dim=embed,
               peephole=peephole, gru_variant=gru_variant, dtype="float64", device=device, seed=seed,
               dropout=dropout, dropout_top=dropout_top)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab_size, (batch, seq_len))
    y = rng.integers(0, vocab_size, (batch, seq_len))
    state = m.zero_state(batch)
    state = tuple(0.5 * rng.standard_normal(s.shape) for s in state) if cell == "lstm" \
        else 0.5 * rng.standard_normal(state.shape)
    click.echo(f"gradcheck {m}  B={batch} T={seq_len}")
    errs = check_model(m, x, y, state, max_entries=max_entries, seed=seed)
    worst = max(errs.values())
    for name, e in errs.items():
        click.echo(f"  {name:<24} {e:.2e}  {'ok' if e < tol else 'FAIL'}")
    click.echo(f"max relative error {worst:.2e} ({'pass' if worst < tol else 'FAIL'}, tol {tol:g})")
    if not worst < tol:
        raise SystemExit(1)
