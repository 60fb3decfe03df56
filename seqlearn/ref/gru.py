"""GRU forward and backward through time in plain numpy: the oracle.

Gate layout is PyTorch's: r, z, n. xg holds W_ih x + b_ih for all three.
    r = s(xg_r + W_hr h + b_hr)     z = s(xg_z + W_hz h + b_hz)
    variant "torch": n = tanh(xg_n + r * (W_hn h + b_hn))     (PyTorch, cuDNN)
    variant "cho":   n = tanh(xg_n + W_hn (r * h) + b_hn)     (Cho et al. 2014, Keras reset_after=False)
    h' = (1 - z) n + z h
"""
import numpy as np

G = 3


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def workspace(T, B, H, dtype):
    return {
        "hs": np.zeros((T + 1, B, H), dtype),
        "gates": np.zeros((T, B, G * H), dtype),   # activated r, z, n
        "hn": np.zeros((T, B, H), dtype),          # torch: W_hn h + b_hn; cho: r * h_prev
    }


def forward(ws, xg, W_hh, b_hh, variant, h0):
    T, B, _ = xg.shape
    H = W_hh.shape[1]
    hs, gates, hn = ws["hs"], ws["gates"], ws["hn"]
    hs[0] = h0
    for t in range(T):
        h = hs[t]
        a_rz = xg[t][:, :2 * H] + h @ W_hh[:2 * H].T + b_hh[:2 * H]
        r, z = _sigmoid(a_rz[:, :H]), _sigmoid(a_rz[:, H:])
        if variant == "torch":
            hn[t] = h @ W_hh[2 * H:].T + b_hh[2 * H:]
            n = np.tanh(xg[t][:, 2 * H:] + r * hn[t])
        else:
            hn[t] = r * h
            n = np.tanh(xg[t][:, 2 * H:] + hn[t] @ W_hh[2 * H:].T + b_hh[2 * H:])
        hs[t + 1] = (1 - z) * n + z * h
        gates[t] = np.concatenate([r, z, n], axis=1)


def backward(ws, xg, W_hh, b_hh, variant, dhs, dhT, dxg, dW_hh, db_hh, dh0):
    T, B, _ = xg.shape
    H = W_hh.shape[1]
    hs, gates, hn = ws["hs"], ws["gates"], ws["hn"]
    dhg = np.zeros((T, B, G * H), hs.dtype)     # gradient w.r.t. the recurrent product + b_hh
    dh_next = np.zeros((B, H), hs.dtype) if dhT is None else dhT.copy()
    for t in range(T - 1, -1, -1):
        r, z, n = (gates[t][:, k * H:(k + 1) * H] for k in range(3))
        h = hs[t]
        dh = dhs[t] + dh_next
        dn = dh * (1 - z)
        daz = dh * (h - n) * z * (1 - z)
        dan = dn * (1 - n * n)
        dh_prev = dh * z
        if variant == "torch":
            dar = dan * hn[t] * r * (1 - r)
            dhg[t] = np.concatenate([dar, daz, dan * r], axis=1)
            dh_prev = dh_prev + dhg[t] @ W_hh
        else:
            drh = dan @ W_hh[2 * H:]
            dar = drh * h * r * (1 - r)
            dhg[t] = np.concatenate([dar, daz, dan], axis=1)
            dh_prev = dh_prev + dhg[t][:, :2 * H] @ W_hh[:2 * H] + drh * r
        dxg[t] = np.concatenate([dar, daz, dan], axis=1)
        dh_next = dh_prev
    flat = dhg.reshape(T * B, G * H)
    h_prev = hs[:-1].reshape(T * B, H)
    if variant == "torch":
        dW_hh += flat.T @ h_prev
    else:
        dW_hh[:2 * H] += flat[:, :2 * H].T @ h_prev
        dW_hh[2 * H:] += flat[:, 2 * H:].T @ hn.reshape(T * B, H)
    db_hh += flat.sum(0)
    dh0[...] = dh_next
