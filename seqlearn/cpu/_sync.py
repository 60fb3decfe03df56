"""A spin barrier for jitted kernels that run on several threads at once (see _threads.run_sync).

``bar`` is an int64 array (zeroed before the call that uses it); every thread passes its own count
of barriers already crossed (``gen``) and gets ``gen + 1`` back. The counter only grows, so no
reset race exists: barrier number g is passed when the counter reaches nthreads * (g + 1).
Waiting spins on an atomic load and yields the core (sched_yield) after a few thousand tries, so
a descheduled partner on a loaded machine costs a scheduler slice, not a burnt one.
"""
import ctypes

import numpy as np
from llvmlite import binding as _ll
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit

_libc = ctypes.CDLL(None)
_ll.add_symbol("seqlearn_sched_yield", ctypes.cast(_libc.sched_yield, ctypes.c_void_p).value)
_yield = types.ExternalFunction("seqlearn_sched_yield", types.intc())


def _ptr(context, builder, aryty, ary, idx):
    a = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, a, [idx])


@intrinsic
def atomic_add(typingctx, arr, idx, val):
    """arr[idx] += val atomically (int64 1-D array); returns the old value."""
    def codegen(context, builder, sig, args):
        ptr = _ptr(context, builder, sig.args[0], args[0], args[1])
        v = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, v, "seq_cst")
    return types.int64(arr, idx, val), codegen


@intrinsic
def atomic_load(typingctx, arr, idx):
    """arr[idx], an acquire load (int64 1-D array)."""
    def codegen(context, builder, sig, args):
        ptr = _ptr(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(arr, idx), codegen


# Words of a barrier's buffer: the counter alone in its 64-byte cache line
BARRIER_WORDS = 8


def new_barrier():
    """A zeroed barrier buffer for one call of a kernel that meets at barrier()."""
    return np.zeros(BARRIER_WORDS, np.int64)


@jit([types.int64(types.Array(types.int64, 1, "C"), types.intp, types.intp)])
def barrier(bar, nthreads, gen):
    """Wait until all nthreads threads have called barrier for the (gen + 1)-th time; returns gen + 1."""
    if nthreads <= 1:
        return gen + 1
    target = nthreads * (gen + 1)
    atomic_add(bar, 0, 1)
    spins = 0
    while atomic_load(bar, 0) < target:
        spins += 1
        if spins > 4000:
            _yield()
    return gen + 1


_I64 = types.Array(types.int64, 1, "C")


@jit([types.boolean(_I64, types.intp, types.int64, types.int64)])
def wait_above(flags, i, seen, spins):
    """Spin until flags[i] > seen, at most `spins` loads; True when it got there (a worker thread
    waiting for its next job, see _threads.Pool)."""
    n = 0
    while atomic_load(flags, i) <= seen:
        n += 1
        if n > spins:
            return False
    return True


@jit([types.void(_I64, types.intp, types.int64)])
def wait_reach(flags, i, target):
    """Wait until flags[i] >= target, spinning, yielding the core after a few thousand loads."""
    spins = 0
    while atomic_load(flags, i) < target:
        spins += 1
        if spins > 4000:
            _yield()


@jit([types.int64(_I64, types.intp)])
def bump(flags, i):
    """flags[i] += 1 atomically (a release for everything written before it); the new value."""
    return atomic_add(flags, i, 1) + 1
