"""How fast this machine's caches and memory deliver data to the cores: a read-only loop (four
AVX2 accumulators of 8 floats, loads and adds only, written as LLVM IR so nothing else limits it)
over working sets from L2 size to beyond the L3, on one thread and on two (each thread its own
half, as the generation kernel splits the weights). This is the ceiling for batch-1 generation,
which must read every weight once per character (`benchmarks/sample_speed.py`).

    python benchmarks/read_bandwidth.py
    python benchmarks/read_bandwidth.py --mb 3.23 12.76 --seconds 0.5
"""
import argparse
import statistics
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from seqlearn.cpu import _threads


@intrinsic
def _vsum(typingctx, addr, n):
    """Sum of n float32 at byte address addr (n a multiple of 32): four <8 x float> accumulators."""
    def codegen(context, builder, sig, args):
        f32 = ir.FloatType()
        vty = ir.VectorType(f32, 8)
        i64 = ir.IntType(64)
        base = builder.inttoptr(context.cast(builder, args[0], sig.args[0], types.int64), vty.as_pointer())
        nv = builder.sdiv(context.cast(builder, args[1], sig.args[1], types.int64), ir.Constant(i64, 32))
        zero = ir.Constant(vty, [ir.Constant(f32, 0.0)] * 8)
        acc = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]
        with cgutils.for_range(builder, nv) as loop:
            for u in range(4):
                p = builder.gep(base, [builder.add(builder.mul(loop.index, ir.Constant(i64, 4)), ir.Constant(i64, u))])
                builder.store(builder.fadd(builder.load(acc[u]), builder.load(p, align=32)), acc[u])
        tot = builder.fadd(builder.fadd(builder.load(acc[0]), builder.load(acc[1])),
                           builder.fadd(builder.load(acc[2]), builder.load(acc[3])))
        s = builder.extract_element(tot, ir.Constant(ir.IntType(32), 0))
        for i in range(1, 8):
            s = builder.fadd(s, builder.extract_element(tot, ir.Constant(ir.IntType(32), i)))
        return s
    return types.float32(addr, n), codegen


@njit(nogil=True)
def _read(a, i0, i1, reps):
    s = np.float32(0.0)
    for _ in range(reps):
        s += _vsum(a.ctypes.data + i0 * 4, i1 - i0)
    return s


def measure(mb, nth, seconds):
    n = int(mb * 1e6 / 4) // (32 * nth) * (32 * nth)
    buf = np.ones(n + 16, np.float32)
    a = buf[(-buf.ctypes.data % 64) // 4:][:n]           # 64-byte aligned
    parts = [(n * k // nth, n * (k + 1) // nth) for k in range(nth)]
    _threads.run(_read, [(a, p0, p1, 1) for p0, p1 in parts])
    t = time.perf_counter()
    _threads.run(_read, [(a, p0, p1, 1) for p0, p1 in parts])
    reps = max(1, int(seconds / 5 / max(time.perf_counter() - t, 1e-6)))
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        _threads.run(_read, [(a, p0, p1, reps) for p0, p1 in parts])
        rates.append(a.nbytes * reps / (time.perf_counter() - t) / 1e9)
    return max(rates), statistics.median(rates)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, nargs="+", default=[0.25, 1.0, 3.23, 6.4, 12.76, 16.0, 64.0],
                    help="working sets in MB (3.23 and 12.76: the LSTM 2x256 and 2x512 weights)")
    ap.add_argument("--seconds", type=float, default=1.0, help="time per working set and thread count")
    a = ap.parse_args(argv)
    print("| working set MB | 1 thread GB/s (best / median) | 2 threads GB/s (best / median) |")
    print("|---|---|---|")
    for mb in a.mb:
        r1, r2 = measure(mb, 1, a.seconds), measure(mb, min(2, _threads.NUM_THREADS), a.seconds)
        print(f"| {mb:g} | {r1[0]:.1f} / {r1[1]:.1f} | {r2[0]:.1f} / {r2[1]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
