"""The jitted generation loop (seqlearn.cpu.sample_kernels) draws the same characters as
seqlearn.sample.pick driven by CharLM.logits one step at a time, and ends in the same state."""
import numpy as np
import pytest

import seqlearn
from seqlearn.cpu import sample_kernels as sk
from seqlearn.sample import pick

from conftest import CELL_CONFIGS, CELL_IDS

OPTIONS = [dict(), dict(temperature=0.7, top_k=4), dict(top_p=0.8), dict(argmax=True)]


@pytest.mark.parametrize("N", [1, 3, 10])    # packed tiles of 1 row; 3 rows; 5 + 5 rows
@pytest.mark.parametrize("split", [False, True], ids=["1thread", "3threads-units"])
@pytest.mark.parametrize("E", [0, 4], ids=["onehot", "embed"])
@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
def test_generate_matches_step_loop(cell, kw, E, split, N, monkeypatch):
    if split:       # three threads, each with its slice of the units, meeting at barriers
        from seqlearn.cpu import _threads, config
        monkeypatch.setattr(_threads, "NUM_THREADS", 3)
        monkeypatch.setattr(config, "UNIT_ALIGN", 1)
        monkeypatch.setattr(config, "SPLIT", "auto")
        monkeypatch.setattr(config, "SPLIT_MIN_BYTES", 0)
    m = seqlearn.CharLM("abcdefghij", cell=cell, hidden_size=6, num_layers=2, embed_dim=E, dtype="float64",
                        device="cpu", seed=1, **kw)
    length = 12
    z0, st = m.logits(np.arange(2 * N).reshape(N, 2) % m.V, None)
    z0 = z0[:, -1]
    for opts in OPTIONS:
        rng = np.random.default_rng(5)
        idx, zf, sf = sk.generate(m, z0, st, rng.random((length, N)), **opts)
        rng = np.random.default_rng(5)
        z, s, cols = z0, st, []
        for _ in range(length):
            nxt = pick(z, rng, **opts)
            cols.append(nxt)
            zz, s = m.logits(nxt[:, None], s)
            z = zz[:, -1]
        np.testing.assert_array_equal(idx, np.stack(cols, 1), err_msg=str(opts))
        np.testing.assert_allclose(zf, z, rtol=0, atol=1e-12)
        for a, b in (zip(sf, s) if cell == "lstm" else [(sf, s)]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_generate_float32_and_blocks_chain():
    m = seqlearn.CharLM("abcdefgh", cell="lstm", hidden_size=8, num_layers=2, device="cpu", seed=2)
    z0 = np.zeros((2, m.V), np.float32)
    u = np.random.default_rng(0).random((10, 2))
    idx, z, s = sk.generate(m, z0, None, u)
    packed = sk.pack(m)                     # packed once, reused by every block (as Sampler does)
    i1, z1, s1 = sk.generate(m, z0, None, u[:4], packed=packed)
    i2, z2, s2 = sk.generate(m, z1, s1, u[4:], packed=packed)
    np.testing.assert_array_equal(idx, np.concatenate([i1, i2], 1))
    np.testing.assert_array_equal(z, z2)
    assert idx.min() >= 0 and idx.max() < m.V and z.dtype == np.float32


def test_sampler_blocks_grow_without_changing_the_text(monkeypatch):
    """The cpu Sampler calls the kernel with blocks that double (BLOCK .. BLOCK_MAX): the random
    draws and so the text are those of one call, and of the generic step-by-step path."""
    import seqlearn.sample as S
    m = seqlearn.CharLM("abcdefgh\n", cell="gru", hidden_size=12, num_layers=2, device="cpu", seed=4,
                        dtype="float64")
    generic = S.Sampler(m, seed=3, fast=False).sample(150, num=2, prime="ab")
    monkeypatch.setattr(S, "BLOCK", 3)
    monkeypatch.setattr(S, "BLOCK_MAX", 16)
    calls = []
    real = sk.generate
    monkeypatch.setattr(sk, "generate", lambda *a, **k: calls.append(a[3].shape[0]) or real(*a, **k))
    grown = S.Sampler(m, seed=3).sample(150, num=2, prime="ab")
    assert calls[:4] == [3, 6, 12, 16] and sum(calls) == 150
    monkeypatch.setattr(S, "BLOCK", 1000)
    one = S.Sampler(m, seed=3).sample(150, num=2, prime="ab")
    assert grown == one == generic
