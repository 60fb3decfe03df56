"""Plain tanh RNN forward and backward through time, jitted: h' = tanh(xg + W_hh h + b_hh).
Same structure as lstm.py: one product per step against W_hh packed once per call (_gemm.py),
batch chunks on threads, dW_hh after the loop."""
import numpy as np

from . import _threads
from ._act import tanh_
from . import _gemm
from ._blas import consts
from ._jit import jit
from .ops import input_rows
from .wgrad import wgrad

G = 1


def workspace(T, B, H, dtype):
    return {"hs": np.zeros((T + 1, B, H), dtype), "a": np.zeros((B, H), dtype),
            "dh": np.zeros((B, H), dtype), "Pf": _gemm.zeros_aligned(_gemm.packed_size(1, H, H, dtype), dtype),
            "Pb": _gemm.zeros_aligned(_gemm.packed_size(1, H, H, dtype), dtype)}


@jit
def _forward(X2, xi, Pf, b_hh, h0, hs, a, b0, b1):
    """Rows b0:b1, all T steps; step t, row b reads its input pre-activations from X2[xi[t, b]]."""
    T, B = xi.shape
    H = X2.shape[1]
    ab = consts(hs)
    isz = hs.itemsize
    scratch = np.empty(_gemm.MAX_ROWS * 64 // isz, hs.dtype)
    for b in range(b0, b1):
        for j in range(H):
            hs[0, b, j] = h0[b, j]
    for t in range(T):
        _gemm.gates_nt(ab, H, H, 0, 1, 0, H, b1 - b0, hs.ctypes.data + ((t * B + b0) * H) * isz, H, Pf.ctypes.data,
                       a.ctypes.data + b0 * H * isz, H, scratch)
        for b in range(b0, b1):
            ar = a[b]
            xr = X2[xi[t, b]]
            hq = hs[t + 1, b]
            for j in range(H):
                hq[j] = tanh_(xr[j] + ar[j] + b_hh[j])


@jit
def _backward(hs, Pb, dhs, dh, dxg, dh0, b0, b1):
    T, B, H = dxg.shape
    one = hs.dtype.type(1.0)
    ab = consts(hs)
    isz = hs.itemsize
    scratch = np.empty(_gemm.MAX_ROWS * 64 // isz, hs.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            hq = hs[t + 1, b]
            dr = dhs[t, b]
            dhb = dh[b]
            dx = dxg[t, b]
            for j in range(H):
                dx[j] = (dr[j] + dhb[j]) * (one - hq[j] * hq[j])
        _gemm.units_nn(ab, H, 0, H, 0, H, b1 - b0, dxg.ctypes.data + ((t * B + b0) * H) * isz, H, Pb,
                       dh.ctypes.data + b0 * H * isz, H, False, scratch)
    for b in range(b0, b1):
        for j in range(H):
            dh0[b, j] = dh[b, j]


def forward(ws, xg, W_hh, b_hh, h0):
    _gemm.pack_gates(W_hh, G, ws["Pf"])
    args = input_rows(xg) + (ws["Pf"], b_hh, h0, ws["hs"], ws["a"])
    _threads.run(_forward, [args + c for c in _threads.chunks(xg.shape[1])])


def backward(ws, xg, W_hh, b_hh, dhs, dhT, dxg, dW_hh, db_hh, dh0):
    """Writes dxg, dh0; accumulates dW_hh, db_hh. Reads dhs only."""
    dh = ws["dh"]
    if dhT is None:
        dh.fill(0)
    else:
        dh[...] = dhT
    T, B, H = dhs.shape
    _gemm.pack_units(W_hh, ws["Pb"])
    args = (ws["hs"], ws["Pb"], dhs, dh, dxg, dh0)
    _threads.run(_backward, [args + c for c in _threads.chunks(B)])
    wgrad(dxg.reshape(T * B, H), ws["hs"][:T].reshape(T * B, H), dW_hh, db_hh, consts(dxg))
