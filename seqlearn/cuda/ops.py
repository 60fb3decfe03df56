"""Non-recurrent pieces on the GPU: array helpers, one-hot projection, embedding, linear layers,
column sums and reductions, and the products every other module uses (their kernels:
seqlearn/cuda/_gemm.py). Arrays are numba device arrays."""
import numpy as np
from numba import cuda, uint64

from . import _gemm, config
from ._jit import WARP, get, nbtype
from ._launch import launch
from ..ref.ops import MASK_BITS, MASK_GAMMA, MASK_M1, MASK_M2, mask_args, mask_geometry

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
def k_dropout_mask(key, thr, scale, out, n, row, off):
    """out[i] = scale where element i is kept (the hash of ref.ops.dropout_mask), else 0; element i
    is element (i // n) * row + off + i % n of the whole mask (ref.ops.mask_geometry)."""
    i0 = cuda.grid(1)
    st = cuda.gridsize(1)
    for i in range(i0, out.shape[0], st):
        g = i + off                         # the whole mask (n == row): no division per element
        if n != row:
            t = i // n
            g = t * row + off + (i - t * n)
        z = key + uint64(g + 1) * uint64(MASK_GAMMA)
        z = (z ^ (z >> uint64(30))) * uint64(MASK_M1)
        z = (z ^ (z >> uint64(27))) * uint64(MASK_M2)
        z = z ^ (z >> uint64(31))
        out[i] = scale if (z >> uint64(64 - MASK_BITS)) < thr else 0.0


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
        red = cuda.shared.array((R, WARP), nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        c = cuda.blockIdx.x * WARP + tx
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
    address at V = 65). The bias gradient stays a column sum (summing it from the table was
    measured neutral, see docs/gpu.md, third device run)."""
    nbt = nbtype(dt)

    @cuda.jit
    def scatter(dout, x, dW_ih):
        tab = cuda.shared.array(0, nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * WARP + tx
        V = dW_ih.shape[1]
        N = dout.shape[0]
        C = dout.shape[1]
        c = cuda.blockIdx.x * WARP + tx
        for i in range(tid, V * WARP, WARP * R):
            tab[i] = nbt(0.0)
        cuda.syncthreads()
        if c < C:
            for n in range(ty, N, R):
                cuda.atomic.add(tab, x[n] * WARP + tx, dout[n, c])
        cuda.syncthreads()
        for i in range(tid, V * WARP, WARP * R):
            v = i // WARP
            cc = cuda.blockIdx.x * WARP + (i - v * WARP)
            if cc < C:
                dW_ih[cc, v] += tab[i]

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


# ---- launch shapes and placeholders ----------------------------------------------------------
def stride_grid(n):
    """Grid-stride kernels over n elements: at most config.MAX_BLOCKS blocks."""
    t = config.THREADS
    return max(1, min(config.MAX_BLOCKS, (n + t - 1) // t)), t


def step_grid(n):
    """One thread per element (the cells' pointwise step kernels)."""
    t = config.THREADS
    return (n + t - 1) // t, t


def _flat(a):
    return a.reshape(a.size) if a.ndim != 1 else a


_DUMMY = {}


def _dummy(ndim, dtype):
    key = (ndim, np.dtype(dtype).str)
    d = _DUMMY.get(key)
    if d is None:
        d = _DUMMY[key] = cuda.to_device(np.zeros((1,) * ndim, dtype))
    return d


def dummy(dtype):
    """A 1-element device array standing in for an absent optional argument."""
    return _dummy(1, dtype)


def dummy2(dtype):
    return _dummy(2, dtype)


# ---- array helpers ---------------------------------------------------------------------------
def zeros(shape, dtype):
    a = cuda.device_array(shape, np.dtype(dtype))
    fill_zero(a)
    return a


def to_device(a):
    return cuda.to_device(np.ascontiguousarray(a))


def to_host(a):
    if isinstance(a, np.ndarray):
        return a
    return a.copy_to_host()


def fill_zero(a):
    if a.size:
        launch(k_fill, stride_grid(a.size), (_flat(a), 0.0,))


def fill(a, v):
    if a.size:
        launch(k_fill, stride_grid(a.size), (_flat(a), float(v),))


def copy(src, dst):
    if dst.size:
        launch(k_copy, stride_grid(dst.size), (_flat(src), _flat(dst),))


def copy_new(a):
    out = cuda.device_array(a.shape, a.dtype)
    copy(a, out)
    return out


def mul(a, b, out):
    if out.size:
        launch(k_mul, stride_grid(out.size), (_flat(a), _flat(b), _flat(out),))


def dropout_mask(key, keep, out, rows=None):
    """The dropout mask of ref.ops.dropout_mask (the same elements), computed on the device."""
    if out.size:
        launch(k_dropout_mask, stride_grid(out.size),
               mask_args(key, keep, out.dtype) + (_flat(out),) + mask_geometry(out.shape, rows))


def clip_all(x, lo, hi):
    if x.size:
        launch(k_clip, stride_grid(x.size), (_flat(x), float(lo), float(hi),))


# ---- products ----------------------------------------------------------------------------------
def matmul(A, B, C, bias=None, ta=False, tb=False, accumulate=False):
    """C (M, N) = [C +] op(A) @ op(B) [+ bias]; op(X) = X.T when the flag is set. 2-D arrays of any
    strides; tiled through shared memory: register tiles (config.MM_*) when both output sides are
    at least config.MM_MIN, else config.TILE x TILE one output per thread."""
    M, N = C.shape
    if M == 0 or N == 0:
        return
    if ta and not tb and bias is None and _wg_ok(A, B, C):
        matmul_wg(A, B, C, accumulate=accumulate)
        return
    if M >= config.MM_MIN and N >= config.MM_MIN:
        bt, tt, bk = config.MM_BIG_TILE, config.MM_BIG_TT, config.MM_BIG_BK
        if ((M + bt - 1) // bt) * ((N + bt - 1) // bt) < config.MM_BIG_MIN_BLOCKS:
            bt, tt, bk = config.MM_TILE, config.MM_TT, config.MM_BK
        kern = get(_gemm.build_matmul_rt, bt, bk, tt, C.dtype.name)
        grid = ((N + bt - 1) // bt, (M + bt - 1) // bt)
        launch(kern, (grid, (bt // tt, bt // tt)), (A, B, C, dummy(C.dtype) if bias is None else bias, int(ta),
                                                      int(tb), int(accumulate), int(bias is not None)))
        return
    tile = config.TILE
    kern = get(_gemm.build_matmul, tile, C.dtype.name)
    grid = ((N + tile - 1) // tile, (M + tile - 1) // tile)
    launch(kern, (grid, (tile, tile)), (A, B, C, dummy(C.dtype) if bias is None else bias, int(ta), int(tb),
                                          int(accumulate), int(bias is not None)))


_SMS = []


def _sms():
    if config.MM_SMS:
        return config.MM_SMS
    if not _SMS:
        try:
            _SMS.append(int(cuda.get_current_device().MULTIPROCESSOR_COUNT))
        except Exception:  # noqa: BLE001 - simulator
            _SMS.append(config.SMS_FALLBACK)
    return _SMS[0]


def wg_plan(M, N, K):
    """(tile, per-thread tile, k per tile, slices S, rows per slice) of the weight-gradient product."""
    tiles = config.MM_WG_TILES
    bt, tt, bk = tiles[-1]
    for cand in tiles:
        if M >= cand[0] and N >= cand[0]:
            bt, tt, bk = cand
            break
    nt = ((M + bt - 1) // bt) * ((N + bt - 1) // bt)
    S = config.MM_SPLITK
    if S == 0:
        S = max(1, -(-config.MM_SPLITK_WAVES * _sms() // nt))
        S = min(S, config.MM_SPLITK_MAX, max(1, K // config.MM_SPLITK_MIN_K))
    S = max(1, min(S, (K + bk - 1) // bk))
    k_per = -(-K // S)
    k_per = -(-k_per // bk) * bk
    S = max(1, -(-K // k_per))
    return bt, tt, bk, S, k_per


_PART = {}


def _part(shape, dtype):
    key = (shape, np.dtype(dtype).str)
    buf = _PART.get(key)
    if buf is None:
        if len(_PART) >= config.SCRATCH_SHAPES:
            _PART.clear()
        buf = _PART[key] = cuda.device_array(shape, np.dtype(dtype))
    return buf


def _wg_ok(A, B, C):
    return (config.MM_WG and C.shape[0] and C.shape[1] and A.shape[0] and A.is_c_contiguous()
            and B.is_c_contiguous() and C.is_c_contiguous())


def matmul_wg(A, B, C, db=None, accumulate=True):
    """C (M, N) [+]= A.T @ B for C-contiguous A (K, M), B (K, N), C on _gemm.build_matmul_wg
    (split-K per config.MM_SPLITK); with db, also db += A.sum(0) in the same launch(es)."""
    M, N = C.shape
    Kd = A.shape[0]
    dt = C.dtype
    bt, tt, bk, S, k_per = wg_plan(M, N, Kd)
    kern = get(_gemm.build_matmul_wg, bt, bk, tt, dt.name, config.MM_WG_MINBLOCKS)
    grid = ((N + bt - 1) // bt, (M + bt - 1) // bt, S)
    block = (bt // tt, bt // tt)
    cs = int(db is not None)
    dbv = db if db is not None else dummy(dt)
    if S == 1:
        launch(kern, (grid, block), (A, B, C, _dummy(3, dt), dbv, dummy2(dt), k_per, 0, int(accumulate), cs))
    elif config.MM_SPLITK_ATOMIC:
        if not accumulate:
            fill_zero(C)
        launch(kern, (grid, block), (A, B, C, _dummy(3, dt), dbv, dummy2(dt), k_per, 2, 1, cs))
    else:
        P = _part((S, M, N), dt)
        Pb = _part((S, M), dt) if cs else dummy2(dt)
        launch(kern, (grid, block), (A, B, C, P, dbv, Pb, k_per, 1, int(accumulate), cs))
        n = M * N + (M if cs else 0)
        launch(get(_gemm.build_splitk_reduce, dt.name), stride_grid(n),
                  (P.reshape(S, M * N), C.reshape(M * N), Pb, dbv, int(accumulate), cs))


def matmul_wgrad(A, B, C, db=None):
    """The weight and bias gradients of a layer over all rows: C += A.T @ B; db += A.sum(0)."""
    if _wg_ok(A, B, C):
        fused = db is not None and db.is_c_contiguous()   # bias sums inside the product: one launch less
        matmul_wg(A, B, C, db if fused else None)
        if db is not None and not fused:
            colsum(A, db)
        return
    matmul(A, B, C, ta=True, accumulate=True)
    if db is not None:
        colsum(A, db)


def colsum(A, out, accumulate=True):
    """out (+)= A.sum(0) for A (N, C)."""
    C = A.shape[1]
    if C:
        R = config.COLSUM_ROWS
        launch(get(build_colsum, R, A.dtype.name), ((C + WARP - 1) // WARP, (WARP, R)), (A, out, int(accumulate)))


# ---- the backend convention ----------------------------------------------------------------------
def project_onehot(W_ih, b_ih, x, out):
    """out[t, b] = W_ih[:, x[t, b]] + b_ih."""
    T, B, GH = out.shape
    o = out.reshape(T * B, GH)
    launch(k_project_onehot, stride_grid(o.size), (W_ih, b_ih, x.reshape(T * B), o,))


def onehot_input(W_ih, b_ih, x, out):
    """The input projection of a one-hot layer as the recurrent forward takes it: out, written by
    project_onehot."""
    project_onehot(W_ih, b_ih, x, out)
    return out


def project_onehot_backward(dout, x, dW_ih, db_ih):
    T, B, GH = dout.shape
    flat = dout.reshape(T * B, GH)
    V = dW_ih.shape[1]
    smem = V * WARP * flat.dtype.itemsize
    if smem <= config.SMEM_DEFAULT and dW_ih.is_c_contiguous():
        R = config.COLSUM_ROWS
        launch(get(build_onehot_scatter, R, flat.dtype.name), ((GH + WARP - 1) // WARP, (WARP, R)),
               (flat, x.reshape(T * B), dW_ih), smem)
    else:
        launch(k_project_onehot_backward, stride_grid(flat.size), (flat, x.reshape(T * B), dW_ih,))
    colsum(flat, db_ih)


def linear(x, W, b, out):
    """out = x @ W.T + b for x (N, I), W (O, I)."""
    matmul(x, W, out, bias=b, tb=True)


def linear_backward(dout, x, W, dx, dW, db):
    """Accumulate dW += dout.T @ x, db += dout.sum(0); write dx = dout @ W unless dx is None."""
    matmul_wgrad(dout, x, dW, db)
    if dx is not None:
        matmul(dout, W, dx)


def lookup(E, x, out):
    T, B, D = out.shape
    o = out.reshape(T * B, D)
    launch(k_lookup, stride_grid(o.size), (E, x.reshape(T * B), o,))


def lookup_backward(dout, x, dE):
    T, B, D = dout.shape
    flat = dout.reshape(T * B, D)
    launch(k_lookup_backward, stride_grid(flat.size), (flat, x.reshape(T * B), dE,))


# ---- reductions --------------------------------------------------------------------------------
_RED = {}


def _partials(n, dtype):
    key = (n, np.dtype(dtype).str)
    buf = _RED.get(key)
    if buf is None:
        buf = _RED[key] = cuda.device_array(n, np.dtype(dtype))
    return buf


def reduce_to(x, out, square=False):
    """out[0] = sum(x) (or sum(x * x)) over a flat array, on the device (two passes), accumulated
    in out's dtype."""
    nt = config.REDUCE_THREADS
    kern = get(build_reduce, nt, out.dtype.name)
    x = _flat(x)
    nb = max(1, min(config.REDUCE_MAX_BLOCKS, (x.size + nt - 1) // nt))
    if nb == 1:
        launch(kern, (1, nt), (x, out, int(square)))
        return
    part = _partials(nb, out.dtype)
    launch(kern, (nb, nt), (x, part, int(square)))
    launch(kern, (1, nt), (part, out, 0))


def total(x, square=False, acc=None):
    """sum(x) (or sum(x * x)) as a Python float: one scalar comes back to the host. acc: the
    accumulation dtype (default: x's)."""
    acc = np.dtype(acc or x.dtype)
    key = ("scalar", acc.str)
    out = _RED.get(key)
    if out is None:
        out = _RED[key] = cuda.device_array(1, acc)
    if x.size == 0:
        return 0.0
    reduce_to(x, out, square)
    return float(out.copy_to_host()[0])
