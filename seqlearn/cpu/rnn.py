"""Plain tanh RNN forward and backward through time, jitted: h' = tanh(xg + W_hh h + b_hh)."""
import numpy as np

from ._act import tanh_
from ._blas import acc_colsum, acc_tn, copy2
from ._jit import jit

G = 1


def workspace(T, B, H, dtype):
    return {"hs": np.zeros((T + 1, B, H), dtype), "a": np.zeros((B, H), dtype),
            "dh": np.zeros((B, H), dtype)}


@jit
def _forward(xg, W_hh, b_hh, h0, hs, a):
    T, B, H = xg.shape
    copy2(h0, hs[0])
    WT = W_hh.T
    for t in range(T):
        np.dot(hs[t], WT, a)
        for b in range(B):
            ar = a[b]
            xr = xg[t, b]
            hq = hs[t + 1, b]
            for j in range(H):
                hq[j] = tanh_(xr[j] + ar[j] + b_hh[j])


@jit
def _backward(hs, W_hh, dhs, dh, dxg, dW_hh, db_hh, dh0):
    T, B, H = dxg.shape
    one = hs.dtype.type(1.0)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            hq = hs[t + 1, b]
            dr = dhs[t, b]
            dhb = dh[b]
            dx = dxg[t, b]
            for j in range(H):
                dx[j] = (dr[j] + dhb[j]) * (one - hq[j] * hq[j])
        np.dot(dxg[t], W_hh, dh)
    copy2(dh, dh0)
    d2 = dxg.reshape(T * B, H)
    acc_tn(dW_hh, d2, hs[:T].reshape(T * B, H))
    acc_colsum(db_hh, d2)


def forward(ws, xg, W_hh, b_hh, h0):
    _forward(xg, W_hh, b_hh, h0, ws["hs"], ws["a"])


def backward(ws, xg, W_hh, b_hh, dhs, dhT, dxg, dW_hh, db_hh, dh0):
    """Writes dxg, dh0; accumulates dW_hh, db_hh. Reads dhs only."""
    dh = ws["dh"]
    if dhT is None:
        dh.fill(0)
    else:
        dh[...] = dhT
    _backward(ws["hs"], W_hh, dhs, dh, dxg, dW_hh, db_hh, dh0)
