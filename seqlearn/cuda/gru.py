"""GRU on the GPU (equations and variants: seqlearn/ref/gru.py).

variant "torch": one recurrent product per step (h @ W_hh.T, 3H wide); persistent path where it
fits (seqlearn/cuda/persist.py), per-step path otherwise.
variant "cho": the reset gate multiplies h before the n-gate product, so each step needs a second,
dependent product; per-step path only (two products and two pointwise kernels per step).
"""
import math

from numba import cuda

from . import ops, persist
from ._act import sigmoid
from ._launch import launch


# Pointwise step kernels: one thread per (b, j); `a` holds h_{t-1} @ W_hh.T + b_hh.
@cuda.jit
def k_gru_fwd_step(xg, a, h_prev, variant_cho, gates, hn, h_out):
    """torch: a = h W_hh.T + b_hh (B, 3H); cho stage 1: a = h W_hh[:2H].T + b_hh[:2H] (B, 2H),
    writes r, z and hn = r * h (h_out untouched)."""
    B = xg.shape[0]
    H = h_prev.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    r = sigmoid(xg[b, j] + a[b, j])
    z = sigmoid(xg[b, H + j] + a[b, H + j])
    h = h_prev[b, j]
    gates[b, j] = r
    gates[b, H + j] = z
    if variant_cho:
        hn[b, j] = r * h
    else:
        hv = a[b, 2 * H + j]
        hn[b, j] = hv
        n = math.tanh(xg[b, 2 * H + j] + r * hv)
        gates[b, 2 * H + j] = n
        h_out[b, j] = (1.0 - z) * n + z * h


@cuda.jit
def k_gru_cho_fwd_n(xg, an, h_prev, gates, h_out):
    """cho stage 2: an = (r h) W_hn.T + b_hn (B, H)."""
    B = xg.shape[0]
    H = h_prev.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    z = gates[b, H + j]
    n = math.tanh(xg[b, 2 * H + j] + an[b, j])
    gates[b, 2 * H + j] = n
    h_out[b, j] = (1.0 - z) * n + z * h_prev[b, j]


@cuda.jit
def k_gru_bwd_step(dhs_t, dh_next, gates, h_prev, hn, variant_cho, dxg, dhg):
    """dh = dhs_t + dh_next; dh_next becomes dh * z (the recurrent product is added later).
    torch: writes dxg = [dar, daz, dan], dhg = [dar, daz, dan * r].
    cho stage 1: writes daz, dan into dxg and dhg (dar needs drh = dan W_hn first)."""
    B = dhs_t.shape[0]
    H = dhs_t.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    r = gates[b, j]
    z = gates[b, H + j]
    n = gates[b, 2 * H + j]
    h = h_prev[b, j]
    dh = dhs_t[b, j] + dh_next[b, j]
    dn = dh * (1.0 - z)
    daz = dh * (h - n) * z * (1.0 - z)
    dan = dn * (1.0 - n * n)
    dh_next[b, j] = dh * z
    dxg[b, H + j] = daz
    dxg[b, 2 * H + j] = dan
    dhg[b, H + j] = daz
    if variant_cho:
        dhg[b, 2 * H + j] = dan
    else:
        dar = dan * hn[b, j] * r * (1.0 - r)
        dxg[b, j] = dar
        dhg[b, j] = dar
        dhg[b, 2 * H + j] = dan * r


@cuda.jit
def k_gru_cho_bwd_r(drh, gates, h_prev, dxg, dhg, dh_next):
    """cho stage 2: drh = dan @ W_hn; dar = drh h r (1 - r); dh_next += drh * r."""
    B = drh.shape[0]
    H = drh.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    r = gates[b, j]
    d = drh[b, j]
    dar = d * h_prev[b, j] * r * (1.0 - r)
    dxg[b, j] = dar
    dhg[b, j] = dar
    dh_next[b, j] += d * r


G = 3


def workspace(T, B, H, dtype):
    z = lambda *s: ops.zeros(s, dtype)  # noqa: E731
    return {
        "hs": z(T + 1, B, H), "gates": z(T, B, G * H),
        "hn": z(T, B, H),        # torch: W_hn h + b_hn; cho: r * h_prev
        "dhg": z(T, B, G * H),   # gradient w.r.t. the recurrent product (+ b_hh)
        "a": z(B, G * H), "an": z(B, H), "dh_next": z(B, H),
    }


def forward(ws, xg, W_hh, b_hh, variant, h0):
    T, B, _ = xg.shape
    H = W_hh.shape[1]
    hs, gates, hn, a, an = ws["hs"], ws["gates"], ws["hn"], ws["a"], ws["an"]
    ops.copy(h0, hs[0])
    if variant == "torch":
        if persist.forward("gru", ws, xg, W_hh, b_hh):
            return
        grid = ops.step_grid(B * H)
        for t in range(T):
            ops.matmul(hs[t], W_hh, a, bias=b_hh, tb=True)
            launch(k_gru_fwd_step, grid, (xg[t], a, hs[t], 0, gates[t], hn[t], hs[t + 1]))
        return
    grid = ops.step_grid(B * H)
    a_rz = a[:, :2 * H]
    W_rz, b_rz, W_n, b_n = W_hh[:2 * H], b_hh[:2 * H], W_hh[2 * H:], b_hh[2 * H:]
    for t in range(T):
        ops.matmul(hs[t], W_rz, a_rz, bias=b_rz, tb=True)
        launch(k_gru_fwd_step, grid, (xg[t], a, hs[t], 1, gates[t], hn[t], hs[t + 1]))
        ops.matmul(hn[t], W_n, an, bias=b_n, tb=True)
        launch(k_gru_cho_fwd_n, grid, (xg[t], an, hs[t], gates[t], hs[t + 1]))


def backward(ws, xg, W_hh, b_hh, variant, dhs, dhT, dxg, dW_hh, db_hh, dh0):
    T, B, _ = xg.shape
    H = W_hh.shape[1]
    hs, gates, hn, dhg, an, dh_next = ws["hs"], ws["gates"], ws["hn"], ws["dhg"], ws["an"], ws["dh_next"]
    if dhT is None:
        ops.fill_zero(dh_next)
    else:
        ops.copy(dhT, dh_next)
    grid = ops.step_grid(B * H)
    cho = variant != "torch"
    if cho or not persist.backward("gru", ws, xg, W_hh, dhs, dxg, dh0):
        for t in range(T - 1, -1, -1):
            launch(k_gru_bwd_step, grid, (dhs[t], dh_next, gates[t], hs[t], hn[t], int(cho), dxg[t], dhg[t]))
            if cho:
                ops.matmul(dhg[t][:, 2 * H:], W_hh[2 * H:], an)            # drh = dan @ W_hn
                launch(k_gru_cho_bwd_r, grid, (an, gates[t], hs[t], dxg[t], dhg[t], dh_next))
                ops.matmul(dhg[t][:, :2 * H], W_hh[:2 * H], dh_next, accumulate=True)
            else:
                ops.matmul(dhg[t], W_hh, dh_next, accumulate=True)
        ops.copy(dh_next, dh0)
    flat = dhg.reshape(T * B, G * H)
    h_prev = hs[:T].reshape(T * B, H)
    if cho:
        ops.matmul(flat[:, :2 * H], h_prev, dW_hh[:2 * H], ta=True, accumulate=True)
        ops.matmul(flat[:, 2 * H:], hn.reshape(T * B, H), dW_hh[2 * H:], ta=True, accumulate=True)
        ops.colsum(flat, db_hh)
    else:
        ops.matmul_wgrad(flat, h_prev, dW_hh, db_hh)
