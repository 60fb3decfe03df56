"""Products with few rows against pre-packed weights: the per-step recurrent products.

OpenBLAS repacks both operands on every call. For a time step's product (16-64 rows of h against
all of W_hh) that repacking of W, T times per sequence, is what held it back (docs/performance.md,
"Packed products"). Here W is packed once per call of a forward or backward (``pack_rows`` /
``pack_cols``) into panels of NR columns (NR = two 256-bit vectors: 16 float32 or 8 float64), each
panel K x NR contiguous, zero-padded to whole panels; ``mm`` then runs register tiles of 1 to 6
rows x NR columns over K (``_make_tile``: LLVM IR with explicit vectors and fused multiply-adds,
kept in registers), reading each panel once per tile of rows of A. Rows are split (``_next_rows``)
into tiles of 6 and 5 rows (12 and 10 accumulators) and at most one smaller tile; tiles of 1 to 3
rows (generation, remainders) keep 4 or 2 independent accumulator sets over K, so the fused
multiply-adds do not wait on each other; a tile of 4 rows (one set) only when 4 rows are all. The
tiles of 5 and 6 rows also prefetch the next panel into L2, each its share, so a W that does not
fit the caches streams from memory during all of a panel's tiles instead of the first.

Addresses are byte addresses (``arr.ctypes.data + offset``) as for rgemm in _blas.py; ``ab`` is
``consts()`` of the dtype and carries it.
"""
import numpy as np
from llvmlite import binding as _ll
from llvmlite import ir
from numba import carray
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import _threads, config
from ._jit import cfunc, jit
from .config import NT2_COLS, PREFETCH, PREFETCH_SMALL

MAX_ROWS = 6

# Explicit signatures for the products (compiled once per dtype, eagerly): callers pass literal
# gate ranges and flags, which would otherwise compile one copy of the whole chain per
# combination (3 copies of gates_nt for the GRU alone).
_i = types.intp
_b = types.boolean


def _sigs(*args):
    """One signature per dtype; 'v' stands for a 1-D array of it, 'w' for a 2-D one."""
    out = []
    for dt in (types.float32, types.float64):
        conv = {"v": types.Array(dt, 1, "C"), "w": types.Array(dt, 2, "C")}
        out.append(types.void(*[conv.get(a, a) for a in args]))
    return out


def _vec_consts(dt):
    isz = dt.bitwidth // 8
    w = 32 // isz
    return isz, w, 2 * w


def nr_of(dtype):
    """Columns of one panel for a numpy dtype."""
    return 2 * (32 // np.dtype(dtype).itemsize)


def _make_tile(mr, accumulate, strided=False):
    """The register tile of mr rows: tile(ab, pa, lda, pp, pc, ldc, K, pf, pfs) with A[r, k] at
    pa + r lda + k. Tiles of 5 and 6 rows also prefetch into L2, every other step k, the byte
    address pf + k pfs: the caller's share of the next panel (see _mm). strided: tile(ab, pa, lda,
    ak, pp, pc, ldc, K) with A[r, k] at pa + r lda + k ak (elements), so A may be the transpose of
    a row-major array (lda = 1, ak its row length; see _tn.py); no next-panel prefetch."""
    ku = 4 if mr == 1 else (2 if mr <= 3 else 1)   # 8-12 independent accumulators
    names = ("pa", "lda", "ak", "pp", "pc", "ldc", "K") if strided else ("pa", "lda", "pp", "pc", "ldc", "K",
                                                                         "pf", "pfs")

    def codegen(context, builder, sig, args):
        dt = sig.args[0].dtype
        arg = {n: context.cast(builder, v, t, types.int64) for n, v, t in zip(names, args[1:], sig.args[1:])}
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        isz, w, nr = _vec_consts(dt)
        fty = context.get_value_type(dt)
        vty = ir.VectorType(fty, w)
        vp = vty.as_pointer()
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty, vty, vty]), "llvm.fma.v%df%d" % (w, dt.bitwidth))
        lda_, ldc_, K_ = arg["lda"], arg["ldc"], arg["K"]
        a = builder.inttoptr(arg["pa"], fty.as_pointer())
        p = builder.inttoptr(arg["pp"], fty.as_pointer())
        c = builder.inttoptr(arg["pc"], fty.as_pointer())
        zero = ir.Constant(vty, [ir.Constant(fty, 0.0)] * w)
        undef = ir.Constant(vty, ir.Undefined)
        splat = ir.Constant(ir.VectorType(i32, w), [0] * w)

        def cptr(r, v):
            return builder.bitcast(builder.gep(c, [builder.add(builder.mul(ldc_, ir.Constant(i64, r)),
                                                               ir.Constant(i64, v * w))]), vp)

        acc = [[[cgutils.alloca_once(builder, vty) for _ in range(2)] for _ in range(mr)] for _ in range(ku)]
        for u in range(ku):
            for r in range(mr):
                for v in range(2):
                    init = builder.load(cptr(r, v), align=isz) if (accumulate and u == 0) else zero
                    builder.store(init, acc[u][r][v])

        i8p = ir.IntType(8).as_pointer()
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")

        def step(k, u, first=False):
            pk = builder.gep(p, [builder.mul(k, ir.Constant(i64, nr))])
            if PREFETCH:
                dist = PREFETCH_SMALL if mr <= 4 and not strided else PREFETCH
                ahead = builder.bitcast(builder.gep(pk, [ir.Constant(i64, dist * nr)]), i8p)
                builder.call(prefetch, [ahead, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
            if first and not strided and mr >= 5:
                nxt = builder.add(arg["pf"], builder.mul(k, arg["pfs"]))
                builder.call(prefetch, [builder.inttoptr(nxt, i8p), ir.Constant(i32, 0), ir.Constant(i32, 2),
                                        ir.Constant(i32, 1)])
            wv = [builder.load(builder.bitcast(builder.gep(pk, [ir.Constant(i64, v * w)]), vp), align=isz)
                  for v in range(2)]
            kq = builder.mul(k, arg["ak"]) if strided else k
            for r in range(mr):
                s = builder.load(builder.gep(a, [builder.add(builder.mul(lda_, ir.Constant(i64, r)), kq)]))
                b = builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(i32, 0)), undef, splat)
                for v in range(2):
                    builder.store(builder.call(fma, [b, wv[v], builder.load(acc[u % ku][r][v])]),
                                  acc[u % ku][r][v])

        # un k steps per iteration: the 5 and 6 row tiles (not strided) take two (one accumulator
        # set), so the loop's own instructions and the next-panel prefetch are paid every other step
        un = 2 if mr >= 5 and not strided else ku
        kmain = builder.sdiv(K_, ir.Constant(i64, un))
        with cgutils.for_range(builder, kmain) as loop:
            base = builder.mul(loop.index, ir.Constant(i64, un))
            for u in range(un):
                step(builder.add(base, ir.Constant(i64, u)) if u else base, u, u == 0)
        ktail = builder.mul(kmain, ir.Constant(i64, un))
        with cgutils.for_range_slice(builder, ktail, K_, ir.Constant(i64, 1)) as (k, _):
            step(k, 0)
        for r in range(mr):
            for v in range(2):
                tot = builder.load(acc[0][r][v])
                for u in range(1, ku):
                    tot = builder.fadd(tot, builder.load(acc[u][r][v]))
                builder.store(tot, cptr(r, v), align=isz)
        return context.get_dummy_value()

    if strided:
        @intrinsic
        def tile(typingctx, ab, pa, lda, ak, pp, pc, ldc, K):
            return types.void(ab, pa, lda, ak, pp, pc, ldc, K), codegen
    else:
        @intrinsic
        def tile(typingctx, ab, pa, lda, pp, pc, ldc, K, pf, pfs):
            return types.void(ab, pa, lda, pp, pc, ldc, K, pf, pfs), codegen
    return tile


_t6a, _t5a, _t4a, _t3a, _t2a, _t1a = (_make_tile(m, True) for m in (6, 5, 4, 3, 2, 1))
_t6z, _t5z, _t4z, _t3z, _t2z, _t1z = (_make_tile(m, False) for m in (6, 5, 4, 3, 2, 1))


@jit(_sigs("v", _i, _b, _i, _i, _i, _i, _i, _i, _i, _i))
def _rows(ab, mr, accumulate, pa, lda, pp, pc, ldc, K, pf, pfs):
    if accumulate:
        if mr == 6:
            _t6a(ab, pa, lda, pp, pc, ldc, K, pf, pfs)
        elif mr == 5:
            _t5a(ab, pa, lda, pp, pc, ldc, K, pf, pfs)
        elif mr == 4:
            _t4a(ab, pa, lda, pp, pc, ldc, K, pf, pfs)
        elif mr == 3:
            _t3a(ab, pa, lda, pp, pc, ldc, K, pf, pfs)
        elif mr == 2:
            _t2a(ab, pa, lda, pp, pc, ldc, K, pf, pfs)
        else:
            _t1a(ab, pa, lda, pp, pc, ldc, K, pf, pfs)
    else:
        if mr == 6:
            _t6z(ab, pa, lda, pp, pc, ldc, K, pf, pfs)
        elif mr == 5:
            _t5z(ab, pa, lda, pp, pc, ldc, K, pf, pfs)
        elif mr == 4:
            _t4z(ab, pa, lda, pp, pc, ldc, K, pf, pfs)
        elif mr == 3:
            _t3z(ab, pa, lda, pp, pc, ldc, K, pf, pfs)
        elif mr == 2:
            _t2z(ab, pa, lda, pp, pc, ldc, K, pf, pfs)
        else:
            _t1z(ab, pa, lda, pp, pc, ldc, K, pf, pfs)


@jit
def _sixes_fives(x):
    """Whether x rows split into tiles of 6 and 5 rows exactly."""
    return x == 0 or x >= 20 or x % 5 == 0 or x % 6 == 0 or x == 11 or x == 16 or x == 17


@jit
def _next_rows(left):
    """Rows of the next tile: up to 6 rows, one tile; then 6 or 5 (10-12 accumulators: the FMAs
    never wait) while the rest still splits into 6s and 5s; else (7, 8, 9, 13, 14, 19 rows) 6s and
    5s that end in a tile of 2 or 3 rows, never 4 + 4 or 4 + 5: a 4-row tile keeps one accumulator
    set (8 accumulators, each waiting on the FMA's latency) and costs nearly what a 5-row tile does
    (docs/performance.md, "Packed products"). Four rows alone stay one tile."""
    if left <= MAX_ROWS:
        return left
    if _sixes_fives(left - 6):
        return 6
    if _sixes_fives(left - 5):
        return 5
    return 5 if left <= 8 else 6


@intrinsic
def _load(typingctx, like, addr, q):
    """The element q of the dtype of `like` at byte address addr."""
    dt = like.dtype

    def codegen(context, builder, sig, args):
        fty = context.get_value_type(dt)
        ptr = builder.inttoptr(context.cast(builder, args[1], sig.args[1], types.int64), fty.as_pointer())
        return builder.load(builder.gep(ptr, [context.cast(builder, args[2], sig.args[2], types.int64)]))
    return dt(like, addr, q), codegen


@intrinsic
def _store(typingctx, like, addr, q, val):
    """Store val (the dtype of `like`) as element q at byte address addr."""
    dt = like.dtype

    def codegen(context, builder, sig, args):
        fty = context.get_value_type(dt)
        ptr = builder.inttoptr(context.cast(builder, args[1], sig.args[1], types.int64), fty.as_pointer())
        v = context.cast(builder, args[3], sig.args[3], dt)
        builder.store(v, builder.gep(ptr, [context.cast(builder, args[2], sig.args[2], types.int64)]))
        return context.get_dummy_value()
    return types.void(like, addr, q, val), codegen


@jit
def _mm(ab, M, K, pa, lda, pp, pstride, c0, c1, pc, ldc, accumulate, scratch):
    """The body of mm (see there), compiled once per dtype into a C-callable function below."""
    isz = scratch.itemsize
    nr = 64 // isz
    for jp in range(c0 // nr, (c1 + nr - 1) // nr):
        lo = max(c0, jp * nr)
        hi = min(c1, jp * nr + nr)
        ppj = pp + jp * pstride * isz
        # The next panel, prefetched while this one is read: each tile of rows takes its share
        # (rows i:i+mr of M: bytes i/M ... (i+mr)/M of the panel, spread over its K steps). The
        # first tile over a panel would read it from memory at the rate it computes, the others
        # from L2 (docs/performance.md, "Packed products"). Past the last panel it prefetches
        # whatever follows (a prefetch never faults).
        nxt = ppj + pstride * isz
        i = 0
        while i < M:
            mr = _next_rows(M - i)
            pf = nxt + (i * K * nr * isz) // M
            pfs = (mr * nr * isz) // M
            if hi - lo == nr:
                _rows(ab, mr, accumulate, pa + i * lda * isz, lda, ppj, pc + (i * ldc + lo) * isz, ldc, K, pf, pfs)
            else:
                for r in range(mr):
                    crow = pc + (i + r) * ldc * isz
                    for q in range(nr):
                        scratch[r * nr + q] = 0
                    if accumulate:
                        for j in range(lo, hi):
                            scratch[r * nr + j - jp * nr] = _load(scratch, crow, j)
                _rows(ab, mr, True, pa + i * lda * isz, lda, ppj, scratch.ctypes.data, nr, K, pf, pfs)
                for r in range(mr):
                    crow = pc + (i + r) * ldc * isz
                    for j in range(lo, hi):
                        _store(scratch, crow, j, scratch[r * nr + j - jp * nr])
            i += mr


# numba optimises a kernel together with everything it calls, so every kernel that called the
# tiles directly compiled them again (0.35 s per kernel and dtype: a trivial wrapper of mm took
# 0.38 s). The product is therefore compiled once per dtype as a C-callable function, registered
# with LLVM under a fixed name (as the BLAS symbols in _blas.py), and called through that name
# (_call_mm): an opaque call once per product, nothing to inline. Both are registered when this
# module is imported, before any kernel that calls them is compiled or loaded from the cache.
_MM_CSIG = types.void(*([types.intp] * 11 + [types.voidptr]))


def _mm_c32(M, K, pa, lda, pp, pstride, c0, c1, pc, ldc, accumulate, ps):
    s = carray(ps, (MAX_ROWS * 16,), np.float32)
    _mm(s, M, K, pa, lda, pp, pstride, c0, c1, pc, ldc, accumulate != 0, s)


def _mm_c64(M, K, pa, lda, pp, pstride, c0, c1, pc, ldc, accumulate, ps):
    s = carray(ps, (MAX_ROWS * 8,), np.float64)
    _mm(s, M, K, pa, lda, pp, pstride, c0, c1, pc, ldc, accumulate != 0, s)


_MM_C = {}


def _register_mm(dtype_name):
    """Compile (or load) the C-callable product for a dtype and register its name with LLVM."""
    f = cfunc(_MM_CSIG)(_mm_c32 if dtype_name == "f32" else _mm_c64)
    _ll.add_symbol("seqlearn_mm_" + dtype_name, f.address)
    _MM_C[dtype_name] = f       # keeps it (and its address) alive


_register_mm("f32")
_register_mm("f64")


@intrinsic
def _call_mm(typingctx, ab, M, K, pa, lda, pp, pstride, c0, c1, pc, ldc, acc, ps):
    """Call the registered product of ab's dtype (integer arguments; ps: the scratch address)."""
    sig = types.void(ab, M, K, pa, lda, pp, pstride, c0, c1, pc, ldc, acc, ps)
    name = "seqlearn_mm_f32" if ab.dtype == types.float32 else "seqlearn_mm_f64"

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i64] * 11 + [i8p]), name)
        vals = [context.cast(builder, v, t, types.int64) for v, t in zip(args[1:], sig.args[1:])]
        builder.call(fn, vals[:11] + [builder.inttoptr(vals[11], i8p)])
        return context.get_dummy_value()
    return sig, codegen


@jit(_sigs("v", _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _b, "v"))
def mm(ab, M, K, pa, lda, pp, pstride, c0, c1, pc, ldc, accumulate, scratch):
    """C[:M, c0:c1] = (C +) A[:M, :K] @ Wp[:, c0:c1]: Wp the packed panels at pp (panel jp holds
    columns jp NR ... jp NR + NR - 1, K x NR, panels pstride elements apart). A at pa, row stride
    lda; C at pc (its column 0), row stride ldc (elements). Panels that c0:c1 covers only in part go
    through scratch (MAX_ROWS x NR elements of the dtype)."""
    _call_mm(ab, M, K, pa, lda, pp, pstride, c0, c1, pc, ldc, 1 if accumulate else 0, scratch.ctypes.data)


@jit
def pack_rows(W, r0, n, P, p0, jp0, jp1):
    """Panels jp0:jp1 for C = A @ W[r0:r0+n].T: P[p0 + (jp K + k) NR + c] = W[r0 + jp NR + c, k],
    rows past r0+n zero. W (R, K) C-contiguous."""
    K = W.shape[1]
    nr = 64 // P.itemsize
    for jp in range(jp0, jp1):
        base = p0 + jp * K * nr
        w = min(nr, n - jp * nr)
        rb = r0 + jp * nr
        for k0 in range(0, K, 16):
            k1 = min(K, k0 + 16)
            for c in range(w):
                wr = W[rb + c]
                for k in range(k0, k1):
                    P[base + k * nr + c] = wr[k]
            for c in range(w, nr):
                for k in range(k0, k1):
                    P[base + k * nr + c] = 0


@jit
def pack_cols(W, c0, n, P, p0, jp0, jp1):
    """Panels jp0:jp1 for C = A @ W[:, c0:c0+n]: P[p0 + (jp K + k) NR + c] = W[k, c0 + jp NR + c],
    columns past c0+n zero. W (K, C) C-contiguous."""
    K = W.shape[0]
    nr = 64 // P.itemsize
    for k0 in range(0, K, 32):          # 32 rows of W at a time, all panels: each row is read from
        k1 = min(K, k0 + 32)            # memory once (panel by panel over all K, every 4 KiB step
        for jp in range(jp0, jp1):      # to the next row missed the cache)
            base = p0 + jp * K * nr
            w = min(nr, n - jp * nr)
            for k in range(k0, k1):
                wr = W[k]
                o = base + k * nr
                for c in range(w):
                    P[o + c] = wr[c0 + jp * nr + c]
                for c in range(w, nr):
                    P[o + c] = 0


@jit
def _pack_gates_range(W, G, P, jp0, jp1):
    H = W.shape[0] // G
    K = W.shape[1]
    nr = 64 // P.itemsize
    npan = (H + nr - 1) // nr
    for g in range(G):
        pack_rows(W, g * H, H, P, g * npan * K * nr, jp0, jp1)


def panels(n, dtype):
    """Panels that cover n columns."""
    nr = nr_of(dtype)
    return (n + nr - 1) // nr


def zeros_aligned(n, dtype, align=64):
    """A zeroed 1-D array of n elements whose data starts on an align-byte boundary. numpy's
    large arrays start 16 bytes past a page, so every 64-byte row of a panel straddled two cache
    lines and one of its two vector loads per k step was a split load."""
    isz = np.dtype(dtype).itemsize
    buf = np.zeros(n + align // isz, dtype)
    k = (-buf.ctypes.data % align) // isz
    return buf[k:k + n]


def packed_size(G, H, K, dtype):
    """Elements of the panels of G gates of H units each, over K."""
    return G * panels(H, dtype) * nr_of(dtype) * K


def panel_shares(npan, k):
    """k (jp0, jp1) ranges that split npan panels evenly (some empty when k > npan): the share each
    of k threads packs inside a kernel before they meet at a barrier."""
    return [(npan * i // k, npan * (i + 1) // k) for i in range(k)]


def _pack_chunks(npan, nbytes):
    return _threads.chunks(npan, 1) if nbytes >= config.PACK_THREADS_MIN else [(0, npan)]


def pack_gates(W, G, P):
    """P = panels of W (G H, K) for h @ W.T, gate by gate (each gate's H rows zero-padded to
    whole panels: gate g's panel jp starts at element (g npan + jp) K NR), on the worker threads."""
    npan = panels(W.shape[0] // G, W.dtype)
    _threads.run(_pack_gates_range, [(W, G, P, lo, hi) for lo, hi in _pack_chunks(npan, W.nbytes)])


def pack_units(W, P):
    """P = panels of W (K, H) for d @ W, over the H columns (panel jp starts at element jp K NR)."""
    npan = panels(W.shape[1], W.dtype)
    _threads.run(pack_cols, [(W, 0, W.shape[1], P, 0, lo, hi) for lo, hi in _pack_chunks(npan, W.nbytes)])


@jit(_sigs("v", _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, _i, "v"))
def gates_nt(ab, H, K, g0, g1, u0, u1, M, pa, lda, pp, pc, ldc, scratch):
    """C[:M, g H + u0 : g H + u1] = A[:M, :K] @ W[g H + u0 : g H + u1].T for gates g0:g1, with the
    panels of pack_gates at address pp. A at pa, C at pc (addresses of their rows' column 0), row
    strides lda, ldc."""
    isz = scratch.itemsize
    nr = 64 // isz
    npan = (H + nr - 1) // nr
    for g in range(g0, g1):
        mm(ab, M, K, pa, lda, pp + g * npan * K * nr * isz, K * nr, u0, u1, pc + g * H * isz, ldc, False, scratch)


@jit(_sigs("v", *([_i] * 16), "v"))
def gates_nt2(ab, H, K1, pa1, lda1, pp1, K2, pa2, lda2, pp2, g0, g1, u0, u1, M, pc, ldc, scratch):
    """gates_nt of two operands: C[:M, g H + u0 : g H + u1] = A1[:M, :K1] @ W1[...].T +
    A2[:M, :K2] @ W2[...].T for gates g0:g1, W1 and W2 packed by pack_gates at pp1, pp2."""
    isz = scratch.itemsize
    nr = 64 // isz
    npan = (H + nr - 1) // nr
    for g in range(g0, g1):
        for c0 in range(u0, u1, NT2_COLS):
            c1 = min(u1, c0 + NT2_COLS)
            mm(ab, M, K1, pa1, lda1, pp1 + g * npan * K1 * nr * isz, K1 * nr, c0, c1, pc + g * H * isz, ldc, False,
               scratch)
            mm(ab, M, K2, pa2, lda2, pp2 + g * npan * K2 * nr * isz, K2 * nr, c0, c1, pc + g * H * isz, ldc, True,
               scratch)


@jit(_sigs("v", _i, _i, _i, _i, _i, _i, _i, _i, "v", _i, _i, _b, "v"))
def units_nn(ab, KW, k0, K, u0, u1, M, pa, lda, Pb, pc, ldc, accumulate, scratch):
    """C[:M, u0:u1] (+)= A[:M, :K] @ W[k0:k0+K, u0:u1], with Pb from pack_units of W (KW, H).
    A at pa (its column 0 meets W's row k0), C at pc (column 0: unit 0)."""
    isz = Pb.itemsize
    nr = 64 // isz
    mm(ab, M, K, pa, lda, Pb.ctypes.data + k0 * nr * isz, KW * nr, u0, u1, pc, ldc, accumulate, scratch)
