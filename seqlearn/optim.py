"""Optimizers over all of a model's parameters at once, gradient clipping, learning-rate schedules.

The update itself is a kernel of the model's backend (seqlearn/{ref,cpu,cuda}/optim.py) working on
the flat parameter buffer (model.flat) and gradient buffer (model.grad_flat); optimizer moments are
backend arrays of the same size. Rules are torch.optim's (see docs/backends.md):

    sgd       SGD with optional momentum / Nesterov / dampening
    adagrad   Adagrad
    rmsprop   RMSprop (not centred, no momentum; char-rnn's default optimizer)
    adam      Adam (L2 weight decay added to the gradient)
    adamw     AdamW (decoupled weight decay)

Usage per step:  norm = opt.clip_grads(); opt.step(lr)
"""
import math

import numpy as np

from . import backends

OPTIMIZERS = ("adam", "adamw", "rmsprop", "adagrad", "sgd")
DEFAULT_LR = {"adam": 2e-3, "adamw": 2e-3, "rmsprop": 2e-3, "adagrad": 0.05, "sgd": 0.1}
CLIP_MODES = ("norm", "value")
SCHEDULES = ("constant", "step", "cosine")
_STATE = {"sgd": ("buf",), "adagrad": ("sum",), "rmsprop": ("square_avg",), "adam": ("m", "v"),
          "adamw": ("m", "v")}


class Optimizer:
    """One optimizer over model.flat, reading model.grad_flat.

    weight_decay: L2 penalty added to the gradient (adamw: decoupled decay of the weights).
    clip: threshold for clip_mode "norm" (global L2 norm of all gradients) or "value" (each entry
    clamped to [-clip, clip]); 0 or None disables clipping.
    """

    def __init__(self, model, name="adam", lr=None, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0, betas=(0.9, 0.999), eps=None, alpha=0.99, clip=5.0, clip_mode="norm"):
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
        if clip_mode not in CLIP_MODES:
            raise ValueError(f"unknown clip mode {clip_mode!r}; choose norm or value")
        lr = DEFAULT_LR[name] if lr is None else float(lr)
        if not lr > 0 or not math.isfinite(lr):
            raise ValueError(f"learning rate must be a positive number, got {lr}")
        if momentum < 0 or weight_decay < 0 or (clip or 0) < 0:
            raise ValueError("momentum, weight decay and clip must not be negative")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and zero dampening")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1 and 0 <= alpha < 1):
            raise ValueError("betas and alpha must be in [0, 1)")
        self.model, self.name, self.lr = model, name, lr
        self.momentum, self.dampening, self.nesterov = float(momentum), float(dampening), bool(nesterov)
        self.weight_decay, self.betas, self.alpha = float(weight_decay), tuple(map(float, betas)), float(alpha)
        self.eps = float(eps if eps is not None else (1e-10 if name == "adagrad" else 1e-8))
        self.clip, self.clip_mode = float(clip or 0.0), clip_mode
        self.k = backends.get(model.device).optim
        ops = model.backend.ops
        n = model.flat.shape[0]
        names = _STATE[name]
        if name == "sgd" and not self.momentum:
            names = ()
        self.state = {s: ops.zeros((n,), model.dtype) for s in names}
        self._empty = ops.zeros((0,), model.dtype) if name == "sgd" and not names else None
        self.steps = 0          # number of updates applied so far

    # ---- clipping -------------------------------------------------------------------------------
    def grad_norm(self):
        return math.sqrt(self.k.sumsq(self.model.grad_flat))

    def clip_grads(self):
        """Clip model.grad_flat in place; return the global gradient norm before clipping."""
        g = self.model.grad_flat
        norm = self.grad_norm()
        if self.clip > 0 and math.isfinite(norm):
            if self.clip_mode == "norm":
                coef = self.clip / (norm + 1e-6)     # torch.nn.utils.clip_grad_norm_
                if coef < 1.0:
                    self.k.scale(g, coef)
            else:
                self.k.clip_value(g, self.clip)
        return norm

    # ---- update ---------------------------------------------------------------------------------
    def step(self, lr=None):
        """Apply one update with learning rate lr (default: the base rate)."""
        lr = self.lr if lr is None else float(lr)
        p, g, k, s = self.model.flat, self.model.grad_flat, self.k, self.state
        self.steps += 1
        wd = self.weight_decay
        if self.name == "sgd":
            buf = s["buf"] if "buf" in s else self._empty
            k.sgd(p, g, buf, lr, self.momentum, self.dampening, self.nesterov, wd, self.steps == 1)
        elif self.name == "adagrad":
            k.adagrad(p, g, s["sum"], lr, self.eps, wd)
        elif self.name == "rmsprop":
            k.rmsprop(p, g, s["square_avg"], lr, self.alpha, self.eps, wd)
        else:
            k.adam(p, g, s["m"], s["v"], lr, self.betas[0], self.betas[1], self.eps, wd,
                   self.name == "adamw", float(self.steps))

    # ---- checkpoints ----------------------------------------------------------------------------
    def config(self):
        return {"name": self.name, "lr": self.lr, "momentum": self.momentum, "dampening": self.dampening,
                "nesterov": self.nesterov, "weight_decay": self.weight_decay, "betas": list(self.betas),
                "eps": self.eps, "alpha": self.alpha, "clip": self.clip, "clip_mode": self.clip_mode}

    def state_arrays(self):
        """{name: host array} of the moments, for checkpoint "train.optim.*" entries."""
        to_host = self.model.backend.ops.to_host
        return {f"optim.{k}": np.array(to_host(v)) for k, v in self.state.items()}

    def load_state_arrays(self, arrays, steps):
        ops = self.model.backend.ops
        for k, v in self.state.items():
            a = arrays.get(f"optim.{k}")
            if a is None or a.shape != tuple(v.shape):
                raise ValueError(f"checkpoint lacks optimizer state optim.{k} of shape {tuple(v.shape)}")
            ops.copy(ops.to_device(np.ascontiguousarray(a, self.model.dtype)), v)
        self.steps = int(steps)


class Schedule:
    """Learning rate as a pure function of (step, epoch), so resuming needs no schedule state.

    constant: lr
    step:     char-rnn's decay: the rate is multiplied by `decay` at the end of every epoch e
              (e = 1, 2, ... completed epochs) with e >= decay_after
    cosine:   linear warmup over `warmup` steps to lr, then half a cosine down to min_lr at total_steps
    warmup applies to every schedule (linear from lr/warmup at step 0 to lr at step warmup).
    fit: a budget.Fit instead of total_steps: the cosine follows its progress (a length fitted to
    a time budget and refined during the run; the schedule's state is then the Fit's).
    """

    def __init__(self, kind="constant", lr=2e-3, warmup=0, total_steps=None, decay=0.97,
                 decay_after=10, min_lr=0.0, fit=None):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
        if kind == "cosine" and not total_steps and fit is None:
            raise ValueError("the cosine schedule needs a known length: give --steps, --epochs or --max-time")
        if warmup < 0 or not 0 < decay <= 1 or decay_after < 0:
            raise ValueError("warmup and decay_after must be >= 0 and decay in (0, 1]")
        self.kind, self.lr, self.warmup, self.total = kind, float(lr), int(warmup), total_steps
        self.decay, self.decay_after, self.min_lr = float(decay), int(decay_after), float(min_lr)
        self.fit = fit

    def __call__(self, step, epoch=0):
        """The rate for update number step (0-based) taken during 0-based epoch `epoch`."""
        if self.warmup and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.kind == "step":
            return self.lr * self.decay ** max(0, epoch - max(1, self.decay_after) + 1)
        if self.kind == "cosine":
            if self.fit is not None:
                t = self.fit.progress(step)
            else:
                t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
            return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + math.cos(math.pi * t))
        return self.lr
