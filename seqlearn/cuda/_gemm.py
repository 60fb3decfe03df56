"""The matrix products of the cuda backend: C = [C +] op(A) @ op(B) [+ bias].

Three kernels, chosen by ops.matmul / ops.matmul_wg (see docs/gpu.md, 'Other kernels on the
training step'): `build_matmul` (TILE x TILE threads, one output each, small per-step products),
`build_matmul_rt` (register tiles, any strides and transposes) and `build_matmul_wg` (weight
gradients A.T @ B of C-contiguous operands, double-buffered, split over K). All three read their
operand tiles through `tile_elem`. Operand X is "k-major" when it is stored (K, rows): A when
transposed, B when not.
"""
from numba import cuda, uint64

from ._jit import SIMULATOR, nbtype


@cuda.jit(device=True, inline=True)
def tile_elem(X, kmajor, r, k, ok, zero):
    """Element (row r, column k) of op(X) for an operand tile, zero where not ok: X[k, r] when X
    is stored k-major, else X[r, k]."""
    v = zero
    if ok:
        if kmajor:
            v = X[k, r]
        else:
            v = X[r, k]
    return v


def build_matmul(tile, dt):
    nbt = nbtype(dt)
    zero = nbt(0.0)

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
            sA[ty, tx] = tile_elem(A, ta, row, ka, row < M and ka < K, zero)
            kb = k0 + ty
            sB[ty, tx] = tile_elem(Bm, not tb, col, kb, kb < K and col < N, zero)
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
    zero = nbt(0.0)
    nth = bt // tt
    NT = nth * nth
    LD = bt + 1
    NL = (bt * bk) // NT          # tile elements each thread copies per operand
    TT2 = tt * tt
    SZ = bk * LD
    assert NL * NT == bt * bk
    epilogue = _build_epilogue(tt, nth)
    rank1 = _build_rank1(tt, nth)

    @cuda.jit(device=True, inline=True)
    def stage(sm, X, kmajor, e, r0, k0, R, K):
        """Tile element e of operand X into sm[kk * LD + rr] (coalesced along X's inner axis)."""
        if kmajor:
            rr = e % bt
            kk = e // bt
        else:
            kk = e % bk
            rr = e // bk
        r = r0 + rr
        k = k0 + kk
        sm[kk * LD + rr] = tile_elem(X, kmajor, r, k, r < R and k < K, zero)

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
                stage(sA, A, ta, e, m0, k0, M, K)
                stage(sB, Bm, not tb, e, n0, k0, N, K)
            cuda.syncthreads()
            for kk in range(bk):
                # unsigned offsets: no negative-index wraparound code in the inner loop
                rank1(acc, av, bv, sA, sB, uint64(kk * LD) + tyu, uint64(kk * LD) + txu)
            cuda.syncthreads()
        epilogue(C, bias, acc, m0 + ty, n0 + tx, M, N, accumulate, has_bias)

    return matmul_rt


def _build_rank1(tt, nth):
    """One k of a register tile: acc[i tt + j] += sA[ka + nth i] * sB[kb + nth j] (shared loads
    into av, bv first: 2 tt loads for tt^2 FMAs)."""
    @cuda.jit(device=True, inline=True)
    def rank1(acc, av, bv, sA, sB, ka, kb):
        for i in range(tt):
            av[i] = sA[ka + uint64(nth * i)]
        for j in range(tt):
            bv[j] = sB[kb + uint64(nth * j)]
        for i in range(tt):
            for j in range(tt):
                acc[i * tt + j] += av[i] * bv[j]

    return rank1


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




def build_matmul_wg(bt, bk, tt, dt, minblocks=0):
    """C = [C +] A.T @ B over a slice of the K rows per blockIdx.z (split-K), with the column sums
    of A (bias gradients) optionally fused in. Grid (ceil(N / bt), ceil(M / bt), S).

    Against build_matmul_rt: the next k tile is loaded into registers while the current one is
    multiplied and stored into the other of two shared buffers afterwards (one barrier per k tile
    instead of two, the global latency hidden behind bk x tt^2 FMAs); the tile copy is specialised
    to K-major operands (thread tid copies column tid % bt of rows tid // bt + l NT / bt, so each
    load instruction of a warp reads 32 consecutive floats and all index arithmetic is unsigned);
    row stride bt (no padding: stores are conflict-free, the strided register-tile reads too).

    mode 0: C (+)= acc; mode 1: P[z, m, n] = acc (split-K partials; splitk_reduce adds them in
    a fixed order); mode 2: atomic adds into C. colsum: the thread that copies column m of A also
    sums it over its rows; the blocks with blockIdx.x == 0 add the sums to db (mode 0), write
    Pb[z, m] (mode 1) or add them atomically (mode 2).

    A thread's tt x tt outputs are rows ty + nth i and columns tx + nth j (scalar shared loads,
    conflict-free; 128-bit shared loads were tried and dropped, see docs/gpu.md)."""
    nbt = nbtype(dt)
    zero = nbt(0.0)
    nth = bt // tt
    NT = nth * nth
    NL = (bt * bk) // NT          # tile elements each thread copies per operand
    RS = NT // bt                 # rows of a tile copied per round
    TT2 = tt * tt
    SZ = bk * bt
    SZ2 = 2 * SZ                  # two buffers (shared array sizes must be plain constants)
    epilogue = _build_wg_epilogue(tt, nth)
    rank1 = _build_rank1(tt, nth)
    assert NL * NT == bt * bk and RS * bt == NT, (bt, bk, tt)

    @cuda.jit(device=True, inline=True)
    def fetch(ra, rb, A, Bm, k1, kend, mA, nB, okA, okB):
        """This thread's NL rows (k1, k1 + RS, ...) of its columns of A and B into registers."""
        for ll in range(NL):
            k = k1 + ll * RS
            ra[ll] = tile_elem(A, True, mA, uint64(k), k < kend and okA, zero)
            rb[ll] = tile_elem(Bm, True, nB, uint64(k), k < kend and okB, zero)

    @cuda.jit(device=True, inline=True)
    def store(sA, sB, buf, ra, rb, cr, cc, cs):
        """The registers into shared buffer `buf`; returns cs plus this thread's A values."""
        for ll in range(NL):
            cs += ra[ll]
            sA[buf + uint64((cr + ll * RS) * bt + cc)] = ra[ll]
            sB[buf + uint64((cr + ll * RS) * bt + cc)] = rb[ll]
        return cs

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
        fetch(ra, rb, A, Bm, kbeg + cr, kend, mA, nB, okA, okB)
        cs = store(sA, sB, uint64(0), ra, rb, cr, cc, cs)
        cuda.syncthreads()
        nk = (kend - kbeg + bk - 1) // bk
        for kt in range(nk):
            cur = uint64((kt % 2) * SZ)
            nxt = uint64(((kt + 1) % 2) * SZ)
            more = kt + 1 < nk
            if more:
                fetch(ra, rb, A, Bm, kbeg + (kt + 1) * bk + cr, kend, mA, nB, okA, okB)
            for kk in range(bk):
                rank1(acc, av, bv, sA, sB, cur + uint64(kk * bt) + tyu, cur + uint64(kk * bt) + txu)
            if more:
                cs = store(sA, sB, nxt, ra, rb, cr, cc, cs)
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


