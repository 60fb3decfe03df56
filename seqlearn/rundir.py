"""The run directory of a training run, and resuming from it.

A run directory holds
    config.json     the whole configuration and the text's path and sha256 (for people to read)
    last.npz        weights + everything needed to continue exactly (optimizer moments, step, RNG
                    state, carried hidden state); written at every evaluation, at the end and on Ctrl-C
    best.npz        the weights with the lowest validation loss so far
    metrics.jsonl   one JSON object per logged step

RunDir is the part of Trainer that reads and writes it: creating it, config.json, last.npz and
best.npz, metrics.jsonl, and Trainer.resume, which checks the text's sha256 and restores the state.
"""
import json
import math
import os

import numpy as np

from . import __version__
from .checkpoint import CheckpointError, read, save
from .data import BUILTIN, builtin_text, read_text, sha256

RESUME_OVERRIDES = ("steps", "epochs", "max_time", "eval_every", "log_every", "device")


class TrainingError(ValueError):
    """A run that cannot start or continue (existing directory, changed text, non-finite loss)."""


class RunDir:
    """The run-directory methods of Trainer (it sets out, config, text_info, model, opt, streams,
    state, step, best_val, last_val, schedule_steps)."""

    # ---- run directory ------------------------------------------------------------------------
    def _path(self, name):
        return os.path.join(self.out, name)

    def _check_dir(self, force):
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise TrainingError(f"{self.out} exists and is not a directory")
        if os.path.isdir(self.out) and os.listdir(self.out) and not force:
            raise TrainingError(f"run directory {self.out} already exists; continue it with "
                                f"--resume {self.out} or start over with --force")

    def _init_dir(self):
        """Create the run directory; with --force, remove only the files a run writes."""
        os.makedirs(self.out, exist_ok=True)
        for name in ("last.npz", "best.npz", "metrics.jsonl", "config.json"):
            if os.path.isfile(self._path(name)):
                os.unlink(self._path(name))

    @staticmethod
    def _load_text(c):
        if c["text"] is None:
            text = builtin_text()
            info = {"path": None, "source": BUILTIN}
        else:
            path = os.path.abspath(os.fspath(c["text"]))
            text = read_text(path, c["encoding"])
            info = {"path": path, "source": "file"}
            c["text"] = path
        info.update(sha256=sha256(text), encoding=c["encoding"], chars=len(text))
        return text, info

    def _write_config(self):
        doc = {"seqlearn": __version__, "config": self.config, "text": self.text_info,
               "schedule_steps": self.schedule_steps, "vocab_size": self.model.V,
               "num_params": self.model.num_params, "batches_per_epoch": self.streams.num_batches}
        with open(self._path("config.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")

    # ---- resume -------------------------------------------------------------------------------
    @classmethod
    def resume(cls, out, echo=print, progress=None, **overrides):
        """A Trainer restored from out/last.npz; overrides may set steps, epochs, max_time,
        eval_every, log_every and device (None leaves the saved value)."""
        out = os.fspath(out)
        if not os.path.isdir(out):
            raise TrainingError(f"{out}: no such run directory")
        last = os.path.join(out, "last.npz")
        if not os.path.exists(last):
            raise TrainingError(f"{out} has no last.npz to resume from")
        meta, everything = read(last)
        weights = {k: v for k, v in everything.items() if not k.startswith("train.")}
        arrays = {k[6:]: v for k, v in everything.items() if k.startswith("train.")}
        t = meta.get("train")
        if not isinstance(t, dict) or "config" not in t:
            raise CheckpointError(f"{last} holds no training state to resume from")
        config = dict(t["config"])
        bad = [k for k in overrides if k not in RESUME_OVERRIDES]
        if bad:
            raise TrainingError(f"--resume takes the configuration from the run; cannot change {bad}")
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if any(k in overrides for k in ("steps", "epochs", "max_time")):   # new limits replace the old
            config.update(steps=None, epochs=None, max_time=None)
        config.update(overrides)
        info = t["text"]
        if info["source"] == BUILTIN:
            text = builtin_text()
            where = "the built-in corpus (pydoc_data.topics) of this Python"
        else:
            if not os.path.exists(info["path"]):
                raise TrainingError(f"the run's text {info['path']} is gone; resume needs the same text")
            text = read_text(info["path"], info["encoding"])
            where = info["path"]
        if sha256(text) != info["sha256"]:
            raise TrainingError(f"{where} has changed since the run started (sha256 differs); "
                                f"resume needs the same text")
        self = cls(config, out, echo=echo, progress=progress,
                   _resume={"text": text, "text_info": info, "schedule_steps": t.get("schedule_steps")})
        m = self.model
        if meta["vocab"] != m.vocab:
            raise CheckpointError(f"{last} has a different vocabulary from its text")
        try:
            m.load_state_dict(weights)
            self.opt.load_state_arrays(arrays, t["optim_steps"])
            m.rng.bit_generator.state = t["rng"]
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{last} has incomplete training state ({e})") from None
        self.step = int(t["step"])
        self.best_val = float(t["best_val_loss"]) if t.get("best_val_loss") is not None else math.inf
        self.last_val = t.get("val_loss")
        self.elapsed_before = float(t.get("elapsed_s", 0.0))
        if "state_h" in arrays:
            h = arrays["state_h"]
            self.state = (h, arrays["state_c"]) if m.cell == "lstm" else h
        self._truncate_metrics()
        return self

    def _truncate_metrics(self):
        """Drop metric lines logged after the checkpoint (a run killed between saves)."""
        path = self._path("metrics.jsonl")
        if not os.path.exists(path):
            return
        keep = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    if json.loads(line)["step"] <= self.step:
                        keep.append(line)
                except (ValueError, KeyError, TypeError):
                    pass
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(keep)

    # ---- checkpoints ----------------------------------------------------------------------------
    def _meta(self, elapsed):
        return {"seed": self.config["seed"], "device": self.config["device"],
                "step": self.step, "val_loss": self.last_val,
                "train": {"config": self.config, "text": self.text_info, "step": self.step,
                          "epoch": self.step // self.streams.num_batches,
                          "optim_steps": self.opt.steps, "rng": self.model.rng.bit_generator.state,
                          "best_val_loss": None if math.isinf(self.best_val) else self.best_val,
                          "val_loss": self.last_val, "elapsed_s": elapsed,
                          "schedule_steps": self.schedule_steps, "seqlearn": __version__}}

    def _weights_finite(self):
        return math.isfinite(self.opt.k.sumsq(self.model.flat))

    def save_last(self, elapsed):
        if not self._weights_finite():
            raise TrainingError(f"the weights are not finite at step {self.step}; last.npz not written")
        arrays = self.opt.state_arrays()
        if self.state is not None:
            to_host = self.model.backend.ops.to_host
            if self.model.cell == "lstm":
                arrays["state_h"], arrays["state_c"] = (np.array(to_host(a)) for a in self.state)
            else:
                arrays["state_h"] = np.array(to_host(self.state))
        save(self._path("last.npz"), self.model, extra_meta=self._meta(elapsed), arrays=arrays)

    def save_best(self, elapsed):
        save(self._path("best.npz"), self.model, extra_meta=self._meta(elapsed))
