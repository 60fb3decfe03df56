"""Persistent recurrent kernels (Diamos et al. 2016, "Persistent RNNs"): one cooperative launch runs
a whole sequence, forward or backward, with the recurrent weights held in shared memory and a
grid-wide barrier (`cuda.cg.this_grid().sync()`) between time steps.

Covered: lstm (no peepholes) and gru variant "torch" (one recurrent product per step). Everything
else takes the per-step path of lstm.py / gru.py / rnn.py.

Work split (NB = ceil(H / J) blocks, block k owns hidden units j in [k J, k J + J)):

forward, step t: the block holds the G*J rows {g H + j} of W_hh (shared memory, row stride H + KSF
  to spread banks). Per round (RB groups of BB = 4 batch rows) and per chunk of KC columns, the
  block first copies that chunk of h_{t-1} from global memory (L2) into shared memory (coalesced,
  8 loads in flight per thread), then a thread owning one unit jj, one batch group and one of
  KSF (8 for J <= 4, else 4) interleaved slices of k accumulates the G x BB partial products from
  shared memory only; the KSF lanes of a group are summed by a transpose-reduce over shuffles
  (build_lane_reduce), then lane ks < 4 finishes the pointwise step of batch row (group * BB + ks):
  gates, c_t, h_t written to global memory. Grid barrier.
backward, step t: the block holds the J columns {j} of W_hh transposed (J rows of length G*H) and
  stages da_{t+1} (RB * 4 rows x RC columns per chunk) the same way. A warp owns a group of BB
  batch rows, its 32 lanes split r; J x BB sums over r of da_{t+1}[b, r] W_hh[r, j], the 32 lanes
  are summed by a transpose-reduce, then lane l < J*BB finishes the pointwise backward of one
  (unit, batch row) pair and writes da_t (dxg[t]); the cell-gradient (lstm) or dh z (gru) carry
  stays with the lane. Grid barrier. After the last step one more product gives dh0. The weight
  gradient is one product after the kernel (lstm.py, gru.py).
All float32 kernels compute in float32 (constants typed to the array dtype; no float64 ops).

In the simulator warp shuffles do not exist; the same reduction code then exchanges values through
shared memory with block barriers (same arithmetic, same order). The simulator can only run a cooperative grid
of ONE block, so the tests run these kernels with NB = 1 (J >= H).
"""
import math

import numpy as np
from numba import cuda, uint64

from . import config, ops
from ._jit import SIMULATOR, get, nbtype
from ._launch import launch

BB = 4        # batch rows per thread
U = uint64     # unsigned index type (no wraparound code)
KSB = 32      # backward: lanes splitting r (a whole warp)

STATUS = {"last_forward": None, "last_backward": None, "declined": {}}


# ------------------------------------------------------------------------------------------------
# lane reduction ("transpose-reduce"): acc holds 2**P groups of S partial sums per lane; lanes
# differing in their low LB bits hold partials of the same sums. After the reduction, lane l holds
# in acc[0:S] the complete sums of group (l & (2**P - 1)). Each stage halves the groups a lane
# keeps and swaps the other half with its partner lane (one shuffle per value), so it needs
# (2**P - 1) * S + (LB - P) * S shuffles instead of 2**P * S * LB. Values are read into scalars
# before the lane-dependent select: a select between two array elements becomes a dynamic index
# and pushes the array to local memory (checked by seqlearn.cuda.ptxcheck).
# ------------------------------------------------------------------------------------------------
if SIMULATOR:
    @cuda.jit(device=True)
    def shfl_xor(v, m):
        """Warp shuffles do not exist in the simulator: exchange through shared memory. Every
        thread of the block calls this in lockstep."""
        buf = cuda.shared.array(config.MAX_BLOCK_THREADS, np.float64)
        tid = cuda.threadIdx.x
        cuda.syncthreads()
        buf[tid] = v
        cuda.syncthreads()
        return buf[tid ^ m]
else:
    @cuda.jit(device=True, inline=True)
    def shfl_xor(v, m):
        return cuda.shfl_xor_sync(0xFFFFFFFF, v, m)


def build_lane_reduce(S, P, LB):
    @cuda.jit(device=True, inline=True)
    def lane_reduce(acc, lane):
        for qq in range(P):
            q = P - 1 - qq
            half = 1 << q
            bit = (lane >> q) & 1
            for i in range(half):
                for s in range(S):
                    lo = acc[i * S + s]
                    hi = acc[(i + half) * S + s]
                    keep = hi if bit else lo
                    send = lo if bit else hi
                    acc[i * S + s] = keep + shfl_xor(send, 1 << q)
        for q in range(P, LB):
            for s in range(S):
                acc[s] += shfl_xor(acc[s], 1 << q)

    return lane_reduce


def fwd_layout(J):
    """(UJ, JW, KSF) of the forward kernel: a thread owns UJ units (jq, jq + JW, ...), a warp is
    JW unit slots x KSF k-slices (x 32 / (JW KSF) batch groups)."""
    UJ = 2 if J >= 8 else 1
    JW = J // UJ
    return UJ, JW, (8 if JW <= 4 else 4)


def ks_for(J):
    """Forward lanes splitting k."""
    return fwd_layout(J)[2]


def build_stage(nbt):
    """Copy rows [rb0, rb0 + rows) x columns [c0, c0 + cols) of src[t] into shared memory (row
    stride ld, from offset off), zeros for rows >= B. Warp w copies rows w, w + nw, ...; its lanes
    read 32 consecutive floats (coalesced). Each thread issues UR x UC = 32 independent loads
    (UR rows x UC column slots) before storing any: the copy is bound by L2 latency x bytes in
    flight, and a batch of 32 per thread keeps ~32 KB in flight per 256-thread block."""
    UR = 4
    UC = 8
    NV = UR * UC
    zero = nbt(0.0)

    @cuda.jit(device=True, inline=True)
    def stage(sm, off, ld, src, t, rb0, B, c0, rows, cols, tid, nt):
        lane = tid % 32
        w = tid // 32
        nw = nt // 32
        v = cuda.local.array(NV, nbt)
        tu = U(t)
        for rb in range(w, rows, nw * UR):
            for cb in range(0, cols, 32 * UC):
                for i in range(UR):
                    rr = rb + nw * i
                    b = rb0 + rr
                    ok = rr < rows and b < B
                    for u in range(UC):
                        c = cb + u * 32 + lane
                        x = zero
                        if ok and c < cols:
                            x = src[tu, U(b), U(c0 + c)]
                        v[i * UC + u] = x
                for i in range(UR):
                    rr = rb + nw * i
                    if rr < rows:
                        base = off + rr * ld
                        for u in range(UC):
                            c = cb + u * 32 + lane
                            if c < cols:
                                sm[U(base + c)] = v[i * UC + u]

    return stage


def build_stage_split(nbt):
    """The two halves of a pipelined copy: `load` brings a thread's share of a chunk (at most UR
    rows x UC column slots: rows <= 4 nw, cols <= 256) into registers v; `store` writes v to
    shared memory later, so that the next chunk's loads fly while the current chunk is computed."""
    UR = 4
    UC = 8
    zero = nbt(0.0)

    @cuda.jit(device=True, inline=True)
    def load(v, src, t, rb0, B, c0, rows, cols, tid, nt):
        lane = tid % 32
        w = tid // 32
        nw = nt // 32
        tu = U(t)
        for i in range(UR):
            rr = w + nw * i
            b = rb0 + rr
            ok = rr < rows and b < B
            for u in range(UC):
                c = u * 32 + lane
                x = zero
                if ok and c < cols:
                    x = src[tu, U(b), U(c0 + c)]
                v[i * UC + u] = x

    @cuda.jit(device=True, inline=True)
    def store(sm, off, ld, v, rows, cols, tid, nt):
        lane = tid % 32
        w = tid // 32
        nw = nt // 32
        for i in range(UR):
            rr = w + nw * i
            if rr < rows:
                base = off + rr * ld
                for u in range(UC):
                    c = u * 32 + lane
                    if c < cols:
                        sm[U(base + c)] = v[i * UC + u]

    return load, store


PIPE_ROWS_PER_WARP = 4
PIPE_COLS = 256
PV = 32          # registers holding a thread's share of the next chunk


# ------------------------------------------------------------------------------------------------
# forward
# ------------------------------------------------------------------------------------------------
def build_forward(cell, J, dt):
    """cell "lstm" (G = 4) or "gru" (torch variant, G = 3); J units per block; dt dtype name.

    Shared memory: the G J weight rows (stride H + KSF) and a staged chunk of h_{t-1} (RB BB batch
    rows x KC columns, stride KC + 4). Per step and round: for each k chunk, the block copies the
    chunk of h_{t-1} (coalesced, from L2) once, then every thread accumulates from shared memory:
    per k, BB h values and UJ G weights loaded, UJ G BB FMAs (J = 8: UJ = 2, 12 loads per 32 FMAs)."""
    nbt = nbtype(dt)
    one = np.dtype(dt).type(1.0)
    is_lstm = cell == "lstm"
    G = 4 if is_lstm else 3
    UJ, JW, KSF = fwd_layout(J)
    S = UJ * G                               # sums per batch row and thread
    NACC = S * BB
    LB = {4: 2, 8: 3}[KSF]
    reduce = build_lane_reduce(S, 2, LB)     # 4 batch rows (groups of S sums) over KSF lanes
    stage = build_stage(nbt)
    pload, pstore = build_stage_split(nbt)

    @cuda.jit(device=True, inline=True)
    def sig(x):
        return one / (one + math.exp(-x))

    @cuda.jit(device=True, inline=True)
    def finish(xg, bh, hs, cs, gates, hn, t, b, j, H, a0, a1, a2, a3):
        if is_lstm:
            cp = cs[t, b, j]
            ig = sig(xg[t, b, j] + a0 + bh[j])
            fg = sig(xg[t, b, H + j] + a1 + bh[H + j])
            gg = math.tanh(xg[t, b, 2 * H + j] + a2 + bh[2 * H + j])
            og = sig(xg[t, b, 3 * H + j] + a3 + bh[3 * H + j])
            c = fg * cp + ig * gg
            cs[t + 1, b, j] = c
            hs[t + 1, b, j] = og * math.tanh(c)
            gates[t, b, j] = ig
            gates[t, b, H + j] = fg
            gates[t, b, 2 * H + j] = gg
            gates[t, b, 3 * H + j] = og
        else:
            r_ = sig(xg[t, b, j] + a0 + bh[j])
            z = sig(xg[t, b, H + j] + a1 + bh[H + j])
            hnv = a2 + bh[2 * H + j]
            n = math.tanh(xg[t, b, 2 * H + j] + r_ * hnv)
            hn[t, b, j] = hnv
            gates[t, b, j] = r_
            gates[t, b, H + j] = z
            gates[t, b, 2 * H + j] = n
            hs[t + 1, b, j] = (one - z) * n + z * hs[t, b, j]

    @cuda.jit
    def fwd(W, bh, xg, hs, cs, gates, hn, KC, RB, PIPE):
        """hs[0] (and cs[0]) hold the initial state. lstm: hn unused; gru: cs unused. KC: columns
        of h per staged chunk; RB: batch groups per round (blockDim = JW * KSF * RB); PIPE: load
        the next chunk into registers during the FMAs (needs KC <= 256 and rows <= 4 per warp)."""
        sm = cuda.shared.array(0, nbt)
        T = xg.shape[0]
        B = xg.shape[1]
        H = W.shape[1]
        HP = H + KSF
        KP = KC + 4
        off = G * J * HP
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        j0 = cuda.blockIdx.x * J
        wv = cuda.local.array(8, nbt)
        nw_ = G * J * H
        for base in range(tid, nw_, 8 * nt):  # 8 independent (coalesced) loads, then the stores
            for u in range(8):
                idx = base + u * nt
                v = nbt(0.0)
                if idx < nw_:
                    r = idx // H
                    g = r // J
                    j = j0 + r - g * J
                    if j < H:
                        v = W[g * H + j, idx - r * H]
                wv[u] = v
            for u in range(8):
                idx = base + u * nt
                if idx < nw_:
                    r = idx // H
                    sm[r * HP + idx - r * H] = wv[u]
        grid = cuda.cg.this_grid()
        NBG = (B + BB - 1) // BB
        rounds = (NBG + RB - 1) // RB
        rows = RB * BB
        ks = tid % KSF
        q = tid // KSF
        jq = q % JW
        bgl = q // JW
        wrowu = U(jq * HP)
        hrowu = U(off + bgl * BB * KP)
        KPu = U(KP)
        wgu = U(J * HP)                      # next gate's row
        wju = U(JW * HP)                     # the thread's next unit's row
        acc = cuda.local.array(NACC, nbt)
        hv = cuda.local.array(BB, nbt)
        pv = cuda.local.array(PV, nbt)
        piped = PIPE != 0 and rows <= PIPE_ROWS_PER_WARP * (nt // 32) and KC <= PIPE_COLS
        for t in range(T):
            for rnd in range(rounds):
                bg = rnd * RB + bgl
                for a in range(NACC):
                    acc[a] = nbt(0.0)
                active = bgl < RB and bg < NBG
                if piped:
                    pload(pv, hs, t, rnd * rows, B, 0, rows, min(KC, H), tid, nt)
                for k0 in range(0, H, KC):
                    kc = min(KC, H - k0)
                    cuda.syncthreads()
                    if piped:
                        pstore(sm, off, KP, pv, rows, kc, tid, nt)
                    else:
                        stage(sm, off, KP, hs, t, rnd * rows, B, k0, rows, kc, tid, nt)
                    cuda.syncthreads()
                    if piped and k0 + KC < H:     # the next chunk's loads overlap this chunk's FMAs
                        pload(pv, hs, t, rnd * rows, B, k0 + KC, rows, min(KC, H - k0 - KC), tid, nt)
                    if active:
                        # unsigned shared-memory offsets: no negative-index wraparound code in the
                        # inner loop (signed indices cost ~3 integer ops each)
                        kk = U(ks)
                        kcu = U(kc)
                        while kk < kcu:
                            hp = hrowu + kk
                            for u in range(BB):
                                hv[u] = sm[hp]
                                hp += KPu
                            wa = wrowu + U(k0) + kk
                            for uj in range(UJ):
                                wg = wa
                                for g in range(G):
                                    w = sm[wg]
                                    wg += wgu
                                    for u in range(BB):
                                        acc[u * S + uj * G + g] += w * hv[u]
                                wa += wju
                            kk += U(KSF)
                reduce(acc, ks)                  # acc[0:S]: the sums of batch row (ks & 3)
                b = bg * BB + ks
                if active and ks < BB and b < B:
                    j = j0 + jq
                    if j < H:
                        finish(xg, bh, hs, cs, gates, hn, t, b, j, H, acc[0], acc[1], acc[2],
                               acc[3] if G == 4 else acc[0])
                    if UJ == 2:
                        j = j0 + jq + JW
                        if j < H:
                            finish(xg, bh, hs, cs, gates, hn, t, b, j, H, acc[G], acc[G + 1], acc[G + 2],
                                   acc[G + 3] if G == 4 else acc[G])
            grid.sync()

    return fwd


# ------------------------------------------------------------------------------------------------
# backward
# ------------------------------------------------------------------------------------------------
def build_backward(cell, J, dt):
    nbt = nbtype(dt)
    one = np.dtype(dt).type(1.0)
    is_lstm = cell == "lstm"
    G = 4 if is_lstm else 3
    NACC = J * BB
    P = {4: 2, 8: 3, 16: 4, 32: 5}[NACC]
    reduce = build_lane_reduce(1, P, 5)      # J*BB sums over the 32 lanes of a warp
    stage = build_stage(nbt)
    pload, pstore = build_stage_split(nbt)

    @cuda.jit
    def bwd(W, gates, hs, cs, hn, dhs, carry, dh0, dxg, dhg, RC, RB, PIPE):
        """lstm: carry (B, H) holds dc (dcT in, dc0 out); dh0 (B, H) holds dhT in and dh0 out;
        writes dxg. gru (torch): carry holds dhT in (the dh * z term afterwards), dh0 is written;
        writes dxg and dhg (the gradient w.r.t. the recurrent product). RC: columns of
        da_{t+1} per staged chunk; RB: batch groups (warps) per round (blockDim = 32 RB)."""
        sm = cuda.shared.array(0, nbt)
        T = dhs.shape[0]
        B = dhs.shape[1]
        H = dhs.shape[2]
        GH = G * H
        RP = RC + 4
        off = J * GH
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        j0 = cuda.blockIdx.x * J
        wv = cuda.local.array(8, nbt)
        nw_ = J * GH
        for base in range(tid, nw_, 8 * nt):  # lanes walk (r, jj) with jj fastest: J floats per row
            for u in range(8):
                idx = base + u * nt
                v = nbt(0.0)
                if idx < nw_:
                    r = idx // J
                    jj = idx - r * J
                    if j0 + jj < H:
                        v = W[r, j0 + jj]
                wv[u] = v
            for u in range(8):
                idx = base + u * nt
                if idx < nw_:
                    r = idx // J
                    sm[(idx - r * J) * GH + r] = wv[u]
        grid = cuda.cg.this_grid()
        NBG = (B + BB - 1) // BB
        rounds = (NBG + RB - 1) // RB
        rows = RB * BB
        acc = cuda.local.array(NACC, nbt)
        xv = cuda.local.array(BB, nbt)
        pv = cuda.local.array(PV, nbt)
        piped = PIPE != 0 and rows <= PIPE_ROWS_PER_WARP * (nt // 32) and RC <= PIPE_COLS
        lane = tid % KSB
        bgl = tid // KSB
        drowu = U(off + bgl * BB * RP)
        RPu = U(RP)
        GHu = U(GH)
        for s in range(T + 1):
            t = T - 1 - s
            for rnd in range(rounds):
                bg = rnd * RB + bgl
                b0 = bg * BB
                for a in range(NACC):
                    acc[a] = nbt(0.0)
                if s > 0:
                    if piped:
                        if is_lstm:
                            pload(pv, dxg, t + 1, rnd * rows, B, 0, rows, min(RC, GH), tid, nt)
                        else:
                            pload(pv, dhg, t + 1, rnd * rows, B, 0, rows, min(RC, GH), tid, nt)
                    for r0 in range(0, GH, RC):
                        rc = min(RC, GH - r0)
                        cuda.syncthreads()
                        if piped:
                            pstore(sm, off, RP, pv, rows, rc, tid, nt)
                        elif is_lstm:
                            stage(sm, off, RP, dxg, t + 1, rnd * rows, B, r0, rows, rc, tid, nt)
                        else:
                            stage(sm, off, RP, dhg, t + 1, rnd * rows, B, r0, rows, rc, tid, nt)
                        cuda.syncthreads()
                        if piped and r0 + RC < GH:   # the next chunk's loads overlap this chunk's FMAs
                            if is_lstm:
                                pload(pv, dxg, t + 1, rnd * rows, B, r0 + RC, rows, min(RC, GH - r0 - RC), tid, nt)
                            else:
                                pload(pv, dhg, t + 1, rnd * rows, B, r0 + RC, rows, min(RC, GH - r0 - RC), tid, nt)
                        if bgl < RB and bg < NBG:
                            c = U(lane)
                            rcu = U(rc)
                            while c < rcu:
                                hp = drowu + c
                                for u in range(BB):
                                    xv[u] = sm[hp]
                                    hp += RPu
                                wa = U(r0) + c
                                for jj in range(J):
                                    w = sm[wa]
                                    wa += GHu
                                    for u in range(BB):
                                        acc[jj * BB + u] += w * xv[u]
                                c += U(KSB)
                reduce(acc, lane)
                if True:
                    pair = lane & (NACC - 1)     # lanes >= NACC hold copies: not written
                    rec = acc[0]
                    jj = pair // BB
                    b = b0 + pair - jj * BB
                    j = j0 + jj
                    if lane < NACC and bgl < RB and bg < NBG and b < B and j < H:
                        if is_lstm:
                            if s == 0:
                                rec = dh0[b, j]
                            if s == T:
                                dh0[b, j] = rec
                            else:
                                ig = gates[t, b, j]
                                fg = gates[t, b, H + j]
                                gg = gates[t, b, 2 * H + j]
                                og = gates[t, b, 3 * H + j]
                                tc = math.tanh(cs[t + 1, b, j])
                                dh = dhs[t, b, j] + rec
                                dao = dh * tc * og * (one - og)
                                d = carry[b, j] + dh * og * (one - tc * tc)
                                dxg[t, b, j] = d * gg * ig * (one - ig)
                                dxg[t, b, H + j] = d * cs[t, b, j] * fg * (one - fg)
                                dxg[t, b, 2 * H + j] = d * ig * (one - gg * gg)
                                dxg[t, b, 3 * H + j] = dao
                                carry[b, j] = d * fg
                        else:
                            if s == T:
                                dh0[b, j] = carry[b, j] + rec
                            else:
                                r_ = gates[t, b, j]
                                z = gates[t, b, H + j]
                                n = gates[t, b, 2 * H + j]
                                dh = dhs[t, b, j] + carry[b, j] + rec
                                daz = dh * (hs[t, b, j] - n) * z * (one - z)
                                dan = dh * (one - z) * (one - n * n)
                                dar = dan * hn[t, b, j] * r_ * (one - r_)
                                dxg[t, b, j] = dar
                                dxg[t, b, H + j] = daz
                                dxg[t, b, 2 * H + j] = dan
                                dhg[t, b, j] = dar
                                dhg[t, b, H + j] = daz
                                dhg[t, b, 2 * H + j] = dan * r_
                                carry[b, j] = dh * z
            if s < T:
                grid.sync()

    return bwd


# ------------------------------------------------------------------------------------------------
# fit: which J, how many blocks and threads, how much shared memory
# ------------------------------------------------------------------------------------------------
def _threads(n):
    """Round up to whole warps."""
    return max(32, (n + 31) // 32 * 32)


def _chunks(n):
    """Chunk widths to try for a staged dimension of length n: n, then halves (multiples of 32,
    at least 32), capped by config.PERSIST_MAX_CHUNK and, with config.PERSIST_PIPELINE, by
    PIPE_COLS (the width whose loads a thread can hold in registers while the previous chunk is
    computed)."""
    cap = config.PERSIST_MAX_CHUNK or n
    if config.PERSIST_PIPELINE:
        cap = min(cap, PIPE_COLS)
    out = []
    c = n
    while True:
        cc = min(c, cap)
        if cc not in out:
            out.append(cc)
        if c <= 32:
            break
        c = max(32, ((c + 1) // 2 + 31) // 32 * 32)
    return out


def _shapes(per_group, NBG, fixed, row_len, itemsize, limit):
    """(rounds * chunks, -threads, threads, RB, chunk, smem) for every (batch groups per round RB,
    chunk width) whose shared memory fits, best first: fewest staged chunks per step, then most
    threads."""
    out = []
    rb = max(1, min(NBG, config.PERSIST_MAX_THREADS // per_group))
    rbs = []
    while True:
        rbs.append(rb)
        if rb == 1:
            break
        rb = (rb + 1) // 2
    for RB in rbs:
        nt = _threads(per_group * RB)
        if nt > max(config.PERSIST_MAX_THREADS, 32):
            continue
        for C in _chunks(row_len):
            smem = (fixed + RB * BB * (C + 4)) * itemsize
            if smem <= limit:
                n_iter = ((NBG + RB - 1) // RB) * ((row_len + C - 1) // C)
                out.append((n_iter, -nt, nt, RB, C, smem))
                break                      # the widest chunk that fits for this RB
    out.sort()
    return out


def plan(cell, B, H, itemsize, device=None):
    """The launch shape of both kernels, or None with the reason in STATUS["declined"].

    Returns {"J", "blocks", "fwd_threads", "bwd_threads", "fwd_smem", "bwd_smem", "fwd_rb",
    "fwd_kc", "bwd_rb", "bwd_rc"}. For each J, the forward needs G J (H + KSF) floats of weights
    plus a staged chunk of h (RB 4 rows x KC), the backward J G H floats plus a chunk of da
    (RB 4 rows x RC); shapes are tried fewest chunks per step first, then most threads, and one
    fits when its shared memory is within the per-block limit and NB = ceil(H / J) blocks can be
    co-resident (the device's max cooperative grid for that block and shared size). The smallest
    J with NB <= number of SMs is preferred (one block per SM), else the smallest fitting J."""
    G = 4 if cell == "lstm" else 3
    dt = "float32" if itemsize == 4 else "float64"
    info = device_limits(device)
    NBG = (B + BB - 1) // BB
    Js = list(config.PERSIST_J)
    NBs = {J: (H + J - 1) // J for J in Js}
    ordered = [J for J in Js if NBs[J] <= info["sms"]] + [J for J in Js if NBs[J] > info["sms"]]
    for J in ordered:
        NB = NBs[J]
        UJ, JW, KSF = fwd_layout(J)
        fw = _shapes(JW * KSF, NBG, G * J * (H + KSF), H, itemsize, info["smem_limit"])
        bw = _shapes(KSB, NBG, J * G * H, G * H, itemsize, info["smem_limit"])
        f = next((x for x in fw if NB <= info["max_blocks"](cell, J, x[2], x[5], dt=dt)), None)
        if f is None:
            continue
        b = next((x for x in bw if NB <= info["max_blocks"](cell, J, x[2], x[5], backward=True, dt=dt)), None)
        if b is None:
            continue
        return {"J": J, "blocks": NB, "fwd_threads": f[2], "bwd_threads": b[2], "fwd_smem": f[5],
                "bwd_smem": b[5], "fwd_rb": f[3], "fwd_kc": f[4], "bwd_rb": b[3], "bwd_rc": b[4]}
    return None


_LIMITS = {}


def device_limits(device=None):
    """{"smem_limit", "sms", "max_blocks": fn(cell, J, threads, smem, backward=False)}."""
    if SIMULATOR:
        mb = config.PERSIST_MAX_BLOCKS or 1
        return {"smem_limit": 1 << 30, "sms": mb, "max_blocks": lambda *a, **k: mb}
    key = "dev"
    lim = _LIMITS.get(key)
    if lim is not None:
        return lim
    d = cuda.get_current_device()
    sms = d.MULTIPROCESSOR_COUNT
    optin = getattr(d, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", 0) or 0
    smem_limit = config.SMEM_DEFAULT
    if optin > smem_limit and optin_supported():
        smem_limit = optin

    def max_blocks(cell, J, threads, smem, backward=False, dt="float32"):
        if config.PERSIST_MAX_BLOCKS:
            return config.PERSIST_MAX_BLOCKS
        try:
            ov = compiled(cell, J, dt, backward)
            if smem > config.SMEM_DEFAULT:
                set_max_dynamic_smem(ov, smem)
            return ov.max_cooperative_grid_blocks(threads, smem)
        except Exception as e:  # noqa: BLE001 - treat as "does not fit", report
            STATUS["declined"][f"max_blocks {cell} J={J} {dt} {'bwd' if backward else 'fwd'}"] = f"{type(e).__name__}: {e}"
            return 0

    lim = _LIMITS[key] = {"smem_limit": smem_limit, "sms": sms, "max_blocks": max_blocks}
    return lim


# ---- dynamic shared memory above 48 KB ---------------------------------------------------------
_OPTIN = {}


def optin_supported():
    """Whether cuda-bindings' driver API is importable (needed to raise the dynamic shared limit)."""
    try:
        from cuda.bindings import driver  # noqa: F401
        return True
    except Exception:  # noqa: BLE001
        try:
            from cuda import cuda as driver  # noqa: F401
            return True
        except Exception:  # noqa: BLE001
            return False


def _cu_function(ov):
    """The CUfunction handle of a compiled overload (numba-cuda 0.30: a cuda.core Kernel inside)."""
    cufunc = ov._codelibrary.get_cufunc()
    kern = getattr(cufunc, "kernel", None)
    handle = getattr(cufunc, "handle", None)
    return cufunc, kern, handle


def set_max_dynamic_smem(ov, nbytes):
    """Let the kernel use up to nbytes of dynamic shared memory (default limit 48 KB)."""
    key = (id(ov), nbytes)
    if key in _OPTIN:
        return _OPTIN[key]
    cufunc, kern, handle = _cu_function(ov)
    errors = []
    # 1. cuda.core Kernel objects expose attribute setters in recent versions
    try:
        from cuda.bindings import driver
        attr = driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        # the handle numba-cuda keeps is a CUkernel (library API); cuKernelSetAttribute wants the
        # device ordinal, as numba-cuda's own set_shared_memory_carveout does
        dev = cufunc.device.id
        for h in (handle, getattr(kern, "handle", None), getattr(kern, "_handle", None)):
            if h is None:
                continue
            try:
                err, = driver.cuKernelSetAttribute(attr, int(nbytes), h, dev)
            except Exception as e:  # noqa: BLE001
                errors.append(f"cuKernelSetAttribute: {type(e).__name__}: {e}")
                continue
            if int(err) == 0:
                _OPTIN[key] = True
                return True
            errors.append(f"cuKernelSetAttribute -> {err}")
            try:
                err2, fn = driver.cuKernelGetFunction(h)
                if int(err2) == 0:
                    err3, = driver.cuFuncSetAttribute(fn, attr, int(nbytes))
                    if int(err3) == 0:
                        _OPTIN[key] = True
                        return True
                    errors.append(f"cuFuncSetAttribute -> {err3}")
            except Exception as e:  # noqa: BLE001
                errors.append(f"cuKernelGetFunction: {type(e).__name__}: {e}")
    except Exception as e:  # noqa: BLE001
        errors.append(f"{type(e).__name__}: {e}")
    STATUS["declined"]["smem_optin"] = "; ".join(errors)
    raise RuntimeError("could not raise the dynamic shared memory limit: " + "; ".join(errors))


# ---- compile and launch --------------------------------------------------------------------------
def signature(cell, dt, backward):
    f = dt
    a3 = f"{f}[:, :, ::1]"
    if backward:
        return f"void({f}[:, ::1], {a3}, {a3}, {a3}, {a3}, {a3}, {f}[:, ::1], {f}[:, ::1], {a3}, {a3}, int64, int64, int64)"
    return f"void({f}[:, ::1], {f}[::1], {a3}, {a3}, {a3}, {a3}, {a3}, int64, int64, int64)"


def kernel(cell, J, dt, backward=False):
    return get(build_backward if backward else build_forward, cell, J, dt)


def compiled(cell, J, dt, backward=False):
    """The compiled overload (for limits and resource queries); compiles eagerly on a GPU."""
    return kernel(cell, J, dt, backward).compile(signature(cell, dt, backward))


def _enabled():
    return config.PERSISTENT != "never"


_PLANS = {}


def _plan_or_decline(cell, B, H, dtype):
    itemsize = np.dtype(dtype).itemsize
    key = (cell, B, H, itemsize, tuple(config.PERSIST_J), config.PERSIST_MAX_BLOCKS, config.PERSIST_MAX_THREADS,
           config.PERSIST_MAX_CHUNK, config.PERSIST_PIPELINE)
    if key in _PLANS:
        pl = _PLANS[key]
    else:
        try:
            pl = plan(cell, B, H, itemsize)
        except Exception as e:  # noqa: BLE001
            STATUS["declined"][(cell, B, H)] = f"{type(e).__name__}: {e}"
            pl = None
        _PLANS[key] = pl
    if pl is None:
        STATUS["declined"].setdefault((cell, B, H), "does not fit (shared memory or co-resident blocks)")
        if config.PERSISTENT == "always":
            raise RuntimeError(f"persistent kernel does not fit: {cell} B={B} H={H}")
    return pl


def _launch(kern, pl, threads, smem, args, backward):
    if smem > config.SMEM_DEFAULT and not SIMULATOR:
        set_max_dynamic_smem(compiled_for(kern, args), smem)
    launch(kern, (pl["blocks"], threads), args, smem)


def compiled_for(kern, args):
    return kern.compile(tuple(kern.typeof_pyval(a) for a in args))


def forward(cell, ws, xg, W_hh, b_hh):
    """Run the whole forward sequence in one launch if it fits; return whether it ran."""
    if not _enabled():
        return False
    T, B, _ = xg.shape
    H = W_hh.shape[1]
    pl = _plan_or_decline(cell, B, H, xg.dtype)
    if pl is None:
        return False
    kern = kernel(cell, pl["J"], xg.dtype.name)
    hs = ws["hs"]
    other = ws["cs"] if cell == "lstm" else ws["hn"]
    args = (W_hh, b_hh, xg, hs, other if cell == "lstm" else hs, ws["gates"], ws["hn"] if cell == "gru" else hs,
            int(pl["fwd_kc"]), int(pl["fwd_rb"]), int(config.PERSIST_PIPELINE))
    try:
        _launch(kern, pl, pl["fwd_threads"], pl["fwd_smem"], args, False)
    except Exception as e:  # noqa: BLE001 - the per-step path still works
        if config.PERSISTENT == "always":
            raise
        STATUS["declined"][("fwd", cell, B, H)] = f"launch failed: {type(e).__name__}: {e}"
        return False
    STATUS["last_forward"] = dict(pl, cell=cell, B=B, H=H, T=T)
    return True


def backward(cell, ws, xg, W_hh, dhs, dxg, dh0):
    """Whole backward sequence in one launch if it fits. Expects ws["dh_next"] = dhT (or 0) and,
    for lstm, ws["dc"] = dcT (or 0); leaves dc0 in ws["dc"] and writes dh0, dxg (and ws["dhg"])."""
    if not _enabled():
        return False
    T, B, H = dhs.shape
    pl = _plan_or_decline(cell, B, H, xg.dtype)
    if pl is None:
        return False
    kern = kernel(cell, pl["J"], xg.dtype.name, backward=True)
    hs = ws["hs"]
    if cell == "lstm":
        ops.copy(ws["dh_next"], dh0)
        args = (W_hh, ws["gates"], hs, ws["cs"], hs, dhs, ws["dc"], dh0, dxg, dxg, int(pl["bwd_rc"]), int(pl["bwd_rb"]),
                int(config.PERSIST_PIPELINE))
    else:
        args = (W_hh, ws["gates"], hs, hs, ws["hn"], dhs, ws["dh_next"], dh0, dxg, ws["dhg"], int(pl["bwd_rc"]),
                int(pl["bwd_rb"]), int(config.PERSIST_PIPELINE))
    try:
        _launch(kern, pl, pl["bwd_threads"], pl["bwd_smem"], args, True)
    except Exception as e:  # noqa: BLE001
        if config.PERSISTENT == "always":
            raise
        STATUS["declined"][("bwd", cell, B, H)] = f"launch failed: {type(e).__name__}: {e}"
        return False
    STATUS["last_backward"] = dict(pl, cell=cell, B=B, H=H, T=T)
    return True


def registry():
    """[(name, python function, [signature])] of the persistent kernels at every J, both dtypes."""
    out = []
    for dt in ("float32", "float64"):
        for cell in ("lstm", "gru"):
            for J in config.PERSIST_J:
                for bw in (False, True):
                    out.append((f"persist_{'bwd' if bw else 'fwd'}[{cell},J={J},{dt}]",
                                kernel(cell, J, dt, bw), [signature(cell, dt, bw)]))
    return out
