"""Persistent recurrent kernels (Diamos et al. 2016, "Persistent RNNs"): one cooperative launch runs
a whole sequence, forward or backward, with the recurrent weights held in shared memory and a
grid-wide barrier (`cuda.cg.this_grid().sync()`) between time steps.

Covered: lstm (no peepholes) and gru variant "torch" (one recurrent product per step). Everything
else takes the per-step path of lstm.py / gru.py / rnn.py.

Work split (NB = ceil(H / J) blocks, block k owns hidden units j in [k J, k J + J)):

forward, step t: the block holds the G*J rows {g H + j} of W_hh (shared memory, row stride H + 4
  to spread banks). A thread owns one unit jj, a group of BB = 4 batch rows and one of KS = 4
  interleaved slices of k; it accumulates the G x BB partial products over its k slice, the KS
  lanes of a group are summed by an xor butterfly (warp shuffles), then lane ks finishes the
  pointwise step of batch row (group * BB + ks): gates, c_t, h_t written to global memory.
  (The lane sums use a transpose-reduce over shuffles, see build_lane_reduce.)
  Grid barrier; h_t is read by every block at step t + 1 (through L2).
backward, step t: the block holds the J columns {j} of W_hh transposed (J rows of length G*H).
  A thread owns a group of BB batch rows and one of KSB = 32 k slices; it accumulates the J x BB
  sums over r of da_{t+1}[b, r] W_hh[r, j], the 32 lanes are summed by a transpose-reduce, then lane l < J*BB
  finishes the pointwise backward of one (unit, batch row) pair and writes da_t (dxg[t]); the
  cell-gradient (lstm) or dh z (gru) carry stays with the lane. Grid barrier. After the last step
  one more product gives dh0. The weight gradient is one product after the kernel (lstm.py, gru.py).

In the simulator warp shuffles do not exist; the same reduction code then exchanges values through
shared memory with block barriers (same arithmetic, same order). The simulator can only run a cooperative grid
of ONE block, so the tests run these kernels with NB = 1 (J >= H).
"""
import math

import numpy as np
from numba import cuda

from . import config, ops
from . import kernels as K

BB = 4        # batch rows per thread
KS = 4        # forward: lanes splitting k (== BB: lane ks finishes batch row ks)
KSB = 32      # backward: lanes splitting r (a whole warp)
PAD = 4       # forward shared-memory row padding (floats)

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
if K.SIMULATOR:
    @cuda.jit(device=True)
    def shfl_xor(v, m):
        """Warp shuffles do not exist in the simulator: exchange through shared memory. Every
        thread of the block calls this in lockstep."""
        buf = cuda.shared.array(1024, np.float64)
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


@cuda.jit(device=True, inline=True)
def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


# ------------------------------------------------------------------------------------------------
# forward
# ------------------------------------------------------------------------------------------------
def build_forward(cell, J, dt):
    """cell "lstm" (G = 4) or "gru" (torch variant, G = 3); J units per block; dt dtype name."""
    nbt = K.nbtype(dt)
    is_lstm = cell == "lstm"
    G = 4 if is_lstm else 3
    NACC = G * BB
    reduce = build_lane_reduce(G, 2, 2)      # 4 batch rows (groups of G gates) over KS = 4 lanes

    @cuda.jit
    def fwd(W, bh, xg, hs, cs, gates, hn):
        """hs[0] (and cs[0]) hold the initial state. lstm: hn unused; gru: cs unused."""
        sW = cuda.shared.array(0, nbt)
        T = xg.shape[0]
        B = xg.shape[1]
        H = W.shape[1]
        HP = H + PAD
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        j0 = cuda.blockIdx.x * J
        for idx in range(tid, G * J * H, nt):
            r = idx // H
            k = idx - r * H
            g = r // J
            j = j0 + r - g * J
            v = nbt(0.0)
            if j < H:
                v = W[g * H + j, k]
            sW[r * HP + k] = v
        cuda.syncthreads()
        grid = cuda.cg.this_grid()
        NBG = (B + BB - 1) // BB
        rounds = (J * NBG * KS + nt - 1) // nt
        ks = tid % KS
        acc = cuda.local.array(NACC, nbt)
        hv = cuda.local.array(BB, nbt)
        pre = cuda.local.array(G, nbt)
        for t in range(T):
            for rnd in range(rounds):
                q = (rnd * nt + tid) // KS
                jj = q % J
                bg = q // J
                j = j0 + jj
                for a in range(NACC):
                    acc[a] = nbt(0.0)
                if bg < NBG and j < H:
                    b0 = bg * BB
                    for k in range(ks, H, KS):
                        for u in range(BB):
                            hv[u] = hs[t, b0 + u, k] if b0 + u < B else nbt(0.0)
                        for g in range(G):
                            w = sW[(g * J + jj) * HP + k]
                            for u in range(BB):
                                acc[u * G + g] += w * hv[u]
                reduce(acc, ks)                  # acc[0:G]: the sums of batch row ks
                b = bg * BB + ks
                if bg < NBG and j < H and b < B:
                    for g in range(G):
                        pre[g] = acc[g]
                    if is_lstm:
                        cp = cs[t, b, j]
                        ig = _sig(xg[t, b, j] + pre[0] + bh[j])
                        fg = _sig(xg[t, b, H + j] + pre[1] + bh[H + j])
                        gg = math.tanh(xg[t, b, 2 * H + j] + pre[2] + bh[2 * H + j])
                        og = _sig(xg[t, b, 3 * H + j] + pre[3] + bh[3 * H + j])
                        c = fg * cp + ig * gg
                        cs[t + 1, b, j] = c
                        hs[t + 1, b, j] = og * math.tanh(c)
                        gates[t, b, j] = ig
                        gates[t, b, H + j] = fg
                        gates[t, b, 2 * H + j] = gg
                        gates[t, b, 3 * H + j] = og
                    else:
                        r_ = _sig(xg[t, b, j] + pre[0] + bh[j])
                        z = _sig(xg[t, b, H + j] + pre[1] + bh[H + j])
                        hnv = pre[2] + bh[2 * H + j]
                        n = math.tanh(xg[t, b, 2 * H + j] + r_ * hnv)
                        hn[t, b, j] = hnv
                        gates[t, b, j] = r_
                        gates[t, b, H + j] = z
                        gates[t, b, 2 * H + j] = n
                        hs[t + 1, b, j] = (1.0 - z) * n + z * hs[t, b, j]
            grid.sync()

    return fwd


# ------------------------------------------------------------------------------------------------
# backward
# ------------------------------------------------------------------------------------------------
def build_backward(cell, J, dt):
    nbt = K.nbtype(dt)
    is_lstm = cell == "lstm"
    G = 4 if is_lstm else 3
    NACC = J * BB
    P = {4: 2, 8: 3, 16: 4, 32: 5}[NACC]
    reduce = build_lane_reduce(1, P, 5)      # J*BB sums over the 32 lanes of a warp

    @cuda.jit
    def bwd(W, gates, hs, cs, hn, dhs, carry, dh0, dxg, dhg):
        """lstm: carry (B, H) holds dc (dcT in, dc0 out); dh0 (B, H) holds dhT in and dh0 out;
        writes dxg. gru (torch): carry holds dhT in (the dh * z term afterwards), dh0 is written;
        writes dxg and dhg (the gradient w.r.t. the recurrent product)."""
        sWT = cuda.shared.array(0, nbt)
        T = dhs.shape[0]
        B = dhs.shape[1]
        H = dhs.shape[2]
        GH = G * H
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        j0 = cuda.blockIdx.x * J
        for idx in range(tid, J * GH, nt):
            jj = idx // GH
            r = idx - jj * GH
            v = nbt(0.0)
            if j0 + jj < H:
                v = W[r, j0 + jj]
            sWT[idx] = v
        cuda.syncthreads()
        grid = cuda.cg.this_grid()
        NBG = (B + BB - 1) // BB
        rounds = (NBG * KSB + nt - 1) // nt
        acc = cuda.local.array(NACC, nbt)
        xv = cuda.local.array(BB, nbt)
        lane = tid % KSB
        for s in range(T + 1):
            t = T - 1 - s
            for rnd in range(rounds):
                bg = (rnd * nt + tid) // KSB
                b0 = bg * BB
                for a in range(NACC):
                    acc[a] = nbt(0.0)
                if s > 0 and bg < NBG:
                    for r in range(lane, GH, KSB):
                        for u in range(BB):
                            if b0 + u < B:
                                if is_lstm:
                                    xv[u] = dxg[t + 1, b0 + u, r]
                                else:
                                    xv[u] = dhg[t + 1, b0 + u, r]
                            else:
                                xv[u] = nbt(0.0)
                        for jj in range(J):
                            w = sWT[jj * GH + r]
                            for u in range(BB):
                                acc[jj * BB + u] += w * xv[u]
                reduce(acc, lane)
                if True:
                    pair = lane & (NACC - 1)     # lanes >= NACC hold copies: not written
                    rec = acc[0]
                    jj = pair // BB
                    b = b0 + pair - jj * BB
                    j = j0 + jj
                    if lane < NACC and bg < NBG and b < B and j < H:
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
                                dao = dh * tc * og * (1.0 - og)
                                d = carry[b, j] + dh * og * (1.0 - tc * tc)
                                dxg[t, b, j] = d * gg * ig * (1.0 - ig)
                                dxg[t, b, H + j] = d * cs[t, b, j] * fg * (1.0 - fg)
                                dxg[t, b, 2 * H + j] = d * ig * (1.0 - gg * gg)
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
                                daz = dh * (hs[t, b, j] - n) * z * (1.0 - z)
                                dan = dh * (1.0 - z) * (1.0 - n * n)
                                dar = dan * hn[t, b, j] * r_ * (1.0 - r_)
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
    """Round up to whole warps, at most config.PERSIST_MAX_THREADS."""
    n = max(32, (n + 31) // 32 * 32)
    return min(n, config.PERSIST_MAX_THREADS)


def plan(cell, B, H, itemsize, device=None):
    """The launch shape of both kernels, or None with the reason in STATUS["declined"].

    Returns {"J", "blocks", "fwd_threads", "bwd_threads", "fwd_smem", "bwd_smem"}. A J fits when
    both kernels' shared memory is within the per-block limit and NB = ceil(H / J) blocks can be
    co-resident (the device's max cooperative grid for that block and shared size). Among the
    fitting J, the smallest J with NB <= number of SMs is preferred (one block per SM, more work
    per thread), else the smallest fitting J."""
    G = 4 if cell == "lstm" else 3
    dt = "float32" if itemsize == 4 else "float64"
    info = device_limits(device)
    NBG = (B + BB - 1) // BB
    cands = []
    for J in config.PERSIST_J:
        NB = (H + J - 1) // J
        ft, bt = _threads(J * NBG * KS), _threads(NBG * KSB)
        fs = G * J * (H + PAD) * itemsize
        bs = J * G * H * itemsize
        if max(fs, bs) <= info["smem_limit"]:
            cands.append({"J": J, "blocks": NB, "fwd_threads": ft, "bwd_threads": bt, "fwd_smem": fs,
                          "bwd_smem": bs})
    # one block per SM first (more work per thread, fewer blocks at the barrier), then the rest;
    # the co-residency check compiles the kernel, so it runs only on the candidates tried
    ordered = [c for c in cands if c["blocks"] <= info["sms"]] + [c for c in cands if c["blocks"] > info["sms"]]
    for c in ordered:
        J = c["J"]
        if c["blocks"] <= info["max_blocks"](cell, J, c["fwd_threads"], c["fwd_smem"], dt=dt) and \
                c["blocks"] <= info["max_blocks"](cell, J, c["bwd_threads"], c["bwd_smem"], backward=True, dt=dt):
            return c
    return None


_LIMITS = {}


def device_limits(device=None):
    """{"smem_limit", "sms", "max_blocks": fn(cell, J, threads, smem, backward=False)}."""
    if K.SIMULATOR:
        mb = config.PERSIST_MAX_BLOCKS or 1
        return {"smem_limit": 1 << 30, "sms": mb, "max_blocks": lambda *a, **k: mb}
    key = "dev"
    lim = _LIMITS.get(key)
    if lim is not None:
        return lim
    d = cuda.get_current_device()
    sms = d.MULTIPROCESSOR_COUNT
    optin = getattr(d, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", 0) or 0
    smem_limit = 48 * 1024
    if optin > smem_limit and optin_supported():
        smem_limit = optin

    def max_blocks(cell, J, threads, smem, backward=False, dt="float32"):
        if config.PERSIST_MAX_BLOCKS:
            return config.PERSIST_MAX_BLOCKS
        try:
            ov = compiled(cell, J, dt, backward)
            if smem > 48 * 1024:
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
        return f"void({f}[:, ::1], {a3}, {a3}, {a3}, {a3}, {a3}, {f}[:, ::1], {f}[:, ::1], {a3}, {a3})"
    return f"void({f}[:, ::1], {f}[::1], {a3}, {a3}, {a3}, {a3}, {a3})"


def kernel(cell, J, dt, backward=False):
    return K.get(build_backward if backward else build_forward, cell, J, dt)


def compiled(cell, J, dt, backward=False):
    """The compiled overload (for limits and resource queries); compiles eagerly on a GPU."""
    return kernel(cell, J, dt, backward).compile(signature(cell, dt, backward))


def _enabled():
    return config.PERSISTENT != "never"


_PLANS = {}


def _plan_or_decline(cell, B, H, dtype):
    itemsize = np.dtype(dtype).itemsize
    key = (cell, B, H, itemsize, tuple(config.PERSIST_J), config.PERSIST_MAX_BLOCKS, config.PERSIST_MAX_THREADS)
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
    if smem > 48 * 1024 and not K.SIMULATOR:
        set_max_dynamic_smem(compiled_for(kern, args), smem)
    K.launch(kern, (pl["blocks"], threads), args, smem)


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
    args = (W_hh, b_hh, xg, hs, other if cell == "lstm" else hs, ws["gates"], ws["hn"] if cell == "gru" else hs)
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
        args = (W_hh, ws["gates"], hs, ws["cs"], hs, dhs, ws["dc"], dh0, dxg, dxg)
    else:
        args = (W_hh, ws["gates"], hs, hs, ws["hn"], dhs, ws["dh_next"], dh0, dxg, ws["dhg"])
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
