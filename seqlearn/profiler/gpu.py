"""GPU: whether the CUDA simulator is on, and CUDA events around kernel launches with each
kernel's registers, shared and local memory."""
import os
import time


def _is_simulator():
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


class KernelTimer:
    """CUDA events around every kernel launch (wall time under the simulator), per kernel name."""

    def __init__(self, simulator):
        self.simulator = simulator
        self.records = []        # (name, step, start_event_or_t0, end_event_or_t1)
        self.dispatchers = {}
        self.step = None
        self._undo = None

    def install(self):
        if self.simulator:
            from numba.cuda.simulator import kernel as sk
            orig = sk.FakeCUDAKernel.__call__
            kt = self

            def call(self_, *args):
                if self_._device or kt.step is None or sk._kernel_context is not None:
                    return orig(self_, *args)
                t0 = time.perf_counter()
                r = orig(self_, *args)
                kt.records.append((self_.fn.__name__, kt.step, t0, time.perf_counter()))
                kt.dispatchers.setdefault(self_.fn.__name__, self_)
                return r
            sk.FakeCUDAKernel.__call__ = call
            self._undo = lambda: setattr(sk.FakeCUDAKernel, "__call__", orig)
        else:
            from numba import cuda
            from numba.cuda import dispatcher as cd
            orig = cd._LaunchConfiguration.__call__
            kt = self

            def call(self_, *args):
                if kt.step is None:
                    return orig(self_, *args)
                e0, e1 = cuda.event(timing=True), cuda.event(timing=True)
                e0.record()
                r = orig(self_, *args)
                e1.record()
                name = getattr(self_.dispatcher.py_func, "__name__", "?")
                kt.records.append((name, kt.step, e0, e1))
                kt.dispatchers.setdefault(name, self_.dispatcher)
                return r
            cd._LaunchConfiguration.__call__ = call
            self._undo = lambda: setattr(cd._LaunchConfiguration, "__call__", orig)

    def uninstall(self):
        if self._undo:
            self._undo()
            self._undo = None

    def report(self, nsteps):
        per = {}
        for name, _step, a, b in self.records:
            if self.simulator:
                ms = (b - a) * 1e3
            else:
                b.synchronize()
                ms = a.elapsed_time(b)
            r = per.setdefault(name, {"name": name, "launches": 0, "ms": 0.0})
            r["launches"] += 1
            r["ms"] += ms
        rows = []
        for name, r in sorted(per.items(), key=lambda kv: -kv[1]["ms"]):
            row = {"name": name, "launches_per_step": r["launches"] / max(nsteps, 1),
                   "ms_per_step": r["ms"] / max(nsteps, 1)}
            row.update(self._resources(self.dispatchers.get(name)))
            rows.append(row)
        return rows

    def _resources(self, d):
        if self.simulator or d is None:
            return {"regs_per_thread": None, "shared_mem_per_block": None, "local_mem_per_thread": None}
        out = {}
        for key, getter in (("regs_per_thread", "get_regs_per_thread"),
                            ("shared_mem_per_block", "get_shared_mem_per_block"),
                            ("local_mem_per_thread", "get_local_mem_per_thread")):
            try:
                v = getattr(d, getter)()
                if isinstance(v, dict):        # one value per compiled signature: report the max
                    v = max(v.values()) if v else None
            except Exception:  # noqa: BLE001
                v = None
            out[key] = v
        return out
