"""The cuda backend against the ref oracle, kernel by kernel and for whole training steps.

Runs under numba's CUDA simulator (the root conftest sets NUMBA_ENABLE_CUDASIM=1) with tiny sizes
and shrunken launch sizes so that every kernel still runs on several blocks; on a real GPU
(NUMBA_ENABLE_CUDASIM=0) the same tests run with the production launch sizes.

The persistent (grid-synchronised) kernels: in the simulator a cooperative grid is correct only
with ONE block, so their tests there use H <= 8 (all units in one block, J = 8); on a real GPU the
grid has as many blocks as the fit chooses.

Tolerances (docs/backends.md): float64 1e-10 relative to the largest entry, float32 1e-4.
"""
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

from seqlearn import ref  # noqa: E402
from seqlearn.cells import Cell  # noqa: E402

from conftest import CELL_CONFIGS, CELL_IDS, random_batch, random_state  # noqa: E402

cudamod = pytest.importorskip("seqlearn.cuda")
from seqlearn.cuda import config, head, ops, persist  # noqa: E402
from seqlearn.cuda import optim as cuda_optim  # noqa: E402
from seqlearn.cuda._jit import SIMULATOR as SIM  # noqa: E402
TOL = {np.float64: 1e-10, np.float32: 1e-4}


@pytest.fixture(autouse=True)
def small_launches():
    """Small blocks so tiny problems span several blocks (simulator only); restore afterwards."""
    saved = {k: getattr(config, k) for k in dir(config) if k.isupper()}
    old_switch = sys.getswitchinterval()
    if SIM:
        config.TILE, config.THREADS, config.XENT_THREADS, config.REDUCE_THREADS = 4, 32, 8, 8
        config.SAMPLE_THREADS = 8
        config.MM_TILE, config.MM_TT, config.MM_BK = 8, 2, 4
        config.MM_BIG_TILE, config.MM_BIG_TT, config.MM_BIG_BK = 16, 4, 4
        config.COLSUM_ROWS = 2
        config.MM_WG_TILES = ((16, 4, 4), (8, 2, 4))   # the weight-gradient product (default on),
        config.MM_SMS, config.MM_SPLITK_MIN_K = 4, 2    # split over K as on a device
        sys.setswitchinterval(5e-4)   # simulator barriers ~7x cheaper
    yield
    for k, v in saved.items():
        setattr(config, k, v)
    sys.setswitchinterval(old_switch)


def D(a):
    return ops.to_device(np.ascontiguousarray(a))


def H_(a):
    return ops.to_host(a)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)) if b.size else 0.0


# ---- ops -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["tile", "register-tiled", "register-tiled-big"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_all_transposes(dtype, kind):
    """The product kernels: the TILE x TILE one (2 x 3 tiles of 4 in the simulator) and the two
    register-tiled ones (simulator: tiles of 8 outputs, 2 x 2 per thread, k in steps of 4; and
    tiles of 16, 4 x 4 per thread with the generated epilogue: partial tiles on every edge)."""
    config.MM_MIN = 10 ** 9 if kind == "tile" else 1
    config.MM_BIG_MIN_BLOCKS = 1 if kind == "register-tiled-big" else 10 ** 9
    rng = np.random.default_rng(0)
    M, N, K = 7, 9, 6
    bias = rng.standard_normal(N).astype(dtype)
    for ta in (0, 1):
        for tb in (0, 1):
            A = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
            B = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
            C0 = rng.standard_normal((M, N)).astype(dtype)
            want = (A.T if ta else A) @ (B.T if tb else B)
            c = D(C0)
            ops.matmul(D(A), D(B), c, ta=ta, tb=tb)
            assert rel(H_(c), want) < TOL[dtype]
            c = D(C0)
            ops.matmul(D(A), D(B), c, bias=D(bias), ta=ta, tb=tb, accumulate=True)
            assert rel(H_(c), C0 + want + bias) < TOL[dtype]


@pytest.mark.skipif(not SIM, reason="on a device benchmarks/gpu_bench.py checks every variant at full size "
                    "against numpy (compiling the 128 x 128 kernel here would take the tests' time budget)")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weight_gradient_product(dtype):
    """kernels.build_matmul_wg (config.MM_WG): C [+]= A.T @ B with the bias gradient A.sum(0)
    fused, one K slice and split-K (partials + fixed-order pass, and atomics), register tiles of
    2 x 2 and 4 x 4 per thread, edge tiles on both sides and K slices that end inside a k tile."""
    config.MM_WG = True
    config.MM_WG_TILES = ((16, 4, 4), (8, 2, 4))
    config.MM_SMS, config.MM_SPLITK_MIN_K = 4, 4
    rng = np.random.default_rng(7)
    for M, N, Kd in ((13, 10, 23), (20, 17, 9)):
        A = rng.standard_normal((Kd, M)).astype(dtype)
        B = rng.standard_normal((Kd, N)).astype(dtype)
        C0 = rng.standard_normal((M, N)).astype(dtype)
        b0 = rng.standard_normal(M).astype(dtype)
        for S, atomic in ((1, False), (3, False), (3, True), (0, False)):
            config.MM_SPLITK, config.MM_SPLITK_ATOMIC = S, atomic
            assert ops.wg_plan(M, N, Kd)[3] == {1: 1, 3: 3, 0: 2}[S]
            c, db = D(C0), D(b0)
            ops.matmul_wg(D(A), D(B), c, db)
            assert rel(H_(c), C0 + A.T @ B) < TOL[dtype]
            assert rel(H_(db), b0 + A.sum(0)) < TOL[dtype]
            c = D(C0)
            ops.matmul_wg(D(A), D(B), c, accumulate=False)
            assert rel(H_(c), A.T @ B) < TOL[dtype]
    # the callers' entry points route through it: matmul(ta=True) and matmul_wgrad (column sums fused)
    config.MM_SPLITK = 0
    A, B = rng.standard_normal((11, 9)).astype(dtype), rng.standard_normal((11, 12)).astype(dtype)
    c, db = D(np.ones((9, 12), dtype)), D(np.ones(9, dtype))
    ops.matmul_wgrad(D(A), D(B), c, db)
    assert rel(H_(c), 1 + A.T @ B) < TOL[dtype] and rel(H_(db), 1 + A.sum(0)) < TOL[dtype]
    c = D(np.ones((9, 12), dtype))
    ops.matmul(D(A), D(B), c, ta=True)
    assert rel(H_(c), A.T @ B) < TOL[dtype]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")   # the simulator's uint64
def test_dropout_mask_equals_ref():
    """The dropout mask kernel draws the elements ref.ops.dropout_mask draws (several blocks)."""
    for dt in (np.float32, np.float64):
        want = np.empty((3, 5, 11), dt)
        ref.ops.dropout_mask(2 ** 62 + 5, 0.6, want)
        got = ops.zeros(want.shape, dt)
        ops.dropout_mask(2 ** 62 + 5, 0.6, got)
        assert np.array_equal(H_(got), want)
        part = ops.zeros((3, 2, 11), dt)                       # streams 1:3 of 5 (one rank's share)
        ops.dropout_mask(2 ** 62 + 5, 0.6, part, (1, 5))
        assert np.array_equal(H_(part), want[:, 1:3])


def test_gathers_scatters_and_helpers():
    rng = np.random.default_rng(1)
    T, B, V, GH, E = 3, 2, 5, 40, 4    # GH = 40: two blocks of 32 columns (one partial)
    x = rng.integers(0, V, (T, B))
    x[0, :] = 2                      # repeated indices: the scatter-add must not lose updates
    W = rng.standard_normal((GH, V))
    b = rng.standard_normal(GH)
    out_r = np.zeros((T, B, GH))
    ref.ops.project_onehot(W, b, x, out_r)
    out = ops.zeros((T, B, GH), np.float64)
    ops.project_onehot(D(W), D(b), D(x), out)
    assert rel(H_(out), out_r) < 1e-12
    dout = rng.standard_normal((T, B, GH))
    dW_r, db_r = np.ones_like(W), np.ones_like(b)
    ref.ops.project_onehot_backward(dout, x, dW_r, db_r)
    dW, db = D(np.ones_like(W)), D(np.ones_like(b))
    ops.project_onehot_backward(D(dout), D(x), dW, db)
    assert rel(H_(dW), dW_r) < 1e-12 and rel(H_(db), db_r) < 1e-12

    Em = rng.standard_normal((V, E))
    o_r = np.zeros((T, B, E))
    ref.ops.lookup(Em, x, o_r)
    o = ops.zeros((T, B, E), np.float64)
    ops.lookup(D(Em), D(x), o)
    assert rel(H_(o), o_r) < 1e-12
    de = rng.standard_normal((T, B, E))
    dE_r = np.zeros_like(Em)
    ref.ops.lookup_backward(de, x, dE_r)
    dE = ops.zeros(Em.shape, np.float64)
    ops.lookup_backward(D(de), D(x), dE)
    assert rel(H_(dE), dE_r) < 1e-12

    N, I, O = 5, 6, 7
    xi, Wl, bl = rng.standard_normal((N, I)), rng.standard_normal((O, I)), rng.standard_normal(O)
    y = ops.zeros((N, O), np.float64)
    ops.linear(D(xi), D(Wl), D(bl), y)
    assert rel(H_(y), xi @ Wl.T + bl) < 1e-12
    dy = rng.standard_normal((N, O))
    dx_r, dWl_r, dbl_r = np.zeros_like(xi), np.ones_like(Wl), np.ones_like(bl)
    ref.ops.linear_backward(dy, xi, Wl, dx_r, dWl_r, dbl_r)
    dx, dWl, dbl = ops.zeros(xi.shape, np.float64), D(np.ones_like(Wl)), D(np.ones_like(bl))
    ops.linear_backward(D(dy), D(xi), D(Wl), dx, dWl, dbl)
    assert rel(H_(dx), dx_r) < 1e-12 and rel(H_(dWl), dWl_r) < 1e-12 and rel(H_(dbl), dbl_r) < 1e-12
    dWl2 = D(np.ones_like(Wl))
    ops.linear_backward(D(dy), D(xi), D(Wl), None, dWl2, D(np.ones_like(bl)))
    assert rel(H_(dWl2), dWl_r) < 1e-12

    a, c = rng.standard_normal((3, 40)), rng.standard_normal((3, 40))
    m = ops.zeros(a.shape, np.float64)
    ops.mul(D(a), D(c), m)
    assert rel(H_(m), a * c) < 1e-15
    cp = ops.copy_new(D(a))
    assert np.array_equal(H_(cp), a)
    ops.clip_all(cp, -0.5, 0.25)
    assert np.array_equal(H_(cp), np.clip(a, -0.5, 0.25))
    ops.fill_zero(cp)
    assert not H_(cp).any()
    assert abs(ops.total(D(a)) - a.sum()) < 1e-12
    assert abs(ops.total(D(a), square=True) - (a * a).sum()) < 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_head(dtype):
    rng = np.random.default_rng(2)
    N, Hh, V = 7, 6, 11             # V > XENT_THREADS: each thread loops over columns
    h = rng.standard_normal((N, Hh)).astype(dtype)
    W = rng.standard_normal((V, Hh)).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    y = rng.integers(0, V, N)
    dh_r, dW_r, db_r = np.zeros_like(h), np.ones_like(W), np.ones_like(b)
    l_r = ref.head.loss_backward(h, W, b, y, dh_r, dW_r, db_r)
    dh, dW, db = ops.zeros(h.shape, dtype), D(np.ones_like(W)), D(np.ones_like(b))
    l = float(head.loss_backward(D(h), D(W), D(b), D(y), dh, dW, db))   # a DeviceLoss
    tol = TOL[dtype]
    assert abs(l - l_r) / abs(l_r) < tol
    assert abs(head.loss(D(h), D(W), D(b), D(y)) - l_r) / abs(l_r) < tol
    assert rel(H_(dh), dh_r) < tol and rel(H_(dW), dW_r) < tol and rel(H_(db), db_r) < tol
    z = ops.zeros((N, V), dtype)
    head.logits(D(h), D(W), D(b), z)
    assert rel(H_(z), h @ W.T + b) < tol


# ---- cells -----------------------------------------------------------------------------------------
def _cell_case(cell, kw, T, B, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    peep, variant = kw.get("peephole", False), kw.get("gru_variant", "torch")
    cr, cc = Cell(ref, cell, H, peep, variant), Cell(cudamod, cell, H, peep, variant)
    G = cr.G
    f = lambda *s, sc=1.0: (sc * rng.standard_normal(s)).astype(dtype)  # noqa: E731
    a = dict(xg=f(T, B, G * H), W=f(G * H, H, sc=0.5), b=f(G * H, sc=0.1),
             p=f(3, H, sc=0.5) if peep else None, h0=f(B, H, sc=0.5), c0=f(B, H, sc=0.5) if cr.has_c else None,
             dhs=f(T, B, H), dhT=f(B, H), dcT=f(B, H) if cr.has_c else None)
    wr = cr.workspace(T, B, dtype)
    cr.forward(wr, a["xg"], a["W"], a["b"], a["p"], a["h0"], a["c0"])
    gr = dict(dxg=np.zeros_like(a["xg"]), dW=np.ones_like(a["W"]), db=np.ones_like(a["b"]),
              dp=None if not peep else np.ones_like(a["p"]), dh0=np.zeros_like(a["h0"]),
              dc0=None if a["c0"] is None else np.zeros_like(a["c0"]))
    cr.backward(wr, a["xg"], a["W"], a["b"], a["p"], a["dhs"], a["dhT"], a["dcT"], gr["dxg"], gr["dW"],
                gr["db"], gr["dp"], gr["dh0"], gr["dc0"])
    dv = lambda v: None if v is None else D(v)  # noqa: E731
    wc = cc.workspace(T, B, dtype)
    cc.forward(wc, D(a["xg"]), D(a["W"]), D(a["b"]), dv(a["p"]), D(a["h0"]), dv(a["c0"]))
    gc = {k: dv(v) for k, v in dict(dxg=np.zeros_like(a["xg"]), dW=np.ones_like(a["W"]), db=np.ones_like(a["b"]),
                                    dp=gr["dp"] if gr["dp"] is None else np.ones_like(a["p"]),
                                    dh0=np.zeros_like(a["h0"]), dc0=gr["dc0"] if gr["dc0"] is None else
                                    np.zeros_like(a["c0"])).items()}
    cc.backward(wc, D(a["xg"]), D(a["W"]), D(a["b"]), dv(a["p"]), D(a["dhs"]), D(a["dhT"]), dv(a["dcT"]),
                gc["dxg"], gc["dW"], gc["db"], gc["dp"], gc["dh0"], gc["dc0"])
    errs = {k: rel(H_(wc[k]), wr[k]) for k in wr}
    errs.update({k: rel(H_(gc[k]), v) for k, v in gr.items() if v is not None})
    return errs


@pytest.mark.parametrize("cell,kw", CELL_CONFIGS, ids=CELL_IDS)
def test_cells_per_step_path(cell, kw):
    """The per-step kernels (tiled product + fused pointwise per step), forward and backward with
    initial state and final-state gradients, float64."""
    config.PERSISTENT = "never"
    persist.STATUS["last_forward"] = persist.STATUS["last_backward"] = None
    errs = _cell_case(cell, kw, T=3, B=3, H=8, dtype=np.float64)
    assert max(errs.values()) < 1e-10, errs
    assert persist.STATUS["last_forward"] is None and persist.STATUS["last_backward"] is None


def test_cells_per_step_float32():
    config.PERSISTENT = "never"
    errs = _cell_case("lstm", {"peephole": True}, T=3, B=2, H=6, dtype=np.float32, seed=4)
    assert max(errs.values()) < 1e-4, errs


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_persistent_kernels(cell, dtype):
    """Persistent forward and backward (one cooperative launch each) equal ref. In the simulator a
    grid-synchronised kernel is only correct with ONE block, so H = 8 fits one block (J = 8);
    B = 5 leaves a partial batch group, 32 threads per block force two rounds per step, and in
    float32 chunks of 4 columns force several staged chunks of h and da per step, pipelined
    (config.PERSIST_PIPELINE on; float64 takes the default, one unpipelined chunk)."""
    config.PERSISTENT = "always"
    if SIM:
        config.PERSIST_MAX_THREADS = 32
    if dtype == np.float32:
        config.PERSIST_MAX_CHUNK, config.PERSIST_PIPELINE = 4, True
    persist.STATUS["last_forward"] = persist.STATUS["last_backward"] = None
    errs = _cell_case(cell, {}, T=3, B=5, H=8, dtype=dtype, seed=5)
    assert max(errs.values()) < TOL[dtype], errs
    assert persist.STATUS["last_forward"]["cell"] == cell
    assert persist.STATUS["last_backward"]["cell"] == cell
    if dtype == np.float32:
        assert persist.STATUS["last_forward"]["fwd_kc"] == 4 and persist.STATUS["last_backward"]["bwd_rc"] == 4


def test_persistent_partial_block():
    """H = 6 with J = 8: the block's last two units are outside the layer and must be ignored.
    Also the unpipelined copy (PERSIST_PIPELINE off) with partial chunks (4 + 2 columns of h)."""
    config.PERSISTENT = "always"
    config.PERSIST_J = (8,)
    config.PERSIST_PIPELINE = False
    config.PERSIST_MAX_CHUNK = 4
    errs = _cell_case("lstm", {}, T=2, B=3, H=6, dtype=np.float64, seed=6)
    assert max(errs.values()) < 1e-10, errs
    assert persist.STATUS["last_forward"]["J"] == 8


@pytest.mark.parametrize("cell,J,dtype", [("lstm", 4, np.float32), ("gru", 2, np.float64), ("lstm", 1, np.float64)])
def test_persistent_thread_layouts(cell, J, dtype):
    """The other forward thread layouts (J = 8 runs two units per thread; J <= 4 one unit per
    thread and 8 k lanes, so a warp holds 32 / (8 J) batch groups), one block: H = J."""
    config.PERSISTENT = "always"
    config.PERSIST_J = (J,)
    errs = _cell_case(cell, {}, T=2, B=5, H=J, dtype=dtype, seed=8)
    assert max(errs.values()) < TOL[dtype], errs
    assert persist.STATUS["last_forward"]["J"] == J


def test_persistent_falls_back_when_it_does_not_fit():
    config.PERSISTENT = "auto"
    config.PERSIST_J = (1,)             # one unit per block: more blocks than can be co-resident
    config.PERSIST_MAX_BLOCKS = 2
    persist.STATUS["last_forward"] = None
    errs = _cell_case("gru", {"gru_variant": "torch"}, T=2, B=2, H=4, dtype=np.float64)
    assert max(errs.values()) < 1e-10, errs
    assert persist.STATUS["last_forward"] is None
    config.PERSISTENT = "always"
    with pytest.raises(RuntimeError):
        _cell_case("gru", {"gru_variant": "torch"}, T=2, B=2, H=4, dtype=np.float64)


def test_persistent_plan_prefers_one_block_per_sm():
    """The fit logic on made-up device limits (pure Python, no launch)."""
    lim = {"smem_limit": 48 * 1024, "sms": 132, "max_blocks": lambda *a, **k: 132}
    old = persist.device_limits
    persist.device_limits = lambda device=None: lim
    try:
        p = persist.plan("lstm", 32, 512, 4)
        assert p["J"] == 4 and p["blocks"] == 128 and p["fwd_smem"] <= 48 * 1024
        assert persist.plan("lstm", 64, 1024, 4) is None          # 128 KB per block needed
        lim["smem_limit"] = 227 * 1024
        p = persist.plan("lstm", 64, 1024, 4)
        assert p["J"] == 8 and p["blocks"] == 128
    finally:
        persist.device_limits = old


# ---- optimizer kernels -------------------------------------------------------------------------------
def test_optim_kernels_match_ref():
    from seqlearn.ref import optim as ro
    rng = np.random.default_rng(7)
    n = 70                                   # 3 blocks of 32 in the simulator
    p0, g = rng.standard_normal(n), rng.standard_normal(n)
    s0 = np.abs(rng.standard_normal(n))
    m0 = rng.standard_normal(n) * 0.1

    def both(fn_name, *hyper, nstate=1):
        pr, sr = p0.copy(), [s0.copy(), s0.copy() * 0.5][:nstate]
        pc, sc = D(p0), [D(s0), D(s0 * 0.5)][:nstate]
        getattr(ro, fn_name)(pr, g, *sr, *hyper)
        getattr(cuda_optim, fn_name)(pc, D(g), *sc, *hyper)
        assert rel(H_(pc), pr) < 1e-13, fn_name
        for a, b in zip(sc, sr):
            assert rel(H_(a), b) < 1e-13, fn_name

    for first in (True, False):
        for nest in (False, True):
            both("sgd", 0.1, 0.9, 0.0 if nest else 0.1, nest, 0.01, first)
    both("sgd", 0.1, 0.0, 0.0, False, 0.0, True)
    both("adagrad", 0.05, 1e-10, 0.01)
    both("rmsprop", 0.01, 0.99, 1e-8, 0.01)
    for dec in (False, True):
        for step in (1.0, 7.0):
            pr, mr, vr = p0.copy(), m0.copy(), s0.copy()
            pc, mc, vc = D(p0), D(m0), D(s0)
            ro.adam(pr, g, mr, vr, 2e-3, 0.9, 0.999, 1e-8, 0.01, dec, step)
            cuda_optim.adam(pc, D(g), mc, vc, 2e-3, 0.9, 0.999, 1e-8, 0.01, dec, step)
            assert rel(H_(pc), pr) < 1e-13 and rel(H_(mc), mr) < 1e-13 and rel(H_(vc), vr) < 1e-13
    gc = D(g)
    assert abs(cuda_optim.sumsq(gc) - ro.sumsq(g)) < 1e-12
    g32 = g.astype(np.float32)
    assert abs(cuda_optim.sumsq(D(g32)) - ro.sumsq(g32)) < 1e-9
    cuda_optim.scale(gc, 0.5)
    assert np.allclose(H_(gc), g * 0.5, rtol=0, atol=1e-15)
    cuda_optim.clip_value(gc, 0.3)
    assert np.array_equal(H_(gc), np.clip(g * 0.5, -0.3, 0.3))


# ---- whole training steps ------------------------------------------------------------------------------
def _train(device, cell, kw, dtype, steps, E=0, L=2, state=True):
    """`steps` clipped Adam steps; the kernel-level tests above cover multi-block launches, so the
    simulator uses larger blocks here (fewer simulated threads and barriers)."""
    import seqlearn
    if SIM:
        config.TILE, config.THREADS, config.XENT_THREADS, config.REDUCE_THREADS = 8, 128, 8, 32
    from seqlearn.optim import Optimizer
    m = seqlearn.CharLM("abcdefg", cell=cell, hidden_size=8, num_layers=L, embed_dim=E, dtype=dtype,
                        device=device, seed=11, **kw)
    opt = Optimizer(m, "adam", lr=0.01, clip=1.0)
    x, y = random_batch(7, B=2, T=3, seed=3)
    st = random_state(m, 2) if state else None
    losses = []
    for _ in range(steps):
        loss, st_out = m.forward_backward(x, y, st, host_state=True)
        opt.clip_grads()
        opt.step()
        losses.append(loss)
    return np.array(losses), m.state_dict(), m.grads, st_out, m.dstate


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")   # the simulator's uint64
@pytest.mark.parametrize("cell,kw,E,L", [("lstm", {"dropout": 0.5, "dropout_top": 0.3}, 0, 2),
                                         ("gru", {"gru_variant": "torch"}, 3, 2),
                                         ("lstm", {"peephole": True, "dropout_top": 0.4}, 0, 1)],
                         ids=["lstm-dropout-top-L2", "gru-torch-embed-L2", "lstm-peephole-top-L1"])
def test_training_steps_equal_ref(cell, kw, E, L):
    """Five Adam steps (one-hot or embedding input, carried initial state; dropout between the
    lstm's layers and on its top layer's output, masks drawn on the device) on cuda equal the same five steps on ref: losses,
    weights, gradients, final state, state gradient.
    lstm and gru-torch take the persistent kernels here (H = 8: one block), peephole the per-step path."""
    lr_, pr, gr, sr, dsr = _train("ref", cell, kw, "float64", 5, E, L)
    persist.STATUS["last_forward"] = None
    lc, pc, gc, sc, dsc = _train("cuda", cell, kw, "float64", 5, E, L)
    assert (persist.STATUS["last_forward"] is not None) == (not kw.get("peephole"))
    assert rel(lc, lr_) < 1e-10
    for k in pr:
        assert rel(pc[k], pr[k]) < 1e-10, k
        assert rel(gc[k], gr[k]) < 1e-9, k
    for a, b in zip(np.atleast_1d(sc) if cell != "lstm" else sc, np.atleast_1d(sr) if cell != "lstm" else sr):
        assert rel(a, b) < 1e-10
    for a, b in zip(dsc if cell == "lstm" else [dsc], dsr if cell == "lstm" else [dsr]):
        assert rel(a, b) < 1e-10


def test_training_steps_equal_ref_weight_gradient_paths(monkeypatch):
    """The same five steps (lstm, one layer) through both weight-gradient paths: the default
    (build_matmul_wg, split over K with the fixed-order second pass, bias gradients fused) and the
    register-tiled matmul_rt with separate column sums (config.MM_WG off)."""
    calls = []
    real = ops.matmul_wg
    monkeypatch.setattr(ops, "matmul_wg", lambda *a, **k: calls.append(k) or real(*a, **k))
    if SIM:
        assert ops.wg_plan(4 * 8, 8, 3 * 2)[3] > 1     # dW_hh of this model is split over K here
    test_training_steps_equal_ref("lstm", {}, 0, 1)
    assert len(calls) == 2 * 5    # dW_hh and the head's dW, five steps
    config.MM_WG = False
    calls.clear()
    test_training_steps_equal_ref("lstm", {}, 0, 1)
    assert not calls


def test_training_steps_equal_cpu_float32():
    """The cuda and cpu backends agree for five float32 Adam steps of a gru-cho model (per-step
    path), tolerance 1e-4 relative."""
    pytest.importorskip("seqlearn.cpu")
    lp, pp, _, _, _ = _train("cpu", "gru", {"gru_variant": "cho"}, "float32", 5, L=1)
    lc, pc, _, _, _ = _train("cuda", "gru", {"gru_variant": "cho"}, "float32", 5, L=1)
    assert rel(lc, lp) < 1e-4
    for k in pp:
        assert rel(pc[k], pp[k]) < 1e-4, k


def test_gradients_of_mpi_ranks_go_through_the_host_and_back():
    """Over MPI ranks the cuda backend hands MPI a host copy of the gradient buffer and takes the
    sum back (seqlearn/train.py, _allreduce_grads), then divides by the ranks; each rank selects
    the GPU of its local rank (the simulator shows one)."""
    from types import SimpleNamespace

    from seqlearn import dist
    from seqlearn.model import CharLM
    from seqlearn.optim import Optimizer
    from seqlearn.train import Trainer
    m = CharLM("abcdef", hidden_size=8, num_layers=2, dtype="float64", device="cuda")
    x, y = random_batch(m.V, 3, 4)
    m.forward_backward(x, y)
    mine = H_(m.grad_flat).copy()
    other = np.random.default_rng(3).standard_normal(mine.shape)
    seen = []

    class TwoRanks:
        size, local_rank = 2, 1

        def allreduce_sum(self, buf):
            seen.append(type(buf))
            buf += other                         # the other rank's gradients

    fake = SimpleNamespace(model=m, world=TwoRanks(), opt=Optimizer(m))
    Trainer._allreduce_grads(fake)
    assert seen == [np.ndarray]
    assert np.allclose(H_(m.grad_flat), (mine + other) / 2, rtol=1e-14, atol=0)
    dist.select_gpu(TwoRanks())                  # local rank 1 of one GPU: GPU 0
