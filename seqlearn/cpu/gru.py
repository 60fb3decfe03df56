"""GRU forward and backward through time, jitted (same equations as seqlearn/ref/gru.py).

variant "torch" (reset after the product): one product ``h @ W_hh.T`` (B, 3H) per step.
variant "cho" (reset before the product): two dependent products per step, ``h @ W_hr,z.T`` and
``(r * h) @ W_hn.T``; backward likewise needs two. The weight gradients are products over all
steps after the loop in both variants. The per-step products run against W_hh packed once per
call (_gemm.py). The batch is split into chunks (or, variant torch, the units into slices) that
run their whole time loop on separate threads (see _threads.py).
"""
import numpy as np

from . import _threads, config
from ._act import sigmoid_, tanh_
from . import _gemm
from ._blas import N_, T_, consts, rgemm
from ._jit import jit
from ._sync import barrier, new_barrier
from .ops import input_rows
from .wgrad import wgrad

G = 3


def workspace(T, B, H, dtype):
    z = lambda *s: np.zeros(s, dtype)  # noqa: E731
    return {
        "hs": z(T + 1, B, H),
        "gates": z(T, B, G * H),    # activated r, z, n
        "hn": z(T, B, H),           # torch: W_hn h + b_hn; cho: r * h_prev
        "a": z(B, G * H),           # recurrent products of one step
        "Pf": _gemm.zeros_aligned(_gemm.packed_size(G, H, H, dtype), dtype),        # W_hh packed for h @ W_hh.T (_gemm.py)
        "Pb": _gemm.zeros_aligned(_gemm.packed_size(1, H, G * H, dtype), dtype),    # and for d @ W_hh
        "dh": z(B, H),              # carried dh
        "drh": z(B, H),             # cho: dan @ W_hn
        # torch backward adds "dhg" (T, B, 3H) on first use: the gradient w.r.t. the recurrent
        # product + b_hh (its n part is dan * r, where dxg holds dan)
    }


@jit
def _cell_forward_torch(xr, ar, b_hh, gr, hp, hq, hnr, H, u0, u1):
    """One row, units u0:u1 (variant torch). Simple loops, one activation each: fused loops that
    write many rows did not vectorise (see lstm._cell_forward)."""
    Hu = np.uint64(H)
    H2u = Hu + Hu
    lo = np.uint64(u0)
    hi = np.uint64(u1)
    one = hp.dtype.type(1.0)
    for j in range(lo, hi):
        gr[j] = sigmoid_(xr[j] + ar[j] + b_hh[j])
    for j in range(Hu + lo, Hu + hi):
        gr[j] = sigmoid_(xr[j] + ar[j] + b_hh[j])
    for j in range(lo, hi):
        m = ar[H2u + j] + b_hh[H2u + j]
        hnr[j] = m
        gr[H2u + j] = tanh_(xr[H2u + j] + gr[j] * m)
    for j in range(lo, hi):
        z = gr[Hu + j]
        hq[j] = (one - z) * gr[H2u + j] + z * hp[j]


@jit
def _cell_backward_torch(gr, hp, hnr, dr, dhb, dg, H, u0, u1):
    """One row, units u0:u1 (variant torch): dg (the gradient of the recurrent product + b_hh)
    from dh = dr + dhb, and the gradient of the input pre-activations written over the activated
    gates gr, each where that gate was read (as the LSTM's: one buffer fewer, and one array, so
    LLVM's overlap checks keep the loops vectorised); dhb becomes d * z."""
    Hu = np.uint64(H)
    H2u = Hu + Hu
    lo = np.uint64(u0)
    hi = np.uint64(u1)
    one = hp.dtype.type(1.0)
    for j in range(lo, hi):
        z = gr[Hu + j]
        n = gr[H2u + j]
        d = dr[j] + dhb[j]
        daz = d * (hp[j] - n) * z * (one - z)
        dg[Hu + j] = daz
        gr[Hu + j] = daz
        gr[H2u + j] = d * (one - z) * (one - n * n)
        dhb[j] = d * z
    for j in range(lo, hi):
        r = gr[j]
        dan = gr[H2u + j]
        dar = dan * hnr[j] * r * (one - r)
        dg[j] = dar
        gr[j] = dar
        dg[H2u + j] = dan * r


@jit
def _forward(X2, xi, Pf, b_hh, cho, h0, hs, gates, hn, a, b0, b1, u0, u1, bar, nth):
    """Rows b0:b1, units u0:u1 (a unit split, nth > 1, only for variant torch: a barrier after
    each step makes h_t whole before the next product); step t, row b reads its input
    pre-activations from X2[xi[t, b]] (ops.input_rows)."""
    T, B = xi.shape
    GH = X2.shape[1]
    H = GH // 3
    Hu = np.uint64(H)
    H2u = Hu + Hu
    one = hs.dtype.type(1.0)
    ab = consts(hs)
    isz = hs.itemsize
    Bc = b1 - b0
    scratch = np.empty(_gemm.MAX_ROWS * 64 // isz, hs.dtype)
    for b in range(b0, b1):
        for j in range(np.uint64(u0), np.uint64(u1)):
            hs[0, b, j] = h0[b, j]
    gen = barrier(bar, nth, 0)
    for t in range(T):
        ph = hs.ctypes.data + ((t * B + b0) * H) * isz
        pa = a.ctypes.data + b0 * GH * isz
        if not cho:
            _gemm.gates_nt(ab, H, H, 0, 3, u0, u1, Bc, ph, H, Pf.ctypes.data, pa, GH, scratch)
            for b in range(b0, b1):
                _cell_forward_torch(X2[xi[t, b]], a[b], b_hh, gates[t, b], hs[t, b], hs[t + 1, b], hn[t, b], H, u0, u1)
        else:
            _gemm.gates_nt(ab, H, H, 0, 2, 0, H, Bc, ph, H, Pf.ctypes.data, pa, GH, scratch)
            for b in range(b0, b1):
                ar = a[b]
                xr = X2[xi[t, b]]
                gr = gates[t, b]
                hp = hs[t, b]
                hnr = hn[t, b]
                for j in range(H2u):        # r, z (simple loops vectorise, see _cell_forward_torch)
                    gr[j] = sigmoid_(xr[j] + ar[j] + b_hh[j])
                for j in range(Hu):
                    hnr[j] = gr[j] * hp[j]
            phn = hn.ctypes.data + ((t * B + b0) * H) * isz
            _gemm.gates_nt(ab, H, H, 2, 3, 0, H, Bc, phn, H, Pf.ctypes.data, pa, GH, scratch)
            for b in range(b0, b1):
                ar = a[b]
                xr = X2[xi[t, b]]
                gr = gates[t, b]
                hp = hs[t, b]
                hq = hs[t + 1, b]
                for j in range(H2u, H2u + Hu):
                    gr[j] = tanh_(xr[j] + ar[j] + b_hh[j])
                for j in range(Hu):
                    z = gr[Hu + j]
                    hq[j] = (one - z) * gr[H2u + j] + z * hp[j]
        gen = barrier(bar, nth, gen)


@jit
def _backward_torch(hs, gates, hn, Pb, dhs, dh, dhg, dh0, b0, b1, u0, u1, bar, nth):
    """Rows b0:b1, units u0:u1, all T steps; gates[t] becomes the gradient of step t's input
    pre-activations (see _cell_backward_torch)."""
    T, B, GH = gates.shape
    H = GH // 3
    ab = consts(hs)
    isz = hs.itemsize
    scratch = np.empty(_gemm.MAX_ROWS * 64 // isz, hs.dtype)
    gen = 0
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            _cell_backward_torch(gates[t, b], hs[t, b], hn[t, b], dhs[t, b], dh[b], dhg[t, b], H, u0, u1)
        # dh = d * z (written above) + dhg @ W_hh (units u0:u1, once all of dhg_t is written)
        gen = barrier(bar, nth, gen)
        _gemm.units_nn(ab, GH, 0, GH, u0, u1, b1 - b0, dhg.ctypes.data + ((t * B + b0) * GH) * isz, GH, Pb,
                       dh.ctypes.data + b0 * H * isz, H, True, scratch)
    for b in range(b0, b1):
        for j in range(np.uint64(u0), np.uint64(u1)):
            dh0[b, j] = dh[b, j]


@jit
def _backward_cho(hs, gates, Pb, dhs, dh, drh, dxg, dh0, b0, b1):
    T, B, GH = dxg.shape
    H = GH // 3
    Hu = np.uint64(H)
    H2u = Hu + Hu
    one = hs.dtype.type(1.0)
    ab = consts(hs)
    isz = hs.itemsize
    Bc = b1 - b0
    scratch = np.empty(_gemm.MAX_ROWS * 64 // isz, hs.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            gr = gates[t, b]
            hp = hs[t, b]
            dr = dhs[t, b]
            dhb = dh[b]
            dx = dxg[t, b]
            for j in range(Hu):
                z = gr[Hu + j]
                n = gr[H2u + j]
                d = dr[j] + dhb[j]
                dx[Hu + j] = d * (hp[j] - n) * z * (one - z)
                dx[H2u + j] = d * (one - z) * (one - n * n)
            for j in range(Hu):
                dhb[j] = (dr[j] + dhb[j]) * gr[Hu + j]
        pdx = dxg.ctypes.data + ((t * B + b0) * GH) * isz
        # drh = dan @ W_hn
        _gemm.units_nn(ab, GH, 2 * H, H, 0, H, Bc, pdx + 2 * H * isz, GH, Pb, drh.ctypes.data + b0 * H * isz, H,
                       False, scratch)
        for b in range(b0, b1):
            gr = gates[t, b]
            hp = hs[t, b]
            dhb = dh[b]
            dx = dxg[t, b]
            drr = drh[b]
            for j in range(Hu):
                r = gr[j]
                dx[j] = drr[j] * hp[j] * r * (one - r)
                dhb[j] += drr[j] * r
        # dh += [dar, daz] @ W_hr,z
        _gemm.units_nn(ab, GH, 0, 2 * H, 0, H, Bc, pdx, GH, Pb, dh.ctypes.data + b0 * H * isz, H, True, scratch)
    for b in range(b0, b1):
        for j in range(H):
            dh0[b, j] = dh[b, j]


def _plan(B, H, W_hh, variant, direction="forward"):
    if variant == "cho":        # two dependent products per step: batch chunks only
        return [(b0, b1, 0, H) for b0, b1 in _threads.chunks(B)]
    return _threads.plan(B, H, W_hh.nbytes, direction)


def forward(ws, xg, W_hh, b_hh, variant, h0):
    _gemm.pack_gates(W_hh, G, ws["Pf"])
    args = input_rows(xg) + (ws["Pf"], b_hh, variant == "cho", h0, ws["hs"], ws["gates"], ws["hn"], ws["a"])
    parts = _plan(xg.shape[1], W_hh.shape[1], W_hh, variant)
    bar, nth = new_barrier(), _threads.nsync(parts)
    _threads.run_sync(_forward, [args + c + (bar, nth) for c in parts])


def backward(ws, xg, W_hh, b_hh, variant, dhs, dhT, dxg, dW_hh, db_hh, dh0):
    """Writes dh0; accumulates dW_hh, db_hh. Reads dhs only. Variant torch: returns the gradient
    of the input pre-activations, ws["gates"] (T, B, 3H) overwritten in place (dxg is not written;
    forward fills the gates again), as lstm.backward does. Variant cho: writes dxg, returns None."""
    dh = ws["dh"]
    if dhT is None:
        dh.fill(0)
    else:
        dh[...] = dhT
    T, B, H = dhs.shape
    chunks = _threads.chunks(B)
    hs2 = ws["hs"][:T].reshape(T * B, H)
    ab = consts(dxg)
    _gemm.pack_units(W_hh, ws["Pb"])
    if variant == "torch":
        if "dhg" not in ws:
            ws["dhg"] = np.zeros((T, B, G * H), dxg.dtype)
        args = (ws["hs"], ws["gates"], ws["hn"], ws["Pb"], dhs, dh, ws["dhg"], dh0)
        parts = _plan(B, H, W_hh, variant, "backward")
        bar, nth = new_barrier(), _threads.nsync(parts)
        _threads.run_sync(_backward_torch, [args + c + (bar, nth) for c in parts])
        wgrad(ws["dhg"].reshape(T * B, G * H), hs2, dW_hh, db_hh, ab)
        return ws["gates"]
    else:
        args = (ws["hs"], ws["gates"], ws["Pb"], dhs, dh, ws["drh"], dxg, dh0)
        _threads.run(_backward_cho, [args + c for c in chunks])
        d2 = dxg.reshape(T * B, G * H)
        # rows r, z of dW_hh see h_{t-1}; rows n see r * h_{t-1} (stored in hn)
        _wgrad_cho(d2, hs2, ws["hn"].reshape(T * B, H), dW_hh, db_hh, ab)


@jit
def _wgrad_cho_rows(d2, hs2, hn2, dW, db, r0, r1, ab):
    N, GH = d2.shape
    H = hs2.shape[1]
    isz = d2.itemsize
    for lo, hi, src in ((r0, min(r1, 2 * H), hs2), (max(r0, 2 * H), r1, hn2)):
        if hi > lo:
            rgemm(ab, T_, N_, hi - lo, H, N, d2.ctypes.data + lo * isz, GH, src.ctypes.data, H, True,
                  dW.ctypes.data + lo * H * isz, H)
    for n in range(N):
        a = d2[n]
        for o in range(np.uint64(r0), np.uint64(r1)):
            db[o] += a[o]


def _wgrad_cho(d2, hs2, hn2, dW, db, ab):
    _threads.run(_wgrad_cho_rows, [(d2, hs2, hn2, dW, db, r0, r1, ab)
                                   for r0, r1 in _threads.chunks(d2.shape[1], config.MIN_WROWS)])
