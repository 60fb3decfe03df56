"""GRU forward and backward through time, jitted (same equations as seqlearn/ref/gru.py).

variant "torch" (reset after the product): one product ``h @ W_hh.T`` (B, 3H) per step.
variant "cho" (reset before the product): two dependent products per step, ``h @ W_hr,z.T`` and
``(r * h) @ W_hn.T``; backward likewise needs two. The weight gradients are products over all
steps after the loop in both variants. The batch is split into chunks that run their whole time
loop on separate threads (see _threads.py).
"""
import numpy as np

from . import _threads
from ._act import sigmoid_, tanh_
from ._blas import N_, T_, consts, rgemm, wgrad
from ._jit import jit

G = 3


def workspace(T, B, H, dtype):
    z = lambda *s: np.zeros(s, dtype)  # noqa: E731
    return {
        "hs": z(T + 1, B, H),
        "gates": z(T, B, G * H),    # activated r, z, n
        "hn": z(T, B, H),           # torch: W_hn h + b_hn; cho: r * h_prev
        "a": z(B, G * H),           # recurrent products of one step
        "dh": z(B, H),              # carried dh
        "drh": z(B, H),             # cho: dan @ W_hn
        # torch backward adds "dhg" (T, B, 3H) on first use: the gradient w.r.t. the recurrent
        # product + b_hh (its n part is dan * r, where dxg holds dan)
    }


@jit
def _forward(xg, W_hh, b_hh, cho, h0, hs, gates, hn, a, b0, b1):
    T, B, GH = xg.shape
    H = GH // 3
    one = hs.dtype.type(1.0)
    ab = consts(hs)
    isz = hs.itemsize
    Bc = b1 - b0
    for b in range(b0, b1):
        for j in range(H):
            hs[0, b, j] = h0[b, j]
    for t in range(T):
        ph = hs.ctypes.data + ((t * B + b0) * H) * isz
        pa = a.ctypes.data + b0 * GH * isz
        if not cho:
            rgemm(ab, N_, T_, Bc, GH, H, ph, H, W_hh.ctypes.data, H, False, pa, GH)
            for b in range(b0, b1):
                ar = a[b]
                xr = xg[t, b]
                gr = gates[t, b]
                hp = hs[t, b]
                hq = hs[t + 1, b]
                hnr = hn[t, b]
                for j in range(H):
                    r = sigmoid_(xr[j] + ar[j] + b_hh[j])
                    z = sigmoid_(xr[H + j] + ar[H + j] + b_hh[H + j])
                    m = ar[2 * H + j] + b_hh[2 * H + j]
                    n = tanh_(xr[2 * H + j] + r * m)
                    hnr[j] = m
                    gr[j] = r
                    gr[H + j] = z
                    gr[2 * H + j] = n
                    hq[j] = (one - z) * n + z * hp[j]
        else:
            rgemm(ab, N_, T_, Bc, 2 * H, H, ph, H, W_hh.ctypes.data, H, False, pa, GH)
            for b in range(b0, b1):
                ar = a[b]
                xr = xg[t, b]
                gr = gates[t, b]
                hp = hs[t, b]
                hnr = hn[t, b]
                for j in range(H):
                    r = sigmoid_(xr[j] + ar[j] + b_hh[j])
                    z = sigmoid_(xr[H + j] + ar[H + j] + b_hh[H + j])
                    gr[j] = r
                    gr[H + j] = z
                    hnr[j] = r * hp[j]
            rgemm(ab, N_, T_, Bc, H, H, hn.ctypes.data + ((t * B + b0) * H) * isz, H,
                  W_hh.ctypes.data + 2 * H * H * isz, H, False, pa + 2 * H * isz, GH)
            for b in range(b0, b1):
                ar = a[b]
                xr = xg[t, b]
                gr = gates[t, b]
                hp = hs[t, b]
                hq = hs[t + 1, b]
                for j in range(H):
                    n = tanh_(xr[2 * H + j] + ar[2 * H + j] + b_hh[2 * H + j])
                    z = gr[H + j]
                    gr[2 * H + j] = n
                    hq[j] = (one - z) * n + z * hp[j]


@jit
def _backward_torch(hs, gates, hn, W_hh, dhs, dh, dhg, dxg, dh0, b0, b1):
    T, B, GH = dxg.shape
    H = GH // 3
    one = hs.dtype.type(1.0)
    ab = consts(hs)
    isz = hs.itemsize
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            gr = gates[t, b]
            hp = hs[t, b]
            hnr = hn[t, b]
            dr = dhs[t, b]
            dhb = dh[b]
            dg = dhg[t, b]
            dx = dxg[t, b]
            for j in range(H):
                r = gr[j]
                z = gr[H + j]
                n = gr[2 * H + j]
                d = dr[j] + dhb[j]
                daz = d * (hp[j] - n) * z * (one - z)
                dan = d * (one - z) * (one - n * n)
                dar = dan * hnr[j] * r * (one - r)
                dhb[j] = d * z
                dg[j] = dar
                dg[H + j] = daz
                dg[2 * H + j] = dan * r
                dx[j] = dar
                dx[H + j] = daz
                dx[2 * H + j] = dan
        # dh = d * z (written above) + dhg @ W_hh
        rgemm(ab, N_, N_, b1 - b0, H, GH, dhg.ctypes.data + ((t * B + b0) * GH) * isz, GH,
              W_hh.ctypes.data, H, True, dh.ctypes.data + b0 * H * isz, H)
    for b in range(b0, b1):
        for j in range(H):
            dh0[b, j] = dh[b, j]


@jit
def _backward_cho(hs, gates, W_hh, dhs, dh, drh, dxg, dh0, b0, b1):
    T, B, GH = dxg.shape
    H = GH // 3
    one = hs.dtype.type(1.0)
    ab = consts(hs)
    isz = hs.itemsize
    Bc = b1 - b0
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            gr = gates[t, b]
            hp = hs[t, b]
            dr = dhs[t, b]
            dhb = dh[b]
            dx = dxg[t, b]
            for j in range(H):
                z = gr[H + j]
                n = gr[2 * H + j]
                d = dr[j] + dhb[j]
                dx[H + j] = d * (hp[j] - n) * z * (one - z)
                dx[2 * H + j] = d * (one - z) * (one - n * n)
                dhb[j] = d * z
        pdx = dxg.ctypes.data + ((t * B + b0) * GH) * isz
        # drh = dan @ W_hn
        rgemm(ab, N_, N_, Bc, H, H, pdx + 2 * H * isz, GH, W_hh.ctypes.data + 2 * H * H * isz, H, False,
              drh.ctypes.data + b0 * H * isz, H)
        for b in range(b0, b1):
            gr = gates[t, b]
            hp = hs[t, b]
            dhb = dh[b]
            dx = dxg[t, b]
            drr = drh[b]
            for j in range(H):
                r = gr[j]
                dx[j] = drr[j] * hp[j] * r * (one - r)
                dhb[j] += drr[j] * r
        # dh += [dar, daz] @ W_hr,z
        rgemm(ab, N_, N_, Bc, H, 2 * H, pdx, GH, W_hh.ctypes.data, H, True, dh.ctypes.data + b0 * H * isz, H)
    for b in range(b0, b1):
        for j in range(H):
            dh0[b, j] = dh[b, j]


def forward(ws, xg, W_hh, b_hh, variant, h0):
    args = (xg, W_hh, b_hh, variant == "cho", h0, ws["hs"], ws["gates"], ws["hn"], ws["a"])
    _threads.run(_forward, [args + c for c in _threads.chunks(xg.shape[1])])


def backward(ws, xg, W_hh, b_hh, variant, dhs, dhT, dxg, dW_hh, db_hh, dh0):
    """Writes dxg, dh0; accumulates dW_hh, db_hh. Reads dhs only."""
    dh = ws["dh"]
    if dhT is None:
        dh.fill(0)
    else:
        dh[...] = dhT
    T, B, H = dhs.shape
    chunks = _threads.chunks(B)
    hs2 = ws["hs"][:T].reshape(T * B, H)
    ab = consts(dxg)
    if variant == "torch":
        if "dhg" not in ws:
            ws["dhg"] = np.zeros((T, B, G * H), dxg.dtype)
        args = (ws["hs"], ws["gates"], ws["hn"], W_hh, dhs, dh, ws["dhg"], dxg, dh0)
        _threads.run(_backward_torch, [args + c for c in chunks])
        wgrad(ws["dhg"].reshape(T * B, G * H), hs2, dW_hh, db_hh, ab)
    else:
        args = (ws["hs"], ws["gates"], W_hh, dhs, dh, ws["drh"], dxg, dh0)
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
        for o in range(r0, r1):
            db[o] += a[o]


def _wgrad_cho(d2, hs2, hn2, dW, db, ab):
    _threads.run(_wgrad_cho_rows, [(d2, hs2, hn2, dW, db, r0, r1, ab)
                                   for r0, r1 in _threads.chunks(d2.shape[1], _threads.MIN_WROWS)])
