"""The sampler: truncation rules, determinism, primes, batches."""
import numpy as np
import pytest

from seqlearn import CharLM
from seqlearn.data import DataError
from seqlearn.sample import Sampler, check_options, pick

VOCAB = "\n abcdefgh"


def _model():
    return CharLM(VOCAB, cell="gru", hidden_size=8, num_layers=1, device="ref", seed=3)


def test_pick_argmax_and_degenerate_truncations():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 9))
    best = z.argmax(1)
    np.testing.assert_array_equal(pick(z, rng, argmax=True), best)
    np.testing.assert_array_equal(pick(z, rng, top_k=1), best)
    np.testing.assert_array_equal(pick(z, rng, top_p=1e-9), best)
    np.testing.assert_array_equal(pick(z, rng, temperature=1e-4), best)


def test_pick_frequencies_follow_the_tempered_truncated_softmax():
    z = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    rng = np.random.default_rng(1)
    draws = pick(np.repeat(z, 20000, 0), rng)
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 20000, [0.5, 0.3, 0.15, 0.05], atol=0.015)
    draws = pick(np.repeat(z, 20000, 0), rng, top_k=2)
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 20000, [0.625, 0.375, 0, 0], atol=0.015)
    draws = pick(np.repeat(z, 20000, 0), rng, top_p=0.9)   # 0.5 + 0.3 + 0.15 >= 0.9
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 20000, np.array([0.5, 0.3, 0.15, 0]) / 0.95,
                               atol=0.015)
    t = 2.0
    p = np.array([0.5, 0.3, 0.15, 0.05]) ** (1 / t)
    draws = pick(np.repeat(z, 20000, 0), rng, temperature=t)
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 20000, p / p.sum(), atol=0.015)


def test_same_seed_same_text_and_batches_are_independent_rows():
    m = _model()
    a = Sampler(m, seed=5).sample(40, num=3, prime="ab")
    b = Sampler(m, seed=5).sample(40, num=3, prime="ab")
    c = Sampler(m, seed=6).sample(40, num=3, prime="ab")
    assert a == b and a != c
    assert len(set(a)) == 3 and all(len(s) == 40 and set(s) <= set(VOCAB) for s in a)
    g = Sampler(m, seed=0).sample(20, prime="abc", argmax=True)[0]
    assert g == Sampler(m, seed=99).sample(20, prime="abc", argmax=True)[0]


def test_streamed_characters_equal_the_batch_text():
    m = _model()
    streamed = "".join(VOCAB[i[0]] for i in Sampler(m, seed=2).generate(30, prime="a", top_k=3))
    assert streamed == Sampler(m, seed=2).sample(30, prime="a", top_k=3)[0]


def test_prime_sets_the_state():
    """Sampling after a prime equals feeding the prime and then the samples one at a time."""
    m = _model()
    text = Sampler(m, seed=4).sample(10, prime="bad", argmax=True)[0]
    z, _ = m.logits(np.array([[VOCAB.index(c) for c in "bad" + text]]))
    np.testing.assert_array_equal(z[0, 2:-1].argmax(1), [VOCAB.index(c) for c in text])


def test_no_newline_in_vocab_starts_from_a_drawn_character():
    m = CharLM("xyz", cell="rnn", hidden_size=4, num_layers=1, device="ref")
    s = Sampler(m, seed=0).sample(12)[0]
    assert len(s) == 12 and set(s) <= set("xyz")


def test_prime_with_unknown_characters_names_them():
    with pytest.raises(DataError, match=r"the prime holds 2 characters \('Z' 'é'\)"):
        Sampler(_model()).sample(5, prime="abZé")


def test_bad_options():
    for kw in [{"temperature": 0}, {"temperature": -1}, {"top_k": -1}, {"top_p": 0}, {"top_p": 1.5}]:
        with pytest.raises(ValueError):
            check_options(**kw)
    assert Sampler(_model()).sample(0) == [""]


@pytest.mark.parametrize("kw", [{}, {"top_k": 3}, {"top_p": 0.8, "temperature": 0.7}, {"argmax": True}])
def test_cpu_fast_path_draws_the_generic_paths_text(kw):
    pytest.importorskip("seqlearn.cpu.sample_kernels")
    m = CharLM(VOCAB, cell="lstm", hidden_size=8, num_layers=2, device="cpu", dtype="float64", seed=3)
    fast = Sampler(m, seed=1)
    assert fast.fast is not None
    a = fast.sample(70, num=2, prime="ab", **kw)              # > one block of the kernel
    b = Sampler(m, seed=1, fast=False).sample(70, num=2, prime="ab", **kw)
    assert a == b
    streamed = "".join(VOCAB[i[0]] for i in Sampler(m, seed=1).generate(70, 1, "ab", **kw))
    assert streamed == Sampler(m, seed=1, fast=False).sample(70, prime="ab", **kw)[0]
