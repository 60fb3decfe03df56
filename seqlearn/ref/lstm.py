"""LSTM forward and backward through time in plain numpy: the oracle.

Gate layout is PyTorch's: rows of W_hh (and columns of the pre-activations) are i, f, g, o.
Optional diagonal peepholes p (3, H): i and f see c_{t-1}, o sees c_t.

    a = xg[t] + h_{t-1} @ W_hh.T + b_hh            (B, 4H); xg already holds W_ih x + b_ih
    i = s(a_i + p_i c_{t-1})  f = s(a_f + p_f c_{t-1})  g = tanh(a_g)
    c_t = f c_{t-1} + i g     o = s(a_o + p_o c_t)      h_t = o tanh(c_t)
"""
import numpy as np

G = 4


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def workspace(T, B, H, dtype):
    return {
        "hs": np.zeros((T + 1, B, H), dtype),   # hs[0] = h0, hs[t+1] = h_t
        "cs": np.zeros((T + 1, B, H), dtype),
        "gates": np.zeros((T, B, G * H), dtype),  # activated i, f, g, o
    }


def forward(ws, xg, W_hh, b_hh, p, h0, c0):
    """Fill ws from the input pre-activations xg (T, B, 4H). p is None or (3, H)."""
    T, B, _ = xg.shape
    H = W_hh.shape[1]
    hs, cs, gates = ws["hs"], ws["cs"], ws["gates"]
    hs[0] = h0
    cs[0] = c0
    for t in range(T):
        a = xg[t] + hs[t] @ W_hh.T + b_hh
        c_prev = cs[t]
        ai, af, ag, ao = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        if p is not None:
            ai = ai + p[0] * c_prev
            af = af + p[1] * c_prev
        i, f, g = _sigmoid(ai), _sigmoid(af), np.tanh(ag)
        c = f * c_prev + i * g
        if p is not None:
            ao = ao + p[2] * c
        o = _sigmoid(ao)
        cs[t + 1] = c
        hs[t + 1] = o * np.tanh(c)
        gates[t] = np.concatenate([i, f, g, o], axis=1)


def backward(ws, xg, W_hh, b_hh, p, dhs, dhT, dcT, dxg, dW_hh, db_hh, dp, dh0, dc0):
    """Gradients of a loss whose gradient w.r.t. hs[1:] is dhs (T, B, H) and w.r.t. the final
    state is dhT, dcT (or None). Writes dxg, dh0, dc0; accumulates dW_hh, db_hh, dp."""
    T, B, _ = xg.shape
    H = W_hh.shape[1]
    hs, cs, gates = ws["hs"], ws["cs"], ws["gates"]
    dh_next = np.zeros((B, H), hs.dtype) if dhT is None else dhT.copy()
    dc = np.zeros((B, H), hs.dtype) if dcT is None else dcT.copy()
    for t in range(T - 1, -1, -1):
        i, f, g, o = (gates[t][:, k * H:(k + 1) * H] for k in range(4))
        c, c_prev = cs[t + 1], cs[t]
        dh = dhs[t] + dh_next
        tc = np.tanh(c)
        dao = dh * tc * o * (1 - o)
        dc = dc + dh * o * (1 - tc * tc)
        if p is not None:
            dc = dc + dao * p[2]
        dai = dc * g * i * (1 - i)
        daf = dc * c_prev * f * (1 - f)
        dag = dc * i * (1 - g * g)
        dc = dc * f
        if p is not None:
            dc = dc + dai * p[0] + daf * p[1]
            dp[0] += (dai * c_prev).sum(0)
            dp[1] += (daf * c_prev).sum(0)
            dp[2] += (dao * c).sum(0)
        da = np.concatenate([dai, daf, dag, dao], axis=1)
        dxg[t] = da
        dh_next = da @ W_hh
    dW_hh += dxg.reshape(T * B, -1).T @ hs[:-1].reshape(T * B, H)
    db_hh += dxg.reshape(T * B, -1).sum(0)
    dh0[...] = dh_next
    dc0[...] = dc
