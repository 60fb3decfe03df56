"""GRU on the GPU (equations and variants: seqlearn/ref/gru.py).

variant "torch": one recurrent product per step (h @ W_hh.T, 3H wide); persistent path where it
fits (seqlearn/cuda/persist.py), per-step path otherwise.
variant "cho": the reset gate multiplies h before the n-gate product, so each step needs a second,
dependent product; per-step path only (two products and two pointwise kernels per step).
"""
from . import config, ops, persist
from . import kernels as K

G = 3


def _pw(n):
    t = config.THREADS
    return (n + t - 1) // t, t


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
        grid = _pw(B * H)
        for t in range(T):
            ops.matmul(hs[t], W_hh, a, bias=b_hh, tb=True)
            K.launch(K.k_gru_fwd_step, grid, (xg[t], a, hs[t], 0, gates[t], hn[t], hs[t + 1]))
        return
    grid = _pw(B * H)
    a_rz = a[:, :2 * H]
    W_rz, b_rz, W_n, b_n = W_hh[:2 * H], b_hh[:2 * H], W_hh[2 * H:], b_hh[2 * H:]
    for t in range(T):
        ops.matmul(hs[t], W_rz, a_rz, bias=b_rz, tb=True)
        K.launch(K.k_gru_fwd_step, grid, (xg[t], a, hs[t], 1, gates[t], hn[t], hs[t + 1]))
        ops.matmul(hn[t], W_n, an, bias=b_n, tb=True)
        K.launch(K.k_gru_cho_fwd_n, grid, (xg[t], an, hs[t], gates[t], hs[t + 1]))


def backward(ws, xg, W_hh, b_hh, variant, dhs, dhT, dxg, dW_hh, db_hh, dh0):
    T, B, _ = xg.shape
    H = W_hh.shape[1]
    hs, gates, hn, dhg, an, dh_next = ws["hs"], ws["gates"], ws["hn"], ws["dhg"], ws["an"], ws["dh_next"]
    if dhT is None:
        ops.fill_zero(dh_next)
    else:
        ops.copy(dhT, dh_next)
    grid = _pw(B * H)
    cho = variant != "torch"
    if cho or not persist.backward("gru", ws, xg, W_hh, dhs, dxg, dh0):
        for t in range(T - 1, -1, -1):
            K.launch(K.k_gru_bwd_step, grid, (dhs[t], dh_next, gates[t], hs[t], hn[t], int(cho), dxg[t], dhg[t]))
            if cho:
                ops.matmul(dhg[t][:, 2 * H:], W_hh[2 * H:], an)            # drh = dan @ W_hn
                K.launch(K.k_gru_cho_bwd_r, grid, (an, gates[t], hs[t], dxg[t], dhg[t], dh_next))
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
