"""Where a training step's time goes: per-phase timing of the backend kernels.

The profiler never touches model.py. It builds a CharLM, then puts a timing proxy between the model
and its backend: ``model.backend`` and ``model.cell_impl.mod`` are swapped for objects that forward
every call to the real backend module and record (phase, start, end) around it. A call made while
another is being timed (the sampling step runs a whole forward pass) belongs to the outer phase.

Training steps alternate between the plain model and the proxied one, so the step time with and
without instrumentation comes from the same stretch of (shared, noisy) machine time.

Phases (``PHASE_LABELS``): input gather/projection, recurrent forward per layer, recurrent backward
per layer, weight-gradient products, head and loss, clipping, optimizer update, other backend calls
(zeroing, copies, transfers), and what is left of the step: Python glue. The batch-1 sampling step
is timed separately (it is not part of a training step).

The recurrent weight gradient ``dW_hh += dG.T @ h_prev`` is computed inside each backend's
``backward`` (one product after the time loop). Where the cell module calls a plain Python function
for it (``SUBPHASE_HOOKS``, e.g. the cpu backend's ``wgrad``), that function is wrapped for the run
and timed in place; where the product is inside jitted code, it is timed separately on the same
shapes through the same routine and moved from "recurrent backward" to "weight-gradient products"
(marked ``estimated``). On cuda it stays inside the recurrent backward.

GPU: every proxied call is followed by ``cuda.synchronize()`` so the phase times are wall times of
finished work; each kernel launch is also bracketed by CUDA events, and each kernel's registers,
shared and local memory per thread are read from numba-cuda. Under the simulator everything runs,
but times say nothing about a GPU: ``times_meaningful`` is false.
"""
import contextlib
import math
import os
import resource
import statistics
import sys
import time

import numpy as np

from .model import CharLM

PHASE_LABELS = {
    "input": "input gather/projection",
    "forward": "recurrent forward",
    "backward": "recurrent backward",
    "weight_grads": "weight-gradient products",
    "head_loss": "head and loss",
    "clip": "clipping",
    "optimizer": "optimizer update",
    "other_ops": "zeroing, copies, transfers",
    "glue": "Python glue (untimed rest)",
    "sample_b1": "sampling step, batch 1",
}

_OPS_PHASE = {"project_onehot": "input", "linear": "input", "lookup": "input",
              "project_onehot_backward": "weight_grads", "linear_backward": "weight_grads",
              "lookup_backward": "weight_grads"}
_CLIP_FNS = ("sumsq", "scale", "clip_value")
# Sub-phase hooks: plain Python functions that a backend's cell module calls from its (Python-level)
# backward, looked up as module globals at call time, so they can be wrapped for the run. When the
# cpu backend computes dW_hh through one of these, it is timed in place instead of estimated.
SUBPHASE_HOOKS = {"wgrad": "weight_grads", "backward_weights": "weight_grads"}
CELL_MODULES = ("lstm", "gru", "rnn")


def label(name):
    base, _, layer = name.partition("_l")
    if base in ("forward", "backward") and layer.isdigit():
        return f"{PHASE_LABELS[base]} L{layer}"
    return PHASE_LABELS.get(name, name)


# ---------------------------------------------------------------------------------------------
# the recorder and the proxy
class Recorder:
    """Collects (phase, fn, t0, t1, step) for the outermost timed call."""

    def __init__(self, sync=None):
        self.sync = sync or (lambda: None)
        self.events = []
        self.first_call = {}      # fn -> seconds of its very first call (compile included)
        self.durations = {}       # fn -> [seconds] of calls in measured steps
        self.step = None          # None: warm-up
        self.depth = 0
        self.parent = None
        self.sub_events = []      # (phase, fn, t0, t1, step, enclosing phase)

    def timed(self, phase, fname, fn, args, kw):
        if self.depth:
            return fn(*args, **kw)
        self.depth = 1
        self.parent = phase
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            self.sync()
            t1 = time.perf_counter()
            self.depth = 0
            self.first_call.setdefault(fname, t1 - t0)
            if self.step is not None:
                self.events.append((phase, fname, t0, t1, self.step))
                self.durations.setdefault(fname, []).append(t1 - t0)

    def sub(self, phase, fname, fn, args, kw):
        """A sub-phase hook: a call made from inside a timed backend call (e.g. the weight-gradient
        product inside a cell's backward) whose time moves from the enclosing phase to `phase`."""
        if self.depth != 1 or self.step is None or isinstance(self.step, tuple):
            return fn(*args, **kw)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            self.sync()
            t1 = time.perf_counter()
            self.sub_events.append((phase, fname, t0, t1, self.step, self.parent))


class _ModProxy:
    """Stands in for one backend module; its functions are timed, everything else passes through."""

    def __init__(self, mod, modname, rec, classify):
        self._mod, self._modname, self._rec, self._classify = mod, modname, rec, classify
        self._cache = {}

    def __getattr__(self, name):
        attr = getattr(self._mod, name)
        if not callable(attr) or isinstance(attr, type):
            return attr
        w = self._cache.get(name)
        if w is None:
            rec, fname, classify, modname = self._rec, f"{self._modname}.{name}", self._classify, self._modname

            def w(*args, **kw):
                return rec.timed(classify(modname, name, args), fname, attr, args, kw)
            w.__name__ = name
            self._cache[name] = w
        return w


class _BackendProxy:
    def __init__(self, backend, rec, classify, optim_mod=None):
        self._backend = backend
        self.name = getattr(backend, "name", "?")
        for m in ("ops", "head") + CELL_MODULES:
            if hasattr(backend, m):
                setattr(self, m, _ModProxy(getattr(backend, m), m, rec, classify))
        if optim_mod is not None:
            self.optim = _ModProxy(optim_mod, "optim", rec, classify)

    def __getattr__(self, name):
        return getattr(self._backend, name)


def _classifier(model):
    def layer_of(ws):
        for W in model._ws.values():
            for k, lw in enumerate(W["layers"]):
                if lw is ws:
                    return k
        return 0

    def classify(modname, fname, args):
        if modname == "ops":
            return _OPS_PHASE.get(fname, "other_ops")
        if modname == "head":
            return "head_loss"
        if modname == "optim":
            return "clip" if fname in _CLIP_FNS else "optimizer"
        if modname in CELL_MODULES and fname in ("forward", "backward"):
            return f"{fname}_l{layer_of(args[0]) if args else 0}"
        return "other_ops"
    return classify


# ---------------------------------------------------------------------------------------------
# numba introspection
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


# ---------------------------------------------------------------------------------------------
# FLOPs, memory, peak
def phase_flops(model, T, B, split_dwhh):
    """Floating-point operations of the products executed per training step, per phase.
    Pointwise work, gathers and scatter-adds count as 0 (their GFLOP/s is shown as '-')."""
    G, H, V, L, E = model.cell_impl.G, model.H, model.V, model.L, model.E
    N, GH = T * B, G * H
    f = {"input": 0.0, "weight_grads": 0.0, "head_loss": 6.0 * N * H * V}
    for k in range(L):
        I = (E or V) if k == 0 else H
        dense_input = k > 0 or E > 0
        if dense_input:
            f["input"] += 2.0 * N * GH * I
            f["weight_grads"] += 4.0 * N * GH * I      # dW_ih += dG.T @ x and dx = dG @ W_ih
        f[f"forward_l{k}"] = 2.0 * N * GH * H
        dwhh = 2.0 * N * GH * H
        f[f"backward_l{k}"] = 2.0 * N * GH * H + (0.0 if split_dwhh else dwhh)
        if split_dwhh:
            f["weight_grads"] += dwhh
    return f


def model_flops(model, T, B):
    """DESIGN.md section 3 / issue 4: per layer and time step forward 2*B*G*H*(I + H) (I = V for a
    one-hot first layer), training = 3 x forward, plus the head 3*2*B*H*V, times T."""
    G, H, V, L, E = model.cell_impl.G, model.H, model.V, model.L, model.E
    fwd = sum(2.0 * B * G * H * (((E or V) if k == 0 else H) + H) for k in range(L))
    return T * (3.0 * fwd + 3.0 * 2.0 * B * H * V)


def sample_flops(model):
    G, H, V, L, E = model.cell_impl.G, model.H, model.V, model.L, model.E
    f = 2.0 * H * V
    for k in range(L):
        I = E if k == 0 else H
        f += 2.0 * G * H * (I + H)
    return f


def _nbytes(a):
    n = getattr(a, "nbytes", None)
    if n is None:
        n = int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize
    return int(n)


def _sum_bytes(obj):
    if isinstance(obj, dict):
        return sum(_sum_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_sum_bytes(v) for v in obj)
    if obj is None:
        return 0
    return _nbytes(obj)


def activation_memory(model, T, B):
    """Bytes of the workspace the model allocates for (T, B): per-layer cell workspaces (the
    activations kept for backward) and the model's projection/gradient buffers."""
    ws = model._workspace(T, B)
    cells = _sum_bytes(ws["layers"])
    rest = _sum_bytes({k: v for k, v in ws.items() if k != "layers"})
    return {"cell_workspaces": cells, "model_buffers": rest, "total": cells + rest}


def peak_rss_bytes():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


_SGEMM = {}


def _njit_sgemm():
    """njit np.dot: the BLAS the cpu backend uses (SciPy's OpenBLAS, not numpy's)."""
    if "f" not in _SGEMM:
        import numba

        def sgemm(a, b, out):
            np.dot(a, b, out)
        try:
            _SGEMM["f"] = numba.njit(cache=True, nogil=True)(sgemm)
        except RuntimeError:       # no writable cache location
            _SGEMM["f"] = numba.njit(nogil=True)(sgemm)
    return _SGEMM["f"]


def measure_peak(device, n=2048, repeats=3, simulator=False):
    """Best float32 GFLOP/s of an n x n x n product through the backend's BLAS: numpy `@` (ref),
    njit np.dot (cpu), the cuda backend's own product kernel (ops.linear). None under the simulator."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    out = np.empty((n, n), np.float32)
    if device == "ref":
        how = "numpy matmul (numpy's BLAS)"
        run = lambda: np.matmul(a, b, out=out)  # noqa: E731
    elif device == "cpu":
        how = "njit np.dot (SciPy's OpenBLAS, as the cpu backend)"
        f = _njit_sgemm()
        w = np.ones((8, 8), np.float32)
        f(w, w, w.copy())
        run = lambda: f(a, b, out)  # noqa: E731
    else:
        if simulator:
            return {"gflops": None, "n": n, "how": "not measured under the CUDA simulator"}
        try:                       # cuBLAS through CuPy, when present: the GPU's real sgemm peak
            import cupy
            ca, cb = cupy.asarray(a), cupy.asarray(b)
            cupy.matmul(ca, cb)
            cupy.cuda.Device().synchronize()
            best = math.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                cupy.matmul(ca, cb)
                cupy.cuda.Device().synchronize()
                best = min(best, time.perf_counter() - t0)
            return {"gflops": 2.0 * n ** 3 / best / 1e9, "n": n, "how": "cuBLAS sgemm via CuPy"}
        except Exception:  # noqa: BLE001 - no CuPy: the backend's own product kernel
            pass
        from numba import cuda
        from . import backends
        ops = backends.get("cuda").ops
        how = "the cuda backend's ops.linear (x @ W.T + b)"
        da, db_, dout = ops.to_device(a), ops.to_device(b), ops.zeros((n, n), np.float32)
        bias = ops.zeros((n,), np.float32)

        def run():
            ops.linear(da, db_, bias, dout)
            cuda.synchronize()
    run()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return {"gflops": 2.0 * n ** 3 / best / 1e9, "n": n, "how": how}


def _dwhh_estimator(device, model, T, B):
    """(run, how): run() computes one recurrent weight-gradient product dW += dG.T @ h_prev of
    shapes (T*B, G*H), (T*B, H) through the routine the backend uses; None on cuda, where it is not
    timed separately. The profiler times run() between the measured steps (same machine load)."""
    if device == "cuda":
        return None
    G, H = model.cell_impl.G, model.H
    rng = np.random.default_rng(1)
    dG = rng.standard_normal((T * B, G * H)).astype(model.dtype)
    hp = rng.standard_normal((T * B, H)).astype(model.dtype)
    dW = np.zeros((G * H, H), model.dtype)
    how = "numpy dG.T @ h_prev (as seqlearn.ref)"
    run = lambda: np.add(dW, dG.T @ hp, out=dW)  # noqa: E731
    if device == "cpu":
        try:
            from .cpu._blas import acc_tn
            run = lambda: acc_tn(dW, dG, hp)  # noqa: E731
            how = "seqlearn.cpu._blas.acc_tn (the cpu backend's dW += A.T @ X)"
        except ImportError:
            f = _njit_sgemm()
            out = np.empty((G * H, H), model.dtype)
            run = lambda: f(dG.T, hp, out)  # noqa: E731
            how = "njit np.dot dG.T @ h_prev"
    run()
    return run, how


def _time_once(run):
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# GPU kernel instrumentation
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


# ---------------------------------------------------------------------------------------------
# the optimizer used by the profiled step
class _Optimizer:
    """The trainer's optimizer (seqlearn.optim.Optimizer): clip_grads(), then step(). Its kernel
    module (``opt.k``) is swapped for the timing proxy in instrumented steps. When seqlearn.optim or
    the backend's optim kernels are missing, clipping and the update are skipped (reported n/a)."""

    def __init__(self, model, name="adam", clip=5.0):
        try:
            from .optim import Optimizer
            self.opt = Optimizer(model, name, clip=clip)
            self.mod = self.opt.k
        except ImportError:
            self.opt = self.mod = None

    def state_bytes(self):
        return 0 if self.opt is None else sum(_nbytes(v) for v in self.opt.state.values())

    def step(self, optim):
        """optim: the kernel module to use (the real one or its timing proxy)."""
        if self.opt is None:
            return None
        self.opt.k = optim
        norm = self.opt.clip_grads()
        self.opt.step()
        return norm


# ---------------------------------------------------------------------------------------------
def load_text(path=None, encoding="utf-8"):
    if path is None:
        try:
            from pydoc_data.topics import topics
            return "\n".join(topics[k] for k in sorted(topics))
        except ImportError:  # pragma: no cover - some distributions strip pydoc_data
            rng = np.random.default_rng(0)
            return "".join(chr(32 + int(i)) for i in rng.integers(0, 64, 200_000))
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not valid {encoding} text ({e.reason} at byte {e.start})") from None


def encode(text):
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    uniq, ids = np.unique(codes, return_inverse=True)
    return "".join(chr(int(c)) for c in uniq), ids.astype(np.int64)


def _batches(ids, B, T, n, rng):
    span = len(ids) - T - 1
    if span < 1:
        raise ValueError(f"the text has {len(ids)} characters; --seq-len {T} needs at least {T + 2}")
    out = []
    for _ in range(n):
        starts = rng.integers(0, span, B)
        idx = starts[:, None] + np.arange(T + 1)[None, :]
        chunk = ids[idx]
        out.append((chunk[:, :-1], chunk[:, 1:]))
    return out


def _is_simulator():
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def run_profile(text=None, cell="lstm", gru_variant="torch", peephole=False, hidden=128, layers=2,
                embed=0, batch=32, seq_len=64, steps=10, warmup=2, device="cpu", dtype="float32",
                sample_chars=20, seed=0, peak_n=2048, encoding="utf-8", optimizer="adam", clip=5.0):
    """Profile `steps` training steps (after `warmup`); return the report as a dict (see
    docs/profile.md for every field)."""
    if steps < 1 or warmup < 1:
        raise ValueError("--steps and --warmup must be at least 1")
    simulator = device == "cuda" and _is_simulator()
    vocab, ids = encode(text if text is not None else load_text(None, encoding))
    T, B = seq_len, batch
    listener = CompileListener()
    t_start = time.perf_counter()
    with listener.installed(cuda=device == "cuda"):
        model = CharLM(vocab, cell=cell, hidden_size=hidden, num_layers=layers, embed_dim=embed,
                       peephole=peephole, gru_variant=gru_variant, dtype=dtype, device=device, seed=seed)
        sync = lambda: None  # noqa: E731
        if device == "cuda":
            from numba import cuda
            sync = cuda.synchronize
        rec = Recorder(sync)
        opt = _Optimizer(model, optimizer, clip)
        classify = _classifier(model)
        plain_backend, plain_mod = model.backend, model.cell_impl.mod
        proxy = _BackendProxy(plain_backend, rec, classify, opt.mod)
        proxy_mod = getattr(proxy, cell)
        plain_optim = opt.mod

        hooks = _hooks(plain_mod, rec)

        def use(instrumented):
            model.backend = proxy if instrumented else plain_backend
            model.cell_impl.mod = proxy_mod if instrumented else plain_mod
            for name, (orig, wrapped) in hooks.items():
                setattr(plain_mod, name, wrapped if instrumented else orig)
            return proxy.optim if (instrumented and opt.mod is not None) else plain_optim

        rng = np.random.default_rng(seed)
        data = _batches(ids, B, T, warmup + 2 * steps, rng)
        est = _dwhh_estimator(device, model, T, B)
        est_times = []
        kt = KernelTimer(simulator) if device == "cuda" else None
        kt_error = None
        if kt:
            try:
                kt.install()
            except (ImportError, AttributeError) as e:    # another numba-cuda layout
                kt_error = f"CUDA per-kernel events unavailable with this numba-cuda ({e})"
                kt = None
        state = None
        plain_ms, inst_ms, step_bounds = [], [], []
        try:
            # warm-up: compiles (or loads from the cache) every kernel; first-call times recorded
            optim = use(True)
            for i in range(warmup):
                x, y = data[i]
                _, state = model.forward_backward(x, y, state)
                opt.step(optim)
            sync()
            # measured steps: plain and instrumented alternate
            for i in range(2 * steps):
                instrumented = i % 2 == 1
                optim = use(instrumented)
                x, y = data[warmup + i]
                if instrumented:
                    rec.step = len(inst_ms)
                    if kt:
                        kt.step = rec.step
                t0 = time.perf_counter()
                _, state = model.forward_backward(x, y, state)
                opt.step(optim)
                sync()
                t1 = time.perf_counter()
                if instrumented:
                    inst_ms.append((t1 - t0) * 1e3)
                    step_bounds.append((t0, t1))
                    rec.step = None
                    if kt:
                        kt.step = None
                    if est is not None:     # outside the timed step, beside it in time
                        est_times += [_time_once(est[0]) for _ in range(model.L)]
                else:
                    plain_ms.append((t1 - t0) * 1e3)
            # batch-1 sampling: one character per call, state carried, host-side draw
            use(True)
            s_state = None
            c = np.array([[int(ids[0])]])
            sample_ms, sample_events = [], []
            srng = np.random.default_rng(seed)
            for j in range(1 + sample_chars):
                rec.step = None if j == 0 else ("sample", j - 1)
                t0 = time.perf_counter()
                nxt = rec.timed("sample_b1", "model.logits", _sample_one, (model, c, s_state, srng), {})
                t1 = time.perf_counter()
                z, s_state = nxt
                c = z
                if j:
                    sample_ms.append((t1 - t0) * 1e3)
            rec.step = None
        finally:
            use(False)
            if kt:
                kt.uninstall()
        kernels = kt.report(steps) if kt else None
        compile_rep = compile_report(listener, _backend_modules(model, opt), rec)
    wall_s = time.perf_counter() - t_start

    # ---- per-phase aggregation over the instrumented steps
    per_phase = {}
    calls = {}
    for phase, fname, t0, t1, step in rec.events:
        if isinstance(step, tuple):
            continue
        per_phase[phase] = per_phase.get(phase, 0.0) + (t1 - t0) * 1e3
        calls[phase] = calls.get(phase, 0) + 1
    moved_in_place = 0
    for phase, fname, t0, t1, step, parent in rec.sub_events:
        per_phase[parent] = per_phase.get(parent, 0.0) - (t1 - t0) * 1e3
        per_phase[phase] = per_phase.get(phase, 0.0) + (t1 - t0) * 1e3
        calls[phase] = calls.get(phase, 0) + 1
        moved_in_place += 1
    dwhh_note = None
    measured = moved_in_place > 0
    if measured:
        est = None
        dwhh_note = (f"dW_hh timed in place: the backend's backward calls "
                     f"{', '.join(sorted({e[1] for e in rec.sub_events}))} from Python; that time is moved "
                     f"from recurrent backward to weight-gradient products")
    split = est is not None
    if split:
        est_s, how = statistics.median(est_times), est[1]
        moved = 0.0
        for k in range(model.L):
            key = f"backward_l{k}"
            if key in per_phase:
                take = min(est_s * 1e3, per_phase[key] / steps) * steps
                per_phase[key] -= take
                moved += take
        per_phase["weight_grads"] = per_phase.get("weight_grads", 0.0) + moved
        dwhh_note = (f"dW_hh (one product per layer after the time loop, inside the backend's backward) "
                     f"timed separately between the measured steps: {est_s * 1e3:.3f} ms per layer (median) "
                     f"via {how}; moved from recurrent backward to weight-gradient products")
    flops = phase_flops(model, T, B, split or measured)
    peak = measure_peak(device, n=peak_n, simulator=simulator)
    step_inst = statistics.mean(inst_ms)
    step_plain = statistics.mean(plain_ms)
    timed_sum = sum(per_phase.values()) / steps
    order = (["input"] + [f"forward_l{k}" for k in range(model.L)]
             + [f"backward_l{k}" for k in range(model.L - 1, -1, -1)]
             + ["weight_grads", "head_loss", "clip", "optimizer", "other_ops"])
    phases = []
    for name in order:
        available = not (name in ("clip", "optimizer") and opt.mod is None)
        ms = per_phase.get(name, 0.0) / steps
        fl = flops.get(name, 0.0)
        gf = fl / (ms * 1e-3) / 1e9 if fl and ms > 0 else None
        ph = {"name": name, "label": label(name), "calls": calls.get(name, 0) / steps,
              "ms_per_step": ms if available else None,
              "share": ms / step_inst if available else None,
              "gflops": gf, "peak_fraction": gf / peak["gflops"] if gf and peak["gflops"] else None,
              "flops_per_step": fl}
        if split and (name == "weight_grads" or name.startswith("backward_")):
            ph["estimated"] = True
        if not available:
            ph["note"] = "n/a: the backend has no optim module yet"
        phases.append(ph)
    glue = max(step_inst - timed_sum, 0.0)
    phases.append({"name": "glue", "label": label("glue"), "calls": None, "ms_per_step": glue,
                   "share": glue / step_inst, "gflops": None, "peak_fraction": None, "flops_per_step": 0.0})
    s_ms = statistics.median(sample_ms) if sample_ms else None
    s_fl = sample_flops(model)
    s_gf = s_fl / (s_ms * 1e-3) / 1e9 if s_ms else None
    sample = {"name": "sample_b1", "label": label("sample_b1"), "calls": 1, "ms_per_char": s_ms,
              "gflops": s_gf, "peak_fraction": s_gf / peak["gflops"] if s_gf and peak["gflops"] else None,
              "how": "model.logits on a (1, 1) input with the state carried, then a host-side draw"}
    mflops = model_flops(model, T, B)
    P_bytes = _nbytes(model.flat)
    report = {
        "config": {"cell": cell, "gru_variant": gru_variant, "peephole": peephole, "hidden": hidden,
                   "layers": layers, "embed": embed, "batch": B, "seq_len": T, "vocab": model.V,
                   "params": model.num_params, "dtype": str(model.dtype), "device": device,
                   "steps": steps, "warmup": warmup, "optimizer": optimizer, "clip": clip},
        "machine": _machine(device, simulator),
        "times_meaningful": not simulator,
        "step_ms": step_plain,
        "step_ms_instrumented": step_inst,
        "step_ms_median": statistics.median(plain_ms),
        "step_ms_instrumented_median": statistics.median(inst_ms),
        "instrumentation_overhead": statistics.median(inst_ms) / statistics.median(plain_ms) - 1.0,
        "step_ms_samples": {"plain": plain_ms, "instrumented": inst_ms},
        "timed_ms_per_step": timed_sum,
        "chars_per_s": T * B / (step_plain * 1e-3),
        "model_gflops": mflops / (step_plain * 1e-3) / 1e9,
        "model_flops_per_step": mflops,
        "peak": peak,
        "phases": phases,
        "sample": sample,
        "compile": compile_rep,
        "memory": {"activations": activation_memory(model, T, B), "params_bytes": P_bytes,
                   "grads_bytes": _nbytes(model.grad_flat),
                   "optimizer_bytes": opt.state_bytes(),
                   "peak_rss_bytes": peak_rss_bytes()},
        "kernels": kernels,
        "notes": [n for n in [dwhh_note] if n],
        "wall_s": wall_s,
        "_events": rec.events,
        "_step_bounds": step_bounds,
        "_dwhh_est_ms": est_s * 1e3 if split else None,
        "_sub_events": rec.sub_events,
        "_layers": model.L,
    }
    if opt.mod is None:
        report["notes"].append("clipping and optimizer update: n/a (seqlearn.optim or this backend's optim "
                               "kernels are not available)")
    if kt_error:
        report["notes"].append(kt_error)
    if simulator:
        report["notes"].append("CUDA simulator: every time here is Python time; none says anything "
                               "about a GPU")
    return report


def _hooks(mod, rec):
    """{name: (original, timing wrapper)} for the SUBPHASE_HOOKS plain Python functions of mod."""
    import types
    out = {}
    for name, phase in SUBPHASE_HOOKS.items():
        fn = vars(mod).get(name)
        if not isinstance(fn, types.FunctionType):
            continue       # absent, or a jitted function (jitted callers bind it at compile time)
        fname = f"{mod.__name__.rsplit('.', 1)[-1]}.{name}"

        def wrapped(*args, _fn=fn, _phase=phase, _fname=fname, **kw):
            return rec.sub(_phase, _fname, _fn, args, kw)
        out[name] = (fn, wrapped)
    return out


def _sample_one(model, c, state, rng):
    z, state = model.logits(c, state, host_state=False)
    v = z[0, -1].astype(np.float64)
    p = np.exp(v - v.max())
    p /= p.sum()
    nxt = int(rng.choice(len(p), p=p))
    return np.array([[nxt]]), state


def _backend_modules(model, opt):
    import importlib
    mods = []
    name = model.device
    for m in ("ops", "head", model.cell, "_blas", "_act", "_jit", "kernels", "persist"):
        try:
            mods.append(importlib.import_module(f"seqlearn.{name}.{m}"))
        except ImportError:
            pass
    if opt.mod is not None:
        mods.append(opt.mod)
    return mods


def _machine(device, simulator):
    out = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        import numba
        out["numba"] = numba.__version__
        out["numba_threads"] = numba.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    if device == "cuda":
        if simulator:
            out["gpu"] = "CUDA simulator"
        else:
            try:
                from numba import cuda
                out["gpu"] = cuda.get_current_device().name
                if isinstance(out["gpu"], bytes):
                    out["gpu"] = out["gpu"].decode()
            except Exception:  # noqa: BLE001
                out["gpu"] = "?"
    return out


# ---------------------------------------------------------------------------------------------
# outputs
def to_json(report):
    """The report without private fields, JSON-ready."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def chrome_trace(report):
    """{"traceEvents": [...]}: per instrumented step one "step N" slice on tid 1 and, nested in it,
    one slice per timed backend call named by its phase; sampling calls on tid 2. Times in µs from
    the first event."""
    evs = report["_events"]
    bounds = report["_step_bounds"]
    if not evs and not bounds:
        return {"traceEvents": []}
    origin = min([e[2] for e in evs] + [b[0] for b in bounds])
    us = lambda t: round((t - origin) * 1e6, 3)  # noqa: E731
    out = [{"name": "process_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "seqlearn profile"}},
           {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "training step"}},
           {"name": "thread_name", "ph": "M", "pid": 1, "tid": 2, "args": {"name": "sampling, batch 1"}}]
    for i, (t0, t1) in enumerate(bounds):
        out.append({"name": f"step {i}", "cat": "step", "ph": "X", "ts": us(t0), "dur": us(t1) - us(t0),
                    "pid": 1, "tid": 1, "args": {"step": i}})
    est = report.get("_dwhh_est_ms")
    for phase, fname, t0, t1, step in evs:
        if isinstance(step, tuple):
            out.append({"name": label(phase), "cat": phase, "ph": "X", "ts": us(t0), "dur": us(t1) - us(t0),
                        "pid": 1, "tid": 2, "args": {"fn": fname, "char": step[1]}})
            continue
        if est is not None and phase.startswith("backward_l"):
            cut = max(t0, t1 - est * 1e-3)
            out.append({"name": label(phase), "cat": phase, "ph": "X", "ts": us(t0), "dur": us(cut) - us(t0),
                        "pid": 1, "tid": 1, "args": {"fn": fname, "step": step}})
            out.append({"name": label("weight_grads"), "cat": "weight_grads", "ph": "X", "ts": us(cut),
                        "dur": us(t1) - us(cut), "pid": 1, "tid": 1,
                        "args": {"fn": fname, "step": step, "estimated": True}})
            continue
        out.append({"name": label(phase), "cat": phase, "ph": "X", "ts": us(t0), "dur": us(t1) - us(t0),
                    "pid": 1, "tid": 1, "args": {"fn": fname, "step": step}})
    for phase, fname, t0, t1, step, _parent in report.get("_sub_events", []):
        out.append({"name": label(phase), "cat": phase, "ph": "X", "ts": us(t0), "dur": us(t1) - us(t0),
                    "pid": 1, "tid": 1, "args": {"fn": fname, "step": step, "inside": _parent}})
    return {"traceEvents": out, "displayTimeUnit": "ms"}


def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def _mib(b):
    for unit, k in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if b >= k:
            return f"{b / k:.1f} {unit}"
    return f"{b} B"


def format_report(r):
    c = r["config"]
    extra = " peephole" if c["peephole"] else (f" {c['gru_variant']}" if c["cell"] == "gru" else "")
    lines = [f"profile {c['cell']}{extra}  H={c['hidden']} L={c['layers']} E={c['embed']} V={c['vocab']} "
             f"B={c['batch']} T={c['seq_len']}  {c['params']:,} params {c['dtype']}  device={c['device']}  "
             f"{c['steps']} steps after {c['warmup']} warm-up"]
    if not r["times_meaningful"]:
        lines.append("!! CUDA simulator: the times below are MEANINGLESS (Python emulation, not a GPU)")
    pk = r["peak"]
    lines.append(f"step {r['step_ms']:.3f} ms without instrumentation, {r['step_ms_instrumented']:.3f} ms with "
                 f"(means; medians {r['step_ms_median']:.3f} and {r['step_ms_instrumented_median']:.3f}: "
                 f"{r['instrumentation_overhead'] * 100:+.1f}%)")
    lines.append(f"{r['chars_per_s']:,.0f} chars/s  |  {r['model_gflops']:.1f} GFLOP/s by the DESIGN.md formula "
                 f"({r['model_flops_per_step'] / 1e9:.3f} GFLOP per step)")
    lines.append("float32 product peak: " + (f"{pk['gflops']:.1f} GFLOP/s ({pk['n']}^3, {pk['how']})"
                                             if pk["gflops"] else pk["how"]))
    lines.append("")
    hdr = f"{'phase':<32} {'calls':>6} {'ms/step':>9} {'share':>7} {'GFLOP/s':>8} {'of peak':>8}"
    lines += [hdr, "-" * len(hdr)]
    for ph in r["phases"]:
        name = ph["label"] + (" *" if ph.get("estimated") else "")
        if ph["ms_per_step"] is None:
            lines.append(f"{name:<32} {'':>6} {'n/a':>9}")
            continue
        lines.append(f"{name:<32} {_fmt(ph['calls'], 'g', ''):>6} {ph['ms_per_step']:9.3f} "
                     f"{ph['share'] * 100:6.1f}% {_fmt(ph['gflops'], '.1f'):>8} "
                     f"{_fmt(None if ph['peak_fraction'] is None else ph['peak_fraction'] * 100, '.0f'):>7}"
                     f"{'' if ph['peak_fraction'] is None else '%'}")
    lines.append("-" * len(hdr))
    lines.append(f"{'step (instrumented)':<32} {'':>6} {r['step_ms_instrumented']:9.3f} {100.0:6.1f}%")
    s = r["sample"]
    if s["ms_per_char"] is not None:
        lines.append(f"{s['label'] + ' (per char)':<32} {1:>6} {s['ms_per_char']:9.3f} {'':>7} "
                     f"{_fmt(s['gflops'], '.1f'):>8} "
                     f"{_fmt(None if s['peak_fraction'] is None else s['peak_fraction'] * 100, '.0f'):>7}"
                     f"{'' if s['peak_fraction'] is None else '%'}")
    for n in r["notes"]:
        lines.append(f"* {n}" if "timed separately" in n else f"  {n}")
    m = r["memory"]
    a = m["activations"]
    lines.append("")
    lines.append(f"memory: activations {_mib(a['total'])} for (T={c['seq_len']}, B={c['batch']}) "
                 f"(cell workspaces {_mib(a['cell_workspaces'])}, model buffers {_mib(a['model_buffers'])}); "
                 f"params {_mib(m['params_bytes'])}, grads {_mib(m['grads_bytes'])}, "
                 f"optimizer {_mib(m['optimizer_bytes'])}; peak RSS {_mib(m['peak_rss_bytes'])}")
    cp = r["compile"]
    lines.append("")
    lines.append(f"JIT compile: {cp['total_compile_s']:.2f} s compiling in this run (numba:compile events; "
                 f"numba-cuda's CUDADispatcher.compile on a GPU; 0 when everything came from the cache)")
    if cp["functions"]:
        h2 = f"  {'jitted function':<44} {'sigs':>4} {'compile s':>9} {'self s':>7} {'cache hit/miss':>14}"
        lines.append(h2)
        for f in cp["functions"]:
            hm = "-" if f["cache_hits"] is None else f"{f['cache_hits']}/{f['cache_misses']}"
            nm = f["name"].replace("seqlearn.", "", 1).replace(".<locals>", "")
            lines.append(f"  {nm:<44} {f['signatures']:>4} {f['compile_s']:9.3f} {f['compile_self_s']:7.3f} "
                         f"{hm:>14}")
    lines.append(f"  {'entry point (what the model calls)':<44} {'first call ms':>13} {'steady ms':>10}")
    for e in cp["entry_points"]:
        lines.append(f"  {e['name']:<44} {e['first_call_ms']:13.3f} {_fmt(e['steady_ms'], '10.3f'):>10}")
    if r.get("kernels"):
        lines.append("")
        lines.append("CUDA kernels (events" + (", simulator: meaningless" if not r["times_meaningful"] else "") + ")")
        lines.append(f"  {'kernel':<32} {'launches/step':>13} {'ms/step':>9} {'regs/thr':>8} {'shared B/blk':>12} "
                     f"{'local B/thr':>11}")
        for k in r["kernels"]:
            lines.append(f"  {k['name']:<32} {k['launches_per_step']:13g} {k['ms_per_step']:9.3f} "
                         f"{_fmt(k['regs_per_thread'], 'd', 'n/a'):>8} "
                         f"{_fmt(k['shared_mem_per_block'], 'd', 'n/a'):>12} "
                         f"{_fmt(k['local_mem_per_thread'], 'd', 'n/a'):>11}")
    return "\n".join(lines)
