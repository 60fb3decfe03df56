"""CharLM.trace: every layer's gates, cell state and hidden state from one forward pass.

The ref trace is checked against the cell equations (so the gate names are the right slices) and
against logits/evaluate; the cpu and cuda (simulator) traces equal the ref trace."""
import importlib

import numpy as np
import pytest

import seqlearn
from seqlearn.params import GATE_NAMES

from conftest import CELL_CONFIGS, CELL_IDS, random_batch, random_state

V, H, L, B, T = 7, 8, 2, 3, 4


def _model(cell, kw, device, E=0):
    return seqlearn.CharLM("abcdefg", cell=cell, hidden_size=H, num_layers=L, embed_dim=E,
                           dtype="float64", device=device, seed=5, **kw)


def _trace(cell, kw, device, E=0):
    m = _model(cell, kw, device, E)
    x, _ = random_batch(V, B, T, seed=2)
    return m, x, m.trace(x, random_state(m, B))


@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
def test_ref_trace_follows_the_cell_equations(cell, kw):
    m, x, (layers, logp, state) = _trace(cell, kw, "ref")
    st = random_state(m, B)
    h0 = st[0] if cell == "lstm" else st
    assert len(layers) == L
    for k, d in enumerate(layers):
        assert set(d) == {"h", *GATE_NAMES[cell]} | ({"c"} if cell == "lstm" else set())
        assert all(a.shape == (B, T, H) for a in d.values())
        hp = np.concatenate([h0[k][:, None], d["h"][:, :-1]], 1)         # h_{t-1}
        if cell == "lstm":
            cp = np.concatenate([st[1][k][:, None], d["c"][:, :-1]], 1)
            np.testing.assert_allclose(d["c"], d["forget"] * cp + d["input"] * d["candidate"], atol=1e-12)
            np.testing.assert_allclose(d["h"], d["output"] * np.tanh(d["c"]), atol=1e-12)
            for g in ("input", "forget", "output"):
                assert ((d[g] > 0) & (d[g] < 1)).all()
        elif cell == "gru":
            np.testing.assert_allclose(d["h"], (1 - d["update"]) * d["candidate"] + d["update"] * hp, atol=1e-12)
    np.testing.assert_allclose(np.exp(logp).sum(2), 1.0, atol=1e-12)
    z, st_l = m.logits(x, st)
    np.testing.assert_allclose(logp, z - np.log(np.exp(z).sum(2, keepdims=True)), atol=1e-12)
    for a, b in zip(np.atleast_1d(state) if cell != "lstm" else state, np.atleast_1d(st_l) if cell != "lstm" else st_l):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(layers[-1]["h"][:, -1], (state[0] if cell == "lstm" else state)[-1])


def test_trace_carries_state_across_calls():
    """Two traces with the state carried equal one trace over the whole sequence."""
    m = _model("lstm", {}, "ref")
    x, _ = random_batch(V, B, 2 * T, seed=4)
    whole, lp, _ = m.trace(x)
    a, lpa, st = m.trace(x[:, :T])
    b, lpb, _ = m.trace(x[:, T:], st)
    for k in range(L):
        np.testing.assert_allclose(np.concatenate([a[k]["c"], b[k]["c"]], 1), whole[k]["c"], atol=1e-13)
    np.testing.assert_allclose(np.concatenate([lpa, lpb], 1), lp, atol=1e-12)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
def test_backend_trace_equals_ref(cell, kw, device):
    try:
        importlib.import_module(f"seqlearn.{device}")
    except ImportError as e:
        pytest.skip(f"seqlearn.{device}: {e}")
    E = 3 if cell == "gru" else 0
    _, _, (lr, pr, sr) = _trace(cell, kw, "ref", E)
    _, _, (lc, pc, sc) = _trace(cell, kw, device, E)
    for k in range(L):
        assert set(lc[k]) == set(lr[k])
        for name in lr[k]:
            np.testing.assert_allclose(lc[k][name], lr[k][name], rtol=0, atol=1e-10, err_msg=f"layer {k} {name}")
    np.testing.assert_allclose(pc, pr, rtol=0, atol=1e-10)


def test_trace_refuses_bad_inputs():
    m = _model("gru", {}, "ref")
    with pytest.raises(ValueError, match="outside"):
        m.trace(np.full((1, 3), V))


def test_trace_arrays_are_copies():
    """A single stream's (1, T, H) arrays are not views of the model's reused workspace."""
    m = _model("gru", {}, "ref")
    a, lp, _ = m.trace(np.array([[1, 2, 3, 4]]))
    keep = {k: v.copy() for k, v in a[0].items()}
    m.trace(np.array([[5, 6, 0, 1]]))
    for k, v in keep.items():
        np.testing.assert_array_equal(a[0][k], v, err_msg=k)
