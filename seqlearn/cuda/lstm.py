"""LSTM forward and backward through time on the GPU (equations: seqlearn/ref/lstm.py).

Two paths with the same results:
- persistent (seqlearn/cuda/persist.py): one cooperative launch per sequence and direction, the
  recurrent weights held in shared memory, a grid-wide barrier between steps; used where H and B
  fit the device (no peepholes);
- per step (fallback): for each t one tiled product h_{t-1} @ W_hh.T + b_hh and one fused
  pointwise kernel; backward likewise, then the weight gradient as one product over all steps.
"""
import numpy as np
from numba import cuda

from . import config, ops, persist
from . import kernels as K

G = 4


def _pw(n):
    t = config.THREADS
    return (n + t - 1) // t, t


def workspace(T, B, H, dtype):
    z = lambda *s: ops.zeros(s, dtype)  # noqa: E731
    return {
        "hs": z(T + 1, B, H), "cs": z(T + 1, B, H), "gates": z(T, B, G * H),
        "a": z(B, G * H),            # per-step recurrent pre-activation (per-step path)
        "dh_next": z(B, H), "dc": z(B, H),
    }


def forward(ws, xg, W_hh, b_hh, p, h0, c0):
    T, B, _ = xg.shape
    H = W_hh.shape[1]
    hs, cs, gates, a = ws["hs"], ws["cs"], ws["gates"], ws["a"]
    ops.copy(h0, hs[0])
    if c0 is None:
        ops.fill_zero(cs[0])
    else:
        ops.copy(c0, cs[0])
    if p is None and persist.forward("lstm", ws, xg, W_hh, b_hh):
        return
    has_p = p is not None
    pp = p if has_p else ops.dummy2(xg.dtype)
    grid = _pw(B * H)
    for t in range(T):
        ops.matmul(hs[t], W_hh, a, bias=b_hh, tb=True)
        K.launch(K.k_lstm_fwd_step, grid, (xg[t], a, cs[t], pp, int(has_p), gates[t], cs[t + 1], hs[t + 1]))


def backward(ws, xg, W_hh, b_hh, p, dhs, dhT, dcT, dxg, dW_hh, db_hh, dp, dh0, dc0):
    """Writes dxg, dh0, dc0; accumulates dW_hh, db_hh, dp."""
    T, B, _ = xg.shape
    H = W_hh.shape[1]
    hs, cs, gates = ws["hs"], ws["cs"], ws["gates"]
    dh_next, dc = ws["dh_next"], ws["dc"]
    for src, dst in ((dhT, dh_next), (dcT, dc)):
        if src is None:
            ops.fill_zero(dst)
        else:
            ops.copy(src, dst)
    if not (p is None and persist.backward("lstm", ws, xg, W_hh, dhs, dxg, dh0)):
        has_p = p is not None
        pp = p if has_p else ops.dummy2(xg.dtype)
        grid = _pw(B * H)
        for t in range(T - 1, -1, -1):
            K.launch(K.k_lstm_bwd_step, grid, (dhs[t], dh_next, gates[t], cs[t + 1], cs[t], dc, pp, int(has_p), dxg[t]))
            ops.matmul(dxg[t], W_hh, dh_next)
        ops.copy(dh_next, dh0)
    flat = dxg.reshape(T * B, G * H)
    ops.matmul_wgrad(flat, hs[:T].reshape(T * B, H), dW_hh, db_hh)
    if p is not None:
        t = config.THREADS
        K.launch(K.k_peephole_grad, ((3 * H + t - 1) // t, t), (dxg, cs, dp))
    if dc0 is not None:
        ops.copy(dc, dc0)
