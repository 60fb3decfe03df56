"""Jitted generation for the cpu backend: the whole sampling loop (model step + pick) in njit.

    idx, z, state = generate(model, z, state, u, temperature=1.0, top_k=0, top_p=1.0, argmax=False)

model: a CharLM on device "cpu" (any cell, variant, L, one-hot or embedding input).
z: (N, V) logits for the first pick (e.g. the last column of ``model.logits(prime)``).
state: the model state after those logits (lstm: (h, c); gru/rnn: h; arrays (L, N, H)).
u: (length, N) float64 uniform draws in [0, 1), one row per pick (ignored when argmax); pass
``rng.random((length, N))`` to consume a Generator exactly as ``length`` calls of
``rng.random(N)`` would.
Returns idx (N, length) int64, the logits after the last picked character (for the next pick),
and the state after it: calls chain, so text can be generated and streamed in blocks.

The pick is seqlearn.sample.pick's rule in float64 (temperature, then top-k, softmax, top-p with
a stable sort, then the first cdf entry >= u * total). One step per character: for every layer
one product for the input (a column gather for one-hot input) and one for the recurrence (two for
GRU "cho"), the pointwise update (the training kernels' loops), then the head product. The
products run against the weights packed once per sampling run (``pack``; _gemm.py), so each
weight is read once per character for all N sequences.
"""
import math

import numpy as np

from . import _gemm
from ._act import sigmoid_, tanh_
from .gru import _cell_forward_torch
from .lstm import _cell_forward
from .ops import _onehot_table
from ._blas import consts
from ._jit import jit
from ._sync import barrier, new_barrier
from . import _threads, config

KINDS = {"lstm": 0, "gru": 1, "rnn": 2}


@jit
def _proj(ab, N, H, K, g0, g1, u0, u1, px, pp, Y, scratch):
    """Y[:, g H + u0 : g H + u1] = X (N, K) @ W[g H + u0 : g H + u1].T for gates g0:g1, X contiguous
    at px, W packed at pp (see pack): each weight is read once for all N rows (OpenBLAS's gemm
    would pack W on every call: docs/performance.md, "Generation")."""
    _gemm.gates_nt(ab, H, K, g0, g1, u0, u1, N, px, K, pp, Y.ctypes.data, Y.shape[1], scratch)


@jit
def _pick(zr, u, temperature, top_k, top_p, argmax, p):
    V = zr.shape[0]
    if argmax:
        best = 0
        for v in range(1, V):
            if zr[v] > zr[best]:
                best = v
        return best
    for v in range(V):
        p[v] = np.float64(zr[v]) / temperature
    if 0 < top_k < V:
        kth = np.sort(p)[V - top_k]
        for v in range(V):
            if p[v] < kth:
                p[v] = -np.inf
    m = p[0]
    for v in range(1, V):
        m = max(m, p[v])
    s = 0.0
    for v in range(V):
        p[v] = math.exp(p[v] - m)
        s += p[v]
    for v in range(V):
        p[v] /= s
    if top_p < 1.0:
        order = np.argsort(-p, kind="mergesort")
        run = 0.0
        keep = np.zeros(V, np.bool_)
        for q in range(V):
            v = order[q]
            keep[v] = run < top_p          # cumsum - p < top_p: the smallest set reaching top_p
            run += p[v]
        s = 0.0
        for v in range(V):
            if not keep[v]:
                p[v] = 0.0
            s += p[v]
        for v in range(V):
            p[v] /= s
    total = 0.0
    for v in range(V):
        total += p[v]
    thr = u * total
    cdf = 0.0
    k = 0
    for v in range(V):
        cdf += p[v]
        if cdf < thr:
            k += 1
    return min(k, V - 1)


@jit
def _generate(flat, offs, emb_off, E, dec_off, V, H, kind, cho, peep, z, h2, c, u, temperature, top_k,
              top_p, argmax, idx, ax, ah, xe, rh, p64, P, poffs, dec_p, u0, u1, bar, nth):
    """One thread's share of the generation loop: units u0:u1 of every layer (all of them when
    nth = 1). offs (L, 4): element offsets in flat of W_ih (not read here), b_ih, b_hh, peepholes
    (-1: none).
    h2 (2, L, N, H): the hidden state, double-buffered (step s reads h2[s % 2], writes the other,
    so a partner thread's product never sees half an update); c (L, N, H) is updated in place
    (only its own units). ax, ah (shared): own units written and read by this thread only. z, idx,
    xe, p64 are this thread's own: every thread computes the whole head and the same picks
    (identical arithmetic), so the only synchronisation is a barrier after each layer (and one
    between the two products of a GRU "cho" layer, the second of which reads all of r * h). P, poffs
    (L, 2), dec_p: W_ih, W_hh per layer and the decoder, packed (a one-hot first layer's W_ih as
    rows W_ih[:, x] + b_ih; see pack)."""
    _, L, N, _ = h2.shape
    G = ax.shape[1] // H
    length = u.shape[0]
    ab = consts(z)
    isz = z.itemsize
    one = z.dtype.type(1.0)
    pbase = P.ctypes.data
    scratch = np.empty(_gemm.MAX_ROWS * 64 // isz, z.dtype)
    gt = np.empty(G * H, z.dtype)       # one row's activated gates, new c, tanh(c) (own units)
    cw = np.empty(H, z.dtype)
    tw = np.empty(H, z.dtype)
    gen = 0
    for s in range(length):
        hold = h2[s % 2]
        hnew = h2[(s + 1) % 2]
        for n in range(N):
            idx[n, s] = _pick(z[n], u[s, n], temperature, top_k, top_p, argmax, p64)
        for k in range(L):
            o_bih, o_bhh, o_p = offs[k, 1], offs[k, 2], offs[k, 3]
            hk = hold[k]
            hq = hnew[k]
            # input projection ax = W_ih x + b_ih (own units of every gate)
            if k == 0 and E == 0:
                for n in range(N):
                    row = poffs[0, 0] + idx[n, s] * G * H     # W_ih[:, x] + b_ih, contiguous
                    for g in range(G):
                        for j in range(g * H + u0, g * H + u1):
                            ax[n, j] = P[row + j]
            else:
                if k == 0:
                    for n in range(N):
                        for e in range(E):
                            xe[n, e] = flat[emb_off + idx[n, s] * E + e]
                    K, px = E, xe.ctypes.data
                else:
                    K, px = H, hnew.ctypes.data + (k - 1) * N * H * isz
                _proj(ab, N, H, K, 0, G, u0, u1, px, pbase + poffs[k, 0] * isz, ax, scratch)
                for n in range(N):
                    for g in range(G):
                        for j in range(g * H + u0, g * H + u1):
                            ax[n, j] += flat[o_bih + j]
            # recurrent product(s) and the pointwise update
            if kind == 1 and cho:           # two dependent products: the second reads all of r * h
                _proj(ab, N, H, H, 0, 2, u0, u1, hk.ctypes.data, pbase + poffs[k, 1] * isz, ah,
                      scratch)
                for n in range(N):
                    for j in range(u0, u1):
                        r = sigmoid_(ax[n, j] + ah[n, j] + flat[o_bhh + j])
                        rh[n, j] = r * hk[n, j]
                gen = barrier(bar, nth, gen)
                _proj(ab, N, H, H, 2, 3, u0, u1, rh.ctypes.data, pbase + poffs[k, 1] * isz, ah,
                      scratch)
                for n in range(N):
                    for j in range(u0, u1):
                        zg = sigmoid_(ax[n, H + j] + ah[n, H + j] + flat[o_bhh + H + j])
                        ng = tanh_(ax[n, 2 * H + j] + ah[n, 2 * H + j] + flat[o_bhh + 2 * H + j])
                        hq[n, j] = (one - zg) * ng + zg * hk[n, j]
                gen = barrier(bar, nth, gen)
                continue
            _proj(ab, N, H, H, 0, G, u0, u1, hk.ctypes.data, pbase + poffs[k, 1] * isz, ah,
                  scratch)
            for n in range(N):
                if kind == 0:
                    ck = c[k]
                    op = max(o_p, 0)
                    _cell_forward(ax[n], ah[n], flat[o_bhh:o_bhh + 4 * H], flat[op:op + 3 * H].reshape(3, H), peep,
                                  ck[n], gt, cw, tw, hq[n], H, u0, u1)
                    for j in range(u0, u1):
                        ck[n, j] = cw[j]
                elif kind == 1:
                    _cell_forward_torch(ax[n], ah[n], flat[o_bhh:o_bhh + 3 * H], gt, hk[n], hq[n], tw, H, u0, u1)
                else:
                    for j in range(u0, u1):
                        hq[n, j] = tanh_(ax[n, j] + ah[n, j] + flat[o_bhh + j])
            gen = barrier(bar, nth, gen)
        # head (every thread, whole)
        _proj(ab, N, V, H, 0, 1, 0, V, hnew.ctypes.data + (L - 1) * N * H * isz, pbase + dec_p * isz, z,
              scratch)
        for n in range(N):
            for v in range(V):
                z[n, v] += flat[dec_off + V * H + v]


def pack(model):
    """The weights of a cpu model packed for the products of generation (_gemm.py): (P, poffs,
    dec_p), poffs (L, 2) the element offsets in P of each layer's W_ih and W_hh, dec_p the
    decoder's. A one-hot first layer's W_ih is stored transposed with b_ih added, (V, G H): the
    projection of token x is one contiguous row (a column of W_ih touched a cache line per gate
    row, 4 H lines per character). P starts on a cache line, and so does every block in it.
    Valid while the weights do not change: pass it to every generate call of one sampling run (N
    does not matter)."""
    dt = model.dtype
    L, H, G, V, E = model.L, model.H, model.cell_impl.G, model.V, model.E
    poffs = np.full((L, 2), -1, np.int64)
    jobs, total = [], 0
    onehot = 0                                          # elements of the one-hot table, if any
    for k in range(L):
        for i, name in enumerate(("weight_ih", "weight_hh")):
            W = model.params[f"rnn.{name}_l{k}"]
            if i == 0 and k == 0 and E == 0:
                poffs[k, i] = total
                onehot = V * G * H                      # (V, G H): row x is W_ih x + b_ih
                line = 64 // np.dtype(dt).itemsize      # the panels after it start on a cache line
                total += -(-onehot // line) * line
                continue
            poffs[k, i] = total
            jobs.append((W, G, total))
            total += _gemm.packed_size(G, H, W.shape[1], dt)
    dec_p = total
    jobs.append((model.params["decoder.weight"], 1, total))
    total += _gemm.packed_size(1, V, H, dt)
    P = _gemm.zeros_aligned(total, dt)
    if onehot:          # the table the training loops read too (ops.onehot_input)
        _onehot_table(model.params["rnn.weight_ih_l0"], model.params["rnn.bias_ih_l0"],
                      P[poffs[0, 0]:poffs[0, 0] + onehot].reshape(V, G * H))
    for W, g, off in jobs:
        _gemm.pack_gates(np.ascontiguousarray(W), g, P[off:])
    return P, poffs, dec_p


def generate(model, z, state, u, temperature=1.0, top_k=0, top_p=1.0, argmax=False, packed=None):
    """See the module docstring. packed: pack(model, N) from an earlier call of the same sampling
    run (packed here when None)."""
    if model.device != "cpu":
        raise ValueError("sample_kernels.generate needs a model on device 'cpu'")
    dt = model.dtype
    u = np.ascontiguousarray(u, np.float64)
    length, N = u.shape
    z = np.array(z, dt, order="C")
    if z.shape != (N, model.V):
        raise ValueError(f"z must have shape {(N, model.V)}")
    if state is None:
        state = model.zero_state(N)
    if model.cell == "lstm":
        h, c = (np.array(a, dt, order="C") for a in state)
    else:
        h, c = np.array(state, dt, order="C"), np.zeros((1, 1, 1), dt)
    if h.shape != (model.L, N, model.H):
        raise ValueError(f"state must have shape {(model.L, N, model.H)}")
    t = model.table
    offs = np.full((model.L, 4), -1, np.int64)       # W_hh: read from the packed panels only
    for k in range(model.L):
        for i, name in enumerate(("weight_ih", "bias_ih", "bias_hh", "weight_pi")):
            key = f"rnn.{name}_l{k}"
            if key in t:
                offs[k, i] = t[key][0]
    H, G = model.H, model.cell_impl.G
    E = model.E
    h2 = np.empty((2,) + h.shape, dt)
    h2[0] = h
    parts = [(0, H)]
    wbytes = model.flat.nbytes
    if wbytes >= config.SPLIT_MIN_BYTES:
        parts = _threads.unit_chunks(H) if config.SPLIT != "batch" else parts
    nth = len(parts)
    bar = new_barrier()
    ax, ah = np.zeros((N, G * H), dt), np.zeros((N, G * H), dt)
    rh = np.zeros((N, H), dt)
    own = [(z if k == 0 else z.copy(), np.zeros((N, length), np.int64), np.zeros((N, max(E, 1)), dt),
            np.zeros(model.V, np.float64)) for k in range(nth)]
    P, poffs, dec_p = pack(model) if packed is None else packed
    common = (model.flat, offs, t["encoder.weight"][0] if E else -1, E, t["decoder.weight"][0], model.V, H,
              KINDS[model.cell], model.gru_variant == "cho", model.peephole)
    opts = (float(temperature), int(top_k), float(top_p), bool(argmax))
    _threads.run_sync(_generate, [common + (zk, h2, c, u) + opts + (ik, ax, ah, xk, rh, pk, P, poffs, dec_p)
                                  + (u0, u1, bar, nth) for (zk, ik, xk, pk), (u0, u1) in zip(own, parts)])
    h = np.ascontiguousarray(h2[length % 2])
    idx = own[0][1]
    return idx, z, ((h, c) if model.cell == "lstm" else h)
