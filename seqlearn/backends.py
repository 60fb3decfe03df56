"""The backend object: for a device name, where its ops, head, cells, optimizer kernels and
generation loop live. Each backend package (seqlearn.ref, .cpu, .cuda) holds the same modules
(docs/backends.md); only the requested one is imported, and its optional parts when first asked for.
"""
import functools
import importlib
import sys

from .errors import BackendError  # noqa: F401 - re-exported (seqlearn.backends.BackendError)

NAMES = ("cpu", "cuda", "ref")

# name: (generation module or None, how it generates, arrays live in host memory)
#   "blocks": pack(model) once, then generate(model, z, state, u, packed=...) a block of steps at a time
#   "streams": generate(model, start, length, rng, ...) yields every step itself
_TRAITS = {"ref": (None, None, True),
           "cpu": ("sample_kernels", "blocks", True),
           "cuda": ("sample", "streams", False)}


class Backend:
    """One backend: `ops`, `head`, the cell modules `lstm`/`gru`/`rnn`, `optim` (the optimizer
    kernels) and `generation` (the fast sampling loop, or None), plus what callers must know about
    its arrays (`on_host`: numpy arrays the host reads and writes in place)."""

    def __init__(self, name):
        self.name = name
        self.package = importlib.import_module(f"seqlearn.{name}")
        self.ops, self.head = self.package.ops, self.package.head
        self.lstm, self.gru, self.rnn = self.package.lstm, self.package.gru, self.package.rnn
        self._generation, self.generation_kind, self.on_host = _TRAITS[name]

    def cell(self, kind):
        """The module of one cell kind ("lstm", "gru", "rnn")."""
        return getattr(self, kind)

    @functools.cached_property
    def optim(self):
        return importlib.import_module(f"seqlearn.{self.name}.optim")

    @functools.cached_property
    def generation(self):
        """The backend's jitted generation loop, or None (no loop, or it cannot be imported here)."""
        if self._generation is None:
            return None
        try:
            return importlib.import_module(f"seqlearn.{self.name}.{self._generation}")
        except ImportError:
            return None

    def modules(self):
        """Every module of the backend imported so far (for compile statistics)."""
        prefix = f"seqlearn.{self.name}."
        return [m for k, m in sorted(sys.modules.items()) if k.startswith(prefix) and m is not None]

    def __repr__(self):
        return f"<seqlearn backend {self.name!r}>"


@functools.cache
def _load(name):
    if name == "cuda":
        from . import cuda_check
        cuda_check.require()
    return Backend(name)


def get(name):
    """The Backend for a device name; BackendError for an unknown name or a cuda without a GPU."""
    if name not in NAMES:
        raise BackendError(f"unknown device {name!r}; choose one of {', '.join(NAMES)}")
    return _load(name)
