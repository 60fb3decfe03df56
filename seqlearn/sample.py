"""Sampling text from a CharLM: temperature, top-k, top-p (nucleus), argmax, a prime, N at once.

Sampler.generate yields one character index per sample per step, so callers can stream the text.
Three paths draw the same random stream (one rng.random(N) per pick, none for argmax) with the same
pick rule:
  - generic: the model is stepped one character at a time through `Sampler.next_logits`
    (CharLM.logits) and `pick` chooses on the host; every backend can do this;
  - cpu: seqlearn.cpu.sample_kernels.generate runs the stepping and the pick in njit, in blocks of
    BLOCK characters doubling up to BLOCK_MAX (so text still streams);
  - cuda: seqlearn.cuda.sample.generate keeps state, logits and picks on the GPU (all at once).
`Sampler(model, fast=False)` forces the generic path.
"""
import numpy as np

from . import backends
from .data import DataError, Vocab, describe_unknown


def check_options(temperature=1.0, top_k=0, top_p=1.0):
    if not temperature > 0:
        raise ValueError(f"--temperature must be positive, got {temperature} (use --argmax for greedy)")
    if top_k < 0:
        raise ValueError(f"--top-k must be 0 (off) or positive, got {top_k}")
    if not 0 < top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1], got {top_p}")


def pick(logits, rng, temperature=1.0, top_k=0, top_p=1.0, argmax=False):
    """One index per row of logits (N, V): greedy, or a draw from the tempered, truncated softmax.
    Uses exactly one rng.random(N) call per step (none for argmax), so a seed fixes the text."""
    z = np.asarray(logits, np.float64)
    if argmax:
        return z.argmax(1)
    z = z / temperature
    N, V = z.shape
    if 0 < top_k < V:
        kth = np.partition(z, V - top_k, axis=1)[:, V - top_k:V - top_k + 1]
        z = np.where(z < kth, -np.inf, z)
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    if top_p < 1.0:
        order = np.argsort(-p, axis=1, kind="stable")
        ps = np.take_along_axis(p, order, 1)
        keep_sorted = np.cumsum(ps, 1) - ps < top_p          # the smallest set reaching top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, 1)
        p = np.where(keep, p, 0.0)
        p /= p.sum(1, keepdims=True)
    u = rng.random(N)
    cdf = np.cumsum(p, 1)
    idx = (cdf < u[:, None] * cdf[:, -1:]).sum(1)
    return np.minimum(idx, V - 1)


# Characters per call of a generation kernel that works in blocks: BLOCK first, then doubling up to
# BLOCK_MAX, so text streams at once and a long run rarely pays a call's fixed cost (the numbers:
# docs/performance.md, "Generation").
BLOCK, BLOCK_MAX = 32, 1024


class Sampler:
    def __init__(self, model, seed=0, rng=None, fast=True):
        self.model = model
        self.vocab = Vocab(model.vocab)
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        backend = backends.get(model.device)
        self.fast = backend.generation if fast else None
        self.streams = backend.generation_kind == "streams"   # else: blocks of steps

    def encode_prime(self, prime):
        bad = self.vocab.unknown(prime)
        if bad:
            raise DataError(f"the prime holds {describe_unknown(bad)} not in the model's vocabulary")
        return self.vocab.encode(prime)

    def next_logits(self, x, state):
        """Scores (N, V) for the next character after inputs x (N, T), and the new state."""
        z, state = self.model.logits(x, state)
        return z[:, -1], state

    def generate(self, length, num=1, prime="", temperature=1.0, top_k=0, top_p=1.0, argmax=False):
        """Yield `length` arrays of num indices each: the characters that follow the prime.

        Without a prime the model starts after a newline when the vocabulary has one, otherwise
        from a uniformly drawn first character (which is yielded)."""
        check_options(temperature, top_k, top_p)
        if length <= 0:
            return
        kw = dict(temperature=temperature, top_k=top_k, top_p=top_p, argmax=argmax)
        if prime:
            start = np.tile(self.encode_prime(prime), (num, 1))
        elif "\n" in self.vocab.index:
            start = np.full((num, 1), self.vocab.index["\n"], np.int64)
        else:
            first = self.rng.integers(0, len(self.vocab), num)
            yield first
            length -= 1
            start = first[:, None]
        if self.fast is not None and self.streams:
            yield from self.fast.generate(self.model, start, length, self.rng, **kw)
            return
        z, state = self.next_logits(start, None)
        if self.fast is not None:                           # jitted blocks
            done, block = 0, BLOCK
            packed = self.fast.pack(self.model)        # weights packed once per run
            while done < length:
                n = min(block, length - done)
                u = np.zeros((n, num)) if argmax else self.rng.random((n, num))   # same draws for any blocks
                idx, z, state = self.fast.generate(self.model, z, state, u, packed=packed, **kw)
                yield from idx.T
                done += n
                block = min(2 * block, BLOCK_MAX)
            return
        for n in range(length):
            nxt = pick(z, self.rng, **kw)
            yield nxt
            if n + 1 < length:
                z, state = self.next_logits(nxt[:, None], state)

    def sample(self, length, num=1, prime="", **kw):
        """A list of num strings (without the prime)."""
        cols = list(self.generate(length, num, prime, **kw))
        if not cols:
            return [""] * num
        idx = np.stack(cols, 1)
        return [self.vocab.decode(row) for row in idx]
