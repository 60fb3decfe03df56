"""Non-recurrent pieces on the GPU: array helpers, one-hot projection, embedding, linear layers,
and the tiled product every other module uses. Arrays are numba device arrays."""
import numpy as np
from numba import cuda

from . import config
from . import kernels as K
from ..ref.ops import mask_args


def _grid(n):
    t = config.THREADS
    return max(1, min(config.MAX_BLOCKS, (n + t - 1) // t)), t


def _flat(a):
    return a.reshape(a.size) if a.ndim != 1 else a


_DUMMY = {}


def dummy(dtype):
    """A 1-element device array standing in for an absent optional argument."""
    key = np.dtype(dtype).str
    d = _DUMMY.get(key)
    if d is None:
        d = _DUMMY[key] = cuda.to_device(np.zeros(1, dtype))
    return d


def dummy2(dtype):
    key = "2" + np.dtype(dtype).str
    d = _DUMMY.get(key)
    if d is None:
        d = _DUMMY[key] = cuda.to_device(np.zeros((1, 1), dtype))
    return d


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
        K.launch(K.k_fill, _grid(a.size), (_flat(a), 0.0,))


def fill(a, v):
    if a.size:
        K.launch(K.k_fill, _grid(a.size), (_flat(a), float(v),))


def copy(src, dst):
    if dst.size:
        K.launch(K.k_copy, _grid(dst.size), (_flat(src), _flat(dst),))


def copy_new(a):
    out = cuda.device_array(a.shape, a.dtype)
    copy(a, out)
    return out


def mul(a, b, out):
    if out.size:
        K.launch(K.k_mul, _grid(out.size), (_flat(a), _flat(b), _flat(out),))


def dropout_mask(key, keep, out):
    """The dropout mask of ref.ops.dropout_mask (the same elements), computed on the device."""
    if out.size:
        K.launch(K.k_dropout_mask, _grid(out.size), mask_args(key, keep, out.dtype) + (_flat(out),))


def clip_all(x, lo, hi):
    if x.size:
        K.launch(K.k_clip, _grid(x.size), (_flat(x), float(lo), float(hi),))


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
        kern = K.get(K.build_matmul_rt, bt, bk, tt, C.dtype.name)
        grid = ((N + bt - 1) // bt, (M + bt - 1) // bt)
        K.launch(kern, (grid, (bt // tt, bt // tt)), (A, B, C, dummy(C.dtype) if bias is None else bias, int(ta),
                                                      int(tb), int(accumulate), int(bias is not None)))
        return
    tile = config.TILE
    kern = K.get(K.build_matmul, tile, C.dtype.name)
    grid = ((N + tile - 1) // tile, (M + tile - 1) // tile)
    K.launch(kern, (grid, (tile, tile)), (A, B, C, dummy(C.dtype) if bias is None else bias, int(ta), int(tb),
                                          int(accumulate), int(bias is not None)))


_SMS = []


def _sms():
    if config.MM_SMS:
        return config.MM_SMS
    if not _SMS:
        try:
            _SMS.append(int(cuda.get_current_device().MULTIPROCESSOR_COUNT))
        except Exception:  # noqa: BLE001 - simulator
            _SMS.append(132)
    return _SMS[0]


def _dummy3(dtype):
    key = "3" + np.dtype(dtype).str
    d = _DUMMY.get(key)
    if d is None:
        d = _DUMMY[key] = cuda.to_device(np.zeros((1, 1, 1), dtype))
    return d


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
        if len(_PART) >= 16:
            _PART.clear()
        buf = _PART[key] = cuda.device_array(shape, np.dtype(dtype))
    return buf


def _wg_ok(A, B, C):
    return (config.MM_WG and C.shape[0] and C.shape[1] and A.shape[0] and A.is_c_contiguous()
            and B.is_c_contiguous() and C.is_c_contiguous())


def matmul_wg(A, B, C, db=None, accumulate=True):
    """C (M, N) [+]= A.T @ B for C-contiguous A (K, M), B (K, N), C on kernels.build_matmul_wg
    (split-K per config.MM_SPLITK); with db, also db += A.sum(0) in the same launch(es)."""
    M, N = C.shape
    Kd = A.shape[0]
    dt = C.dtype
    bt, tt, bk, S, k_per = wg_plan(M, N, Kd)
    kern = K.get(K.build_matmul_wg, bt, bk, tt, dt.name, config.MM_WG_MINBLOCKS)
    grid = ((N + bt - 1) // bt, (M + bt - 1) // bt, S)
    block = (bt // tt, bt // tt)
    cs = int(db is not None)
    dbv = db if db is not None else dummy(dt)
    if S == 1:
        K.launch(kern, (grid, block), (A, B, C, _dummy3(dt), dbv, dummy2(dt), k_per, 0, int(accumulate), cs))
    elif config.MM_SPLITK_ATOMIC:
        if not accumulate:
            fill_zero(C)
        K.launch(kern, (grid, block), (A, B, C, _dummy3(dt), dbv, dummy2(dt), k_per, 2, 1, cs))
    else:
        P = _part((S, M, N), dt)
        Pb = _part((S, M), dt) if cs else dummy2(dt)
        K.launch(kern, (grid, block), (A, B, C, P, dbv, Pb, k_per, 1, int(accumulate), cs))
        n = M * N + (M if cs else 0)
        K.launch(K.get(K.build_splitk_reduce, dt.name), _grid(n),
                  (P.reshape(S, M * N), C.reshape(M * N), Pb, dbv, int(accumulate), cs))


def matmul_wgrad(A, B, C, db=None):
    """The weight and bias gradients of a layer over all rows: C += A.T @ B; db += A.sum(0)."""
    if _wg_ok(A, B, C):
        matmul_wg(A, B, C, db if config.MM_FUSE_COLSUM and db is not None and db.is_c_contiguous() else None)
        if db is not None and not (config.MM_FUSE_COLSUM and db.is_c_contiguous()):
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
        K.launch(K.get(K.build_colsum, R, A.dtype.name), ((C + 31) // 32, (32, R)), (A, out, int(accumulate)))


# ---- the backend convention ----------------------------------------------------------------------
def project_onehot(W_ih, b_ih, x, out):
    """out[t, b] = W_ih[:, x[t, b]] + b_ih."""
    T, B, GH = out.shape
    o = out.reshape(T * B, GH)
    K.launch(K.k_project_onehot, _grid(o.size), (W_ih, b_ih, x.reshape(T * B), o,))


def onehot_input(W_ih, b_ih, x, out):
    """The input projection of a one-hot layer as the recurrent forward takes it: out, written by
    project_onehot."""
    project_onehot(W_ih, b_ih, x, out)
    return out


def project_onehot_backward(dout, x, dW_ih, db_ih):
    T, B, GH = dout.shape
    flat = dout.reshape(T * B, GH)
    V = dW_ih.shape[1]
    smem = V * 32 * flat.dtype.itemsize
    if smem <= 48 * 1024 and dW_ih.is_c_contiguous():
        R = config.COLSUM_ROWS
        fuse = bool(config.ONEHOT_FUSE_BIAS and db_ih.is_c_contiguous())
        K.launch(K.get(K.build_onehot_scatter, R, flat.dtype.name), ((GH + 31) // 32, (32, R)),
                 (flat, x.reshape(T * B), dW_ih, db_ih if fuse else dummy(flat.dtype), int(fuse)), smem)
        if fuse:
            return
    else:
        K.launch(K.k_project_onehot_backward, _grid(flat.size), (flat, x.reshape(T * B), dW_ih,))
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
    K.launch(K.k_lookup, _grid(o.size), (E, x.reshape(T * B), o,))


def lookup_backward(dout, x, dE):
    T, B, D = dout.shape
    flat = dout.reshape(T * B, D)
    K.launch(K.k_lookup_backward, _grid(flat.size), (flat, x.reshape(T * B), dE,))


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
    kern = K.get(K.build_reduce, nt, out.dtype.name)
    x = _flat(x)
    nb = max(1, min(1024, (x.size + nt - 1) // nt))
    if nb == 1:
        K.launch(kern, (1, nt), (x, out, int(square)))
        return
    part = _partials(nb, out.dtype)
    K.launch(kern, (nb, nt), (x, part, int(square)))
    K.launch(kern, (1, nt), (part, out, 0))


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
