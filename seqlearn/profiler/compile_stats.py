"""JIT compile times (numba:compile events) and, per jitted function, signatures and cache counters."""
import contextlib
import statistics
import time

from .. import backends
from .gpu import _is_simulator


class CompileListener:
    """numba:compile events -> inclusive and self (callees excluded) seconds per dispatcher."""

    def __init__(self):
        self.stack = []
        self.times = {}   # qualified name -> {"inclusive": s, "self": s, "compiles": n, "dispatcher": d}

    def notify(self, event):
        if event.is_start:
            self._start(event.data["dispatcher"])
        elif event.is_end:
            self._end()

    def _start(self, d):
        self.stack.append([d, time.perf_counter(), 0.0])

    def _end(self):
        if self.stack:
            d, t0, child = self.stack.pop()
            dt = time.perf_counter() - t0
            if self.stack:
                self.stack[-1][2] += dt
            rec = self.times.setdefault(_qualname(d), {"inclusive": 0.0, "self": 0.0, "compiles": 0,
                                                        "dispatcher": d})
            rec["inclusive"] += dt
            rec["self"] += dt - child
            rec["compiles"] += 1

    @contextlib.contextmanager
    def installed(self, cuda=False):
        from numba.core import event as ev
        mods = [(ev, "numba:compile")]
        if cuda:
            try:
                from numba.cuda.core import event as cev
                if cev is not ev:
                    mods.append((cev, "numba-cuda:compile"))
            except ImportError:
                pass
        outer = self
        adapters = []
        for m, kind in mods:
            class _Adapter(m.Listener):
                def on_start(self, event):
                    outer.notify(event)

                def on_end(self, event):
                    outer.notify(event)
            a = _Adapter()
            m.register(kind, a)
            adapters.append((m, kind, a))
        undo = self._patch_cuda_compile() if cuda else None
        try:
            yield self
        finally:
            for m, kind, a in adapters:
                m.unregister(kind, a)
            if undo:
                undo()

    def _patch_cuda_compile(self):
        """numba-cuda's CUDADispatcher.compile emits no numba:compile event (0.30): time it directly,
        for the duration of the profile only. Nothing to do under the simulator (no compiler)."""
        if _is_simulator():
            return None
        try:
            from numba.cuda.dispatcher import CUDADispatcher
        except ImportError:
            return None
        orig = CUDADispatcher.compile
        outer = self

        def compile(self_, sig):
            outer._start(self_)
            try:
                return orig(self_, sig)
            finally:
                outer._end()
        CUDADispatcher.compile = compile
        return lambda: setattr(CUDADispatcher, "compile", orig)


def _qualname(d):
    f = getattr(d, "py_func", None)
    if f is None:
        return repr(d)
    return f"{f.__module__}.{f.__qualname__}"


def _dispatchers(modules):
    """Every numba dispatcher defined in the given modules: qualified name -> dispatcher."""
    out = {}
    for m in modules:
        for v in vars(m).values():
            if isinstance(v, type) or not (hasattr(v, "py_func") and hasattr(v, "overloads")):
                continue       # duck-typed: numba CPU dispatchers and numba-cuda CUDADispatchers
            if getattr(v.py_func, "__module__", "") == m.__name__:
                out[_qualname(v)] = v
    return out


def compile_report(listener, backend_modules, rec):
    """Per jitted function: compile seconds (inclusive, self), signatures, cache hits/misses."""
    disp = _dispatchers(backend_modules)
    for name, r in listener.times.items():
        if name.startswith("seqlearn.") and not name.startswith("seqlearn.profiler"):
            disp.setdefault(name, r["dispatcher"])
    rows = []
    for name in sorted(disp):
        d = disp[name]
        r = listener.times.get(name, {})
        try:
            st = d.stats
            hits, misses = sum(st.cache_hits.values()), sum(st.cache_misses.values())
        except Exception:  # noqa: BLE001 - cuda dispatchers or older numba
            hits = misses = None
        try:
            nsig = len(d.overloads)
        except Exception:  # noqa: BLE001 - the simulator's fake overload table has no length
            nsig = 0
        if not nsig and not r:
            continue          # never used in this configuration
        rows.append({"name": name, "signatures": nsig, "compile_s": round(r.get("inclusive", 0.0), 4),
                     "compile_self_s": round(r.get("self", 0.0), 4), "compiles": r.get("compiles", 0),
                     "cache_hits": hits, "cache_misses": misses})
    entries = []
    for fname, first in sorted(rec.first_call.items()):
        ds = rec.durations.get(fname)
        steady = statistics.median(ds) if ds else None
        entries.append({"name": fname, "first_call_ms": round(first * 1e3, 4),
                        "steady_ms": None if steady is None else round(steady * 1e3, 4)})
    return {"functions": rows, "entry_points": entries,
            "total_compile_s": round(sum(r["compile_self_s"] for r in rows), 4)}


def _backend_modules(model, opt):
    mods = backends.get(model.device).modules()
    if opt.mod is not None and opt.mod not in mods:
        mods.append(opt.mod)
    return mods
