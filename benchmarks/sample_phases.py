"""Where a generated character's time goes inside the jitted loop, phase by phase, for N sequences
at once; and what the products' register tiles cost for 1 to 4 rows on their own.

    python benchmarks/sample_phases.py                     # LSTM L=2, H=256 and 512, N = 1..4
    python benchmarks/sample_phases.py --hidden 256 --num 1 2

Phases are timed with the cycle counter inside a copy of seqlearn.cpu.sample_kernels whose only
change is the counter reads between the phases (the copy is built from the module's source here,
and its text must match the anchors below, so a change to the loop fails loudly instead of
timing something else); the copy's output is checked against the module's. Times are per step
(one character for each of the N sequences), per thread, medians of the repeats. The tile table
times `_gemm.gates_nt` on one thread against one packed (4H, H) W_hh: rows 2-4 against one row
tell how far N sequences can share one read of the weights.
"""
import argparse
import importlib.util
import inspect
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, median, today  # noqa: E402

V = 65
PHASES = ("pick", "gather x", "input product", "input bias", "recurrent product", "pointwise", "barrier",
          "head")

_COUNTER = '''
from llvmlite import ir as _ir
from numba import types as _ty
from numba.core import cgutils as _cg
from numba.extending import intrinsic as _intrinsic


@_intrinsic
def _cycles(typingctx):
    def codegen(context, builder, sig, args):
        fn = _cg.get_or_insert_function(builder.module, _ir.FunctionType(_ir.IntType(64), []),
                                        "llvm.readcyclecounter")
        return builder.call(fn, [])
    return _ty.int64(), codegen


TM = [np.zeros(8, np.int64) for _ in range(8)]      # per thread: cycles per phase


'''

# (anchor, replacement): each anchor must occur exactly once in the kernel's source.
_EDITS = (
    ("KINDS = {", _COUNTER + "KINDS = {"),
    ("u0, u1, bar, nth):\n    \"\"\"One thread", "u0, u1, bar, nth, tm):\n    \"\"\"One thread"),
    ("+ (u0, u1, bar, nth) for (zk, ik, xk, pk), (u0, u1) in zip(own, parts)])",
     "+ (u0, u1, bar, nth, TM[i]) for i, ((zk, ik, xk, pk), (u0, u1)) in enumerate(zip(own, parts))])"),
    ("        for n in range(N):\n            idx[n, s] = _pick",
     "        t0 = _cycles()\n        for n in range(N):\n            idx[n, s] = _pick"),
    ("            # input projection ax",
     "            t1 = _cycles(); tm[0] += t1 - t0 if k == 0 else 0; t0 = t1\n            # input projection ax"),
    ("                _proj(ab, N, H, K, 0, G, u0, u1, px, pbase + poffs[k, 0] * isz, ax, scratch)\n",
     "                _proj(ab, N, H, K, 0, G, u0, u1, px, pbase + poffs[k, 0] * isz, ax, scratch)\n"
     "                t1 = _cycles(); tm[2] += t1 - t0; t0 = t1\n"),
    ("            # recurrent product(s) and",
     "            t1 = _cycles(); tm[1 if k == 0 and E == 0 else 3] += t1 - t0; t0 = t1\n"
     "            # recurrent product(s) and"),
    ("            _proj(ab, N, H, H, 0, G, u0, u1, hk.ctypes.data, pbase + poffs[k, 1] * isz, ah,\n"
     "                  scratch)\n",
     "            _proj(ab, N, H, H, 0, G, u0, u1, hk.ctypes.data, pbase + poffs[k, 1] * isz, ah,\n"
     "                  scratch)\n            t1 = _cycles(); tm[4] += t1 - t0; t0 = t1\n"),
    ("            gen = barrier(bar, nth, gen)\n        # head",
     "            t1 = _cycles(); tm[5] += t1 - t0; t0 = t1\n            gen = barrier(bar, nth, gen)\n"
     "            t1 = _cycles(); tm[6] += t1 - t0; t0 = t1\n        # head"),
    ("                z[n, v] += flat[dec_off + V * H + v]\n",
     "                z[n, v] += flat[dec_off + V * H + v]\n        t1 = _cycles(); tm[7] += t1 - t0; t0 = t1\n"),
)


def instrumented():
    """The copy of seqlearn.cpu.sample_kernels with the phase counters (compiled without a cache)."""
    from seqlearn.cpu import sample_kernels
    src = inspect.getsource(sample_kernels)
    src = src.replace("from . import", "from seqlearn.cpu import")
    for name in ("_gemm", "_act", "gru", "lstm", "ops", "_blas", "_jit", "_sync"):
        src = src.replace(f"from .{name} import", f"from seqlearn.cpu.{name} import")
    src = src.replace("from seqlearn.cpu._jit import jit\n",
                      "from numba import njit as _njit\n\nfrom seqlearn.cpu._jit import OPTIONS\n"
                      "jit = _njit(**OPTIONS)\n")
    for anchor, new in _EDITS:
        if src.count(anchor) != 1:
            raise RuntimeError(f"sample_kernels changed: anchor not found once: {anchor[:60]!r}")
        src = src.replace(anchor, new)
    with tempfile.TemporaryDirectory(prefix="seqlearn-phases-") as d:
        path = os.path.join(d, "sample_kernels_phases.py")
        with open(path, "w") as f:
            f.write(src)
        spec = importlib.util.spec_from_file_location("sample_kernels_phases", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    return mod


def counter_hz(mod):
    """Cycle counter ticks per second (the counter runs at a fixed rate, not the core's clock)."""
    from numba import njit
    read = njit(lambda: mod._cycles())
    read()
    a, t0 = read(), time.perf_counter()
    time.sleep(0.2)
    return (read() - a) / (time.perf_counter() - t0)


def tile_rows(H, rows=(1, 2, 3, 4), reps=5):
    """us per call of gates_nt (one thread, all 4 gates of a packed (4H, H) W) for each row count."""
    from numba import njit
    from seqlearn.cpu import _gemm
    from seqlearn.cpu._blas import consts
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4 * H, H)).astype(np.float32)
    P = _gemm.zeros_aligned(_gemm.packed_size(4, H, H, np.float32), np.float32)
    _gemm.pack_gates(W, 4, P)
    A = rng.standard_normal((max(rows), H)).astype(np.float32)
    C = np.zeros((max(rows), 4 * H), np.float32)
    scratch = np.zeros(_gemm.MAX_ROWS * 16, np.float32)

    @njit
    def loop(n, M, ab, A, P, C, scratch):
        for _ in range(n):
            _gemm.gates_nt(ab, H, H, 0, 4, 0, H, M, A.ctypes.data, H, P.ctypes.data, C.ctypes.data, 4 * H,
                           scratch)

    ab = consts(C)
    n = max(3, int(2e5 / H ** 2 * 256))
    for M in rows:
        loop(2, M, ab, A, P, C, scratch)
    t = {M: [] for M in rows}
    for _ in range(reps):
        for M in rows:
            t0 = time.perf_counter()
            loop(n, M, ab, A, P, C, scratch)
            t[M].append((time.perf_counter() - t0) / n * 1e6)
    return {M: median(t[M]) for M in rows}, W.nbytes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--num", type=int, nargs="+", default=[1, 2, 3, 4], help="sequences at once")
    ap.add_argument("--chars", type=int, default=0, help="characters per timed call (0: by H)")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    import seqlearn
    from seqlearn.cpu import sample_kernels as sk
    mod = instrumented()
    hz = counter_hz(mod)
    print(f"# {machine()}; {today()}; LSTM L={args.layers}, V={V}, float32; seqlearn threads: "
          f"{sk._threads.NUM_THREADS}; medians of {args.repeats}; cycle counter {hz / 1e9:.2f} GHz")
    for H in args.hidden:
        m = seqlearn.CharLM([chr(33 + i) for i in range(V)], cell="lstm", hidden_size=H, num_layers=args.layers,
                            device="cpu", seed=0)
        packed = sk.pack(m)
        rng = np.random.default_rng(0)
        n = args.chars or max(20, int(4e6 / H ** 2 * 16))
        for N in args.num:                              # compile, and check the copy against the module
            u = rng.random((30, N))
            z0 = np.zeros((N, V), np.float32)
            if not np.array_equal(mod.generate(m, z0, None, u, packed=packed)[0],
                                  sk.generate(m, z0, None, u, packed=packed)[0]):
                raise RuntimeError("the instrumented copy does not generate what sample_kernels does")
        wall = {N: [] for N in args.num}
        ph = {N: [] for N in args.num}
        for _ in range(args.repeats):
            for N in args.num:
                for t in mod.TM:
                    t[:] = 0
                u = rng.random((n, N))
                t0 = time.perf_counter()
                mod.generate(m, np.zeros((N, V), np.float32), None, u, packed=packed)
                wall[N].append((time.perf_counter() - t0) / n * 1e6)
                ph[N].append(np.array([t.copy() for t in mod.TM]) / n / hz * 1e6)
        nth = 2 if any(p[1].any() for p in ph[args.num[0]]) else 1
        print(f"\nH={H}: us per step (N characters), thread 0" + (" / thread 1" if nth == 2 else ""))
        print(f"{'N':>3} {'step':>7} {'chars/s':>8} {'xN=1':>5} | " + " | ".join(f"{p:>13}" for p in PHASES))
        base = None
        for N in args.num:
            w = median(wall[N])
            base = base or (args.num[0], w)
            p = np.median(np.array(ph[N]), axis=0)
            cells = [" / ".join(f"{p[t, i]:5.2f}" for t in range(nth)) for i in range(len(PHASES))]
            gain = (N / w) / (base[0] / base[1])
            print(f"{N:>3} {w:7.1f} {N / w * 1e6:8,.0f} {gain:5.2f} | " + " | ".join(f"{c:>13}" for c in cells))
        us, nbytes = tile_rows(H)
        print(f"tiles (one thread, W_hh {nbytes / 2 ** 20:.2f} MiB): " + ", ".join(
            f"{M} row{'s' if M > 1 else ''} {t:.1f} us ({t / us[1]:.2f}x, {nbytes / t / 1e3:.0f} GB/s)"
            for M, t in us.items()))


if __name__ == "__main__":
    main()
