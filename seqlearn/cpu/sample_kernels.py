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
GRU "cho"), a fused pointwise update, then the head product. All products go through the same
BLAS as the training kernels, one thread (gemv for a single sequence).
"""
import math

import numpy as np

from ._act import sigmoid_, tanh_
from ._blas import N_, T_, consts, rgemm, rgemv
from ._jit import jit
from ._sync import barrier
from . import _threads

KINDS = {"lstm": 0, "gru": 1, "rnn": 2}


@jit
def _xwt(ab, N, O, K, px, pw, Y, c0, tmp):
    """Y[:, c0:c0 + O] = X (N, K) @ W.T for W (O, K) row-major at pw, X contiguous at px.
    OpenBLAS's gemm is slow for so few rows (it packs W on every call: one row took 188 us for a
    1024 x 256 W against 18 us as a gemv), so: one gemv per row for N < 4, else W @ X.T as one
    gemm into tmp (2x faster than X @ W.T here) and a transpose into Y."""
    isz = Y.itemsize
    ldy = Y.shape[1]
    if N < 4:
        for n in range(N):
            rgemv(ab, O, K, pw, K, px + n * K * isz, False, Y.ctypes.data + (n * ldy + c0) * isz)
    else:
        rgemm(ab, N_, T_, O, N, K, pw, K, px, K, False, tmp.ctypes.data, N)
        for n in range(N):
            y = Y[n]
            for o in range(O):
                y[c0 + o] = tmp[o * N + n]


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
              top_p, argmax, idx, ax, ah, xe, rh, p64, tmp, u0, u1, bar, nth):
    """One thread's share of the generation loop: units u0:u1 of every layer (all of them when
    nth = 1). offs (L, 5): element offsets of W_ih, W_hh, b_ih, b_hh, peepholes (-1: none).
    h2 (2, L, N, H): the hidden state, double-buffered (step s reads h2[s % 2], writes the other,
    so a partner thread's product never sees half an update); c (L, N, H) is updated in place
    (only its own units). ax, ah (shared): own units written and read by this thread only. z, idx,
    xe, p64 are this thread's own: every thread computes the whole head and the same picks
    (identical arithmetic), so the only synchronisation is a barrier after each layer."""
    _, L, N, _ = h2.shape
    G = ax.shape[1] // H
    GH = G * H
    nu = u1 - u0
    length = u.shape[0]
    ab = consts(z)
    isz = z.itemsize
    base = flat.ctypes.data
    one = z.dtype.type(1.0)
    gen = 0
    for s in range(length):
        hold = h2[s % 2]
        hnew = h2[(s + 1) % 2]
        for n in range(N):
            idx[n, s] = _pick(z[n], u[s, n], temperature, top_k, top_p, argmax, p64)
        for k in range(L):
            o_ih, o_hh, o_bih, o_bhh, o_p = offs[k, 0], offs[k, 1], offs[k, 2], offs[k, 3], offs[k, 4]
            hk = hold[k]
            hq = hnew[k]
            # input projection ax = W_ih x + b_ih (own units of every gate)
            if k == 0 and E == 0:
                for n in range(N):
                    x = idx[n, s]
                    for g in range(G):
                        for j in range(g * H + u0, g * H + u1):
                            ax[n, j] = flat[o_ih + j * V + x] + flat[o_bih + j]
            else:
                if k == 0:
                    for n in range(N):
                        for e in range(E):
                            xe[n, e] = flat[emb_off + idx[n, s] * E + e]
                    K, px = E, xe.ctypes.data
                else:
                    K, px = H, hnew.ctypes.data + (k - 1) * N * H * isz
                if nu == H:
                    _xwt(ab, N, GH, K, px, base + o_ih * isz, ax, 0, tmp)
                else:
                    for g in range(G):
                        _xwt(ab, N, nu, K, px, base + (o_ih + (g * H + u0) * K) * isz, ax, g * H + u0, tmp)
                for n in range(N):
                    for g in range(G):
                        for j in range(g * H + u0, g * H + u1):
                            ax[n, j] += flat[o_bih + j]
            # recurrent product(s) and the pointwise update
            if kind == 1 and cho:           # nth = 1 here (two dependent products)
                _xwt(ab, N, 2 * H, H, hk.ctypes.data, base + o_hh * isz, ah, 0, tmp)
                for n in range(N):
                    for j in range(H):
                        r = sigmoid_(ax[n, j] + ah[n, j] + flat[o_bhh + j])
                        rh[n, j] = r * hk[n, j]
                _xwt(ab, N, H, H, rh.ctypes.data, base + (o_hh + 2 * H * H) * isz, ah, 2 * H, tmp)
                for n in range(N):
                    for j in range(H):
                        zg = sigmoid_(ax[n, H + j] + ah[n, H + j] + flat[o_bhh + H + j])
                        ng = tanh_(ax[n, 2 * H + j] + ah[n, 2 * H + j] + flat[o_bhh + 2 * H + j])
                        hq[n, j] = (one - zg) * ng + zg * hk[n, j]
                gen = barrier(bar, nth, gen)
                continue
            if nu == H:
                _xwt(ab, N, GH, H, hk.ctypes.data, base + o_hh * isz, ah, 0, tmp)
            else:
                for g in range(G):
                    _xwt(ab, N, nu, H, hk.ctypes.data, base + (o_hh + (g * H + u0) * H) * isz, ah, g * H + u0, tmp)
            for n in range(N):
                if kind == 0:
                    ck = c[k]
                    for j in range(u0, u1):
                        cp = ck[n, j]
                        ai = ax[n, j] + ah[n, j] + flat[o_bhh + j]
                        af = ax[n, H + j] + ah[n, H + j] + flat[o_bhh + H + j]
                        ao = ax[n, 3 * H + j] + ah[n, 3 * H + j] + flat[o_bhh + 3 * H + j]
                        if peep:
                            ai += flat[o_p + j] * cp
                            af += flat[o_p + H + j] * cp
                        i = sigmoid_(ai)
                        f = sigmoid_(af)
                        g = tanh_(ax[n, 2 * H + j] + ah[n, 2 * H + j] + flat[o_bhh + 2 * H + j])
                        cn = f * cp + i * g
                        if peep:
                            ao += flat[o_p + 2 * H + j] * cn
                        ck[n, j] = cn
                        hq[n, j] = sigmoid_(ao) * tanh_(cn)
                elif kind == 1:
                    for j in range(u0, u1):
                        r = sigmoid_(ax[n, j] + ah[n, j] + flat[o_bhh + j])
                        zg = sigmoid_(ax[n, H + j] + ah[n, H + j] + flat[o_bhh + H + j])
                        ng = tanh_(ax[n, 2 * H + j] + r * (ah[n, 2 * H + j] + flat[o_bhh + 2 * H + j]))
                        hq[n, j] = (one - zg) * ng + zg * hk[n, j]
                else:
                    for j in range(u0, u1):
                        hq[n, j] = tanh_(ax[n, j] + ah[n, j] + flat[o_bhh + j])
            gen = barrier(bar, nth, gen)
        # head (every thread, whole)
        _xwt(ab, N, V, H, hnew.ctypes.data + (L - 1) * N * H * isz, base + dec_off * isz, z, 0, tmp)
        for n in range(N):
            for v in range(V):
                z[n, v] += flat[dec_off + V * H + v]


# Below this many weight bytes per character a single thread is faster than two meeting at
# barriers (a barrier per layer per character).
SPLIT_MIN_BYTES = 1 << 20


def generate(model, z, state, u, temperature=1.0, top_k=0, top_p=1.0, argmax=False):
    """See the module docstring."""
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
    offs = np.full((model.L, 5), -1, np.int64)
    for k in range(model.L):
        for i, name in enumerate(("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_pi")):
            key = f"rnn.{name}_l{k}"
            if key in t:
                offs[k, i] = t[key][0]
    H, G = model.H, model.cell_impl.G
    E = model.E
    h2 = np.empty((2,) + h.shape, dt)
    h2[0] = h
    parts = [(0, H)]
    wbytes = model.flat.nbytes
    if not (model.cell == "gru" and model.gru_variant == "cho") and wbytes >= SPLIT_MIN_BYTES:
        parts = _threads.unit_chunks(H) if _threads.SPLIT != "batch" else parts
    nth = len(parts)
    bar = np.zeros(8, np.int64)
    ax, ah = np.zeros((N, G * H), dt), np.zeros((N, G * H), dt)
    rh = np.zeros((N, H), dt)
    own = [(z if k == 0 else z.copy(), np.zeros((N, length), np.int64), np.zeros((N, max(E, 1)), dt),
            np.zeros(model.V, np.float64)) for k in range(nth)]
    tmp_size = N * max(G * H, model.V) if N >= 4 else 1
    common = (model.flat, offs, t["encoder.weight"][0] if E else -1, E, t["decoder.weight"][0], model.V, H,
              KINDS[model.cell], model.gru_variant == "cho", model.peephole)
    opts = (float(temperature), int(top_k), float(top_p), bool(argmax))
    _threads.run_sync(_generate, [common + (zk, h2, c, u) + opts + (ik, ax, ah, xk, rh, pk, np.empty(tmp_size, dt), u0, u1, bar, nth)
                                  for (zk, ik, xk, pk), (u0, u1) in zip(own, parts)])
    h = np.ascontiguousarray(h2[length % 2])
    idx = own[0][1]
    return idx, z, ((h, c) if model.cell == "lstm" else h)
