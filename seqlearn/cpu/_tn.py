"""Weight-gradient products dW += D.T @ X for a narrow D: the recurrent layers' dW_hh at small H
(D = the gate gradients, T*B x G*H) and the head's dW (D = the logits' gradient, T*B x V).

OpenBLAS computes such a transposed (TN) product by packing D.T, a transpose of the whole of D.
Here D is not packed at all: the register tiles of _gemm.py broadcast one element of A per row
and step, and A[r, k] = D[k, r] is one such scalar load (a strided tile: lda = 1, ak = D's row
length). Only X is packed, kc rows at a time, into panels of NR columns (each X element then
serves all rows of D, the packing is a few percent of the arithmetic). While D's rows are at
most config.TN_MAX_BYTES (2 KiB: 512 float32, 256 float64), the kc x 16 block of D lines that a
panel's pass reads stays in the caches; beyond that _tn_wide's product is faster. The rates
against OpenBLAS: docs/performance.md, "Weight-gradient products".

``split_k_finish`` ends every product split over the N rows (this one's, _tn_wide's, OpenBLAS's
in wgrad.py): the partial sums of the threads added up after a barrier.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._blas import consts
from ._gemm import _make_tile, _next_rows
from ._jit import jit
from ._sync import barrier

@jit
def split_k_finish(d2, dW, db, tmp, tdb, n0, n1, k, r0, r1, bar, nth, sum_db=True):
    """The end of thread k of a weight-gradient product split over the N rows, once its partial dW
    is in dW (k = 0) or tmp[k - 1]: the bias gradient of its rows n0:n1 into tdb[k] (unless
    sum_db is False: the product summed it there already); after a barrier, rows r0:r1 of the
    partial sums added into dW, db."""
    O = d2.shape[1]
    I = dW.shape[1]
    if sum_db:
        s = tdb[k]
        for o in range(O):
            s[o] = 0
        for n in range(n0, n1):
            a = d2[n]
            for o in range(np.uint64(O)):
                s[o] += a[o]
    barrier(bar, nth, 0)
    for o in range(r0, r1):
        w = dW[o]
        for p in range(tmp.shape[0]):
            t = tmp[p, o]
            for i in range(np.uint64(I)):
                w[i] += t[i]
        for p in range(tdb.shape[0]):
            db[o] += tdb[p, o]


_s6, _s5, _s1 = (_make_tile(m, True, strided=True) for m in (6, 5, 1))


@jit
def _rows(ab, mr, pa, ak, pp, pc, ldc, K):
    """mr rows of the tile at pa (rows 1 element apart, steps ak), C rows ldc apart. Tiles of 6 and
    5 rows (every D of 5 rows or more splits into them, but 7-9, 13, 14, 19: a remainder of 2-4),
    else one row at a time (each tile variant inlined costs compile time)."""
    if mr == 6:
        _s6(ab, pa, 1, ak, pp, pc, ldc, K)
    elif mr == 5:
        _s5(ab, pa, 1, ak, pp, pc, ldc, K)
    else:
        for r in range(mr):
            _s1(ab, pa + r * ab.itemsize, 1, ak, pp, pc + r * ldc * ab.itemsize, ldc, K)


@jit
def kc_for(O, itemsize):
    """Rows of X packed at a time: the block of D a panel's pass reads stays at 64-128 KiB."""
    return 64 if O * itemsize > 1024 else 128


@intrinsic
def _copy_line(typingctx, dst, src, nbytes):
    """Copy nbytes <= 64 from byte address src to dst and zero the rest of the 64 bytes at dst
    (one panel row; a whole line is two vector moves). A plain copy loop here took 0.47 s of
    compile time (LLVM's vectoriser with its overlap checks) for the same speed."""
    def codegen(context, builder, sig, args):
        i8p = ir.IntType(8).as_pointer()
        i64 = ir.IntType(64)
        d = builder.inttoptr(context.cast(builder, args[0], sig.args[0], types.int64), i8p)
        s_ = builder.inttoptr(context.cast(builder, args[1], sig.args[1], types.int64), i8p)
        n = context.cast(builder, args[2], sig.args[2], types.int64)
        with builder.if_else(builder.icmp_signed("==", n, ir.Constant(i64, 64))) as (whole, part):
            with whole:
                cgutils.raw_memcpy(builder, d, s_, ir.Constant(i64, 64), 1)
            with part:
                cgutils.memset(builder, d, ir.Constant(i64, 64), 0)
                cgutils.raw_memcpy(builder, d, s_, n, 1)
        return context.get_dummy_value()
    return types.void(dst, src, nbytes), codegen


@jit
def wgrad_split(d2, x2, dW, db, tmp, tdb, n0, n1, k, r0, r1, bar, nth, kc):
    """Thread k of dW += d2.T @ x2, db += d2.sum(0) split over the N rows (as
    wgrad._wgrad_split_k, with the product described above): rows n0:n1 go into dW (k = 0) or into
    tmp[k - 1] (zeroed first), db's share into tdb[k]; after a barrier, rows r0:r1 of the partial
    sums are added into dW, db. d2 (N, O), x2 (N, I), dW (O, I), C-contiguous; kc: kc_for(O).
    One function (the product is not a function of its own): numba optimises a kernel together
    with what it calls, so a called product had its tiles optimised twice (0.8 s of compile)."""
    O = d2.shape[1]
    I = x2.shape[1]
    isz = d2.itemsize
    nr = 64 // isz
    npan = (I + nr - 1) // nr
    ab = consts(d2)
    P = np.empty(kc * npan * nr + nr, d2.dtype)
    scratch = np.empty(6 * nr, d2.dtype)
    dst = dW if k == 0 else tmp[k - 1]
    if k > 0:
        for o in range(O):
            for i in range(I):
                dst[o, i] = 0
    pp = P.ctypes.data + (-P.ctypes.data % 64)     # panels on a line: a split panel row cost 50%
    pd, pw, px = d2.ctypes.data, dst.ctypes.data, x2.ctypes.data
    for k0 in range(n0, n1, kc):
        kk = min(kc, n1 - k0)
        for kq in range(kk):                       # pack X[k0:k0+kk] into panels of NR columns
            xrow = px + (k0 + kq) * I * isz
            for jp in range(npan):
                _copy_line(pp + (jp * kk + kq) * 64, xrow + jp * 64, min(nr, I - jp * nr) * isz)
        for jp in range(npan):
            lo = jp * nr
            hi = min(I, lo + nr)
            pj = pp + jp * kk * 64
            i = 0
            while i < O:
                mr = _next_rows(O - i)
                pa = pd + (k0 * O + i) * isz
                full = hi - lo == nr
                pc, ldc = pw + (i * I + lo) * isz, I
                if not full:                # a partial panel: the tile's columns through scratch
                    for r in range(mr):
                        for q in range(nr):
                            scratch[r * nr + q] = dst[i + r, lo + q] if lo + q < hi else 0
                    pc, ldc = scratch.ctypes.data, nr
                _rows(ab, mr, pa, O, pj, pc, ldc, kk)     # one call site: one inlined copy of the tiles
                if not full:
                    for r in range(mr):
                        for j in range(lo, hi):
                            dst[i + r, j] = scratch[r * nr + j - lo]
                i += mr
    split_k_finish(d2, dW, db, tmp, tdb, n0, n1, k, r0, r1, bar, nth)
