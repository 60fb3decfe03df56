"""Data-parallel training over MPI (mpi4py): the ranks of one run and what they exchange.

`world()` is the run's world: `Solo` (one process; nothing is imported, nothing changes) unless the
process was started by an MPI launcher (mpiexec, mpirun, srun) with more than one rank, when it is
an `MPIWorld` over MPI.COMM_WORLD. Each of N ranks owns B/N of the B streams (data.Streams rows)
and carries their state; after each backward the ranks average the flat gradient buffer with one
allreduce, so every rank applies the same update that one process with all B streams would.
Dropout masks are the rank's slice of the whole batch's (ref.ops.mask_geometry); the model's
generator draws the same keys on every rank.

Failures: `together(fn)` runs fn on every rank and lets all of them know whether any failed (the
error of the lowest failing rank is raised everywhere, marked `all_ranks`), so a refused start, a
diverged loss or a checkpoint that rank 0 cannot write ends every rank with one line and no hang.
Anything else that escapes on one rank ends the job through MPI_Abort (cli/errors.py); a rank that
dies is reported by the launcher, which stops the others.
"""
import os
import time

import numpy as np

ABORT_GRACE_S = 0.5      # see MPIWorld.abort
# set by MPI launchers in every rank's environment: the number of ranks
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS", "PMIX_SIZE")
_world = None


def launched_size():
    """The number of ranks the launcher says this process is one of (1 outside a launcher)."""
    for var in _SIZE_VARS:
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 1:
            return int(v)
    return 1


class RankFailure(ValueError):
    """Another rank failed; its one-line message (raised on every rank, see together())."""


def _everywhere(err):
    err.all_ranks = True
    return err


class Solo:
    """One process: every collective is the identity."""
    rank, size, local_rank, local_size, root = 0, 1, 0, 1, True

    def rows(self, n):
        return 0, n

    def together(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def check(self, err=None):
        if err is not None:
            raise err

    def step(self, err, loss, stop):
        if err is not None:
            raise err
        return loss, stop

    def allreduce_sum(self, buf):
        pass

    def from_root(self, value):
        return value

    def sums(self, values):
        return list(values)

    def gather_rows(self, a):
        return a

    def digest_check(self, digest):
        pass

    def __repr__(self):
        return "Solo()"


class MPIWorld(Solo):
    """N ranks of MPI.COMM_WORLD."""

    def __init__(self, comm=None):
        from mpi4py import MPI
        self.MPI = MPI
        self.comm = comm or MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.root = self.rank == 0
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()

    def rows(self, n):
        """The streams r0:r1 of n this rank owns."""
        from .data import share
        return share(n, (self.rank, self.size))

    # ---- agreeing on failures ---------------------------------------------------------------
    def check(self, err=None):
        """A collective: raise on every rank when any rank brings an error (the lowest rank's)."""
        msgs = self.comm.allgather(None if err is None else str(err))
        self._raise_first(err, msgs)

    def _raise_first(self, err, msgs):
        failed = [(r, m) for r, m in enumerate(msgs) if m is not None]
        if not failed:
            return
        r, msg = failed[0]
        if r == self.rank:
            raise _everywhere(err)
        raise _everywhere(RankFailure(f"rank {r}: {msg}"))

    def together(self, fn, *args, **kwargs):
        """fn(*args, **kwargs) on every rank; if it raises on any, it raises on all (see check)."""
        try:
            result, err = fn(*args, **kwargs), None
        except Exception as e:          # noqa: BLE001 - handed to every rank, raised again
            result, err = None, e
        self.check(err)
        return result

    def step(self, err, loss, stop):
        """A training step's exchange: any rank's error raised on all; (mean loss, the bits of stop
        that any rank set). The loss is summed in rank order: the same number on every rank."""
        got = self.comm.allgather((None if err is None else str(err), loss, int(stop)))
        self._raise_first(err, [g[0] for g in got])
        bits = 0
        for g in got:
            bits |= g[2]
        return sum(g[1] for g in got) / self.size, bits

    # ---- arrays -------------------------------------------------------------------------------
    def allreduce_sum(self, buf):
        """buf (every rank's the same size: a host array, or a device array where the MPI library
        is CUDA-aware) becomes the sum over the ranks, in place."""
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)

    def from_root(self, value):
        """Rank 0's value on every rank (a decision that rests on rank 0's clock)."""
        return self.comm.bcast(value, root=0)

    def sums(self, values):
        """The elementwise sums of a few floats over the ranks, added in rank order."""
        got = self.comm.allgather([float(v) for v in values])
        return [sum(col) for col in zip(*got)]

    def gather_rows(self, a):
        """Every rank's (L, b_r, H) block joined along axis 1 on rank 0 (None on the others)."""
        parts = self.comm.gather(np.ascontiguousarray(a), root=0)
        return np.concatenate(parts, axis=1) if self.root else None

    def digest_check(self, digest):
        """Refuse a start where the ranks disagree on what they train (digest: name -> value)."""
        got = self.comm.allgather(digest)
        for r, d in enumerate(got):
            diff = [k for k in sorted(set(d) | set(got[0])) if d.get(k) != got[0].get(k)]
            if diff:
                k = diff[0]
                raise _everywhere(RankFailure(
                    f"rank {r} was started with another {k} than rank 0 ({d.get(k)!r}, rank 0: "
                    f"{got[0].get(k)!r}); every rank must run the same command on the same files"))

    def abort(self, code=1):
        """End every rank of the job. mpiexec's proxy forwards a rank's stderr on its own time and
        MPI_Abort kills it too: without a pause the line just printed can be lost (seen once in
        tests/test_mpi.py's hook case, stderr empty)."""
        time.sleep(ABORT_GRACE_S)
        self.comm.Abort(code)

    def __repr__(self):
        return f"MPIWorld(rank {self.rank} of {self.size})"


def world():
    """The world of this process (made once)."""
    global _world
    if _world is None:
        if launched_size() > 1:
            try:
                import mpi4py  # noqa: F401
            except ImportError:
                raise RankFailure(f"this process is one of {launched_size()} MPI ranks, but mpi4py is not "
                                   f"installed: pip install 'seqlearn[mpi]'") from None
            w = MPIWorld()
            if w.size != launched_size():       # e.g. srun's PMI with an mpi4py of another MPI
                raise RankFailure(f"the launcher started {launched_size()} ranks but MPI sees {w.size}: "
                                  f"mpi4py was built against another MPI than the launcher's")
            _world = w
        else:
            _world = Solo()
    return _world


def cuda_aware():
    """Whether gradients on a GPU go to MPI as device arrays (SEQLEARN_CUDA_AWARE_MPI=1: the MPI
    library must be CUDA-aware) rather than through host memory."""
    return os.environ.get("SEQLEARN_CUDA_AWARE_MPI", "") == "1"


def select_gpu(w):
    """Rank r uses GPU (local rank mod the GPUs this node shows it)."""
    from numba import cuda
    n = len(cuda.gpus)
    if n:
        cuda.select_device(w.local_rank % n)


def default_threads(w):
    """Worker threads for one rank: the CPUs the launcher bound it to, or an equal share of the
    node's CPUs among the ranks on it."""
    try:
        mine = len(os.sched_getaffinity(0))
    except AttributeError:
        mine = os.cpu_count() or 1
    node = os.cpu_count() or mine
    if w.local_size > 1 and mine >= node:           # not bound: share the node
        return max(1, node // w.local_size)
    return max(1, mine)
