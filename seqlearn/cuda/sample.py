"""GPU sampling: N sequences at once, the state, logits and choices staying on the device; only
the chosen indices come back at the end.

    idx = seqlearn.cuda.sample.generate(model, start, length, rng, temperature=1.0, top_k=0,
                                        top_p=1.0, argmax=False, state=None)

`start` (N, P) int: the prime (or one start character) of each sequence; returns (length, N)
int64 host array: the characters that follow, drawn with exactly the rule and random stream of
seqlearn.sample.pick (one rng.random(N) per step, none for argmax), so the same seed gives the same
text as the host sampler up to floating-point ties. Per step: one forward step of every layer, the
head product, and one sampling kernel (a block per sequence).
"""
import math

import numpy as np
from numba import cuda, float64

from . import config, head, ops
from ._jit import get
from ._launch import launch


def build_pick(nt):
    @cuda.jit
    def pick(Z, u, temperature, top_k, top_p, argmax, tokens, s, x_next):
        """Row n of Z (N, V) -> tokens[s, n] and x_next[0, n]. Dynamic shared memory: 3 V float64."""
        sh = cuda.shared.array(0, float64)
        red = cuda.shared.array(2, float64)
        n = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        V = Z.shape[1]
        zs = sh[0:V]
        p = sh[V:2 * V]
        aux = sh[2 * V:3 * V]
        for v in range(tid, V, nt):
            zs[v] = Z[n, v] / temperature if not argmax else Z[n, v] * 1.0
        cuda.syncthreads()
        if argmax:
            if tid == 0:
                best = 0
                for v in range(1, V):
                    if zs[v] > zs[best]:
                        best = v
                tokens[s, n] = best
                x_next[0, n] = best
            return
        # top-k: keep entries with fewer than k strictly larger ones (ties at the k-th are kept)
        for v in range(tid, V, nt):
            keep = 1.0
            if 0 < top_k < V:
                cnt = 0
                for w in range(V):
                    if zs[w] > zs[v]:
                        cnt += 1
                if cnt >= top_k:
                    keep = 0.0
            aux[v] = keep
        cuda.syncthreads()
        if tid == 0:
            m = -math.inf
            for v in range(V):
                if aux[v] > 0.0 and zs[v] > m:
                    m = zs[v]
            red[0] = m
        cuda.syncthreads()
        m = red[0]
        for v in range(tid, V, nt):
            p[v] = math.exp(zs[v] - m) if aux[v] > 0.0 else 0.0
        cuda.syncthreads()
        if tid == 0:
            tot = 0.0
            for v in range(V):
                tot += p[v]
            red[1] = tot
        cuda.syncthreads()
        tot = red[1]
        for v in range(tid, V, nt):
            p[v] = p[v] / tot
        cuda.syncthreads()
        if top_p < 1.0:
            # rank in a stable descending sort; keep while the mass before it is below top_p
            for v in range(tid, V, nt):
                r = 0
                pv = p[v]
                for w in range(V):
                    if p[w] > pv or (p[w] == pv and w < v):
                        r += 1
                aux[v] = r
            cuda.syncthreads()
            for v in range(tid, V, nt):
                before = 0.0
                rv = aux[v]
                for w in range(V):
                    if aux[w] < rv:
                        before += p[w]
                zs[v] = p[v] if before < top_p else 0.0
            cuda.syncthreads()
            for v in range(tid, V, nt):
                p[v] = zs[v]
            cuda.syncthreads()
        if tid == 0:
            tot = 0.0
            for v in range(V):
                tot += p[v]
            target = u[s, n] * tot
            c = 0.0
            cnt = 0
            for v in range(V):
                c += p[v]
                if c < target:
                    cnt += 1
            if cnt > V - 1:
                cnt = V - 1
            tokens[s, n] = cnt
            x_next[0, n] = cnt

    return pick


def generate(model, start, length, rng, temperature=1.0, top_k=0, top_p=1.0, argmax=False, state=None):
    """(length, N) int64 host array of sampled indices following `start` (N, P); see the module doc."""
    start = np.asarray(start, np.int64)
    N, P = start.shape
    if length <= 0:
        return np.zeros((0, N), np.int64)
    u = np.zeros((length, N)) if argmax else rng.random((length, N))
    V, L, H = model.V, model.L, model.H
    dt = model.dtype
    p = model._p
    h0, c0 = model._split_state(state, N)
    h0, c0 = ops.copy_new(h0), (None if c0 is None else ops.copy_new(c0))
    x = model._tokens(start, "start")
    ws = model._workspace(P, N)
    top, _ = model._forward(x, h0, c0, ws, train=False)
    _carry(model, ws, h0, c0)
    Z = ops.zeros((N, V), dt)
    head.logits(top.reshape(P, N, H)[P - 1], p["decoder.weight"], p["decoder.bias"], Z)
    tokens = cuda.device_array((length, N), np.int64)
    x1 = cuda.device_array((1, N), np.int64)
    ud = ops.to_device(u)
    nt = config.SAMPLE_THREADS
    kern = get(build_pick, nt)
    ws1 = model._workspace(1, N)
    for s in range(length):
        launch(kern, (N, nt), (Z, ud, float(temperature), int(top_k), float(top_p), int(bool(argmax)),
                                 tokens, s, x1), smem=3 * V * 8)
        if s + 1 < length:
            top, _ = model._forward(x1, h0, c0, ws1, train=False)
            _carry(model, ws1, h0, c0)
            head.logits(top, p["decoder.weight"], p["decoder.bias"], Z)
    return tokens.copy_to_host()


def _carry(model, ws, h0, c0):
    """The final state of every layer becomes the next initial state (device copies)."""
    for k, lw in enumerate(ws["layers"]):
        h, c = model.cell_impl.final(lw)
        ops.copy(h, h0[k])
        if c0 is not None:
            ops.copy(c, c0[k])


def registry():
    """[(name, python function, [signatures])] for the PTX tier."""
    sig = "void({f}[:, ::1], float64[:, ::1], float64, int64, float64, int64, int64[:, ::1], int64, int64[:, ::1])"
    return [("sample_pick", get(build_pick, config.SAMPLE_THREADS),
             [sig.format(f="float32"), sig.format(f="float64")])]
