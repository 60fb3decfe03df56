"""Plain tanh RNN forward and backward through time, jitted: h' = tanh(xg + W_hh h + b_hh).
Same structure as lstm.py: one product per step, batch chunks on threads, dW_hh after the loop."""
import numpy as np

from . import _threads
from ._act import tanh_
from ._blas import N_, T_, consts, rgemm, wgrad
from ._jit import jit

G = 1


def workspace(T, B, H, dtype):
    return {"hs": np.zeros((T + 1, B, H), dtype), "a": np.zeros((B, H), dtype),
            "dh": np.zeros((B, H), dtype)}


@jit
def _forward(xg, W_hh, b_hh, h0, hs, a, b0, b1):
    T, B, H = xg.shape
    ab = consts(hs)
    isz = hs.itemsize
    for b in range(b0, b1):
        for j in range(H):
            hs[0, b, j] = h0[b, j]
    for t in range(T):
        rgemm(ab, N_, T_, b1 - b0, H, H, hs.ctypes.data + ((t * B + b0) * H) * isz, H,
              W_hh.ctypes.data, H, False, a.ctypes.data + b0 * H * isz, H)
        for b in range(b0, b1):
            ar = a[b]
            xr = xg[t, b]
            hq = hs[t + 1, b]
            for j in range(H):
                hq[j] = tanh_(xr[j] + ar[j] + b_hh[j])


@jit
def _backward(hs, W_hh, dhs, dh, dxg, dh0, b0, b1):
    T, B, H = dxg.shape
    one = hs.dtype.type(1.0)
    ab = consts(hs)
    isz = hs.itemsize
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            hq = hs[t + 1, b]
            dr = dhs[t, b]
            dhb = dh[b]
            dx = dxg[t, b]
            for j in range(H):
                dx[j] = (dr[j] + dhb[j]) * (one - hq[j] * hq[j])
        rgemm(ab, N_, N_, b1 - b0, H, H, dxg.ctypes.data + ((t * B + b0) * H) * isz, H,
              W_hh.ctypes.data, H, False, dh.ctypes.data + b0 * H * isz, H)
    for b in range(b0, b1):
        for j in range(H):
            dh0[b, j] = dh[b, j]


def forward(ws, xg, W_hh, b_hh, h0):
    args = (xg, W_hh, b_hh, h0, ws["hs"], ws["a"])
    _threads.run(_forward, [args + c for c in _threads.chunks(xg.shape[1])])


def backward(ws, xg, W_hh, b_hh, dhs, dhT, dxg, dW_hh, db_hh, dh0):
    """Writes dxg, dh0; accumulates dW_hh, db_hh. Reads dhs only."""
    dh = ws["dh"]
    if dhT is None:
        dh.fill(0)
    else:
        dh[...] = dhT
    T, B, H = dhs.shape
    args = (ws["hs"], W_hh, dhs, dh, dxg, dh0)
    _threads.run(_backward, [args + c for c in _threads.chunks(B)])
    wgrad(dxg.reshape(T * B, H), ws["hs"][:T].reshape(T * B, H), dW_hh, db_hh, consts(dxg))
