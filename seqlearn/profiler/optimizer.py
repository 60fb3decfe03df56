"""The optimizer used by the profiled step."""
from .memory import _nbytes


class _Optimizer:
    """The trainer's optimizer (seqlearn.optim.Optimizer): clip_grads(), then step(). Its kernel
    module (``opt.k``) is swapped for the timing proxy in instrumented steps. When seqlearn.optim or
    the backend's optim kernels are missing, clipping and the update are skipped (reported n/a)."""

    def __init__(self, model, name="adam", clip=5.0):
        try:
            from ..optim import Optimizer
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
