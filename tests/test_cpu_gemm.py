"""The packed small-row products of the cpu backend (seqlearn/cpu/_gemm.py) against numpy.

Shapes cover every register tile (1 to 6 rows and their mixtures), partial panels at either
end of a column range, column ranges that start inside a panel (unit slices of a thread), a
K sub-range of the packed rows, overwrite and accumulate, float64 and float32."""
import numpy as np
import pytest

from seqlearn.cpu import _gemm
from seqlearn.cpu._blas import consts

TOL = {np.float64: 1e-12, np.float32: 1e-5}
DT = [np.float64, np.float32]


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("dt", DT, ids=["float64", "float32"])
@pytest.mark.parametrize("M", [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 16, 19, 32])
@pytest.mark.parametrize("n,K", [(16, 7), (37, 19), (64, 128), (5, 3), (20, 600)])   # 600: 3 K blocks
@pytest.mark.parametrize("accumulate", [False, True], ids=["overwrite", "accumulate"])
def test_mm_rows_panels(dt, M, n, K, accumulate):
    rng = np.random.default_rng(M * 1000 + n * 10 + K)
    nr = _gemm.nr_of(dt)
    W = rng.standard_normal((n + 5, K)).astype(dt)
    A = rng.standard_normal((M, K + 2)).astype(dt)          # row stride K + 2: lda != K
    P = np.zeros(3 + _gemm.panels(n, dt) * K * nr, dt)
    _gemm.pack_rows(W, 2, n, P, 3, 0, _gemm.panels(n, dt))
    ldc = n + 4
    C0 = rng.standard_normal((M, ldc)).astype(dt)
    C = C0.copy()
    isz = C.itemsize
    for c0, c1 in ((0, n), (min(3, n - 1), n), (0, max(1, n - 3))):
        C = C0.copy()
        _gemm.mm(consts(C), M, K, A.ctypes.data, K + 2, P.ctypes.data + 3 * isz, K * nr, c0, c1,
                 C.ctypes.data + isz, ldc, accumulate, np.zeros(_gemm.MAX_ROWS * nr, dt))
        want = C0.copy()
        prod = A[:, :K] @ W[2:2 + n].T
        want[:, 1 + c0:1 + c1] = prod[:, c0:c1] + (C0[:, 1 + c0:1 + c1] if accumulate else 0)
        assert rel(C, want) < TOL[dt], (c0, c1)       # columns outside c0:c1 untouched


def test_row_tiles_avoid_the_four_row_tile():
    """Rows split into tiles of 1-6 that cover them once; past 6 rows, 6s and 5s and at most one
    smaller tile, last, and no 4-row tile (it costs nearly a 5-row one, see _next_rows)."""
    for M in range(1, 200):
        tiles, left = [], M
        while left:
            r = _gemm._next_rows(left)
            assert 1 <= r <= min(left, _gemm.MAX_ROWS)
            tiles.append(r)
            left -= r
        if M <= _gemm.MAX_ROWS:
            assert tiles == [M]
        else:
            assert all(r >= 5 for r in tiles[:-1]) and tiles[-1] != 4, (M, tiles)
    assert [_gemm._next_rows(m) for m in (7, 8, 9)] == [5, 5, 6]


@pytest.mark.parametrize("dt", DT, ids=["float64", "float32"])
@pytest.mark.parametrize("G,H,M", [(4, 37, 5), (3, 48, 13), (1, 16, 1), (4, 6, 3), (4, 64, 32)])
def test_gates_and_units(dt, G, H, M):
    """h @ W.T gate by gate over a unit slice, and d[:, k0:] @ W[k0:, slice] (the backward's)."""
    rng = np.random.default_rng(G * 100 + H)
    W = rng.standard_normal((G * H, H)).astype(dt)
    Pf = np.zeros(_gemm.packed_size(G, H, H, dt), dt)
    _gemm.pack_gates(W, G, Pf)
    Pb = np.zeros(_gemm.packed_size(1, H, G * H, dt), dt)
    _gemm.pack_units(W, Pb)
    A = rng.standard_normal((M, H)).astype(dt)
    D = rng.standard_normal((M, G * H)).astype(dt)
    sc = np.zeros(_gemm.MAX_ROWS * _gemm.nr_of(dt), dt)
    isz = A.itemsize
    for u0, u1 in ((0, H), (3, H - 2), (H // 2, H)):
        C = np.full((M, G * H), 7.0, dt)
        _gemm.gates_nt(consts(C), H, H, 0, G, u0, u1, M, A.ctypes.data, H, Pf.ctypes.data, C.ctypes.data, G * H, sc)
        want = np.full_like(C, 7.0)
        prod = A @ W.T
        for g in range(G):
            want[:, g * H + u0:g * H + u1] = prod[:, g * H + u0:g * H + u1]
        assert rel(C, want) < TOL[dt]
        k0 = H if G > 1 else 0
        C2 = np.ones((M, H), dt)
        _gemm.units_nn(consts(C), G * H, k0, G * H - k0, u0, u1, M, D.ctypes.data + k0 * isz, G * H, Pb,
                       C2.ctypes.data, H, True, sc)
        want2 = np.ones_like(C2)
        want2[:, u0:u1] += (D[:, k0:] @ W[k0:])[:, u0:u1]
        assert rel(C2, want2) < TOL[dt]


@pytest.mark.parametrize("dt", DT, ids=["float64", "float32"])
@pytest.mark.parametrize("split_k_max", [0, 1 << 30], ids=["output-rows", "rows-of-N"])
@pytest.mark.parametrize("nthreads", [1, 3])
@pytest.mark.parametrize("path", ["default", "wide"])
def test_wgrad_splits(dt, split_k_max, nthreads, path, monkeypatch):
    """dW += d.T @ x, db += d.sum(0), split by output rows or by the N rows (partial sums added),
    through each product: _tn's (d read in place), _tn_wide's (d transposed in blocks; tiny blocks
    here, so that every edge is crossed); "default": the choice for this narrow d (_tn for a split
    over N, _tn_wide by output rows)."""
    from seqlearn.cpu import _threads, config, wgrad
    monkeypatch.setattr(_threads, "NUM_THREADS", nthreads)
    monkeypatch.setattr(config, "MIN_WROWS", 1)
    monkeypatch.setattr(config, "SPLIT_K_MAX", split_k_max)
    if path != "default":
        monkeypatch.setattr(config, "TN_MAX_BYTES", 0)
        monkeypatch.setattr(config, "KC", 8)
        monkeypatch.setattr(config, "MC", 5)
    rng = np.random.default_rng(7)
    d = rng.standard_normal((37, 12)).astype(dt)
    x = rng.standard_normal((37, 5)).astype(dt)
    dW0 = rng.standard_normal((12, 5)).astype(dt)
    db0 = rng.standard_normal(12).astype(dt)
    for _ in range(2):                              # twice: memory of the first call, reused uninitialised, must not leak in
        dW, db = dW0.copy(), db0.copy()
        wgrad.wgrad(d, x, dW, db, consts(d))
        assert rel(dW, dW0 + d.T @ x) < TOL[dt]
        assert rel(db, db0 + d.sum(0)) < TOL[dt]


@pytest.mark.parametrize("dt", DT, ids=["float64", "float32"])
@pytest.mark.parametrize("split_k_max", [0, 1 << 30], ids=["output-rows", "rows-of-N"])
@pytest.mark.parametrize("nthreads", [1, 3])
def test_wgrad_strided_operands(dt, split_k_max, nthreads, monkeypatch):
    """Operands that are not C-contiguous (column slices of d and dW) give the same products, split
    both ways; OpenBLAS's TN product by output rows (the benchmarks' baseline) as well."""
    from seqlearn.cpu import _threads, config, wgrad
    monkeypatch.setattr(_threads, "NUM_THREADS", nthreads)
    monkeypatch.setattr(config, "MIN_WROWS", 1)
    monkeypatch.setattr(config, "SPLIT_K_MAX", split_k_max)
    rng = np.random.default_rng(8)
    d = rng.standard_normal((37, 24)).astype(dt)[:, ::2]
    x = rng.standard_normal((37, 5)).astype(dt)
    assert not d.flags.c_contiguous
    dW0 = rng.standard_normal((12, 5)).astype(dt)
    db0 = rng.standard_normal(12).astype(dt)
    for _ in range(2):
        dW, db = dW0.copy(), db0.copy()
        wgrad.wgrad(d, x, dW, db, consts(d))
        assert rel(dW, dW0 + d.T @ x) < TOL[dt]
        assert rel(db, db0 + d.sum(0)) < TOL[dt]
    big = np.zeros((12, 10), dt)
    big[:, ::2] = dW0
    wgrad.wgrad(d, x, big[:, ::2], db0.copy(), consts(d))
    assert rel(big[:, ::2], dW0 + d.T @ x) < TOL[dt] and not big[:, 1::2].any()
    dc, dW, db = np.ascontiguousarray(d), dW0.copy(), db0.copy()
    _threads.run(wgrad.wgrad_rows, [(dc, x, dW, db, r0, r1, consts(d)) for r0, r1 in _threads.chunks(12, 1)])
    assert rel(dW, dW0 + d.T @ x) < TOL[dt] and rel(db, db0 + d.sum(0)) < TOL[dt]


@pytest.mark.parametrize("dt", DT, ids=["float64", "float32"])
@pytest.mark.parametrize("O", [1, 2, 3, 4, 5, 6, 7, 11, 13, 65])
@pytest.mark.parametrize("I", [1, 7, 16, 20, 37])
def test_tn_strided_tiles(dt, O, I):
    """_tn.wgrad_split on one thread: dW += D[n0:n1].T @ X[n0:n1], db += D[n0:n1].sum(0), with D read
    in place as the transposed operand (every row tile, partial panels, row ranges over several
    blocks of kc rows)."""
    from seqlearn.cpu import _tn
    rng = np.random.default_rng(O * 100 + I)
    N = 77
    D = rng.standard_normal((N, O)).astype(dt)
    X = rng.standard_normal((N, I)).astype(dt)
    for n0, n1, kc in [(0, N, 32), (5, 70, 16), (3, 4, 8), (0, N, 128)]:
        dW0 = rng.standard_normal((O, I)).astype(dt)
        db0 = rng.standard_normal(O).astype(dt)
        dW, db = dW0.copy(), db0.copy()
        _tn.wgrad_split(D, X, dW, db, np.empty((0, O, I), dt), np.full((1, O), np.nan, dt), n0, n1, 0, 0, O,
                        np.zeros(8, np.int64), 1, kc)
        assert rel(dW, dW0 + D[n0:n1].T @ X[n0:n1]) < TOL[dt]
        assert rel(db, db0 + D[n0:n1].sum(0)) < TOL[dt]


@pytest.mark.parametrize("dt", DT, ids=["float64", "float32"])
@pytest.mark.parametrize("O", [1, 3, 8, 13, 40])
@pytest.mark.parametrize("I", [1, 16, 37])
def test_tn_wide(dt, O, I):
    """_tn_wide.wgrad_wide on one thread, split over N (rows n0:n1 of D) and by output rows (rows
    r0:r1 of dW and db, the others untouched): D transposed in blocks of kc x mc (whole register
    blocks of 8 x 8 or 4 x 4, and the edges), the bias gradient summed on the way."""
    from seqlearn.cpu import _tn_wide
    rng = np.random.default_rng(O * 100 + I)
    N = 77
    D = rng.standard_normal((N, O)).astype(dt)
    X = rng.standard_normal((N, I)).astype(dt)
    for n0, n1, kc, mc in [(0, N, 32, 16), (5, 70, 16, 8), (3, 4, 8, 5), (0, N, 768, 48), (0, N, 9, 3)]:
        dW0 = rng.standard_normal((O, I)).astype(dt)
        db0 = rng.standard_normal(O).astype(dt)
        dW, db = dW0.copy(), db0.copy()
        _tn_wide.wgrad_wide(D, X, dW, db, np.empty((0, O, I), dt), np.full((1, O), np.nan, dt), n0, n1, 0, 0, O,
                            np.zeros(8, np.int64), 1, False, kc, mc)
        assert rel(dW, dW0 + D[n0:n1].T @ X[n0:n1]) < TOL[dt]
        assert rel(db, db0 + D[n0:n1].sum(0)) < TOL[dt]
        r0, r1 = O // 3, O - O // 4
        dW, db = dW0.copy(), db0.copy()
        _tn_wide.wgrad_wide(D, X, dW, db, np.empty((0, O, I), dt), np.empty((1, O), dt), 0, N, 0, r0, r1,
                            np.zeros(8, np.int64), 1, True, kc, mc)
        want, wantb = dW0.copy(), db0.copy()
        want[r0:r1] += D[:, r0:r1].T @ X
        wantb[r0:r1] += D[:, r0:r1].sum(0)
        assert rel(dW, want) < TOL[dt] and rel(db, wantb) < TOL[dt]
        assert (dW[:r0] == dW0[:r0]).all() and (db[r1:] == db0[r1:]).all()


@pytest.mark.parametrize("dt", DT, ids=["float64", "float32"])
@pytest.mark.parametrize("n", [1, 15, 16, 1000, 70001])
def test_zeros_aligned(dt, n):
    a = _gemm.zeros_aligned(n, dt)
    assert a.shape == (n,) and a.dtype == dt and a.ctypes.data % 64 == 0 and not a.any()


@pytest.mark.parametrize("cell,H", [("lstm", 37), ("gru", 10), ("rnn", 16)])
def test_packed_weights_start_on_cache_lines(cell, H):
    """Every packed panel block starts on a 64-byte line (a panel row is one line), in the training
    workspaces and in generation's buffer, whose one-hot block holds W_ih[:, x] + b_ih as row x."""
    import seqlearn
    from seqlearn.cpu import gru, lstm, rnn, sample_kernels
    ws = {"lstm": lstm, "gru": gru, "rnn": rnn}[cell].workspace(3, 2, H, np.float32)
    assert ws["Pf"].ctypes.data % 64 == 0 and ws["Pb"].ctypes.data % 64 == 0
    m = seqlearn.CharLM([chr(33 + i) for i in range(7)], cell=cell, hidden_size=H, num_layers=2, device="cpu",
                        seed=1)
    P, poffs, dec_p = sample_kernels.pack(m)
    for off in list(poffs.ravel()) + [dec_p]:
        assert (P.ctypes.data + off * P.itemsize) % 64 == 0
    GH = m.params["rnn.weight_ih_l0"].shape[0]
    for x in range(7):
        row = P[poffs[0, 0] + x * GH:poffs[0, 0] + (x + 1) * GH]
        np.testing.assert_array_equal(row, m.params["rnn.weight_ih_l0"][:, x] + m.params["rnn.bias_ih_l0"])


@pytest.mark.parametrize("dt", DT, ids=["float64", "float32"])
def test_packing_on_threads_matches_one_thread(dt, monkeypatch):
    """Packing is split over the threads only for large W (PACK_THREADS_MIN); both ways agree,
    also where K is not a multiple of pack_cols' 32-row blocks."""
    from seqlearn.cpu import _threads, config
    monkeypatch.setattr(_threads, "NUM_THREADS", 3)
    rng = np.random.default_rng(11)
    G, H = 4, 37
    W = rng.standard_normal((G * H, H + 3)).astype(dt)
    out = {}
    for lim in (1 << 40, 0):
        monkeypatch.setattr(config, "PACK_THREADS_MIN", lim)
        Pf = np.full(_gemm.packed_size(G, H, H + 3, dt), np.nan, dt)
        Pb = np.full(_gemm.packed_size(1, H + 3, G * H, dt), np.nan, dt)
        _gemm.pack_gates(W, G, Pf)
        _gemm.pack_units(W, Pb)
        out[lim] = (Pf, Pb)
    for a, b in zip(out[1 << 40], out[0]):
        assert not np.isnan(a).any()
        np.testing.assert_array_equal(a, b)
