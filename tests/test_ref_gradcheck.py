"""The ref backend's backward passes against float64 central differences."""
import numpy as np
import pytest

import seqlearn
from seqlearn import ref
from seqlearn.cells import Cell
from seqlearn.gradcheck import check_model, numeric_grads, rel_error

from conftest import CELL_CONFIGS, CELL_IDS, random_batch, random_state

TOL = 1e-6


@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("E", [0, 3])
@pytest.mark.parametrize("with_state", [False, True])
def test_model_gradients(cell, kw, L, E, with_state):
    m = seqlearn.CharLM("abcde", cell=cell, hidden_size=4, num_layers=L, embed_dim=E,
                        dtype="float64", device="ref", seed=3, **kw)
    x, y = random_batch(5, B=2, T=4)
    state = random_state(m, 2) if with_state else None
    errs = check_model(m, x, y, state)
    assert errs and max(errs.values()) < TOL, errs
    if with_state:
        assert "state.h0" in errs and (cell != "lstm" or "state.c0" in errs)


@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
@pytest.mark.parametrize("L,dropout,dropout_top", [(1, 0.0, 0.5), (2, 0.4, 0.0), (2, 0.3, 0.6)],
                         ids=["L1-top", "L2-between", "L2-both"])
def test_model_gradients_with_dropout(cell, kw, L, dropout, dropout_top):
    """Dropout between the layers and on the top layer's output, masks held fixed: the gradients
    (state included) are those of the masked loss, and the masks really drop (the masked loss
    differs from the loss without dropout)."""
    m = seqlearn.CharLM("abcde", cell=cell, hidden_size=4, num_layers=L, dtype="float64", device="ref",
                        seed=3, dropout=dropout, dropout_top=dropout_top, **kw)
    x, y = random_batch(5, B=3, T=4)
    state = random_state(m, 3)
    errs = check_model(m, x, y, state)
    assert errs and max(errs.values()) < TOL, errs
    assert abs(m.forward_backward(x, y, state)[0] - m.evaluate(x, y, state)[0]) > 1e-6


@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
def test_cell_final_state_gradient(cell, kw):
    """A weighted sum of all outputs and of the final state: covers dhT and dcT."""
    rng = np.random.default_rng(0)
    T, B, H = 3, 2, 4
    c = Cell(ref, cell, H, kw.get("peephole", False), kw.get("gru_variant", "torch"))
    G = c.G
    xg = rng.standard_normal((T, B, G * H))
    W = rng.standard_normal((G * H, H)) * 0.5
    b = rng.standard_normal(G * H) * 0.1
    p = rng.standard_normal((3, H)) * 0.5 if kw.get("peephole") else None
    h0 = rng.standard_normal((B, H)) * 0.5
    c0 = rng.standard_normal((B, H)) * 0.5 if c.has_c else None
    wh, whT = rng.standard_normal((T, B, H)), rng.standard_normal((B, H))
    wcT = rng.standard_normal((B, H)) if c.has_c else None
    ws = c.workspace(T, B, np.float64)

    def f():
        c.forward(ws, xg, W, b, p, h0, c0)
        hT, cT = c.final(ws)
        out = (wh * ws["hs"][1:]).sum() + (whT * hT).sum()
        return out + ((wcT * cT).sum() if c.has_c else 0.0)

    f()
    dxg, dW, db = np.zeros_like(xg), np.zeros_like(W), np.zeros_like(b)
    dp = None if p is None else np.zeros_like(p)
    dh0 = np.zeros_like(h0)
    dc0 = None if c0 is None else np.zeros_like(c0)
    dxg = c.backward(ws, xg, W, b, p, wh, whT, wcT, dxg, dW, db, dp, dh0, dc0)
    pairs = [(xg, dxg), (W, dW), (b, db), (h0, dh0)] + ([(p, dp)] if p is not None else []) \
        + ([(c0, dc0)] if c0 is not None else [])
    for x, dx in pairs:
        _, est = numeric_grads(f, x)
        assert rel_error(dx, est) < TOL
