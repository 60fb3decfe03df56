"""Sequential equals batch: T one-step calls with carried state equal one T-step call, forward and
backward, on every backend that runs here. Truncated BPTT depends on it."""
import numpy as np
import pytest

import seqlearn
from seqlearn import backends

from conftest import CELL_CONFIGS, CELL_IDS, random_batch, random_state

DEVICES = ["ref", "cpu"]
TOL = {"float64": 1e-12, "float32": 1e-5}


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


class CellRunner:
    """Drives one backend's cell module through the documented calling convention."""

    def __init__(self, device, cell, kw, H, dtype, seed=0):
        self.mod = getattr(backends.get(device), cell)
        self.cell, self.variant, self.H, self.dtype = cell, kw.get("gru_variant"), H, dtype
        self.G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
        rng = np.random.default_rng(seed)
        r = lambda *s: (0.5 * rng.standard_normal(s)).astype(dtype)  # noqa: E731
        self.W_hh, self.b_hh = r(self.G * H, H), r(self.G * H)
        self.p = r(3, H) if kw.get("peephole") else None

    def forward(self, xg, h0, c0):
        T, B, _ = xg.shape
        ws = self.mod.workspace(T, B, self.H, self.dtype)
        if self.cell == "lstm":
            self.mod.forward(ws, xg, self.W_hh, self.b_hh, self.p, h0, c0)
            return ws, ws["hs"][T].copy(), ws["cs"][T].copy()
        if self.cell == "gru":
            self.mod.forward(ws, xg, self.W_hh, self.b_hh, self.variant, h0)
        else:
            self.mod.forward(ws, xg, self.W_hh, self.b_hh, h0)
        return ws, ws["hs"][T].copy(), None

    def backward(self, ws, xg, dhs, dhT, dcT):
        """Fresh gradient buffers; returns dict of dxg, dW_hh, db_hh, dp, dh0, dc0."""
        T, B, GH = xg.shape
        z = lambda *s: np.zeros(s, self.dtype)  # noqa: E731
        g = dict(dxg=z(T, B, GH), dW_hh=z(GH, self.H), db_hh=z(GH), dh0=z(B, self.H), dc0=z(B, self.H),
                 dp=z(3, self.H) if self.p is not None else None)
        if self.cell == "lstm":
            r = self.mod.backward(ws, xg, self.W_hh, self.b_hh, self.p, dhs, dhT, dcT, g["dxg"], g["dW_hh"],
                                  g["db_hh"], g["dp"], g["dh0"], g["dc0"])
        elif self.cell == "gru":
            r = self.mod.backward(ws, xg, self.W_hh, self.b_hh, self.variant, dhs, dhT, g["dxg"], g["dW_hh"],
                                  g["db_hh"], g["dh0"])
        else:
            r = self.mod.backward(ws, xg, self.W_hh, self.b_hh, dhs, dhT, g["dxg"], g["dW_hh"], g["db_hh"],
                                  g["dh0"])
        if r is not None:           # the backend returned the buffer it wrote dxg into (see cells.py)
            g["dxg"] = r
        return g


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
@pytest.mark.parametrize("device", DEVICES)
def test_cell_sequential_equals_batch(device, cell, kw, dtype):
    T, B, H = 5, 2, 4
    run = CellRunner(device, cell, kw, H, dtype)
    rng = np.random.default_rng(1)
    r = lambda *s: (0.5 * rng.standard_normal(s)).astype(dtype)  # noqa: E731
    xg, h0, c0 = r(T, B, run.G * H), r(B, H), r(B, H)
    dhs, dhT, dcT = r(T, B, H), r(B, H), r(B, H)
    has_c = cell == "lstm"

    ws, hT, cT = run.forward(xg, h0, c0)
    gb = run.backward(ws, xg, dhs, dhT, dcT if has_c else None)

    steps, h, c = [], h0, c0
    for t in range(T):
        x1 = np.ascontiguousarray(xg[t:t + 1])
        ws1, h, c = run.forward(x1, h, c)
        steps.append((x1, ws1))
        np.testing.assert_allclose(ws1["hs"][1], ws["hs"][t + 1], rtol=0, atol=TOL[dtype])
        if has_c:
            np.testing.assert_allclose(ws1["cs"][1], ws["cs"][t + 1], rtol=0, atol=TOL[dtype])
    assert rel(h, hT) < TOL[dtype] and (not has_c or rel(c, cT) < TOL[dtype])

    dh, dc = dhT, dcT if has_c else None
    acc = {k: np.zeros_like(gb[k]) for k in ("dW_hh", "db_hh", "dp") if gb[k] is not None}
    for t in range(T - 1, -1, -1):
        x1, ws1 = steps[t]
        g1 = run.backward(ws1, x1, np.ascontiguousarray(dhs[t:t + 1]), dh, dc)
        assert rel(g1["dxg"][0], gb["dxg"][t]) < TOL[dtype], t
        for k in acc:
            acc[k] += g1[k]
        dh = g1["dh0"].copy()
        dc = g1["dc0"].copy() if has_c else None
    assert rel(dh, gb["dh0"]) < TOL[dtype]
    if has_c:
        assert rel(dc, gb["dc0"]) < TOL[dtype]
    for k in acc:
        assert rel(acc[k], gb[k]) < 10 * TOL[dtype], k


@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
@pytest.mark.parametrize("device", DEVICES)
def test_model_sequential_equals_batch(device, cell, kw):
    """Model level, L = 2, forward: T one-step calls carrying the state give the same logits,
    final state and (averaged) loss as one T-step call. (The model API takes no gradient w.r.t.
    the final state, so the backward half is checked at cell level above.)"""
    T, B = 4, 2
    m = seqlearn.CharLM("abcdef", cell=cell, hidden_size=5, num_layers=2, dtype="float64", device=device,
                        seed=2, **kw)
    x, y = random_batch(6, B, T, seed=3)
    st0 = random_state(m, B)
    z, stT = m.logits(x, st0)
    loss, _ = m.evaluate(x, y, st0)
    st, losses = st0, []
    for t in range(T):
        z1, st = m.logits(x[:, t:t + 1], st)
        np.testing.assert_allclose(z1[:, 0], z[:, t], rtol=0, atol=1e-12)
        losses.append(m.evaluate(x[:, t:t + 1], y[:, t:t + 1], m.logits(x[:, :t], st0)[1] if t else st0)[0])
    parts = zip(st, stT) if cell == "lstm" else [(st, stT)]
    for a, b in parts:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert abs(np.mean(losses) - loss) < 1e-12
