"""Plain tanh RNN forward and backward through time in numpy: h' = tanh(xg + W_hh h + b_hh)."""
import numpy as np

G = 1


def workspace(T, B, H, dtype):
    return {"hs": np.zeros((T + 1, B, H), dtype)}


def forward(ws, xg, W_hh, b_hh, h0):
    hs = ws["hs"]
    hs[0] = h0
    for t in range(xg.shape[0]):
        hs[t + 1] = np.tanh(xg[t] + hs[t] @ W_hh.T + b_hh)


def backward(ws, xg, W_hh, b_hh, dhs, dhT, dxg, dW_hh, db_hh, dh0):
    T, B, H = dhs.shape
    hs = ws["hs"]
    dh_next = np.zeros((B, H), hs.dtype) if dhT is None else dhT.copy()
    for t in range(T - 1, -1, -1):
        h = hs[t + 1]
        da = (dhs[t] + dh_next) * (1 - h * h)
        dxg[t] = da
        dh_next = da @ W_hh
    dW_hh += dxg.reshape(T * B, H).T @ hs[:-1].reshape(T * B, H)
    db_hh += dxg.reshape(T * B, H).sum(0)
    dh0[...] = dh_next
