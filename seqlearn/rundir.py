"""The run directory of a training run, and the text a run trains on.

A run directory holds
    config.json     the whole configuration and the text's path and sha256 (for people to read)
    last.npz        weights + everything needed to continue exactly (optimizer moments, step, RNG
                    state, carried hidden state); written at every evaluation, at the end and on Ctrl-C
    best.npz        the weights with the lowest validation loss so far
    metrics.jsonl   one JSON object per logged step

RunDir reads and writes those files; read_last returns what a resumed Trainer starts from.
"""
import json
import os
from typing import NamedTuple

from .checkpoint import CheckpointError, read, save
from .data import BUILTIN, builtin_text, read_text, sha256

RUN_FILES = ("last.npz", "best.npz", "metrics.jsonl", "config.json")


class TrainingError(ValueError):
    """A run that cannot start or continue (existing directory, changed text, non-finite loss)."""


class SavedRun(NamedTuple):
    """last.npz of a run: its path, metadata (meta["train"]: config, text, step, optimizer steps,
    RNG state, ...), weights and trainer arrays (optimizer moments, carried state; names without
    the "train." prefix); text: the run's text once checked (see load_text)."""
    path: str
    meta: dict
    weights: dict
    arrays: dict
    text: str = None

    @property
    def train(self):
        return self.meta["train"]

    def load_text(self):
        """self with the run's text, checked against the sha256 the run started with."""
        return self._replace(text=reload_text(self.train["text"]))


class RunDir:
    """The files of the run in directory out."""

    def __init__(self, out):
        self.out = os.fspath(out)

    def path(self, name):
        return os.path.join(self.out, name)

    def check_new(self, force):
        """Refuse a directory that holds anything, unless force."""
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise TrainingError(f"{self.out} exists and is not a directory")
        if os.path.isdir(self.out) and os.listdir(self.out) and not force:
            raise TrainingError(f"run directory {self.out} already exists; continue it with "
                                f"--resume {self.out} or start over with --force")

    def start(self, doc):
        """Create the directory, write config.json (doc) and an empty metrics.jsonl; with --force,
        remove only the files a run writes."""
        os.makedirs(self.out, exist_ok=True)
        for name in RUN_FILES:
            if os.path.isfile(self.path(name)):
                os.unlink(self.path(name))
        with open(self.path("config.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        open(self.path("metrics.jsonl"), "w").close()

    def metrics(self):
        """metrics.jsonl, open for appending."""
        return open(self.path("metrics.jsonl"), "a", encoding="utf-8")

    def truncate_metrics(self, step):
        """Drop metric lines logged after step (a run killed between saves)."""
        path = self.path("metrics.jsonl")
        if not os.path.exists(path):
            return
        keep = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    if json.loads(line)["step"] <= step:
                        keep.append(line)
                except (ValueError, KeyError, TypeError):
                    pass
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(keep)

    def save_last(self, model, meta, arrays):
        save(self.path("last.npz"), model, extra_meta=meta, arrays=arrays)

    def save_best(self, model, meta):
        save(self.path("best.npz"), model, extra_meta=meta)

    def read_last(self):
        """The SavedRun in last.npz (its text not yet loaded)."""
        if not os.path.isdir(self.out):
            raise TrainingError(f"{self.out}: no such run directory")
        last = self.path("last.npz")
        if not os.path.exists(last):
            raise TrainingError(f"{self.out} has no last.npz to resume from")
        meta, everything = read(last)
        t = meta.get("train")
        if not isinstance(t, dict) or "config" not in t:
            raise CheckpointError(f"{last} holds no training state to resume from")
        check_train_meta(last, meta)
        weights = {k: v for k, v in everything.items() if not k.startswith("train.")}
        arrays = {k[6:]: v for k, v in everything.items() if k.startswith("train.")}
        return SavedRun(last, meta, weights, arrays)


MODEL_KEYS = {"cell": "cell", "hidden": "hidden_size", "layers": "num_layers", "embed": "embed_dim",
              "peephole": "peephole", "gru_variant": "gru_variant", "dtype": "dtype"}   # config -> meta


def check_train_meta(path, meta):
    """A checkpoint's training state, checked before a Trainer builds anything from it: the
    configuration must describe the weights the file holds (so it cannot make the trainer
    allocate a bigger model), and the text must be described as load_text describes it."""
    t = meta["train"]
    c, text = t["config"], t.get("text")
    if not isinstance(c, dict) or any(c.get(a, meta.get(b)) != meta.get(b) for a, b in MODEL_KEYS.items()):
        raise CheckpointError(f"{path}: its training configuration does not describe the weights it holds")
    ok_text = (isinstance(text, dict) and isinstance(text.get("sha256"), str)
               and isinstance(text.get("encoding"), str)
               and (text.get("source") == BUILTIN or (text.get("source") == "file" and isinstance(text.get("path"), str))))
    ints = all(isinstance(t.get(k), int) and not isinstance(t.get(k), bool) and t[k] >= 0
               for k in ("step", "optim_steps"))
    sched = t.get("schedule_steps")
    ints = ints and (sched is None or (isinstance(sched, int) and not isinstance(sched, bool) and sched >= 1))
    if not ok_text or not ints or not isinstance(t.get("rng"), dict):
        raise CheckpointError(f"{path} has incomplete training state")


def load_text(c):
    """The text of config c and its description for config.json; sets c["text"] to its absolute path."""
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


def reload_text(info):
    """The text that load_text described as info, refused where it changed or is gone."""
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
    return text
