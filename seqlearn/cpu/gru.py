"""GRU forward and backward through time, jitted (same equations as seqlearn/ref/gru.py).

variant "torch" (reset after the product): one product ``h @ W_hh.T`` (B, 3H) per step.
variant "cho" (reset before the product): two dependent products per step, ``h @ W_hr,z.T`` and
``(r * h) @ W_hn.T``; backward likewise needs two. The weight gradients are products over all
steps after the loop in both variants.
"""
import numpy as np

from ._act import sigmoid_, tanh_
from ._blas import acc_colsum, acc_tn, copy2
from ._jit import jit

G = 3


def workspace(T, B, H, dtype):
    z = lambda *s: np.zeros(s, dtype)  # noqa: E731
    return {
        "hs": z(T + 1, B, H),
        "gates": z(T, B, G * H),    # activated r, z, n
        "hn": z(T, B, H),           # torch: W_hn h + b_hn; cho: r * h_prev
        "a": z(B, G * H),           # recurrent products of one step
        "a2": z(B, H),              # cho: the second product
        # backward adds, by variant, on first use: "dhg" (T, B, 3H) (torch: the gradient w.r.t.
        # the recurrent product + b_hh), or "drz" (T, B, 2H) and "dan" (T, B, H) (cho: its r, z
        # and n parts, each contiguous per step)
        "dh": z(B, H),              # carried dh
        "dz": z(B, H),              # dh * z of one step
        "drh": z(B, H),             # cho: dan @ W_hn
    }


@jit
def _forward_torch(xg, W_hh, b_hh, h0, hs, gates, hn, a):
    T, B, GH = xg.shape
    H = GH // 3
    copy2(h0, hs[0])
    WT = W_hh.T
    one = hs.dtype.type(1.0)
    for t in range(T):
        np.dot(hs[t], WT, a)
        for b in range(B):
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


@jit
def _forward_cho(xg, W_hh, b_hh, h0, hs, gates, hn, a, a2):
    T, B, GH = xg.shape
    H = GH // 3
    copy2(h0, hs[0])
    Wrz = W_hh[:2 * H].T
    Wn = W_hh[2 * H:].T
    arz = a.reshape(B * G * H)[:B * 2 * H].reshape(B, 2 * H)
    one = hs.dtype.type(1.0)
    for t in range(T):
        np.dot(hs[t], Wrz, arz)
        for b in range(B):
            ar = arz[b]
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
        np.dot(hn[t], Wn, a2)
        for b in range(B):
            ar = a2[b]
            xr = xg[t, b]
            gr = gates[t, b]
            hp = hs[t, b]
            hq = hs[t + 1, b]
            for j in range(H):
                n = tanh_(xr[2 * H + j] + ar[j] + b_hh[2 * H + j])
                z = gr[H + j]
                gr[2 * H + j] = n
                hq[j] = (one - z) * n + z * hp[j]


@jit
def _backward_torch(hs, gates, hn, W_hh, dhs, dh, dzb, dhg, dxg, dW_hh, db_hh, dh0):
    T, B, GH = dxg.shape
    H = GH // 3
    one = hs.dtype.type(1.0)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            gr = gates[t, b]
            hp = hs[t, b]
            hnr = hn[t, b]
            dr = dhs[t, b]
            dhb = dh[b]
            dzr = dzb[b]
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
                dzr[j] = d * z
                dg[j] = dar
                dg[H + j] = daz
                dg[2 * H + j] = dan * r
                dx[j] = dar
                dx[H + j] = daz
                dx[2 * H + j] = dan
        np.dot(dhg[t], W_hh, dh)
        for b in range(B):
            dhb = dh[b]
            dzr = dzb[b]
            for j in range(H):
                dhb[j] += dzr[j]
    copy2(dh, dh0)
    d2 = dhg.reshape(T * B, GH)
    acc_tn(dW_hh, d2, hs[:T].reshape(T * B, H))
    acc_colsum(db_hh, d2)


@jit
def _backward_cho(hs, gates, hn, W_hh, dhs, dh, dzb, drh, drz, dan_all, dxg, dW_hh, db_hh, dh0):
    T, B, GH = dxg.shape
    H = GH // 3
    Wrz = W_hh[:2 * H]
    Wn = W_hh[2 * H:]
    one = hs.dtype.type(1.0)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            gr = gates[t, b]
            hp = hs[t, b]
            dr = dhs[t, b]
            dhb = dh[b]
            dzr = dzb[b]
            dnr = dan_all[t, b]
            dgr = drz[t, b]
            dx = dxg[t, b]
            for j in range(H):
                z = gr[H + j]
                n = gr[2 * H + j]
                d = dr[j] + dhb[j]
                daz = d * (hp[j] - n) * z * (one - z)
                dan = d * (one - z) * (one - n * n)
                dzr[j] = d * z
                dnr[j] = dan
                dgr[H + j] = daz
                dx[H + j] = daz
                dx[2 * H + j] = dan
        np.dot(dan_all[t], Wn, drh)
        for b in range(B):
            gr = gates[t, b]
            hp = hs[t, b]
            dzr = dzb[b]
            dgr = drz[t, b]
            dx = dxg[t, b]
            drr = drh[b]
            for j in range(H):
                r = gr[j]
                dar = drr[j] * hp[j] * r * (one - r)
                dgr[j] = dar
                dx[j] = dar
                dzr[j] += drr[j] * r
        np.dot(drz[t], Wrz, dh)
        for b in range(B):
            dhb = dh[b]
            dzr = dzb[b]
            for j in range(H):
                dhb[j] += dzr[j]
    copy2(dh, dh0)
    acc_tn(dW_hh[:2 * H], drz.reshape(T * B, 2 * H), hs[:T].reshape(T * B, H))
    acc_tn(dW_hh[2 * H:], dan_all.reshape(T * B, H), hn.reshape(T * B, H))
    acc_colsum(db_hh, dxg.reshape(T * B, GH))


def forward(ws, xg, W_hh, b_hh, variant, h0):
    if variant == "torch":
        _forward_torch(xg, W_hh, b_hh, h0, ws["hs"], ws["gates"], ws["hn"], ws["a"])
    else:
        _forward_cho(xg, W_hh, b_hh, h0, ws["hs"], ws["gates"], ws["hn"], ws["a"], ws["a2"])


def backward(ws, xg, W_hh, b_hh, variant, dhs, dhT, dxg, dW_hh, db_hh, dh0):
    """Writes dxg, dh0; accumulates dW_hh, db_hh. Reads dhs only."""
    dh = ws["dh"]
    if dhT is None:
        dh.fill(0)
    else:
        dh[...] = dhT
    T, B, H = dhs.shape
    if variant == "torch":
        if "dhg" not in ws:
            ws["dhg"] = np.zeros((T, B, G * H), dxg.dtype)
        _backward_torch(ws["hs"], ws["gates"], ws["hn"], W_hh, dhs, dh, ws["dz"], ws["dhg"], dxg,
                        dW_hh, db_hh, dh0)
    else:
        if "drz" not in ws:
            ws["drz"] = np.zeros((T, B, 2 * H), dxg.dtype)
            ws["dan"] = np.zeros((T, B, H), dxg.dtype)
        _backward_cho(ws["hs"], ws["gates"], ws["hn"], W_hh, dhs, dh, ws["dz"], ws["drh"], ws["drz"],
                      ws["dan"], dxg, dW_hh, db_hh, dh0)
