"""seqlearn sample: generate text from a trained model, streaming it to stdout."""
import json
import os

import click
import numpy as np

from seqlearn.checkpoint import CheckpointError, load
from seqlearn.data import read_text
from seqlearn.beam import beam_search
from seqlearn.sample import Sampler, check_options
from seqlearn.scoring import char_logprobs, records

from . import terminal
from .errors import friendly
from .options import device_option, threads_option


def _to_terminal():
    return terminal.is_terminal()


def resolve_checkpoint(path):
    """A run directory means its best.npz (or last.npz when there is no best yet)."""
    if os.path.isdir(path):
        for name in ("best.npz", "last.npz"):
            p = os.path.join(path, name)
            if os.path.exists(p):
                return p
        raise CheckpointError(f"{path} holds no checkpoint (best.npz or last.npz)")
    return path


@click.command()
@click.argument("run_or_checkpoint")
@click.option("--length", "-n", type=click.IntRange(min=0), default=500, show_default=True,
              help="Characters to generate (after the prime).")
@click.option("--temperature", "-t", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Softmax temperature: below 1 is more conservative, above 1 more surprising.")
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True,
              help="Sample only among the k likeliest characters (0: off).")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Sample only among the smallest set of characters whose probability reaches p.")
@click.option("--argmax", is_flag=True, help="Always take the likeliest character (greedy).")
@click.option("--prime", default="", help="Text to start from (printed first).")
@click.option("--prime-file", type=click.Path(), default=None, help="Read the prime from a file.")
@click.option("--num-samples", type=click.IntRange(min=1), default=1, show_default=True,
              help="Samples generated together as one batch, printed one after another.")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same text.")
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of --prime-file.")
@click.option("--beam", type=click.IntRange(min=1), default=None,
              help="Beam search with this many beams instead of sampling: the likeliest text found.")
@click.option("--logprobs", is_flag=True,
              help="Print each generated character with its log-probability under the model, as JSON lines.")
@device_option()
@threads_option()
@friendly
def sample(run_or_checkpoint, length, temperature, top_k, top_p, argmax, prime, prime_file, num_samples,
           seed, encoding, beam, logprobs, device):
    """Generate text from RUN_OR_CHECKPOINT (a run directory means its best.npz).

    \b
    Examples:
      seqlearn sample runs/shakespeare
      seqlearn sample runs/shakespeare --prime "ROMEO:" --temperature 0.7 --length 1000
      seqlearn sample runs/shakespeare/last.npz --top-p 0.9 --num-samples 3 --seed 7
      seqlearn sample runs/shakespeare --argmax --length 200
      seqlearn sample runs/shakespeare --beam 8 --length 100 --prime "ROMEO:"
      seqlearn sample runs/shakespeare --logprobs --length 50
    """
    if prime and prime_file:
        raise click.UsageError("give --prime or --prime-file, not both")
    check_options(temperature, top_k, top_p)
    if beam and (num_samples > 1 or argmax or top_k or top_p < 1 or temperature != 1):
        raise click.UsageError("--beam searches for the likeliest text: it takes no --num-samples, "
                               "--argmax, --top-k, --top-p or --temperature")
    if prime_file:
        prime = read_text(prime_file, encoding)
    model = load(resolve_checkpoint(run_or_checkpoint), device=device)
    sampler = Sampler(model, seed=seed)
    sampler.encode_prime(prime)                      # unknown characters: one-line error up front
    kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, argmax=argmax)
    shown = terminal.writer(_to_terminal())
    if beam or logprobs:
        texts = [_beam_text(sampler, prime, length, beam)] if beam else sampler.sample(length, num_samples, prime, **kw)
        for k, text in enumerate(texts):
            if logprobs:
                _echo_logprobs(sampler, prime, text, k if num_samples > 1 else None, shown)
            else:
                click.echo(shown(prime + text))
        return
    if num_samples == 1:                             # streamed: click.echo flushes every write
        click.echo(shown(prime), nl=False)
        for idx in sampler.generate(length, 1, prime, **kw):
            click.echo(shown(model.vocab[idx[0]]), nl=False)
        click.echo("")
    else:
        for k, text in enumerate(sampler.sample(length, num_samples, prime, **kw)):
            if k:
                click.echo("\n" + "-" * 40)
            click.echo(shown(prime + text))


def _context(sampler, prime):
    """The characters generation started from: the prime, else a newline where the vocabulary has
    one, else nothing (the first character was drawn uniformly)."""
    return prime or ("\n" if "\n" in sampler.vocab.index else "")


def _beam_text(sampler, prime, length, beam):
    ctx = _context(sampler, prime)
    if not ctx:
        raise click.UsageError("--beam needs a --prime: this model's vocabulary has no newline to start from")
    idx, _ = beam_search(sampler.model, sampler.vocab.encode(ctx), length, beam)
    return sampler.vocab.decode(idx)


def _echo_logprobs(sampler, prime, text, k, shown):
    """One JSON line per generated character: index, character, nats and bits under the model (at
    temperature 1, whatever the sampling options)."""
    ctx = _context(sampler, prime)
    full = ctx + text
    lp, _ = char_logprobs(sampler.model, sampler.vocab.encode(full)) if len(full) > 1 else (np.zeros(0), None)
    if not ctx:                          # the first character had no context: no model probability
        lp = np.concatenate([[np.nan], lp])
    for r in records(text, lp[len(lp) - len(text):]):
        if r["logprob"] != r["logprob"]:
            r["logprob"] = r["bits"] = None
        if k is not None:
            r["sample"] = k
        click.echo(shown(json.dumps(r, ensure_ascii=False)))
