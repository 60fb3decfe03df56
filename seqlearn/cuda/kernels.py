"""The simple cuda kernels: tiled product, gathers and scatters, pointwise cell steps, softmax
cross-entropy, reductions, optimizer updates.

Kernels that need a compile-time element type (shared or local arrays) or a compile-time size
are built by small factories and cached per key (`get(builder, *key)`). `REGISTRY` lists every
kernel with explicit signatures so that tests/test_cuda_ptx.py can compile each one to PTX
without a GPU.

All float arithmetic follows the array dtype: float64 arrays use the exact libdevice functions;
float32 arrays use the float32 versions (expf, tanhf). Accumulators are typed explicitly.
"""
import math
import weakref

import numba
import numpy as np
from numba import config as _nbconfig
from numba import cuda, float32, float64, int64, uint64

from ..ref.ops import MASK_BITS as _MASK_BITS, MASK_GAMMA as _MASK_GAMMA, MASK_M1 as _MASK_M1, MASK_M2 as _MASK_M2

SIMULATOR = bool(_nbconfig.ENABLE_CUDASIM)
_CACHE = {}

# ------------------------------------------------------------------------------------------------
# launching: `kern[grid, block](*args)` re-types every argument on every call (measured on an H100:
# 19 us with no arguments, 66 us with 4 arrays, 116 us with 12; ~50 us with 8 through the cached
# overload's own `launch`, which still re-wraps every array). After the first call, `launch` keeps
# the compiled overload per (kernel, argument kinds) and calls cuda.core's `launch` directly with
# the kernel arguments numba-cuda would build: the per-array part (meminfo, parent, size,
# itemsize, pointer, shape, strides) is built once per array object (held by a weak reference),
# scalars are converted per call, and the LaunchConfig is kept per (grid, block, shared, coop).
# numba-cuda 0.30.4 passes cuda.core a Stream object (driver._to_core_stream(0) for the default
# stream), never an int: the first device run failed with "Stream or GraphBuilder expected, got
# int" for exactly that reason.
# ------------------------------------------------------------------------------------------------
FAST = {"enabled": not SIMULATOR, "error": None, "fast_calls": 0, "slow_calls": 0}
_OVERLOADS = {}
_ARGP = {}       # id(array) -> (weakref, [kernel-argument pieces])
_CFG = {}
_CORE = {}


def _kind(a):
    if isinstance(a, np.ndarray):
        return ("np", a.dtype.str, a.ndim, bool(a.flags["C_CONTIGUOUS"]), bool(a.flags["F_CONTIGUOUS"]))
    if hasattr(a, "is_c_contiguous"):
        return (a.dtype.str, a.ndim, a.is_c_contiguous(), a.is_f_contiguous())
    return type(a).__name__


def _dims(d):
    if isinstance(d, tuple):
        return d + (1,) * (3 - len(d))
    return (d, 1, 1)


def _core():
    """cuda.core's launch, LaunchConfig and the default stream as numba-cuda itself builds them."""
    if not _CORE:
        from cuda.core import LaunchConfig, launch as core_launch
        from numba.cuda.cudadrv import driver as _drv
        try:
            from numba.cuda._compat import CUDA_CORE_GE_1_0
        except Exception:  # noqa: BLE001
            CUDA_CORE_GE_1_0 = True
        _CORE.update(launch=core_launch, LaunchConfig=LaunchConfig, stream=_drv._to_core_stream(0),
                     ge10=CUDA_CORE_GE_1_0)
    return _CORE


def _config(grid, block, smem, coop):
    key = (grid, block, smem, coop)
    cfg = _CFG.get(key)
    if cfg is None:
        c = _core()
        if c["ge10"]:
            cfg = c["LaunchConfig"](grid=grid, block=block, shmem_size=smem, is_cooperative=coop)
        else:
            cfg = c["LaunchConfig"](grid=grid, block=block, shmem_size=smem, cooperative_launch=coop)
        _CFG[key] = cfg
    return cfg


def _drop(key):
    return lambda _ref: _ARGP.pop(key, None)


def _fast_launch(ov, grid, block, args, smem):
    """What numba-cuda's _Kernel.launch does (non-debug kernels), with the array pieces cached."""
    c = _core()
    stream = c["stream"]
    kernelargs = []
    for t, v in zip(ov.argument_types, args):
        if hasattr(v, "__cuda_array_interface__") and not isinstance(v, np.ndarray):
            e = _ARGP.get(id(v))
            if e is None or e[0]() is not v:
                pieces, retr = [], []
                ov._prepare_args(t, v, stream, retr, pieces)
                if retr:
                    raise RuntimeError("argument needs a write-back")
                try:
                    ref = weakref.ref(v, _drop(id(v)))
                except TypeError:
                    kernelargs.extend(pieces)
                    continue
                e = _ARGP[id(v)] = (ref, pieces)
            kernelargs.extend(e[1])
        else:
            retr = []
            ov._prepare_args(t, v, stream, retr, kernelargs)
            if retr:
                raise RuntimeError("argument needs a write-back")
    cfg = _config(grid, block, smem, bool(ov.cooperative))
    c["launch"](stream, cfg, ov._codelibrary.get_cufunc().kernel, *kernelargs)


def launch(kern, config, args, smem=0):
    """kern[config[0], config[1], 0, smem](*args), through the cached compiled overload when the
    fast path is on (real GPU) and the argument kinds were seen before."""
    grid, block = config
    if FAST["enabled"]:
        key = (id(kern),) + tuple(_kind(a) for a in args)
        ov = _OVERLOADS.get(key)
        if ov is not None:
            try:
                _fast_launch(ov, _dims(grid), _dims(block), args, smem)
                FAST["fast_calls"] += 1
                return
            except Exception as e:  # noqa: BLE001 - fall back for good, and say why
                FAST["enabled"] = False
                FAST["error"] = f"{type(e).__name__}: {e}"
    kern[grid, block, 0, smem](*args)
    FAST["slow_calls"] += 1
    if FAST["enabled"]:
        try:
            types = tuple(kern.typeof_pyval(a) for a in args)
            ov = kern.overloads[types]
            if getattr(ov, "debug", False):
                raise RuntimeError("debug kernels take the normal path")
            _OVERLOADS[key] = ov
        except Exception as e:  # noqa: BLE001
            FAST["enabled"] = False
            FAST["error"] = f"{type(e).__name__}: {e}"


def get(builder, *key):
    """The kernel `builder(*key)`, built once per key."""
    k = (builder.__name__,) + key
    kern = _CACHE.get(k)
    if kern is None:
        kern = _CACHE[k] = builder(*key)
    return kern


def nbtype(dtype):
    """numpy dtype -> numba scalar type."""
    return {"float32": float32, "float64": float64}[str(dtype)]


# ------------------------------------------------------------------------------------------------
# device helpers
# ------------------------------------------------------------------------------------------------
@cuda.jit(device=True, inline=True)
def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


# ------------------------------------------------------------------------------------------------
# tiled matrix product:  C = [C +] op(A) @ op(B) [+ bias]
# ------------------------------------------------------------------------------------------------
def build_matmul(tile, dt):
    nbt = nbtype(dt)

    @cuda.jit
    def matmul(A, Bm, C, bias, ta, tb, accumulate, has_bias):
        """op(A) is A (M, K) or A.T when ta; op(B) is B (K, N) or B.T when tb. One TILE x TILE
        block per output tile; both operand tiles staged through shared memory."""
        sA = cuda.shared.array((tile, tile), nbt)
        sB = cuda.shared.array((tile, tile), nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row = cuda.blockIdx.y * tile + ty
        col = cuda.blockIdx.x * tile + tx
        M = C.shape[0]
        N = C.shape[1]
        K = A.shape[0] if ta else A.shape[1]
        s = nbt(0.0)
        for k0 in range(0, K, tile):
            ka = k0 + tx
            v = nbt(0.0)
            if row < M and ka < K:
                if ta:
                    v = A[ka, row]
                else:
                    v = A[row, ka]
            sA[ty, tx] = v
            kb = k0 + ty
            w = nbt(0.0)
            if kb < K and col < N:
                if tb:
                    w = Bm[col, kb]
                else:
                    w = Bm[kb, col]
            sB[ty, tx] = w
            cuda.syncthreads()
            for kk in range(tile):
                s += sA[ty, kk] * sB[kk, tx]
            cuda.syncthreads()
        if row < M and col < N:
            if has_bias:
                s += bias[col]
            if accumulate:
                C[row, col] += s
            else:
                C[row, col] = s

    return matmul


def build_matmul_rt(bt, bk, tt, dt):
    """Register-tiled product, same contract as build_matmul: one (bt x bt) output tile per block
    of (bt / tt)^2 threads, each thread a tt x tt register tile (rows ty + i bt/tt, columns
    tx + j bt/tt); operand tiles of bk columns of k staged in shared memory k-major (row stride
    bt + 1: the transposed-operand stores do not conflict). Per k: 2 tt shared loads for tt^2 FMAs
    (the TILE x TILE kernel needs 2 loads per FMA)."""
    nbt = nbtype(dt)
    nth = bt // tt
    NT = nth * nth
    LD = bt + 1
    NL = (bt * bk) // NT          # tile elements each thread copies per operand
    TT2 = tt * tt
    SZ = bk * LD
    assert NL * NT == bt * bk
    epilogue = _build_epilogue(tt, nth)

    @cuda.jit
    def matmul_rt(A, Bm, C, bias, ta, tb, accumulate, has_bias):
        sA = cuda.shared.array(SZ, nbt)
        sB = cuda.shared.array(SZ, nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * nth + tx
        txu = uint64(tx)
        tyu = uint64(ty)
        m0 = cuda.blockIdx.y * bt
        n0 = cuda.blockIdx.x * bt
        M = C.shape[0]
        N = C.shape[1]
        K = A.shape[0] if ta else A.shape[1]
        acc = cuda.local.array(TT2, nbt)
        av = cuda.local.array(tt, nbt)
        bv = cuda.local.array(tt, nbt)
        for i in range(TT2):
            acc[i] = nbt(0.0)
        for k0 in range(0, K, bk):
            for ll in range(NL):
                e = tid + ll * NT
                if ta:
                    mm = e % bt
                    kk = e // bt
                else:
                    kk = e % bk
                    mm = e // bk
                m = m0 + mm
                k = k0 + kk
                v = nbt(0.0)
                if m < M and k < K:
                    if ta:
                        v = A[k, m]
                    else:
                        v = A[m, k]
                sA[kk * LD + mm] = v
                if tb:
                    kk = e % bk
                    nn = e // bk
                else:
                    nn = e % bt
                    kk = e // bt
                n = n0 + nn
                k = k0 + kk
                w = nbt(0.0)
                if n < N and k < K:
                    if tb:
                        w = Bm[n, k]
                    else:
                        w = Bm[k, n]
                sB[kk * LD + nn] = w
            cuda.syncthreads()
            for kk in range(bk):
                # unsigned offsets: no negative-index wraparound code in the inner loop
                ka = uint64(kk * LD) + tyu
                kb = uint64(kk * LD) + txu
                for i in range(tt):
                    av[i] = sA[ka + uint64(nth * i)]
                for j in range(tt):
                    bv[j] = sB[kb + uint64(nth * j)]
                for i in range(tt):
                    for j in range(tt):
                        acc[i * tt + j] += av[i] * bv[j]
            cuda.syncthreads()
        epilogue(C, bias, acc, m0 + ty, n0 + tx, M, N, accumulate, has_bias)

    return matmul_rt


def _build_epilogue(tt, nth):
    """C[m0 + nth i, n0 + nth j] (+)= acc[i tt + j] (+ bias), written out statement by statement
    (generated source): a loop here is too large for the compiler to unroll at tt = 8, and a
    run-time index would move the whole accumulator array to local memory."""
    lines = ["def epilogue(C, bias, acc, m0, n0, M, N, accumulate, has_bias):"]
    for i in range(tt):
        lines.append(f"    m = m0 + {nth * i}")
        lines.append("    if m < M:")
        for j in range(tt):
            lines.append(f"        n = n0 + {nth * j}")
            lines.append("        if n < N:")
            lines.append(f"            v = acc[{i * tt + j}]")
            lines.append("            if has_bias:")
            lines.append("                v += bias[n]")
            lines.append("            if accumulate:")
            lines.append("                C[m, n] += v")
            lines.append("            else:")
            lines.append("                C[m, n] = v")
    ns = {}
    exec(compile("\n".join(lines) + "\n", f"<matmul epilogue {tt}x{tt}>", "exec"), ns)  # noqa: S102
    return cuda.jit(device=True, inline=True)(ns["epilogue"])


# ------------------------------------------------------------------------------------------------
# weight-gradient product  C (M, N) [+]= A.T @ B  for A (K, M), B (K, N), all C-contiguous, K = T*B
# ------------------------------------------------------------------------------------------------
def build_matmul_wg(bt, bk, tt, dt, minblocks=0):
    """C = [C +] A.T @ B over a slice of the K rows per blockIdx.z (split-K), with the column sums
    of A (bias gradients) optionally fused in. Grid (ceil(N / bt), ceil(M / bt), S).

    Against build_matmul_rt: the next k tile is loaded into registers while the current one is
    multiplied and stored into the other of two shared buffers afterwards (one barrier per k tile
    instead of two, the global latency hidden behind bk x tt^2 FMAs); the tile copy is specialised
    to K-major operands (thread tid copies column tid % bt of rows tid // bt + l NT / bt, so each
    load instruction of a warp reads 32 consecutive floats and all index arithmetic is unsigned);
    row stride bt (no padding: stores are conflict-free, the strided register-tile reads too).

    mode 0: C (+)= acc; mode 1: P[z, m, n] = acc (split-K partials; k_splitk_reduce adds them in
    a fixed order); mode 2: atomic adds into C. colsum: the thread that copies column m of A also
    sums it over its rows; the blocks with blockIdx.x == 0 add the sums to db (mode 0), write
    Pb[z, m] (mode 1) or add them atomically (mode 2).

    A thread's tt x tt outputs are rows ty + nth i and columns tx + nth j (scalar shared loads,
    conflict-free). Tried: chunks of 4 consecutive rows in 16-byte aligned tiles for 128-bit
    shared loads; the PTX (NVVM's load-store vectorizer) paired only 2 of the 4 chunks at 8 x 8
    and none at 4 x 4, so it was dropped."""
    nbt = nbtype(dt)
    nth = bt // tt
    NT = nth * nth
    NL = (bt * bk) // NT          # tile elements each thread copies per operand
    RS = NT // bt                 # rows of a tile copied per round
    TT2 = tt * tt
    SZ = bk * bt
    SZ2 = 2 * SZ                  # two buffers (shared array sizes must be plain constants)
    epilogue = _build_wg_epilogue(tt, nth)
    assert NL * NT == bt * bk and RS * bt == NT, (bt, bk, tt)

    def matmul_wg(A, Bm, C, P, db, Pb, k_per, mode, accumulate, colsum):
        sA = cuda.shared.array(SZ2, nbt)
        sB = cuda.shared.array(SZ2, nbt)
        red = cuda.shared.array(NT, nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * nth + tx
        txu = uint64(tx)
        tyu = uint64(ty)
        m0 = cuda.blockIdx.y * bt
        n0 = cuda.blockIdx.x * bt
        z = cuda.blockIdx.z
        M = C.shape[0]
        N = C.shape[1]
        K = A.shape[0]
        kbeg = z * k_per
        kend = min(K, kbeg + k_per)
        cc = tid % bt                 # the column this thread copies (of A and of B)
        cr = tid // bt                # its first row in a tile
        mA = uint64(m0 + cc)
        nB = uint64(n0 + cc)
        okA = m0 + cc < M
        okB = n0 + cc < N
        acc = cuda.local.array(TT2, nbt)
        av = cuda.local.array(tt, nbt)
        bv = cuda.local.array(tt, nbt)
        ra = cuda.local.array(NL, nbt)
        rb = cuda.local.array(NL, nbt)
        for i in range(TT2):
            acc[i] = nbt(0.0)
        cs = nbt(0.0)
        # tile 0 -> registers -> buffer 0
        for ll in range(NL):
            k = kbeg + cr + ll * RS
            v = nbt(0.0)
            w = nbt(0.0)
            if k < kend:
                if okA:
                    v = A[uint64(k), mA]
                if okB:
                    w = Bm[uint64(k), nB]
            cs += v
            sA[uint64((cr + ll * RS) * bt + cc)] = v
            sB[uint64((cr + ll * RS) * bt + cc)] = w
        cuda.syncthreads()
        nk = (kend - kbeg + bk - 1) // bk
        for kt in range(nk):
            cur = uint64((kt % 2) * SZ)
            nxt = uint64(((kt + 1) % 2) * SZ)
            more = kt + 1 < nk
            if more:
                k1 = kbeg + (kt + 1) * bk + cr
                for ll in range(NL):
                    k = k1 + ll * RS
                    v = nbt(0.0)
                    w = nbt(0.0)
                    if k < kend:
                        if okA:
                            v = A[uint64(k), mA]
                        if okB:
                            w = Bm[uint64(k), nB]
                    ra[ll] = v
                    rb[ll] = w
            for kk in range(bk):
                ka = cur + uint64(kk * bt) + tyu
                kb = cur + uint64(kk * bt) + txu
                for i in range(tt):
                    av[i] = sA[ka + uint64(nth * i)]
                for j in range(tt):
                    bv[j] = sB[kb + uint64(nth * j)]
                for i in range(tt):
                    for j in range(tt):
                        acc[i * tt + j] += av[i] * bv[j]
            if more:
                for ll in range(NL):
                    cs += ra[ll]
                    sA[nxt + uint64((cr + ll * RS) * bt + cc)] = ra[ll]
                    sB[nxt + uint64((cr + ll * RS) * bt + cc)] = rb[ll]
            cuda.syncthreads()
        epilogue(C, P, acc, m0 + ty, n0 + tx, z, M, N, mode, accumulate)
        if colsum and cuda.blockIdx.x == 0:
            red[tid] = cs
            cuda.syncthreads()
            if tid < bt and okA:
                t = nbt(0.0)
                for r in range(RS):
                    t += red[r * bt + tid]
                m = m0 + tid
                if mode == 0:
                    db[m] += t
                elif mode == 1:
                    Pb[z, m] = t
                else:
                    cuda.atomic.add(db, m, t)

    if SIMULATOR or not minblocks:
        return cuda.jit(matmul_wg)
    kern = cuda.jit(launch_bounds=(NT, minblocks))(matmul_wg)
    kern.seqlearn_launch_bounds = (NT, minblocks)
    return kern


def _build_wg_epilogue(tt, nth):
    """The weight-gradient product's epilogue (generated source, see _build_epilogue)."""
    lines = ["def epilogue(C, P, acc, m0, n0, z, M, N, mode, accumulate):"]
    for i in range(tt):
        lines.append(f"    m = m0 + {nth * i}")
        lines.append("    if m < M:")
        for j in range(tt):
            lines.append(f"        n = n0 + {nth * j}")
            lines.append("        if n < N:")
            lines.append(f"            v = acc[{i * tt + j}]")
            lines.append("            if mode == 1:")
            lines.append("                P[z, m, n] = v")
            lines.append("            elif mode == 2:")
            lines.append("                cuda.atomic.add(C, (m, n), v)")
            lines.append("            elif accumulate:")
            lines.append("                C[m, n] += v")
            lines.append("            else:")
            lines.append("                C[m, n] = v")
    ns = {"cuda": cuda}
    exec(compile("\n".join(lines) + "\n", f"<matmul_wg epilogue {tt}x{tt}>", "exec"), ns)  # noqa: S102
    return cuda.jit(device=True, inline=True)(ns["epilogue"])


def build_splitk_reduce(dt):
    nbt = nbtype(dt)

    @cuda.jit
    def splitk_reduce(P, C, Pb, db, accumulate, colsum):
        """C[i] (+)= sum_z P[z, i] for flat i < M N (z in order: deterministic); with colsum also
        db[m] += sum_z Pb[z, m]."""
        S = P.shape[0]
        MN = P.shape[1]
        nb = Pb.shape[1] if colsum else 0
        for i in range(cuda.grid(1), MN + nb, cuda.gridsize(1)):
            s = nbt(0.0)
            if i < MN:
                for zz in range(S):
                    s += P[zz, i]
                if accumulate:
                    C[i] += s
                else:
                    C[i] = s
            else:
                m = i - MN
                for zz in range(S):
                    s += Pb[zz, m]
                db[m] += s

    return splitk_reduce


# ------------------------------------------------------------------------------------------------
# elementwise helpers (grid-stride over flat C-contiguous arrays)
# ------------------------------------------------------------------------------------------------
@cuda.jit
def k_fill(a, v):
    i0 = cuda.grid(1)
    st = cuda.gridsize(1)
    for i in range(i0, a.shape[0], st):
        a[i] = v


@cuda.jit
def k_copy(src, dst):
    i0 = cuda.grid(1)
    st = cuda.gridsize(1)
    for i in range(i0, dst.shape[0], st):
        dst[i] = src[i]


@cuda.jit
def k_mul(a, b, out):
    i0 = cuda.grid(1)
    st = cuda.gridsize(1)
    for i in range(i0, out.shape[0], st):
        out[i] = a[i] * b[i]


@cuda.jit
def k_dropout_mask(key, thr, scale, out):
    """out[i] = scale where element i is kept (the hash of ref.ops.dropout_mask), else 0."""
    i0 = cuda.grid(1)
    st = cuda.gridsize(1)
    for i in range(i0, out.shape[0], st):
        z = key + uint64(i + 1) * uint64(_MASK_GAMMA)
        z = (z ^ (z >> uint64(30))) * uint64(_MASK_M1)
        z = (z ^ (z >> uint64(27))) * uint64(_MASK_M2)
        z = z ^ (z >> uint64(31))
        out[i] = scale if (z >> uint64(64 - _MASK_BITS)) < thr else 0.0


@cuda.jit
def k_clip(a, lo, hi):
    i0 = cuda.grid(1)
    st = cuda.gridsize(1)
    for i in range(i0, a.shape[0], st):
        v = a[i]
        if v < lo:
            v = lo
        if v > hi:
            v = hi
        a[i] = v


@cuda.jit
def k_colsum(A, out, accumulate):
    """out[c] (+)= sum_n A[n, c]: one thread per column, rows in order (deterministic)."""
    c = cuda.grid(1)
    if c < A.shape[1]:
        s = A[0, c] * 0
        for n in range(A.shape[0]):
            s += A[n, c]
        if accumulate:
            out[c] += s
        else:
            out[c] = s


def build_colsum(R, dt):
    """out[c] (+)= sum_n A[n, c] with blocks of 32 columns x R row slices: lane tx of row slice ty
    sums rows ty, ty + R, ... of column c (coalesced across the 32 columns), then the R partial
    sums are added in a fixed order (deterministic). k_colsum's one thread per column walks all
    N = T*B rows one dependent load after another."""
    nbt = nbtype(dt)

    @cuda.jit
    def colsum(A, out, accumulate):
        red = cuda.shared.array((R, 32), nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        c = cuda.blockIdx.x * 32 + tx
        N = A.shape[0]
        C = A.shape[1]
        s = nbt(0.0)
        if c < C:
            for n in range(ty, N, R):
                s += A[n, c]
        red[ty, tx] = s
        cuda.syncthreads()
        if ty == 0 and c < C:
            tot = nbt(0.0)
            for r in range(R):
                tot += red[r, tx]
            if accumulate:
                out[c] += tot
            else:
                out[c] = tot

    return colsum


def build_onehot_scatter(R, dt):
    """dW_ih[c, x[n]] += dout[n, c] for 32 columns c per block: the block's R row slices add into a
    (V, 32) shared-memory table with shared atomics, then the table is added to dW_ih once
    (k_project_onehot_backward does one global atomic per element of dout, ~50 colliding per
    address at V = 65). With with_bias, also db_ih[c] += the column's sum over the table (the
    bias gradient of a one-hot projection: one launch and one read of dout less than colsum)."""
    nbt = nbtype(dt)

    @cuda.jit
    def scatter(dout, x, dW_ih, db, with_bias):
        tab = cuda.shared.array(0, nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * 32 + tx
        V = dW_ih.shape[1]
        N = dout.shape[0]
        C = dout.shape[1]
        c = cuda.blockIdx.x * 32 + tx
        for i in range(tid, V * 32, 32 * R):
            tab[i] = nbt(0.0)
        cuda.syncthreads()
        if c < C:
            for n in range(ty, N, R):
                cuda.atomic.add(tab, x[n] * 32 + tx, dout[n, c])
        cuda.syncthreads()
        for i in range(tid, V * 32, 32 * R):
            v = i // 32
            cc = cuda.blockIdx.x * 32 + (i - v * 32)
            if cc < C:
                dW_ih[cc, v] += tab[i]
        if with_bias and ty == 0 and c < C:
            s = nbt(0.0)
            for v in range(V):
                s += tab[v * 32 + tx]
            db[c] += s

    return scatter


# ------------------------------------------------------------------------------------------------
# gathers and scatters
# ------------------------------------------------------------------------------------------------
@cuda.jit
def k_project_onehot(W_ih, b_ih, x, out):
    """out[n, c] = W_ih[c, x[n]] + b_ih[c] for x (N,), out (N, C)."""
    i0 = cuda.grid(1)
    st = cuda.gridsize(1)
    C = out.shape[1]
    for i in range(i0, out.shape[0] * C, st):
        n = i // C
        c = i - n * C
        out[n, c] = W_ih[c, x[n]] + b_ih[c]


@cuda.jit
def k_project_onehot_backward(dout, x, dW_ih):
    """dW_ih[c, x[n]] += dout[n, c] (scatter-add with atomics)."""
    i0 = cuda.grid(1)
    st = cuda.gridsize(1)
    C = dout.shape[1]
    for i in range(i0, dout.shape[0] * C, st):
        n = i // C
        c = i - n * C
        cuda.atomic.add(dW_ih, (c, x[n]), dout[n, c])


@cuda.jit
def k_lookup(E, x, out):
    i0 = cuda.grid(1)
    st = cuda.gridsize(1)
    D = out.shape[1]
    for i in range(i0, out.shape[0] * D, st):
        n = i // D
        e = i - n * D
        out[n, e] = E[x[n], e]


@cuda.jit
def k_lookup_backward(dout, x, dE):
    i0 = cuda.grid(1)
    st = cuda.gridsize(1)
    D = dout.shape[1]
    for i in range(i0, dout.shape[0] * D, st):
        n = i // D
        e = i - n * D
        cuda.atomic.add(dE, (x[n], e), dout[n, e])


# ------------------------------------------------------------------------------------------------
# reductions: sum and sum of squares, two passes (blocks -> partials -> one block)
# ------------------------------------------------------------------------------------------------
def build_reduce(nt, dt):
    nbt = nbtype(dt)

    @cuda.jit
    def reduce_sum(x, out, square):
        """out[blockIdx] = sum over this block's grid-stride share of x (or of x*x)."""
        red = cuda.shared.array(nt, nbt)
        tid = cuda.threadIdx.x
        s = nbt(0.0)
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            v = nbt(x[i])
            if square:
                s += v * v
            else:
                s += v
        red[tid] = s
        cuda.syncthreads()
        w = nt // 2
        while w > 0:
            if tid < w:
                red[tid] += red[tid + w]
            cuda.syncthreads()
            w //= 2
        if tid == 0:
            out[cuda.blockIdx.x] = red[0]

    return reduce_sum


# ------------------------------------------------------------------------------------------------
# softmax cross-entropy, one block per row
# ------------------------------------------------------------------------------------------------
def build_xent(nt, dt):
    nbt = nbtype(dt)

    @cuda.jit
    def xent(Z, y, rowloss, scale, write_grad):
        """rowloss[n] = logsumexp(Z[n]) - Z[n, y[n]]; if write_grad, Z[n] becomes
        (softmax(Z[n]) - onehot(y[n])) * scale."""
        red = cuda.shared.array(nt, nbt)
        n = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        V = Z.shape[1]
        m = nbt(-math.inf)
        for v in range(tid, V, nt):
            m = max(m, Z[n, v])
        red[tid] = m
        cuda.syncthreads()
        w = nt // 2
        while w > 0:
            if tid < w:
                red[tid] = max(red[tid], red[tid + w])
            cuda.syncthreads()
            w //= 2
        m = red[0]
        cuda.syncthreads()
        s = nbt(0.0)
        for v in range(tid, V, nt):
            s += math.exp(Z[n, v] - m)
        red[tid] = s
        cuda.syncthreads()
        w = nt // 2
        while w > 0:
            if tid < w:
                red[tid] += red[tid + w]
            cuda.syncthreads()
            w //= 2
        tot = red[0]
        yn = y[n]
        if tid == 0:
            rowloss[n] = math.log(tot) - (Z[n, yn] - m)
        cuda.syncthreads()
        if write_grad:
            inv = 1.0 / tot
            for v in range(tid, V, nt):
                p = math.exp(Z[n, v] - m) * inv
                if v == yn:
                    p -= 1.0
                Z[n, v] = p * scale

    return xent


# ------------------------------------------------------------------------------------------------
# pointwise cell steps (one thread per (b, j)); `a` holds h_{t-1} @ W_hh.T + b_hh
# ------------------------------------------------------------------------------------------------
@cuda.jit
def k_lstm_fwd_step(xg, a, c_prev, p, has_p, gates, c_out, h_out):
    B = xg.shape[0]
    H = c_prev.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    cp = c_prev[b, j]
    ai = xg[b, j] + a[b, j]
    af = xg[b, H + j] + a[b, H + j]
    ag = xg[b, 2 * H + j] + a[b, 2 * H + j]
    ao = xg[b, 3 * H + j] + a[b, 3 * H + j]
    if has_p:
        ai += p[0, j] * cp
        af += p[1, j] * cp
    ig = sigmoid(ai)
    fg = sigmoid(af)
    gg = math.tanh(ag)
    c = fg * cp + ig * gg
    if has_p:
        ao += p[2, j] * c
    og = sigmoid(ao)
    c_out[b, j] = c
    h_out[b, j] = og * math.tanh(c)
    gates[b, j] = ig
    gates[b, H + j] = fg
    gates[b, 2 * H + j] = gg
    gates[b, 3 * H + j] = og


@cuda.jit
def k_lstm_bwd_step(dhs_t, dh_next, gates, c, c_prev, dc, p, has_p, da):
    """dh = dhs_t + dh_next; writes da (B, 4H); dc (B, H) is the carried cell gradient (in/out)."""
    B = dhs_t.shape[0]
    H = dhs_t.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    ig = gates[b, j]
    fg = gates[b, H + j]
    gg = gates[b, 2 * H + j]
    og = gates[b, 3 * H + j]
    cv = c[b, j]
    cp = c_prev[b, j]
    dh = dhs_t[b, j] + dh_next[b, j]
    tc = math.tanh(cv)
    dao = dh * tc * og * (1.0 - og)
    d = dc[b, j] + dh * og * (1.0 - tc * tc)
    if has_p:
        d += dao * p[2, j]
    dai = d * gg * ig * (1.0 - ig)
    daf = d * cp * fg * (1.0 - fg)
    dag = d * ig * (1.0 - gg * gg)
    d = d * fg
    if has_p:
        d += dai * p[0, j] + daf * p[1, j]
    dc[b, j] = d
    da[b, j] = dai
    da[b, H + j] = daf
    da[b, 2 * H + j] = dag
    da[b, 3 * H + j] = dao


@cuda.jit
def k_peephole_grad(dxg, cs, dp):
    """dp[0,j] += sum dai*c_{t-1}; dp[1,j] += sum daf*c_{t-1}; dp[2,j] += sum dao*c_t over (t, b)."""
    T = dxg.shape[0]
    B = dxg.shape[1]
    H = cs.shape[2]
    q = cuda.grid(1)
    if q >= 3 * H:
        return
    k = q // H
    j = q - k * H
    gate = 3 if k == 2 else k
    off = 1 if k == 2 else 0
    s = dxg[0, 0, 0] * 0
    for t in range(T):
        for b in range(B):
            s += dxg[t, b, gate * H + j] * cs[t + off, b, j]
    dp[k, j] += s


@cuda.jit
def k_gru_fwd_step(xg, a, h_prev, variant_cho, gates, hn, h_out):
    """torch: a = h W_hh.T + b_hh (B, 3H); cho stage 1: a = h W_hh[:2H].T + b_hh[:2H] (B, 2H),
    writes r, z and hn = r * h (h_out untouched)."""
    B = xg.shape[0]
    H = h_prev.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    r = sigmoid(xg[b, j] + a[b, j])
    z = sigmoid(xg[b, H + j] + a[b, H + j])
    h = h_prev[b, j]
    gates[b, j] = r
    gates[b, H + j] = z
    if variant_cho:
        hn[b, j] = r * h
    else:
        hv = a[b, 2 * H + j]
        hn[b, j] = hv
        n = math.tanh(xg[b, 2 * H + j] + r * hv)
        gates[b, 2 * H + j] = n
        h_out[b, j] = (1.0 - z) * n + z * h


@cuda.jit
def k_gru_cho_fwd_n(xg, an, h_prev, gates, h_out):
    """cho stage 2: an = (r h) W_hn.T + b_hn (B, H)."""
    B = xg.shape[0]
    H = h_prev.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    z = gates[b, H + j]
    n = math.tanh(xg[b, 2 * H + j] + an[b, j])
    gates[b, 2 * H + j] = n
    h_out[b, j] = (1.0 - z) * n + z * h_prev[b, j]


@cuda.jit
def k_gru_bwd_step(dhs_t, dh_next, gates, h_prev, hn, variant_cho, dxg, dhg):
    """dh = dhs_t + dh_next; dh_next becomes dh * z (the recurrent product is added later).
    torch: writes dxg = [dar, daz, dan], dhg = [dar, daz, dan * r].
    cho stage 1: writes daz, dan into dxg and dhg (dar needs drh = dan W_hn first)."""
    B = dhs_t.shape[0]
    H = dhs_t.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    r = gates[b, j]
    z = gates[b, H + j]
    n = gates[b, 2 * H + j]
    h = h_prev[b, j]
    dh = dhs_t[b, j] + dh_next[b, j]
    dn = dh * (1.0 - z)
    daz = dh * (h - n) * z * (1.0 - z)
    dan = dn * (1.0 - n * n)
    dh_next[b, j] = dh * z
    dxg[b, H + j] = daz
    dxg[b, 2 * H + j] = dan
    dhg[b, H + j] = daz
    if variant_cho:
        dhg[b, 2 * H + j] = dan
    else:
        dar = dan * hn[b, j] * r * (1.0 - r)
        dxg[b, j] = dar
        dhg[b, j] = dar
        dhg[b, 2 * H + j] = dan * r


@cuda.jit
def k_gru_cho_bwd_r(drh, gates, h_prev, dxg, dhg, dh_next):
    """cho stage 2: drh = dan @ W_hn; dar = drh h r (1 - r); dh_next += drh * r."""
    B = drh.shape[0]
    H = drh.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    r = gates[b, j]
    d = drh[b, j]
    dar = d * h_prev[b, j] * r * (1.0 - r)
    dxg[b, j] = dar
    dhg[b, j] = dar
    dh_next[b, j] += d * r


@cuda.jit
def k_rnn_fwd_step(xg, a, h_out):
    B = xg.shape[0]
    H = xg.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    h_out[b, j] = math.tanh(xg[b, j] + a[b, j])


@cuda.jit
def k_rnn_bwd_step(dhs_t, dh_next, h, da):
    B = h.shape[0]
    H = h.shape[1]
    i0 = cuda.grid(1)
    if i0 >= B * H:
        return
    b = i0 // H
    j = i0 - b * H
    hv = h[b, j]
    da[b, j] = (dhs_t[b, j] + dh_next[b, j]) * (1.0 - hv * hv)


# ------------------------------------------------------------------------------------------------
# optimizer updates (torch.optim semantics); hyperparameters are arguments
# ------------------------------------------------------------------------------------------------
@cuda.jit
def k_sgd(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        d = g[i] + weight_decay * p[i]
        if momentum != 0.0:
            if first:
                bv = d
            else:
                bv = momentum * buf[i] + (1.0 - dampening) * d
            buf[i] = bv
            if nesterov:
                d = d + momentum * bv
            else:
                d = bv
        p[i] = p[i] - lr * d


@cuda.jit
def k_adagrad(p, g, s, lr, eps, weight_decay):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        d = g[i] + weight_decay * p[i]
        sv = s[i] + d * d
        s[i] = sv
        p[i] = p[i] - lr * d / (math.sqrt(sv) + eps)


@cuda.jit
def k_rmsprop(p, g, s, lr, alpha, eps, weight_decay):
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        d = g[i] + weight_decay * p[i]
        sv = alpha * s[i] + (1.0 - alpha) * d * d
        s[i] = sv
        p[i] = p[i] - lr * d / (math.sqrt(sv) + eps)


@cuda.jit
def k_adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, bc1, bc2_sqrt):
    """bc1 = 1 - beta1**step, bc2_sqrt = sqrt(1 - beta2**step) (computed on the host)."""
    step_size = lr / bc1
    for i in range(cuda.grid(1), p.shape[0], cuda.gridsize(1)):
        pv = p[i]
        d = g[i]
        if decoupled:
            pv = pv * (1.0 - lr * weight_decay)
        else:
            d = d + weight_decay * pv
        mv = beta1 * m[i] + (1.0 - beta1) * d
        vv = beta2 * v[i] + (1.0 - beta2) * d * d
        m[i] = mv
        v[i] = vv
        p[i] = pv - step_size * mv / (math.sqrt(vv) / bc2_sqrt + eps)


@cuda.jit
def k_scale(g, s):
    for i in range(cuda.grid(1), g.shape[0], cuda.gridsize(1)):
        g[i] = g[i] * s


# ------------------------------------------------------------------------------------------------
# registry: (name, kernel function or (builder, key), [signature strings]) for the PTX test
# ------------------------------------------------------------------------------------------------
def _sigs(template):
    return [template.format(f=f) for f in ("float32", "float64")]


A1 = "{f}[::1]"
A2 = "{f}[:, :]"
A3 = "{f}[:, :, :]"


def registry():
    """[(name, python function to compile, [signatures])] covering every simple kernel, at the
    launch sizes of seqlearn.cuda.config."""
    from . import config
    out = []
    for dt in ("float32", "float64"):
        f = dt
        out.append((f"matmul[{dt}]", get(build_matmul, config.TILE, dt),
                    [f"void({f}[:, :], {f}[:, :], {f}[:, :], {f}[::1], int64, int64, int64, int64)"]))
        out.append((f"matmul_rt_big[{dt}]", get(build_matmul_rt, config.MM_BIG_TILE, config.MM_BIG_BK,
                                                  config.MM_BIG_TT, dt),
                    [f"void({f}[:, :], {f}[:, :], {f}[:, :], {f}[::1], int64, int64, int64, int64)"]))
        out.append((f"matmul_rt[{dt}]", get(build_matmul_rt, config.MM_TILE, config.MM_BK, config.MM_TT, dt),
                    [f"void({f}[:, :], {f}[:, :], {f}[:, :], {f}[::1], int64, int64, int64, int64)",
                     f"void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[::1], int64, int64, int64, int64)"]))
        wsig = (f"void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, :, ::1], {f}[::1], {f}[:, ::1], "
                "int64, int64, int64, int64)")
        # float64 only at the small tile (the big one is the same source: ~20 s more to compile)
        for (bt, tt, bk) in (config.MM_WG_TILES if dt == "float32" else config.MM_WG_TILES[-1:]):
            out.append((f"matmul_wg{bt}[{dt}]", get(build_matmul_wg, bt, bk, tt, dt, 0), [wsig]))
        out.append((f"splitk_reduce[{dt}]", get(build_splitk_reduce, dt),
                    [f"void({f}[:, ::1], {f}[::1], {f}[:, ::1], {f}[::1], int64, int64)"]))
        if dt == "float32":   # with launch bounds (config.MM_WG_MINBLOCKS): the compile path differs
            bt, tt, bk = config.MM_WG_TILES[0]
            out.append((f"matmul_wg{bt}_lb3[{dt}]", get(build_matmul_wg, bt, bk, tt, dt, 3), [wsig]))
        out.append((f"reduce_sum[{dt}]", get(build_reduce, config.REDUCE_THREADS, dt),
                    [f"void({f}[::1], {f}[::1], int64)"]))
        out.append((f"xent[{dt}]", get(build_xent, config.XENT_THREADS, dt),
                    [f"void({f}[:, ::1], int64[::1], {f}[::1], float64, int64)"]))
        out.append((f"colsum32[{dt}]", get(build_colsum, config.COLSUM_ROWS, dt),
                    [f"void({f}[:, :], {f}[::1], int64)", f"void({f}[:, ::1], {f}[::1], int64)"]))
        out.append((f"onehot_scatter[{dt}]", get(build_onehot_scatter, config.COLSUM_ROWS, dt),
                    [f"void({f}[:, ::1], int64[::1], {f}[:, ::1], {f}[::1], int64)"]))
    plain = [
        ("fill", k_fill, "void({f}[::1], float64)"),
        ("copy", k_copy, "void({f}[::1], {f}[::1])"),
        ("mul", k_mul, "void({f}[::1], {f}[::1], {f}[::1])"),
        ("dropout_mask", k_dropout_mask, "void(uint64, uint64, float64, {f}[::1])"),
        ("clip", k_clip, "void({f}[::1], float64, float64)"),
        ("colsum", k_colsum, "void({f}[:, :], {f}[::1], int64)"),
        ("project_onehot", k_project_onehot, "void({f}[:, ::1], {f}[::1], int64[::1], {f}[:, ::1])"),
        ("project_onehot_backward", k_project_onehot_backward, "void({f}[:, ::1], int64[::1], {f}[:, ::1])"),
        ("lookup", k_lookup, "void({f}[:, ::1], int64[::1], {f}[:, ::1])"),
        ("lookup_backward", k_lookup_backward, "void({f}[:, ::1], int64[::1], {f}[:, ::1])"),
        ("lstm_fwd_step", k_lstm_fwd_step,
         "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], int64, {f}[:, ::1], {f}[:, ::1], {f}[:, ::1])"),
        ("lstm_bwd_step", k_lstm_bwd_step,
         "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], int64, {f}[:, ::1])"),
        ("peephole_grad", k_peephole_grad, "void({f}[:, :, ::1], {f}[:, :, ::1], {f}[:, ::1])"),
        ("gru_fwd_step", k_gru_fwd_step,
         "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], int64, {f}[:, ::1], {f}[:, ::1], {f}[:, ::1])"),
        ("gru_cho_fwd_n", k_gru_cho_fwd_n, "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1])"),
        ("gru_bwd_step", k_gru_bwd_step,
         "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], int64, {f}[:, ::1], {f}[:, ::1])"),
        ("gru_cho_bwd_r", k_gru_cho_bwd_r,
         "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1])"),
        ("rnn_fwd_step", k_rnn_fwd_step, "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1])"),
        ("rnn_bwd_step", k_rnn_bwd_step, "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1])"),
        ("sgd", k_sgd, "void({f}[::1], {f}[::1], {f}[::1], float64, float64, float64, int64, float64, int64)"),
        ("adagrad", k_adagrad, "void({f}[::1], {f}[::1], {f}[::1], float64, float64, float64)"),
        ("rmsprop", k_rmsprop, "void({f}[::1], {f}[::1], {f}[::1], float64, float64, float64, float64)"),
        ("adam", k_adam, "void({f}[::1], {f}[::1], {f}[::1], {f}[::1], float64, float64, float64, float64, "
                         "float64, int64, float64, float64)"),
        ("scale", k_scale, "void({f}[::1], float64)"),
    ]
    for name, fn, tmpl in plain:
        out.append((name, fn, _sigs(tmpl)))
    return out


__all__ = ["get", "registry", "numba", "int64"]
