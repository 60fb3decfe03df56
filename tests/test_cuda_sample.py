"""GPU sampling (seqlearn.cuda.sample.generate) draws the same characters as the host rule
seqlearn.sample.pick applied to the ref model's logits, for the same weights and seed."""
import sys

import numpy as np
import pytest

import seqlearn
from seqlearn.sample import pick

cs = pytest.importorskip("seqlearn.cuda.sample")
from seqlearn.cuda import _jit as kernels, config  # noqa: E402


@pytest.fixture(autouse=True)
def small_launches():
    saved = {k: getattr(config, k) for k in dir(config) if k.isupper()}
    old = sys.getswitchinterval()
    if kernels.SIMULATOR:
        config.TILE, config.THREADS, config.XENT_THREADS, config.REDUCE_THREADS, config.SAMPLE_THREADS = 8, 64, 8, 8, 4
        sys.setswitchinterval(5e-4)
    yield
    for k, v in saved.items():
        setattr(config, k, v)
    sys.setswitchinterval(old)


def host_generate(model, start, length, rng, **kw):
    z, state = model.logits(start, None)
    z = z[:, -1]
    out = []
    for n in range(length):
        nxt = pick(z, rng, **kw)
        out.append(nxt)
        if n + 1 < length:
            z, state = model.logits(nxt[:, None], state)
            z = z[:, -1]
    return np.stack(out)


@pytest.mark.parametrize("cell,kw", [
    ("lstm", dict(temperature=0.8, top_k=3, top_p=1.0)),
    ("gru", dict(temperature=1.3, top_k=0, top_p=0.7)),
    ("lstm", dict(argmax=True)),
], ids=["lstm-topk", "gru-topp", "lstm-argmax"])
def test_gpu_sampling_matches_host_rule(cell, kw):
    vocab = "abcdefg"
    mr = seqlearn.CharLM(vocab, cell=cell, hidden_size=8, num_layers=2, dtype="float64", device="ref", seed=5)
    mc = seqlearn.CharLM(vocab, cell=cell, hidden_size=8, num_layers=2, dtype="float64", device="cuda", seed=5)
    mc.load_state_dict(mr.state_dict())
    start = np.array([[0, 3], [2, 2], [6, 1]])
    want = host_generate(mr, start, 6, np.random.default_rng(9), **kw)
    got = cs.generate(mc, start, 6, np.random.default_rng(9), **kw)
    assert got.shape == (6, 3)
    assert np.array_equal(got, want), (got, want)
    if not kw.get("argmax"):
        assert len(set(got.ravel().tolist())) > 1      # a real draw, not a constant
