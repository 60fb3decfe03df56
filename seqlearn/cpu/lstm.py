"""LSTM forward and backward through time, jitted (same equations as seqlearn/ref/lstm.py).

Per step: one product ``h_{t-1} @ W_hh.T`` for all four gates into a preallocated (B, 4H) buffer,
then one fused loop for the nonlinearities and the state update. Backward: one fused loop and one
product ``da @ W_hh`` per step; ``dW_hh`` is one product over all steps after the loop.
The workspace also keeps tanh(c_t) ("tcs"), so backward reuses it instead of recomputing it.
"""
import numpy as np

from ._act import sigmoid_, tanh_
from ._blas import acc_colsum, acc_tn, copy2
from ._jit import jit

G = 4


def workspace(T, B, H, dtype):
    return {
        "hs": np.zeros((T + 1, B, H), dtype),     # hs[0] = h0, hs[t+1] = h_t
        "cs": np.zeros((T + 1, B, H), dtype),
        "gates": np.zeros((T, B, G * H), dtype),  # activated i, f, g, o
        "tcs": np.zeros((T, B, H), dtype),        # tanh(c_t)
        "a": np.zeros((B, G * H), dtype),         # recurrent product of one step
        "dh": np.zeros((B, H), dtype),            # carried dh, dc in backward
        "dc": np.zeros((B, H), dtype),
    }


@jit
def _forward(xg, W_hh, b_hh, p, peep, h0, c0, hs, cs, gates, tcs, a):
    T, B, GH = xg.shape
    H = GH // 4
    copy2(h0, hs[0])
    copy2(c0, cs[0])
    WT = W_hh.T
    one = hs.dtype.type(1.0)
    for t in range(T):
        np.dot(hs[t], WT, a)
        for b in range(B):
            ar = a[b]
            xr = xg[t, b]
            gr = gates[t, b]
            cp = cs[t, b]
            cn = cs[t + 1, b]
            hn = hs[t + 1, b]
            tr = tcs[t, b]
            if peep:
                pi = p[0]
                pf = p[1]
                po = p[2]
                for j in range(H):
                    c0j = cp[j]
                    i = sigmoid_(xr[j] + ar[j] + b_hh[j] + pi[j] * c0j)
                    f = sigmoid_(xr[H + j] + ar[H + j] + b_hh[H + j] + pf[j] * c0j)
                    g = tanh_(xr[2 * H + j] + ar[2 * H + j] + b_hh[2 * H + j])
                    c = f * c0j + i * g
                    o = sigmoid_(xr[3 * H + j] + ar[3 * H + j] + b_hh[3 * H + j] + po[j] * c)
                    tc = tanh_(c)
                    gr[j] = i
                    gr[H + j] = f
                    gr[2 * H + j] = g
                    gr[3 * H + j] = o
                    cn[j] = c
                    tr[j] = tc
                    hn[j] = o * tc
            else:
                for j in range(H):
                    i = sigmoid_(xr[j] + ar[j] + b_hh[j])
                    f = sigmoid_(xr[H + j] + ar[H + j] + b_hh[H + j])
                    g = tanh_(xr[2 * H + j] + ar[2 * H + j] + b_hh[2 * H + j])
                    o = sigmoid_(xr[3 * H + j] + ar[3 * H + j] + b_hh[3 * H + j])
                    c = f * cp[j] + i * g
                    tc = tanh_(c)
                    gr[j] = i
                    gr[H + j] = f
                    gr[2 * H + j] = g
                    gr[3 * H + j] = o
                    cn[j] = c
                    tr[j] = tc
                    hn[j] = o * tc



@jit
def _backward(hs, cs, gates, tcs, W_hh, p, peep, dhs, dh, dc, dxg, dW_hh, db_hh, dp, dh0, dc0):
    """dh, dc (B, H) hold dhT, dcT on entry and are the carried gradients."""
    T, B, GH = dxg.shape
    H = GH // 4
    one = hs.dtype.type(1.0)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            gr = gates[t, b]
            tr = tcs[t, b]
            cp = cs[t, b]
            cn = cs[t + 1, b]
            dr = dhs[t, b]
            dhb = dh[b]
            dcb = dc[b]
            da = dxg[t, b]
            if peep:
                pi = p[0]
                pf = p[1]
                po = p[2]
                dpi = dp[0]
                dpf = dp[1]
                dpo = dp[2]
                for j in range(H):
                    i = gr[j]
                    f = gr[H + j]
                    g = gr[2 * H + j]
                    o = gr[3 * H + j]
                    tc = tr[j]
                    d = dr[j] + dhb[j]
                    dao = d * tc * o * (one - o)
                    dcj = dcb[j] + d * o * (one - tc * tc) + dao * po[j]
                    dai = dcj * g * i * (one - i)
                    daf = dcj * cp[j] * f * (one - f)
                    dag = dcj * i * (one - g * g)
                    dcb[j] = dcj * f + dai * pi[j] + daf * pf[j]
                    dpi[j] += dai * cp[j]
                    dpf[j] += daf * cp[j]
                    dpo[j] += dao * cn[j]
                    da[j] = dai
                    da[H + j] = daf
                    da[2 * H + j] = dag
                    da[3 * H + j] = dao
            else:
                for j in range(H):
                    i = gr[j]
                    f = gr[H + j]
                    g = gr[2 * H + j]
                    o = gr[3 * H + j]
                    tc = tr[j]
                    d = dr[j] + dhb[j]
                    dao = d * tc * o * (one - o)
                    dcj = dcb[j] + d * o * (one - tc * tc)
                    dai = dcj * g * i * (one - i)
                    daf = dcj * cp[j] * f * (one - f)
                    dag = dcj * i * (one - g * g)
                    dcb[j] = dcj * f
                    da[j] = dai
                    da[H + j] = daf
                    da[2 * H + j] = dag
                    da[3 * H + j] = dao
        np.dot(dxg[t], W_hh, dh)
    copy2(dh, dh0)
    copy2(dc, dc0)
    d2 = dxg.reshape(T * B, GH)
    acc_tn(dW_hh, d2, hs[:T].reshape(T * B, H))
    acc_colsum(db_hh, d2)



def _dummy(dtype):
    return np.zeros((1, 1), dtype)


def forward(ws, xg, W_hh, b_hh, p, h0, c0):
    """Fill ws from the input pre-activations xg (T, B, 4H). p is None or (3, H)."""
    peep = p is not None
    _forward(xg, W_hh, b_hh, p if peep else _dummy(xg.dtype), peep, h0, c0,
             ws["hs"], ws["cs"], ws["gates"], ws["tcs"], ws["a"])


def backward(ws, xg, W_hh, b_hh, p, dhs, dhT, dcT, dxg, dW_hh, db_hh, dp, dh0, dc0):
    """Writes dxg, dh0, dc0 (dc0 may be None); accumulates dW_hh, db_hh, dp. Reads dhs only."""
    dh, dc = ws["dh"], ws["dc"]
    if dhT is None:
        dh.fill(0)
    else:
        dh[...] = dhT
    if dcT is None:
        dc.fill(0)
    else:
        dc[...] = dcT
    peep = p is not None
    d = _dummy(dxg.dtype)
    _backward(ws["hs"], ws["cs"], ws["gates"], ws["tcs"], W_hh, p if peep else d, peep, dhs, dh, dc,
              dxg, dW_hh, db_hh, dp if peep else d, dh0, np.empty_like(dc) if dc0 is None else dc0)
