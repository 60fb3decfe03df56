"""LSTM forward and backward through time, jitted (same equations as seqlearn/ref/lstm.py).

Per step: one product ``h_{t-1} @ W_hh.T`` for all four gates into a preallocated (B, 4H) buffer,
then simple vectorised loops for the nonlinearities and the state update (_cell_forward).
Backward: a few such loops (_cell_backward) and one product ``da @ W_hh`` per step; ``dW_hh`` is one product over all steps after the loop.
The per-step products run against W_hh packed once per call (_gemm.py: "Pf" for the forward,
"Pb" for the backward). The batch is split into chunks, or the units into slices, that run their
whole time loop on separate threads (see _threads.py). The workspace also keeps tanh(c_t)
("tcs"), reused by backward.
"""
import numpy as np

from . import _threads
from ._act import sigmoid_, tanh_
from . import _gemm
from ._blas import consts
from ._jit import jit
from ._sync import barrier, new_barrier
from .ops import DenseInput, input_rows
from .wgrad import wgrad

G = 4


def workspace(T, B, H, dtype):
    return {
        "hs": np.zeros((T + 1, B, H), dtype),     # hs[0] = h0, hs[t+1] = h_t
        "cs": np.zeros((T + 1, B, H), dtype),
        "gates": np.zeros((T, B, G * H), dtype),  # activated i, f, g, o
        "tcs": np.zeros((T, B, H), dtype),        # tanh(c_t)
        "a": np.zeros((B, G * H), dtype),         # recurrent product of one step
        "Pf": _gemm.zeros_aligned(_gemm.packed_size(G, H, H, dtype), dtype),      # W_hh packed for h @ W_hh.T
        "Pb": _gemm.zeros_aligned(_gemm.packed_size(1, H, G * H, dtype), dtype),  # and for da @ W_hh
        "dh": np.zeros((B, H), dtype),            # carried dh, dc in backward
        "dc": np.zeros((B, H), dtype),
    }


@jit
def _cell_forward(xr, ar, b_hh, p, peep, cp, gr, cn, tr, hn, H, u0, u1):
    """One row, units u0:u1: activated gates into gr, then c, tanh(c), h. Simple loops, one
    activation each: a single fused loop writing seven rows did not vectorise (LLVM's overlap
    checks; 23 ns per unit against 3.6 ns as here, H = 256, one thread)."""
    Hu = np.uint64(H)
    H2u = Hu + Hu
    H3u = H2u + Hu
    lo = np.uint64(u0)
    hi = np.uint64(u1)
    if peep:
        pi = p[0]
        pf = p[1]
        po = p[2]
        for j in range(lo, hi):
            gr[j] = sigmoid_(xr[j] + ar[j] + b_hh[j] + pi[j] * cp[j])
        for j in range(lo, hi):
            gr[Hu + j] = sigmoid_(xr[Hu + j] + ar[Hu + j] + b_hh[Hu + j] + pf[j] * cp[j])
    else:
        for j in range(lo, hi):
            gr[j] = sigmoid_(xr[j] + ar[j] + b_hh[j])
        for j in range(Hu + lo, Hu + hi):
            gr[j] = sigmoid_(xr[j] + ar[j] + b_hh[j])
        for j in range(H3u + lo, H3u + hi):
            gr[j] = sigmoid_(xr[j] + ar[j] + b_hh[j])
    for j in range(H2u + lo, H2u + hi):
        gr[j] = tanh_(xr[j] + ar[j] + b_hh[j])
    for j in range(lo, hi):
        cn[j] = gr[Hu + j] * cp[j] + gr[j] * gr[H2u + j]
    if peep:
        for j in range(lo, hi):
            gr[H3u + j] = sigmoid_(xr[H3u + j] + ar[H3u + j] + b_hh[H3u + j] + po[j] * cn[j])
    for j in range(lo, hi):
        tc = tanh_(cn[j])
        tr[j] = tc
        hn[j] = gr[H3u + j] * tc


@jit
def _forward(X2, xi, W_hh, Pf, b_hh, p, peep, h0, c0, hs, cs, gates, tcs, a, xin, W_ih, Pi, dense, b0, b1, u0, u1,
             jp0, jp1, pbar, npk, bar, nth):
    """Rows b0:b1 of the batch, units u0:u1 (of every gate), all T steps; the input pre-activations
    of step t, row b are X2[xi[t, b]] (ops.input_rows), plus xin[t, b] @ W_ih.T when dense (an
    ops.DenseInput: the step's product takes both, W_ih packed into Pi). First this thread packs
    panels jp0:jp1 of W_hh into Pf (and of W_ih into Pi), and all npk threads meet at a barrier
    (pbar). With nth > 1 threads splitting the units, a barrier after each step makes h_t whole
    before the next product."""
    _gemm._pack_gates_range(W_hh, G, Pf, jp0, jp1)
    if dense:
        _gemm._pack_gates_range(W_ih, G, Pi, jp0, jp1)
    barrier(pbar, npk, 0)
    T, B = xi.shape
    I = xin.shape[2]
    GH = X2.shape[1]
    H = GH // 4
    ab = consts(hs)
    isz = hs.itemsize
    scratch = np.empty(_gemm.MAX_ROWS * 64 // isz, hs.dtype)
    for b in range(b0, b1):
        for j in range(np.uint64(u0), np.uint64(u1)):
            hs[0, b, j] = h0[b, j]
            cs[0, b, j] = c0[b, j]
    gen = barrier(bar, nth, 0)
    for t in range(T):
        ph = hs.ctypes.data + ((t * B + b0) * H) * isz
        if dense:
            _gemm.gates_nt2(ab, H, H, ph, H, Pf.ctypes.data, I, xin.ctypes.data + ((t * B + b0) * I) * isz, I,
                            Pi.ctypes.data, 0, 4, u0, u1, b1 - b0, a.ctypes.data + b0 * GH * isz, GH, scratch)
        else:
            _gemm.gates_nt(ab, H, H, 0, 4, u0, u1, b1 - b0, ph, H, Pf.ctypes.data, a.ctypes.data + b0 * GH * isz,
                           GH, scratch)
        for b in range(b0, b1):
            _cell_forward(X2[xi[t, b]], a[b], b_hh, p, peep, cs[t, b], gates[t, b], cs[t + 1, b], tcs[t, b],
                          hs[t + 1, b], H, u0, u1)
        gen = barrier(bar, nth, gen)


@jit
def _cell_backward(gr, tr, cp, cn, dr, dhb, dcb, p, peep, dp, H, u0, u1):
    """One row, units u0:u1: the activated gates gr are overwritten by da (all four gates) from
    dh = dr + dhb and the carried dc (dcb, updated to dc_{t-1}); with peepholes also
    dp += (dai c_{t-1}, daf c_{t-1}, dao c_t). Each gate's da is written where that gate was read
    (one array: LLVM's overlap checks would send a separate da buffer that aliases gr to the scalar
    loop). Three simple loops: one fused loop ran at half their speed (docs/performance.md,
    "Packed products")."""
    Hu = np.uint64(H)
    H2u = Hu + Hu
    H3u = H2u + Hu
    lo = np.uint64(u0)
    hi = np.uint64(u1)
    one = gr.dtype.type(1.0)
    if peep:
        po = p[2]
        dpo = dp[2]
        for j in range(lo, hi):
            o = gr[H3u + j]
            tc = tr[j]
            d = dr[j] + dhb[j]
            dao = d * tc * o * (one - o)
            gr[H3u + j] = dao
            dcb[j] = dcb[j] + d * o * (one - tc * tc) + dao * po[j]
            dpo[j] += dao * cn[j]
    else:
        for j in range(lo, hi):
            o = gr[H3u + j]
            tc = tr[j]
            d = dr[j] + dhb[j]
            gr[H3u + j] = d * tc * o * (one - o)
            dcb[j] = dcb[j] + d * o * (one - tc * tc)
    for j in range(lo, hi):
        i = gr[j]
        g = gr[H2u + j]
        dcj = dcb[j]
        gr[j] = dcj * g * i * (one - i)
        gr[H2u + j] = dcj * i * (one - g * g)
    if peep:
        pi = p[0]
        pf = p[1]
        dpi = dp[0]
        dpf = dp[1]
        for j in range(lo, hi):
            f = gr[Hu + j]
            dcj = dcb[j]
            daf = dcj * cp[j] * f * (one - f)
            gr[Hu + j] = daf
            dcb[j] = dcj * f + gr[j] * pi[j] + daf * pf[j]
            dpi[j] += gr[j] * cp[j]
            dpf[j] += daf * cp[j]
    else:
        for j in range(lo, hi):
            f = gr[Hu + j]
            dcj = dcb[j]
            gr[Hu + j] = dcj * cp[j] * f * (one - f)
            dcb[j] = dcj * f


@jit
def _backward(W_hh, hs, cs, gates, tcs, Pb, p, peep, dhs, dh, dc, dp, dh0, dc0, b0, b1, u0, u1, jp0, jp1, pbar,
              npk, bar, nth):
    """Rows b0:b1, units u0:u1, all T steps; gates[t] becomes da_t. First this thread packs panels
    jp0:jp1 of W_hh into Pb, and all npk threads meet at a barrier (pbar). dh, dc (B, H) hold dhT,
    dcT on entry and carry the gradients; dp: this chunk's own (3, H) partial sum. With nth > 1
    threads splitting the units, a barrier after each pointwise pass makes da_t whole before
    dh = da_t @ W_hh[:, u0:u1]."""
    _gemm.pack_cols(W_hh, 0, W_hh.shape[1], Pb, 0, jp0, jp1)
    barrier(pbar, npk, 0)
    T, B, GH = gates.shape
    H = GH // 4
    ab = consts(hs)
    isz = hs.itemsize
    scratch = np.empty(_gemm.MAX_ROWS * 64 // isz, hs.dtype)
    gen = 0
    for t in range(T - 1, -1, -1):
        for b in range(b0, b1):
            _cell_backward(gates[t, b], tcs[t, b], cs[t, b], cs[t + 1, b], dhs[t, b], dh[b], dc[b], p, peep, dp,
                           H, u0, u1)
        gen = barrier(bar, nth, gen)
        _gemm.units_nn(ab, GH, 0, GH, u0, u1, b1 - b0, gates.ctypes.data + ((t * B + b0) * GH) * isz, GH, Pb,
                       dh.ctypes.data + b0 * H * isz, H, False, scratch)
    for b in range(b0, b1):
        for j in range(np.uint64(u0), np.uint64(u1)):
            dh0[b, j] = dh[b, j]
            dc0[b, j] = dc[b, j]


def _dummy(dtype):
    return np.zeros((1, 1), dtype)


def fused_input(x, W_ih, b_ih):
    """An ops.DenseInput for forward (dense inputs, layers above the first or an embedding, are
    multiplied inside the time loop), or None where x is not C-contiguous: then the caller writes
    the projection x @ W_ih.T + b_ih itself."""
    if not x.flags.c_contiguous:
        return None
    return DenseInput(x, W_ih, b_ih.reshape(1, -1))


def forward(ws, xg, W_hh, b_hh, p, h0, c0):
    """Fill ws from the input pre-activations xg (T, B, 4H), an ops.OneHot or an ops.DenseInput.
    p is None or (3, H)."""
    peep = p is not None
    p = p if peep else _dummy(W_hh.dtype)
    dense = isinstance(xg, DenseInput)
    if dense:
        I = xg.x.shape[2]
        n = _gemm.packed_size(G, W_hh.shape[1], I, W_hh.dtype)
        if ws.get("Pi") is None or ws["Pi"].size != n:
            ws["Pi"] = _gemm.zeros_aligned(n, W_hh.dtype)      # W_ih packed for x_t @ W_ih.T
        fused = (xg.x, xg.W_ih, ws["Pi"], True)
    else:
        fused = (np.zeros((1, 1, 1), W_hh.dtype), _dummy(W_hh.dtype), np.zeros(1, W_hh.dtype), False)
    args = input_rows(xg) + (W_hh, ws["Pf"], b_hh, p, peep, h0, c0, ws["hs"], ws["cs"], ws["gates"], ws["tcs"],
                             ws["a"]) + fused
    parts = _threads.plan(xg.shape[1], W_hh.shape[1], W_hh.nbytes)
    packs = _gemm.panel_shares(_gemm.panels(W_hh.shape[0] // G, W_hh.dtype), len(parts))
    tail = (new_barrier(), len(parts), new_barrier(), _threads.nsync(parts))
    _threads.run_sync(_forward, [args + c + pk + tail for c, pk in zip(parts, packs)])


def backward(ws, xg, W_hh, b_hh, p, dhs, dhT, dcT, dxg, dW_hh, db_hh, dp, dh0, dc0):
    """Returns the gradient w.r.t. the input pre-activations: ws["gates"] (T, B, 4H), overwritten in
    place (dxg is not written: one buffer fewer for the step's data in the cache; forward fills the
    gates again). Writes dh0, dc0 (dc0 may be None); accumulates dW_hh, db_hh, dp. Reads dhs only."""
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
    da = ws["gates"]
    parts = _threads.plan(B, H, W_hh.nbytes, "backward")
    dps = np.zeros((len(parts), 3, H), da.dtype) if peep else np.zeros((len(parts), 1, 1), da.dtype)
    args = (W_hh, ws["hs"], ws["cs"], da, ws["tcs"], ws["Pb"], p if peep else _dummy(da.dtype), peep, dhs, dh, dc)
    tail = (dh0, np.empty_like(dc) if dc0 is None else dc0)
    packs = _gemm.panel_shares(_gemm.panels(H, W_hh.dtype), len(parts))
    sync = (new_barrier(), len(parts), new_barrier(), _threads.nsync(parts))
    _threads.run_sync(_backward, [args + (dps[k],) + tail + c + packs[k] + sync for k, c in enumerate(parts)])
    if peep:
        dp += dps.sum(0)
    wgrad(da.reshape(T * B, G * H), ws["hs"][:T].reshape(T * B, H), dW_hh, db_hh, consts(da))
    return da
