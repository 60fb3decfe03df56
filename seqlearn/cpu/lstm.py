"""LSTM forward and backward through time, jitted (same equations as seqlearn/ref/lstm.py).

Per step: one product ``h_{t-1} @ W_hh.T`` for all four gates into a preallocated (B, 4H) buffer,
then one fused loop for the nonlinearities and the state update. Backward: one fused loop and one
product ``da @ W_hh`` per step; ``dW_hh`` is one product over all steps after the loop.
The per-step products run against W_hh packed once per call (_gemm.py: "Pf" for the forward,
"Pb" for the backward). The batch is split into chunks, or the units into slices, that run their
whole time loop on separate threads (see _threads.py). The workspace also keeps tanh(c_t)
("tcs"), reused by backward.
"""
import numpy as np

from . import _threads
from ._act import sigmoid_, tanh_
from . import _gemm
from ._blas import consts, wgrad
from ._jit import jit
from ._sync import barrier

G = 4


def workspace(T, B, H, dtype):
    return {
        "hs": np.zeros((T + 1, B, H), dtype),     # hs[0] = h0, hs[t+1] = h_t
        "cs": np.zeros((T + 1, B, H), dtype),
        "gates": np.zeros((T, B, G * H), dtype),  # activated i, f, g, o
        "tcs": np.zeros((T, B, H), dtype),        # tanh(c_t)
        "a": np.zeros((B, G * H), dtype),         # recurrent product of one step
        "Pf": np.zeros(_gemm.packed_size(G, H, H, dtype), dtype),      # W_hh packed for h @ W_hh.T
        "Pb": np.zeros(_gemm.packed_size(1, H, G * H, dtype), dtype),  # and for da @ W_hh
        "dh": np.zeros((B, H), dtype),            # carried dh, dc in backward
        "dc": np.zeros((B, H), dtype),
    }


@jit
def _forward(xg, Pf, b_hh, p, peep, h0, c0, hs, cs, gates, tcs, a, b0, b1, u0, u1, bar, nth):
    """Rows b0:b1 of the batch, units u0:u1 (of every gate), all T steps. With nth > 1 threads
    splitting the units, a barrier after each step makes h_t whole before the next product."""
    T, B, GH = xg.shape
    H = GH // 4
    Hu = np.uint64(H)
    H2u = Hu + Hu
    H3u = H2u + Hu
    ab = consts(hs)
    isz = hs.itemsize
    scratch = np.empty(_gemm.MAX_ROWS * 64 // isz, hs.dtype)
    for b in range(b0, b1):
        for j in range(np.uint64(u0), np.uint64(u1)):
            hs[0, b, j] = h0[b, j]
            cs[0, b, j] = c0[b, j]
    gen = barrier(bar, nth, 0)
    for t in range(T):
        _gemm.gates_nt(ab, H, H, 0, 4, u0, u1, b1 - b0, hs.ctypes.data + ((t * B + b0) * H) * isz, H, Pf,
                       a.ctypes.data + b0 * GH * isz, GH, scratch)
        for b in range(b0, b1):
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
                for j in range(np.uint64(u0), np.uint64(u1)):
                    c0j = cp[j]
                    i = sigmoid_(xr[j] + ar[j] + b_hh[j] + pi[j] * c0j)
                    f = sigmoid_(xr[Hu + j] + ar[Hu + j] + b_hh[Hu + j] + pf[j] * c0j)
                    g = tanh_(xr[H2u + j] + ar[H2u + j] + b_hh[H2u + j])
                    c = f * c0j + i * g
                    o = sigmoid_(xr[H3u + j] + ar[H3u + j] + b_hh[H3u + j] + po[j] * c)
                    tc = tanh_(c)
                    gr[j] = i
                    gr[Hu + j] = f
                    gr[H2u + j] = g
                    gr[H3u + j] = o
                    cn[j] = c
                    tr[j] = tc
                    hn[j] = o * tc
            else:
                for j in range(np.uint64(u0), np.uint64(u1)):
                    i = sigmoid_(xr[j] + ar[j] + b_hh[j])
                    f = sigmoid_(xr[Hu + j] + ar[Hu + j] + b_hh[Hu + j])
                    g = tanh_(xr[H2u + j] + ar[H2u + j] + b_hh[H2u + j])
                    o = sigmoid_(xr[H3u + j] + ar[H3u + j] + b_hh[H3u + j])
                    c = f * cp[j] + i * g
                    tc = tanh_(c)
                    gr[j] = i
                    gr[Hu + j] = f
                    gr[H2u + j] = g
                    gr[H3u + j] = o
                    cn[j] = c
                    tr[j] = tc
                    hn[j] = o * tc
        gen = barrier(bar, nth, gen)


@jit
def _backward(hs, cs, gates, tcs, Pb, p, peep, dhs, dh, dc, dxg, dp, dh0, dc0, b0, b1, u0, u1, bar, nth):
    """Rows b0:b1, units u0:u1, all T steps. dh, dc (B, H) hold dhT, dcT on entry and carry the
    gradients; dp: this chunk's own (3, H) partial sum. With nth > 1 threads splitting the units,
    a barrier after each pointwise pass makes da_t whole before dh = da_t @ W_hh[:, u0:u1]."""
    T, B, GH = dxg.shape
    H = GH // 4
    Hu = np.uint64(H)
    H2u = Hu + Hu
    H3u = H2u + Hu
    one = hs.dtype.type(1.0)
    ab = consts(hs)
    isz = hs.itemsize
    scratch = np.empty(_gemm.MAX_ROWS * 64 // isz, hs.dtype)
    gen = 0
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
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
                for j in range(np.uint64(u0), np.uint64(u1)):
                    i = gr[j]
                    f = gr[Hu + j]
                    g = gr[H2u + j]
                    o = gr[H3u + j]
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
                    da[Hu + j] = daf
                    da[H2u + j] = dag
                    da[H3u + j] = dao
            else:
                for j in range(np.uint64(u0), np.uint64(u1)):
                    i = gr[j]
                    f = gr[Hu + j]
                    g = gr[H2u + j]
                    o = gr[H3u + j]
                    tc = tr[j]
                    d = dr[j] + dhb[j]
                    dao = d * tc * o * (one - o)
                    dcj = dcb[j] + d * o * (one - tc * tc)
                    dai = dcj * g * i * (one - i)
                    daf = dcj * cp[j] * f * (one - f)
                    dag = dcj * i * (one - g * g)
                    dcb[j] = dcj * f
                    da[j] = dai
                    da[Hu + j] = daf
                    da[H2u + j] = dag
                    da[H3u + j] = dao
        gen = barrier(bar, nth, gen)
        _gemm.units_nn(ab, GH, 0, GH, u0, u1, b1 - b0, dxg.ctypes.data + ((t * B + b0) * GH) * isz, GH, Pb,
                       dh.ctypes.data + b0 * H * isz, H, False, scratch)
    for b in range(b0, b1):
        for j in range(np.uint64(u0), np.uint64(u1)):
            dh0[b, j] = dh[b, j]
            dc0[b, j] = dc[b, j]


def _dummy(dtype):
    return np.zeros((1, 1), dtype)


def forward(ws, xg, W_hh, b_hh, p, h0, c0):
    """Fill ws from the input pre-activations xg (T, B, 4H). p is None or (3, H)."""
    peep = p is not None
    p = p if peep else _dummy(xg.dtype)
    _gemm.pack_gates(W_hh, G, ws["Pf"])
    args = (xg, ws["Pf"], b_hh, p, peep, h0, c0, ws["hs"], ws["cs"], ws["gates"], ws["tcs"], ws["a"])
    parts = _threads.plan(xg.shape[1], W_hh.shape[1], W_hh.nbytes)
    bar = np.zeros(8, np.int64)
    _threads.run_sync(_forward, [args + c + (bar, _threads.nsync(parts)) for c in parts])


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
    T, B, H = dhs.shape
    peep = p is not None
    parts = _threads.plan(B, H, W_hh.nbytes, "backward")
    dps = np.zeros((len(parts), 3, H), dxg.dtype) if peep else np.zeros((len(parts), 1, 1), dxg.dtype)
    _gemm.pack_units(W_hh, ws["Pb"])
    args = (ws["hs"], ws["cs"], ws["gates"], ws["tcs"], ws["Pb"], p if peep else _dummy(dxg.dtype), peep, dhs,
            dh, dc, dxg)
    tail = (dh0, np.empty_like(dc) if dc0 is None else dc0)
    bar, nth = np.zeros(8, np.int64), _threads.nsync(parts)
    _threads.run_sync(_backward, [args + (dps[k],) + tail + c + (bar, nth) for k, c in enumerate(parts)])
    if peep:
        dp += dps.sum(0)
    wgrad(dxg.reshape(T * B, G * H), ws["hs"][:T].reshape(T * B, H), dW_hh, db_hh, consts(dxg))
