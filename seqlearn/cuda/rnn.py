"""Plain tanh RNN on the GPU: h' = tanh(xg + W_hh h + b_hh). Per-step path only (a tiled product
and a pointwise kernel per step); the persistent kernels cover lstm and gru."""
import math

from numba import cuda

from . import ops
from ._launch import launch


# Pointwise step kernels: one thread per (b, j); `a` holds h_{t-1} @ W_hh.T + b_hh.
@cuda.jit
def k_rnn_fwd_step(xg, a, h_out):
    B = xg.shape[0]
    H = xg.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    h_out[b, j] = math.tanh(xg[b, j] + a[b, j])


@cuda.jit
def k_rnn_bwd_step(dhs_t, dh_next, h, da):
    B = h.shape[0]
    H = h.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    hv = h[b, j]
    da[b, j] = (dhs_t[b, j] + dh_next[b, j]) * (1.0 - hv * hv)


G = 1


def workspace(T, B, H, dtype):
    z = lambda *s: ops.zeros(s, dtype)  # noqa: E731
    return {"hs": z(T + 1, B, H), "a": z(B, H), "dh_next": z(B, H)}


def forward(ws, xg, W_hh, b_hh, h0):
    T, B, H = xg.shape
    hs, a = ws["hs"], ws["a"]
    ops.copy(h0, hs[0])
    grid = ops.step_grid(B * H)
    for t in range(T):
        ops.matmul(hs[t], W_hh, a, bias=b_hh, tb=True)
        launch(k_rnn_fwd_step, grid, (xg[t], a, hs[t + 1]))


def backward(ws, xg, W_hh, b_hh, dhs, dhT, dxg, dW_hh, db_hh, dh0):
    T, B, H = dhs.shape
    hs, dh_next = ws["hs"], ws["dh_next"]
    if dhT is None:
        ops.fill_zero(dh_next)
    else:
        ops.copy(dhT, dh_next)
    grid = ops.step_grid(B * H)
    for t in range(T - 1, -1, -1):
        launch(k_rnn_bwd_step, grid, (dhs[t], dh_next, hs[t + 1], dxg[t]))
        ops.matmul(dxg[t], W_hh, dh_next)
    flat = dxg.reshape(T * B, H)
    ops.matmul_wgrad(flat, hs[:T].reshape(T * B, H), dW_hh, db_hh)
    ops.copy(dh_next, dh0)
