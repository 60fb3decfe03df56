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

KINDS = {"lstm": 0, "gru": 1, "rnn": 2}


@jit
def _xwt(ab, N, O, K, px, pw, py, ldy):
    """Y (N, O) = X (N, K) @ W.T for W (O, K) row-major; gemv at N = 1 (gemm packs W per call,
    ten times slower for a single row)."""
    if N == 1:
        rgemv(ab, O, K, pw, K, px, False, py)
    else:
        rgemm(ab, N_, T_, N, O, K, px, K, pw, K, False, py, ldy)


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
def _generate(flat, offs, emb_off, E, dec_off, V, H, kind, cho, peep, z, h, c, u, temperature, top_k,
              top_p, argmax, idx, ax, ah, xe, rh, p64):
    """offs (L, 5): element offsets of W_ih, W_hh, b_ih, b_hh, peepholes (-1: none)."""
    L, N, _ = h.shape
    G = ax.shape[1] // H
    GH = G * H
    length = u.shape[0]
    ab = consts(z)
    isz = z.itemsize
    base = flat.ctypes.data
    one = z.dtype.type(1.0)
    for s in range(length):
        for n in range(N):
            idx[n, s] = _pick(z[n], u[s, n], temperature, top_k, top_p, argmax, p64)
        for k in range(L):
            o_ih, o_hh, o_bih, o_bhh, o_p = offs[k, 0], offs[k, 1], offs[k, 2], offs[k, 3], offs[k, 4]
            hk = h[k]
            # input projection ax = W_ih x + b_ih
            if k == 0 and E == 0:
                for n in range(N):
                    x = idx[n, s]
                    for j in range(GH):
                        ax[n, j] = flat[o_ih + j * V + x] + flat[o_bih + j]
            else:
                if k == 0:
                    for n in range(N):
                        for e in range(E):
                            xe[n, e] = flat[emb_off + idx[n, s] * E + e]
                    _xwt(ab, N, GH, E, xe.ctypes.data, base + o_ih * isz, ax.ctypes.data, GH)
                else:
                    _xwt(ab, N, GH, H, h.ctypes.data + (k - 1) * N * H * isz, base + o_ih * isz, ax.ctypes.data, GH)
                for n in range(N):
                    for j in range(GH):
                        ax[n, j] += flat[o_bih + j]
            # recurrent product(s) and the pointwise update
            if kind == 1 and cho:
                _xwt(ab, N, 2 * H, H, hk.ctypes.data, base + o_hh * isz, ah.ctypes.data, GH)
                for n in range(N):
                    for j in range(H):
                        r = sigmoid_(ax[n, j] + ah[n, j] + flat[o_bhh + j])
                        rh[n, j] = r * hk[n, j]
                _xwt(ab, N, H, H, rh.ctypes.data, base + (o_hh + 2 * H * H) * isz, ah.ctypes.data + 2 * H * isz, GH)
                for n in range(N):
                    for j in range(H):
                        zg = sigmoid_(ax[n, H + j] + ah[n, H + j] + flat[o_bhh + H + j])
                        ng = tanh_(ax[n, 2 * H + j] + ah[n, 2 * H + j] + flat[o_bhh + 2 * H + j])
                        hk[n, j] = (one - zg) * ng + zg * hk[n, j]
                continue
            _xwt(ab, N, GH, H, hk.ctypes.data, base + o_hh * isz, ah.ctypes.data, GH)
            for n in range(N):
                if kind == 0:
                    ck = c[k]
                    for j in range(H):
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
                        hk[n, j] = sigmoid_(ao) * tanh_(cn)
                elif kind == 1:
                    for j in range(H):
                        r = sigmoid_(ax[n, j] + ah[n, j] + flat[o_bhh + j])
                        zg = sigmoid_(ax[n, H + j] + ah[n, H + j] + flat[o_bhh + H + j])
                        ng = tanh_(ax[n, 2 * H + j] + r * (ah[n, 2 * H + j] + flat[o_bhh + 2 * H + j]))
                        hk[n, j] = (one - zg) * ng + zg * hk[n, j]
                else:
                    for j in range(H):
                        hk[n, j] = tanh_(ax[n, j] + ah[n, j] + flat[o_bhh + j])
        # head
        _xwt(ab, N, V, H, h.ctypes.data + (L - 1) * N * H * isz, base + dec_off * isz, z.ctypes.data, V)
        for n in range(N):
            for v in range(V):
                z[n, v] += flat[dec_off + V * H + v]


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
    idx = np.zeros((N, length), np.int64)
    E = model.E
    _generate(model.flat, offs, t["encoder.weight"][0] if E else -1, E, t["decoder.weight"][0], model.V, H,
              KINDS[model.cell], model.gru_variant == "cho", model.peephole, z, h, c, u, float(temperature),
              int(top_k), float(top_p), bool(argmax), idx, np.zeros((N, G * H), dt), np.zeros((N, G * H), dt),
              np.zeros((N, max(E, 1)), dt), np.zeros((N, H), dt), np.zeros(model.V, np.float64))
    return idx, z, ((h, c) if model.cell == "lstm" else h)
