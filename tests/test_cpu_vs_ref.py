"""The cpu (numba) backend equals the ref (numpy) backend buffer by buffer.

Tolerances (max abs difference over max abs value of the ref buffer): float64 1e-10 (both compute
the exact functions; only rounding order differs), float32 1e-4 (the cpu kernels use rational
tanh/sigmoid approximations within a few float32 ulps)."""
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import seqlearn
import seqlearn.cpu as cpu
import seqlearn.ref as ref
from seqlearn.gradcheck import check_model

from conftest import CELL_CONFIGS, CELL_IDS, random_batch, random_state

TOL = {"float64": 1e-10, "float32": 1e-4}
DTYPES = ["float64", "float32"]


def use_threads(monkeypatch, n, split="batch"):
    """Run the cpu kernels on n threads with chunks as small as one row (or unit), so that tiny
    test sizes exercise the chunked paths (batch chunks or unit slices with barriers,
    weight-gradient row blocks)."""
    from seqlearn.cpu import _threads, config
    monkeypatch.setattr(_threads, "NUM_THREADS", n)
    monkeypatch.setattr(config, "MIN_ROWS", 1)
    monkeypatch.setattr(config, "MIN_WROWS", 1)
    monkeypatch.setattr(config, "SPLIT", split)
    monkeypatch.setattr(config, "UNIT_ALIGN", 1)


@pytest.fixture(params=[(1, "batch"), (3, "batch"), (3, "units")], ids=["1thread", "3threads", "3threads-units"])
def threads(request, monkeypatch):
    use_threads(monkeypatch, *request.param)
    return request.param[0]


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def assert_close(a, b, tol, what):
    r = rel(a, b)
    assert r < tol, f"{what}: relative difference {r:.3g} >= {tol:g}"


# ---- model level: every cell, L in {1, 2}, one-hot / embedding, zero / nonzero state ------------

@pytest.mark.parametrize("split", ["batch", "units"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nonzero_state", [False, True], ids=["zero-state", "state"])
@pytest.mark.parametrize("E", [0, 5], ids=["onehot", "embed"])
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
def test_model_cpu_equals_ref(cell, kw, L, E, nonzero_state, dtype, split, monkeypatch):
    use_threads(monkeypatch, 3, split)     # B = 3: three one-row chunks, or H = 6: three 2-unit slices
    tol = TOL[dtype]
    out = {}
    for dev in ("ref", "cpu"):
        m = seqlearn.CharLM("abcdefg", cell=cell, hidden_size=6, num_layers=L, embed_dim=E,
                            dtype=dtype, device=dev, seed=3, **kw)
        x, y = random_batch(7, B=3, T=5, seed=4)
        state = random_state(m, 3) if nonzero_state else None
        loss, grads, st = m.loss_and_grads(x, y, state)
        ev, _ = m.evaluate(x, y, state)
        lg, _ = m.logits(x, state)
        out[dev] = (loss, {k: np.array(v) for k, v in grads.items()}, st, m.dstate, ev, lg)
    (l0, g0, s0, d0, e0, z0), (l1, g1, s1, d1, e1, z1) = out["ref"], out["cpu"]
    assert abs(l1 - l0) <= tol * abs(l0)
    assert abs(e1 - e0) <= tol * abs(e0)
    assert abs(e1 - l1) <= tol * abs(l1)
    assert_close(z1, z0, tol, "logits")
    assert set(g0) == set(g1)
    for k in g0:
        assert_close(g1[k], g0[k], tol, k)
    pairs = zip(s1, s0) if cell == "lstm" else [(s1, s0)]
    for a, b in pairs:
        assert_close(a, b, tol, "final state")
    pairs = zip(d1, d0) if cell == "lstm" else [(d1, d0)]
    for a, b in pairs:
        assert_close(a, b, tol, "d initial state")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("split_k_max", [0, 1 << 30], ids=["output-rows", "rows-of-N"])
@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
def test_model_wide_wgrad_cpu_equals_ref(cell, kw, split_k_max, dtype, monkeypatch):
    """Every weight gradient of a 2-layer model with an embedding through _tn_wide's product (the
    one for gate gradients wider than 2 KiB, from H = 129 on for the LSTM), in blocks of 4 x 5
    and split over three threads both ways: the gradients equal ref's."""
    from seqlearn.cpu import config
    use_threads(monkeypatch, 3)
    monkeypatch.setattr(config, "TN_MAX_BYTES", 0)
    monkeypatch.setattr(config, "KC", 4)
    monkeypatch.setattr(config, "MC", 5)
    monkeypatch.setattr(config, "SPLIT_K_MAX", split_k_max)
    out = {}
    for dev in ("ref", "cpu"):
        m = seqlearn.CharLM("abcdefg", cell=cell, hidden_size=6, num_layers=2, embed_dim=5,
                            dtype=dtype, device=dev, seed=3, **kw)
        x, y = random_batch(7, B=3, T=5, seed=4)
        loss, grads, _ = m.loss_and_grads(x, y, random_state(m, 3))
        out[dev] = loss, {k: np.array(v) for k, v in grads.items()}
    assert abs(out["cpu"][0] - out["ref"][0]) <= TOL[dtype] * abs(out["ref"][0])
    for k, g in out["ref"][1].items():
        assert_close(out["cpu"][1][k], g, TOL[dtype], k)


@pytest.mark.parametrize("cell,kw", [("lstm", {}), ("gru", {"gru_variant": "torch"})], ids=["lstm", "gru"])
@pytest.mark.parametrize("L,top", [(3, 0.0), (3, 0.3), (1, 0.5)], ids=["L3", "L3-top", "L1-top"])
def test_training_with_dropout_cpu_equals_ref(cell, kw, L, top, monkeypatch):
    """Three training steps with dropout 0.5 between layers and `top` on the top layer's output:
    the backends draw the same masks from the same keys, so losses and gradients agree as without
    dropout."""
    use_threads(monkeypatch, 3)
    out = {}
    for dev in ("ref", "cpu"):
        m = seqlearn.CharLM("abcdefg", cell=cell, hidden_size=6, num_layers=L, dropout=0.5,
                            dtype="float64", device=dev, seed=3, dropout_top=top, **kw)
        x, y = random_batch(7, B=3, T=5, seed=4)
        losses, st = [], None
        for _ in range(3):
            loss, grads, st = m.loss_and_grads(x, y, st)
            losses.append(loss)
        out[dev] = losses, {k: np.array(v) for k, v in grads.items()}
    assert_close(out["cpu"][0], out["ref"][0], 1e-10, "losses")
    for k, g in out["ref"][1].items():
        assert_close(out["cpu"][1][k], g, 1e-10, k)


# ---- cell level: every workspace output and every gradient buffer -------------------------------

def _cell_inputs(cell, kw, T, B, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    r = lambda *s: (0.6 * rng.standard_normal(s)).astype(dtype)  # noqa: E731
    d = dict(xg=r(T, B, G * H), W_hh=r(G * H, H), b_hh=r(G * H), h0=r(B, H), c0=r(B, H),
             p=r(3, H) if kw.get("peephole") else None, dhs=r(T, B, H), dhT=r(B, H), dcT=r(B, H))
    return d, G


SHARED_WS = {"lstm": ["hs", "cs", "gates"], "gru": ["hs", "gates", "hn"], "rnn": ["hs"]}


def _run_cell(backend, cell, kw, d, G, T, B, H, dtype, with_final_grad):
    mod = getattr(backend, cell)
    ws = mod.workspace(T, B, H, dtype)
    z = lambda *s: np.zeros(s, dtype)  # noqa: E731
    g = dict(dxg=z(T, B, G * H), dW_hh=0.1 * np.ones((G * H, H), dtype), db_hh=0.1 * np.ones(G * H, dtype),
             dp=0.1 * np.ones((3, H), dtype) if d["p"] is not None else None, dh0=z(B, H), dc0=z(B, H))
    dhs = d["dhs"].copy()
    dhT = d["dhT"] if with_final_grad else None
    dcT = d["dcT"] if with_final_grad else None
    if cell == "lstm":
        mod.forward(ws, d["xg"], d["W_hh"], d["b_hh"], d["p"], d["h0"], d["c0"])
        fwd = {k: ws[k].copy() for k in SHARED_WS[cell]}
        r = mod.backward(ws, d["xg"], d["W_hh"], d["b_hh"], d["p"], dhs, dhT, dcT, g["dxg"], g["dW_hh"],
                         g["db_hh"], g["dp"], g["dh0"], g["dc0"])
    elif cell == "gru":
        v = kw["gru_variant"]
        mod.forward(ws, d["xg"], d["W_hh"], d["b_hh"], v, d["h0"])
        fwd = {k: ws[k].copy() for k in SHARED_WS[cell]}
        r = mod.backward(ws, d["xg"], d["W_hh"], d["b_hh"], v, dhs, dhT, g["dxg"], g["dW_hh"], g["db_hh"], g["dh0"])
    else:
        mod.forward(ws, d["xg"], d["W_hh"], d["b_hh"], d["h0"])
        fwd = {k: ws[k].copy() for k in SHARED_WS[cell]}
        r = mod.backward(ws, d["xg"], d["W_hh"], d["b_hh"], dhs, dhT, g["dxg"], g["dW_hh"], g["db_hh"], g["dh0"])
    np.testing.assert_array_equal(dhs, d["dhs"])          # dhs is read, never written
    if r is not None:           # the buffer the backend wrote dxg into (cells.py); dxg stays untouched
        assert not g["dxg"].any()
        g["dxg"] = r
    return fwd, g




@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
def test_cpu_forward_reads_onehot_table(cell, kw, threads):
    """The cpu forward given ops.onehot_input's table (rows read through the characters) computes
    exactly what it computes from the written projection; the projection buffer stays untouched."""
    T, B, H, V = 5, 3, 6, 7
    d, G = _cell_inputs(cell, kw, T, B, H, "float32")
    rng = np.random.default_rng(8)
    x = rng.integers(0, V, (T, B)).astype(np.int64)
    W_ih, b_ih = rng.standard_normal((G * H, V)).astype(np.float32), rng.standard_normal(G * H).astype(np.float32)
    out = np.full((T, B, G * H), 7.0, np.float32)
    oh = cpu.ops.onehot_input(W_ih, b_ih, x, out)
    assert oh.shape == (T, B, G * H)
    np.testing.assert_array_equal(out, 7.0)
    written = np.zeros((T, B, G * H), np.float32)
    cpu.ops.project_onehot(W_ih, b_ih, x, written)
    runs = []
    for xg in (oh, written):
        mod = getattr(cpu, cell)
        ws = mod.workspace(T, B, H, np.float32)
        args = {"lstm": (d["p"], d["h0"], d["c0"]), "gru": (kw.get("gru_variant"), d["h0"]), "rnn": (d["h0"],)}[cell]
        mod.forward(ws, xg, d["W_hh"], d["b_hh"], *args)
        runs.append(ws)
    for k in SHARED_WS[cell]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k], err_msg=k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("peephole", [False, True], ids=["lstm", "peephole"])
@pytest.mark.parametrize("I", [5, 40])
def test_lstm_forward_multiplies_dense_input(peephole, I, dtype, threads, monkeypatch):
    """The cpu lstm forward given fused_input's DenseInput (x_t @ W_ih.T added into each step's
    product, in column blocks) computes what it computes from the written projection
    x @ W_ih.T + b_ih (every workspace buffer), on one or three threads, batch chunks or unit
    slices; fused_input declines (None) a non-contiguous x,."""
    from seqlearn.cpu import _gemm, lstm
    monkeypatch.setattr(_gemm, "NT2_COLS", 16)      # several column blocks per gate at H = 40
    T, B, H = 5, 3, 40
    d, G = _cell_inputs("lstm", {"peephole": peephole}, T, B, H, dtype)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    W_ih, b_ih = rng.standard_normal((G * H, I)).astype(dtype), rng.standard_normal(G * H).astype(dtype)
    dense = lstm.fused_input(x, W_ih, b_ih)
    assert isinstance(dense, cpu.ops.DenseInput) and dense.shape == (T, B, G * H)
    assert lstm.fused_input(np.asfortranarray(x), W_ih, b_ih) is None
    written = (x.reshape(T * B, I) @ W_ih.T + b_ih).reshape(T, B, G * H)
    runs = []
    for xg in (dense, written):
        ws = lstm.workspace(T, B, H, dtype)
        lstm.forward(ws, xg, d["W_hh"], d["b_hh"], d["p"], d["h0"], d["c0"])
        runs.append(ws)
    for k in SHARED_WS["lstm"]:
        assert_close(runs[0][k], runs[1][k], 1e-12 if dtype == "float64" else 1e-5, k)


_LINEAR = cpu.ops.linear


@pytest.mark.parametrize("cell,E,fused", [("lstm", 0, True), ("lstm", 5, True), ("gru", 0, False)])
def test_model_writes_dense_projection_only_where_not_fused(cell, E, fused, monkeypatch):
    """A cpu lstm's layers above the first (and an embedded first layer) never call ops.linear for
    their input projection: the time loop multiplies it; the gru's still do (one call per dense
    layer)."""
    calls = []

    def counting(*args):
        calls.append(args[0].shape)
        return _LINEAR(*args)
    monkeypatch.setattr(cpu.ops, "linear", counting)
    m = seqlearn.CharLM("abcdefg", cell=cell, hidden_size=6, num_layers=2, embed_dim=E, device="cpu", seed=3)
    x, y = random_batch(7, B=3, T=5, seed=4)
    m.loss_and_grads(x, y)
    assert len(calls) == (0 if fused else 1 + (E > 0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_final_grad", [False, True], ids=["no-dhT", "dhT"])
@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
def test_cell_buffers_cpu_equal_ref(cell, kw, with_final_grad, dtype, threads):
    tol = TOL[dtype]
    T, B, H = 4, 3, 5
    d, G = _cell_inputs(cell, kw, T, B, H, dtype)
    ws0, g0 = _run_cell(ref, cell, kw, d, G, T, B, H, dtype, with_final_grad)
    ws1, g1 = _run_cell(cpu, cell, kw, d, G, T, B, H, dtype, with_final_grad)
    for k in SHARED_WS[cell]:       # as forward left them
        assert_close(ws1[k], ws0[k], tol, f"ws[{k!r}]")
    for k, v in g0.items():
        if v is None or (k == "dc0" and cell != "lstm"):
            continue
        assert_close(g1[k], v, tol, k)


# ---- head and ops ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_head_cpu_equals_ref(dtype, threads):
    tol = TOL[dtype]
    rng = np.random.default_rng(5)
    N, H, V = 11, 6, 9
    h = rng.standard_normal((N, H)).astype(dtype)
    W = rng.standard_normal((V, H)).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    y = rng.integers(0, V, N).astype(np.int64)
    outs = []
    for be in (ref, cpu):
        dh = np.zeros((N, H), dtype)
        dW, db = np.full((V, H), 0.5, dtype), np.full(V, 0.5, dtype)
        l1 = be.head.loss_backward(h, W, b, y, dh, dW, db)
        l0 = be.head.loss(h, W, b, y)
        z = np.zeros((N, V), dtype)
        be.head.logits(h, W, b, z)
        assert isinstance(l0, float) and isinstance(l1, float)
        outs.append((l0, l1, dh, dW, db, z))
    (a0, a1, *ra), (b0, b1, *rb) = outs
    assert abs(b0 - a0) <= tol * a0 and abs(b1 - a1) <= tol * a1 and abs(a0 - a1) <= tol * a0
    for name, u, v in zip(("dh", "dW", "db", "logits"), rb, ra):
        assert_close(u, v, tol, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ops_cpu_equal_ref(dtype, threads):
    tol = TOL[dtype]
    rng = np.random.default_rng(6)
    T, B, GH, I, V, D = 4, 3, 8, 5, 7, 3
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    x = rng.integers(0, V, (T, B)).astype(np.int64)
    W_ih, b_ih, dout = r(GH, V), r(GH), r(T, B, GH)
    Wl, xl = r(GH, I), r(T * B, I)
    E = r(V, D)
    res = {}
    for be in (ref, cpu):
        o = {}
        o["onehot"] = np.zeros((T, B, GH), dtype)
        be.ops.project_onehot(W_ih, b_ih, x, o["onehot"])
        o["dW_ih"], o["db_ih"] = np.ones((GH, V), dtype), np.ones(GH, dtype)
        be.ops.project_onehot_backward(dout, x, o["dW_ih"], o["db_ih"])
        o["linear"] = np.zeros((T * B, GH), dtype)
        be.ops.linear(xl, Wl, b_ih, o["linear"])
        o["dWl"], o["dbl"], o["dx"] = np.ones((GH, I), dtype), np.ones(GH, dtype), np.zeros((T * B, I), dtype)
        be.ops.linear_backward(dout.reshape(T * B, GH), xl, Wl, o["dx"], o["dWl"], o["dbl"])
        o["dWl2"], o["dbl2"] = np.ones((GH, I), dtype), np.ones(GH, dtype)
        be.ops.linear_backward(dout.reshape(T * B, GH), xl, Wl, None, o["dWl2"], o["dbl2"])
        o["lookup"] = np.zeros((T, B, D), dtype)
        be.ops.lookup(E, x, o["lookup"])
        o["dE"] = np.ones((V, D), dtype)
        be.ops.lookup_backward(dout[:, :, :D].copy(), x, o["dE"])
        o["mul"] = np.zeros((T, B, GH), dtype)
        be.ops.mul(dout, o["onehot"], o["mul"])
        res[be.name] = o
    for k in res["ref"]:
        assert_close(res["cpu"][k], res["ref"][k], tol, k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_masks_cpu_equal_ref(dtype, threads):
    """The counter-based dropout mask: cpu (split over threads at any element) and ref agree to
    the element; about keep of the elements are kept, at 1 / keep as the dtype divides; another
    key gives another mask, the same key the same one."""
    from seqlearn.cpu import ops as cops
    from seqlearn.ref import ops as rops
    masks = {}
    for key, keep in ((7, 0.7), (8, 0.7), (7, 0.25)):
        a, b = np.full((13, 9, 17), np.nan, dtype), np.full((13, 9, 17), np.nan, dtype)
        rops.dropout_mask(key, keep, a)
        whole = rops.mask_geometry(b.shape)
        cops._dropout_mask(*rops.mask_args(key, keep, dtype), b.reshape(-1), 0, 1000, *whole)   # a split at 1000
        cops._dropout_mask(*rops.mask_args(key, keep, dtype), b.reshape(-1), 1000, b.size, *whole)
        assert np.array_equal(a, b)
        c = np.empty_like(a)
        cops.dropout_mask(key, keep, c)
        assert np.array_equal(a, c)
        scale = np.dtype(dtype).type(1) / np.dtype(dtype).type(keep)
        assert set(np.unique(a)) == {0, scale}
        assert abs((a > 0).mean() - keep) < 5 * np.sqrt(keep * (1 - keep) / a.size)
        masks[key, keep] = a > 0
    assert (masks[7, 0.7] != masks[8, 0.7]).mean() > 0.3                 # another key
    assert not (masks[7, 0.25] & ~masks[7, 0.7]).any()                   # same key: nested by keep


@pytest.mark.parametrize("backend", ["ref", "cpu"])
def test_dropout_mask_of_a_share_of_the_streams_is_the_whole_masks_slice(backend, threads):
    """A rank holding streams b0:b0+b of B draws exactly that slice of the mask one process with
    all B streams draws (what makes N ranks compute one process's update, seqlearn/dist.py),
    also where the threads split the share inside a row."""
    from seqlearn import backends
    ops = backends.get(backend).ops
    T, B, H = 7, 12, 19
    whole = np.empty((T, B, H))
    ops.dropout_mask(2 ** 61 + 3, 0.6, whole)
    for b0, b in ((0, 6), (6, 6), (3, 4), (11, 1)):
        part = np.full((T, b, H), np.nan)
        ops.dropout_mask(2 ** 61 + 3, 0.6, part, (b0, B))
        assert np.array_equal(part, whole[:, b0:b0 + b])
    if backend == "cpu":
        from seqlearn.cpu import ops as cops
        from seqlearn.ref import ops as rops
        part = np.full((T, 4, H), np.nan)
        geo = rops.mask_geometry(part.shape, (5, B))
        args = rops.mask_args(2 ** 61 + 3, 0.6, part.dtype)
        for n0, n1 in ((0, 30), (30, 31), (31, part.size)):           # splits inside rows
            cops._dropout_mask(*args, part.reshape(-1), n0, n1, *geo)
        assert np.array_equal(part, whole[:, 5:9])


# ---- activations -------------------------------------------------------------------------------

def test_activations():
    from numba import njit
    from seqlearn.cpu._act import sigmoid_, tanh_

    @njit
    def both(x, t, s):
        for i in range(x.shape[0]):
            t[i] = tanh_(x[i])
            s[i] = sigmoid_(x[i])

    x64 = np.concatenate([np.linspace(-30, 30, 200001), [0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30]])
    exact_t = np.tanh(x64)
    # the reference with libm's exp, as the kernel calls it (numpy's own SIMD exp may differ by an ulp)
    exact_s = np.array([1.0 / (1.0 + math.exp(-v)) if v > -700 else 0.0 for v in x64])
    t64, s64 = np.empty_like(x64), np.empty_like(x64)
    both(x64, t64, s64)
    assert np.array_equal(t64, np.array([math.tanh(v) for v in x64]))   # float64: exact functions
    assert np.abs(s64 - exact_s).max() <= 1e-16
    x32 = x64.astype(np.float32)
    t32, s32 = np.empty_like(x32), np.empty_like(x32)
    both(x32, t32, s32)
    assert t32.dtype == np.float32
    with np.errstate(over="ignore"):
        et, es = np.tanh(x32.astype(np.float64)), 1 / (1 + np.exp(-x32.astype(np.float64)))
    assert np.abs(t32 - et).max() < 5e-7                  # a few float32 ulps of 1
    assert np.abs(s32 - es).max() < 3e-7
    assert np.all(np.abs(t32) <= 1) and np.all((s32 >= 0) & (s32 <= 1))
    small = np.abs(x32) < 1e-3
    assert np.all(np.abs(t32[small] - et[small]) <= 1e-6 * np.abs(et[small]) + 1e-38)


def test_exp():
    from numba import njit
    from seqlearn.cpu._act import exp_

    @njit
    def ex(x, out):
        for i in range(x.shape[0]):
            out[i] = exp_(x[i])

    x64 = np.concatenate([np.linspace(-700, 700, 100001), [0.0, -0.0, 1e-30, -1e-30]])
    o64 = np.empty_like(x64)
    ex(x64, o64)
    assert np.array_equal(o64, np.array([math.exp(v) for v in x64]))      # float64: math.exp
    x32 = np.concatenate([np.linspace(-87, 88, 400001), np.linspace(-1, 1, 10001)]).astype(np.float32)
    o32 = np.empty_like(x32)
    ex(x32, o32)
    e = np.exp(x32.astype(np.float64))
    assert o32.dtype == np.float32 and (np.abs(o32 - e) / e).max() < 2e-7
    lo = np.array([-87.5, -100.0, -1e30, -np.inf], np.float32)
    olo = np.empty_like(lo)
    ex(lo, olo)
    assert np.all(olo == 0)


# ---- float64 central differences through the cpu kernels ---------------------------------------

@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
@pytest.mark.parametrize("split", ["batch", "units"])
def test_cpu_gradcheck(cell, kw, split, monkeypatch):
    use_threads(monkeypatch, 2, split)
    m = seqlearn.CharLM("abcde", cell=cell, hidden_size=4, num_layers=2, embed_dim=3, dtype="float64",
                        device="cpu", seed=7, **kw)
    x, y = random_batch(5, B=2, T=3, seed=8)
    errs = check_model(m, x, y, random_state(m, 2, seed=9))
    assert "state.h0" in errs
    assert max(errs.values()) < 1e-6, errs


# ---- process-level properties -------------------------------------------------------------------

def _run(code, env=None, cwd=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=e, cwd=cwd, timeout=300)


def test_import_does_not_touch_numba_cuda():
    r = _run("""
        import sys, numpy as np, seqlearn
        m = seqlearn.CharLM("abc", cell="rnn", hidden_size=3, num_layers=1, device="cpu", dtype="float64")
        m.loss_and_grads(np.zeros((1, 2), int), np.zeros((1, 2), int))
        bad = [k for k in sys.modules if k.startswith(("numba.cuda", "numba_cuda"))]
        print("BAD", bad)
        assert not bad
    """)
    assert r.returncode == 0, r.stderr + r.stdout


def test_stacked_layers_share_one_compiled_time_loop():
    """A one-hot first layer (its table read through the characters) and a second layer (its
    projection read through an index of rows) call the same compiled forward: one signature per
    kernel, not a second compile of the time loop for either input."""
    r = _run("""
        import numpy as np, seqlearn
        from seqlearn.cpu import gru, lstm, rnn
        for cell in ("lstm", "gru", "rnn"):
            m = seqlearn.CharLM("abcdef", cell=cell, hidden_size=4, num_layers=2, device="cpu", dtype="float32")
            m.loss_and_grads(np.zeros((2, 3), int), np.ones((2, 3), int))
        print("SIGS", [len(k._forward.signatures) for k in (lstm, gru, rnn)])
    """)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "SIGS [1, 1, 1]" in r.stdout, r.stdout


def test_read_only_install_still_works(tmp_path):
    """No writable cache anywhere numba looks: the package still imports and computes (the cache
    moves to a temp dir). Made unwritable with files in the way, which holds even for root."""
    import shutil
    pkg = tmp_path / "site" / "seqlearn"
    shutil.copytree(os.path.dirname(seqlearn.__file__), pkg,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    for d in [pkg, *[p for p in pkg.rglob("*") if p.is_dir()]]:
        (d / "__pycache__").write_text("a file where numba wants a directory")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = _run("""
        import os, sys, numpy as np
        import seqlearn
        assert seqlearn.__file__.startswith(os.environ["PKG_ROOT"]), seqlearn.__file__
        from seqlearn.cpu import _jit
        m = seqlearn.CharLM("abc", cell="gru", hidden_size=3, num_layers=1, device="cpu", dtype="float64")
        loss, g, _ = m.loss_and_grads(np.zeros((1, 2), int), np.ones((1, 2), int))
        assert np.isfinite(loss)
        print("CACHE", _jit._fallback)
    """, env={"PYTHONPATH": str(tmp_path / "site"), "PKG_ROOT": str(tmp_path / "site"),
              "NUMBA_CACHE_DIR": str(blocker / "numba"), "HOME": str(blocker),
              "XDG_CACHE_HOME": str(blocker / "cache"), "TMPDIR": str(tmp), "PYTHONDONTWRITEBYTECODE": "1"},
             cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr + r.stdout
    assert "CACHE {'dir': '" + str(tmp) in r.stdout, r.stdout
    assert any(tmp.rglob("*.nbi")), "kernels should be cached in the temp dir"


def test_stale_kernels_dropped_when_any_source_changes(tmp_path):
    """A cached kernel inlines functions of other modules of the package, but numba checks only
    its own file: kernels cached under another hash of the package's sources are removed, kernels
    under the current hash are kept, unwritable directories are left alone."""
    from seqlearn.cpu import _jit
    stale, fresh, locked = tmp_path / "stale", tmp_path / "fresh", tmp_path / "missing"
    for d, digest in ((stale, "0" * 40), (fresh, _jit.source_digest())):
        d.mkdir()
        (d / _jit.STAMP).write_text(digest)
        (d / "lstm._forward-36.py311.nbi").write_text("index")
        (d / "lstm._forward-36.py311.1.nbc").write_text("code")
        (d / "other.txt").write_text("not a kernel")
    _jit.drop_stale([str(stale), str(fresh), str(locked)])
    assert sorted(p.name for p in stale.iterdir()) == sorted([_jit.STAMP, "other.txt"])
    assert (stale / _jit.STAMP).read_text() == _jit.source_digest()
    assert len(list(fresh.iterdir())) == 4
    assert not locked.exists()
    # the directory numba will use first is created and stamped before any kernel lands there,
    # so the next process keeps what this one compiles
    first = tmp_path / "new" / "cpu_x"
    _jit.drop_stale([str(first), str(locked)])
    assert (first / _jit.STAMP).read_text() == _jit.source_digest() and not locked.exists()
    (first / "k.nbi").write_text("index")
    _jit.drop_stale([str(first)])
    assert (first / "k.nbi").exists()


def test_no_writable_cache_at_all_compiles_without_cache(monkeypatch):
    from seqlearn.cpu import _jit

    def boom(*a, **k):
        raise RuntimeError("cannot cache function 'f': no locator available for file 'x'")

    def no_dir():
        raise OSError("not writable")

    real = _jit.numba.njit
    calls = []

    def fake_njit(**opts):
        calls.append(opts["cache"])
        return boom if opts["cache"] else real(**opts)

    monkeypatch.setattr(_jit.numba, "njit", fake_njit)
    monkeypatch.setattr(_jit, "_temp_cache_dir", no_dir)
    monkeypatch.setattr(_jit, "_fallback", {"dir": None, "disabled": False})
    f = _jit.jit(lambda a: a + 1)
    assert f(1) == 2 and calls == [True, False]
