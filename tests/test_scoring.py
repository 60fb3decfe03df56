"""Per-character log-probabilities and beam search, against direct computations."""
import itertools

import numpy as np

from seqlearn import CharLM
from seqlearn.beam import beam_search
from seqlearn.data import evaluate
from seqlearn.sample import Sampler
from seqlearn.scoring import char_logprobs, records

VOCAB = "\n abcdefgh"


def _model(cell="gru", device="ref"):
    return CharLM(VOCAB, cell=cell, hidden_size=8, num_layers=2, device=device, seed=3, dtype="float64")


def test_char_logprobs_match_the_loss_and_do_not_depend_on_chunking():
    m = _model("lstm")
    data = np.random.default_rng(0).integers(0, m.V, 37)
    lp, rows = char_logprobs(m, data, seq_len=100)
    assert lp.shape == (36,) and rows.shape == (36, m.V)
    np.testing.assert_allclose(np.exp(rows).sum(1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(lp, rows[np.arange(36), data[1:]])
    assert abs(-lp.mean() - evaluate(m, [(data[None, :-1], data[None, 1:])])) < 1e-12
    lp3, _ = char_logprobs(m, data, seq_len=3)         # state carried across 12 chunks
    np.testing.assert_allclose(lp3, lp, rtol=0, atol=1e-12)
    recs = list(records("ab", [-0.5, -2.0], offset=1))
    assert recs[0] == {"i": 1, "char": "a", "logprob": -0.5, "bits": round(0.5 / np.log(2), 6)}


def test_beam_of_one_is_greedy_decoding():
    m = _model()
    greedy = Sampler(m, fast=False).sample(12, prime="ab", argmax=True)[0]
    idx, score = beam_search(m, Sampler(m).encode_prime("ab"), 12, 1)
    assert "".join(m.vocab[i] for i in idx) == greedy
    lp, _ = char_logprobs(m, Sampler(m).encode_prime("ab" + greedy))
    assert abs(score - lp[1:].sum()) < 1e-10          # the score is the text's log-probability


def test_wide_beam_finds_the_exhaustive_optimum():
    """With K >= V^(n-1) beams nothing is pruned before the last step: the exact best string."""
    m = _model("lstm")
    start = Sampler(m).encode_prime("a")
    n = 3
    best = max(itertools.product(range(m.V), repeat=n),
               key=lambda s: char_logprobs(m, np.concatenate([start, s]))[0].sum())
    exact = char_logprobs(m, np.concatenate([start, best]))[0].sum()
    idx, score = beam_search(m, start, n, m.V ** (n - 1))
    assert tuple(idx) == best and abs(score - exact) < 1e-10
    _, narrow = beam_search(m, start, n, 2)
    assert narrow <= score + 1e-12


def test_beam_search_is_the_same_on_cpu():
    ref_idx, ref_score = beam_search(_model("gru"), [1, 2], 10, 4)
    cpu_idx, cpu_score = beam_search(_model("gru", "cpu"), [1, 2], 10, 4)
    np.testing.assert_array_equal(cpu_idx, ref_idx)
    assert abs(cpu_score - ref_score) < 1e-9
