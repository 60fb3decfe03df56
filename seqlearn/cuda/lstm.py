"""LSTM forward and backward through time on the GPU (equations: seqlearn/ref/lstm.py).

Two paths with the same results:
- persistent (seqlearn/cuda/persist.py): one cooperative launch per sequence and direction, the
  recurrent weights held in shared memory, a grid-wide barrier between steps; used where H and B
  fit the device (no peepholes);
- per step (fallback): for each t one tiled product h_{t-1} @ W_hh.T + b_hh and one fused
  pointwise kernel; backward likewise, then the weight gradient as one product over all steps.
"""
import math

from numba import cuda

from . import ops, persist
from ._act import sigmoid
from ._launch import launch


# Pointwise step kernels: one thread per (b, j); `a` holds h_{t-1} @ W_hh.T + b_hh.
@cuda.jit
def k_lstm_fwd_step(xg, a, c_prev, p, has_p, gates, c_out, h_out):
    B = xg.shape[0]
    H = c_prev.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    cp = c_prev[b, j]
    ai = xg[b, j] + a[b, j]
    af = xg[b, H + j] + a[b, H + j]
    ag = xg[b, 2 * H + j] + a[b, 2 * H + j]
    ao = xg[b, 3 * H + j] + a[b, 3 * H + j]
    if has_p:
        ai += p[0, j] * cp
        af += p[1, j] * cp
    ig = sigmoid(ai)
    fg = sigmoid(af)
    gg = math.tanh(ag)
    c = fg * cp + ig * gg
    if has_p:
        ao += p[2, j] * c
    og = sigmoid(ao)
    c_out[b, j] = c
    h_out[b, j] = og * math.tanh(c)
    gates[b, j] = ig
    gates[b, H + j] = fg
    gates[b, 2 * H + j] = gg
    gates[b, 3 * H + j] = og


@cuda.jit
def k_lstm_bwd_step(dhs_t, dh_next, gates, c, c_prev, dc, p, has_p, da):
    """dh = dhs_t + dh_next; writes da (B, 4H); dc (B, H) is the carried cell gradient (in/out)."""
    B = dhs_t.shape[0]
    H = dhs_t.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    ig = gates[b, j]
    fg = gates[b, H + j]
    gg = gates[b, 2 * H + j]
    og = gates[b, 3 * H + j]
    cv = c[b, j]
    cp = c_prev[b, j]
    dh = dhs_t[b, j] + dh_next[b, j]
    tc = math.tanh(cv)
    dao = dh * tc * og * (1.0 - og)
    d = dc[b, j] + dh * og * (1.0 - tc * tc)
    if has_p:
        d += dao * p[2, j]
    dai = d * gg * ig * (1.0 - ig)
    daf = d * cp * fg * (1.0 - fg)
    dag = d * ig * (1.0 - gg * gg)
    d = d * fg
    if has_p:
        d += dai * p[0, j] + daf * p[1, j]
    dc[b, j] = d
    da[b, j] = dai
    da[b, H + j] = daf
    da[b, 2 * H + j] = dag
    da[b, 3 * H + j] = dao


@cuda.jit
def k_peephole_grad(dxg, cs, dp):
    """dp[0,j] += sum dai*c_{t-1}; dp[1,j] += sum daf*c_{t-1}; dp[2,j] += sum dao*c_t over (t, b)."""
    T = dxg.shape[0]
    B = dxg.shape[1]
    H = cs.shape[2]
    q = cuda.grid(1)
    if q >= 3 * H:
        return
    k = q // H
    j = q - k * H
    gate = 3 if k == 2 else k
    off = 1 if k == 2 else 0
    s = dxg[0, 0, 0] * 0
    for t in range(T):
        for b in range(B):
            s += dxg[t, b, gate * H + j] * cs[t + off, b, j]
    dp[k, j] += s


G = 4


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
    grid = ops.step_grid(B * H)
    for t in range(T):
        ops.matmul(hs[t], W_hh, a, bias=b_hh, tb=True)
        launch(k_lstm_fwd_step, grid, (xg[t], a, cs[t], pp, int(has_p), gates[t], cs[t + 1], hs[t + 1]))


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
        grid = ops.step_grid(B * H)
        for t in range(T - 1, -1, -1):
            launch(k_lstm_bwd_step, grid, (dhs[t], dh_next, gates[t], cs[t + 1], cs[t], dc, pp, int(has_p), dxg[t]))
            ops.matmul(dxg[t], W_hh, dh_next)
        ops.copy(dh_next, dh0)
    flat = dxg.reshape(T * B, G * H)
    ops.matmul_wgrad(flat, hs[:T].reshape(T * B, H), dW_hh, db_hh)
    if p is not None:
        launch(k_peephole_grad, ops.step_grid(3 * H), (dxg, cs, dp))
    if dc0 is not None:
        ops.copy(dc, dc0)
