"""Backend name -> backend package. Only the requested backend is imported."""
import importlib

NAMES = ("cpu", "cuda", "ref")


class BackendError(RuntimeError):
    """A backend that cannot be used here (unknown name, no CUDA GPU)."""


def get(name):
    if name not in NAMES:
        raise BackendError(f"unknown device {name!r}; choose one of {', '.join(NAMES)}")
    if name == "cuda":
        from . import cuda_check
        cuda_check.require()
    return importlib.import_module(f"seqlearn.{name}")
