"""Weight-gradient products dW += D.T @ X for a wide D (rows over config.TN_MAX_BYTES): the recurrent
layers' dW_hh and dW_ih from H = 256 on (D = the gate gradients, T*B x G*H).

OpenBLAS computes a transposed (TN) product by packing D.T. _tn.py reads D.T in place, which serves
a narrow D only: the wide rows of D lie G*H*4 bytes apart, so the kc lines a tile reads per block
alias in the caches. Here D.T is made block by block (kc rows of D by mc of its columns, transposed
in registers, w x w elements at a time: ``_transpose_block``) into the row layout the register
tiles of _gemm.py read at their full rate (the C-callable ``_gemm.mm``, with its next-panel
prefetch), and X is packed into panels of NR columns kc rows at a time as in _tn.py. The loops
follow GotoBLAS: for each block of kc rows of D and X, X's panels (kc x NR each) are made once; for
each block of mc columns of D its transpose (mc x kc, in L2) meets every panel (in L1). Block sizes
(config.KC, config.MC) and the rates against OpenBLAS: docs/performance.md, "Weight-gradient
products".
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import config
from ._blas import consts
from ._gemm import mm
from ._jit import jit
from ._tn import _copy_line, split_k_finish

def _shuffle_masks(w):
    """Shuffles that transpose w rows of w lanes: two unpack stages and a final one (w = 8: the
    unpacklo/hi, shufps and vperm2f128 steps of the usual AVX 8 x 8 transpose; w = 4: two)."""
    if w == 8:
        lo = [0, 8, 1, 9, 4, 12, 5, 13]
        hi = [2, 10, 3, 11, 6, 14, 7, 15]
        s_lo = [0, 1, 8, 9, 4, 5, 12, 13]
        s_hi = [2, 3, 10, 11, 6, 7, 14, 15]
        p_lo = [0, 1, 2, 3, 8, 9, 10, 11]
        p_hi = [4, 5, 6, 7, 12, 13, 14, 15]
        return lo, hi, s_lo, s_hi, p_lo, p_hi
    return [0, 4, 2, 6], [1, 5, 3, 7], None, None, [0, 1, 4, 5], [2, 3, 6, 7]


@intrinsic
def _transpose_block(typingctx, like, src, lds, dst, ldd, sums):
    """dst[c, r] = src[r, c] for a w x w block (w = 32 bytes / itemsize), byte addresses src, dst,
    row strides lds, ldd in elements, and sums[c] += the sum of src[:, c] (the bias gradient, while
    the rows are in registers); like: an array of the dtype."""
    def codegen(context, builder, sig, args):
        dt = sig.args[0].dtype
        isz = dt.bitwidth // 8
        w = 32 // isz
        fty = context.get_value_type(dt)
        vty = ir.VectorType(fty, w)
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        cast = [context.cast(builder, a, t, types.int64) for a, t in zip(args[1:], sig.args[1:])]
        s_, lds_, d_, ldd_, sm_ = cast
        row_bytes = [builder.mul(lds_, ir.Constant(i64, isz)), builder.mul(ldd_, ir.Constant(i64, isz))]

        def ptr(base, r, which):
            a = builder.add(base, builder.mul(row_bytes[which], ir.Constant(i64, r)))
            return builder.inttoptr(a, vty.as_pointer())

        def shuf(a, b, m):
            return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(i32, w), m))

        rows = [builder.load(ptr(s_, r, 0), align=isz) for r in range(w)]
        tot = [builder.fadd(rows[r], rows[r + 1]) for r in range(0, w, 2)]
        while len(tot) > 1:
            tot = [builder.fadd(tot[r], tot[r + 1]) for r in range(0, len(tot), 2)]
        sp = builder.inttoptr(sm_, vty.as_pointer())
        builder.store(builder.fadd(builder.load(sp, align=isz), tot[0]), sp, align=isz)
        lo, hi, s_lo, s_hi, p_lo, p_hi = _shuffle_masks(w)
        t = []
        for r in range(0, w, 2):
            t += [shuf(rows[r], rows[r + 1], lo), shuf(rows[r], rows[r + 1], hi)]
        if w == 8:      # t0 t1 | t2 t3 | t4 t5 | t6 t7 -> u0..u3 (rows 0-3), u4..u7 (rows 4-7)
            u = []
            for b in (0, 4):
                u += [shuf(t[b], t[b + 2], s_lo), shuf(t[b], t[b + 2], s_hi),
                      shuf(t[b + 1], t[b + 3], s_lo), shuf(t[b + 1], t[b + 3], s_hi)]
            out = [shuf(u[c], u[c + 4], p_lo) for c in range(4)] + [shuf(u[c], u[c + 4], p_hi) for c in range(4)]
        else:           # t0 = cols 0, 2 of rows 0-1; t1 = cols 1, 3; t2, t3 the same of rows 2-3
            out = [shuf(t[0], t[2], p_lo), shuf(t[1], t[3], p_lo), shuf(t[0], t[2], p_hi), shuf(t[1], t[3], p_hi)]
        for c in range(w):
            builder.store(out[c], ptr(d_, c, 1), align=isz)
        return context.get_dummy_value()
    return types.void(like, src, lds, dst, ldd, sums), codegen


@jit
def _transpose(d2, k0, kk, i0, m, A, lda, sums):
    """A[r * lda + q] = d2[k0 + q, i0 + r] for q < kk, r < m, and sums[i0 + r] += the sum of those
    d2[k0 + q, i0 + r]: w x w blocks in registers, the edges element by element. The bias gradient
    is summed here because this is the one pass that reads d2 (from memory: 26 MB per thread at
    LSTM H = 512, B = 64, T = 100); a pass of its own read d2 a second time."""
    isz = d2.itemsize
    w = 32 // isz
    O = d2.shape[1]
    pd, pa, ps = d2.ctypes.data, A.ctypes.data, sums.ctypes.data
    kq = kk - kk % w
    mq = m - m % w
    for q in range(0, kq, w):           # w rows of d2 at a time, each read along its length
        for r in range(0, mq, w):
            _transpose_block(A, pd + ((k0 + q) * O + i0 + r) * isz, O, pa + (r * lda + q) * isz, lda,
                             ps + (i0 + r) * isz)
    for q in range(kq, kk):
        src = d2[k0 + q]
        for r in range(mq):
            A[r * lda + q] = src[i0 + r]
            sums[i0 + r] += src[i0 + r]
    for q in range(kk):
        src = d2[k0 + q]
        for r in range(mq, m):
            A[r * lda + q] = src[i0 + r]
            sums[i0 + r] += src[i0 + r]


@jit
def wgrad_wide(d2, x2, dW, db, tmp, tdb, n0, n1, k, r0, r1, bar, nth, by_rows, kc=config.KC, mc=config.MC):
    """Thread k of dW += d2.T @ x2, db += d2.sum(0) for a wide d2. Split over the N rows (by_rows
    False, as _tn.wgrad_split: rows n0:n1 of d2 into dW (k = 0) or tmp[k - 1] (overwritten), then
    the partial sums added, rows r0:r1, after a barrier) or over the output rows (by_rows True:
    rows r0:r1 of dW and db over all N, no barrier). d2 (N, O), x2 (N, I), dW (O, I), C-contiguous."""
    N, O = d2.shape
    I = x2.shape[1]
    isz = d2.itemsize
    nr = 64 // isz
    npan = (I + nr - 1) // nr
    ab = consts(d2)
    if by_rows:
        n0, n1, o0, o1, dst, sums = 0, N, r0, r1, dW, db
    else:
        o0, o1 = 0, O
        dst = dW if k == 0 else tmp[k - 1]
        sums = tdb[k]
        for o in range(O):
            sums[o] = 0
        if k > 0 and n1 <= n0:           # else the first block of rows overwrites tmp[k - 1]
            for o in range(O):
                for i in range(I):
                    dst[o, i] = 0
    P = np.empty(kc * npan * nr + nr, d2.dtype)
    A = np.empty(mc * kc + nr, d2.dtype)
    scratch = np.empty(6 * nr, d2.dtype)
    pp = P.ctypes.data + (-P.ctypes.data % 64)     # panels on a line
    a0 = (-A.ctypes.data % 64) // isz
    pw, px = dst.ctypes.data, x2.ctypes.data
    for k0 in range(n0, n1, kc):
        kk = min(kc, n1 - k0)
        for kq in range(kk):                       # X[k0:k0+kk] into panels of NR columns
            xrow = px + (k0 + kq) * I * isz
            for jp in range(npan):
                _copy_line(pp + (jp * kk + kq) * 64, xrow + jp * 64, min(nr, I - jp * nr) * isz)
        for i0 in range(o0, o1, mc):
            m = min(mc, o1 - i0)
            At = A[a0:]
            _transpose(d2, k0, kk, i0, m, At, kk, sums)
            mm(ab, m, kk, At.ctypes.data, kk, pp, kk * nr, 0, I, pw + i0 * I * isz, I, k0 > n0 or k == 0 or by_rows,
               scratch)
    P[0] = 0                # P lives to here: numba frees an array after its last use
    if not by_rows:
        split_k_finish(d2, dW, db, tmp, tdb, n0, n1, k, r0, r1, bar, nth, False)
