"""The timing proxy between a model and its backend: the recorder, the module and backend proxies,
the classifier that names each call's phase, and the sub-phase hooks."""
import time

from .phases import _CLIP_FNS, _OPS_PHASE, CELL_MODULES, SUBPHASE_HOOKS


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
