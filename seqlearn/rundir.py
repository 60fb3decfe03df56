"""The run directory of a training run, and the text a run trains on.

A run directory holds
    config.json     the whole configuration and the text's path and sha256 (for people to read)
    last.npz        weights + everything needed to continue exactly (optimizer moments, step, RNG
                    state, carried hidden state); written at every evaluation, at the end and on Ctrl-C
    best.npz        the weights with the lowest validation loss so far
    metrics.jsonl   one JSON object per logged step
    .lock           held by the process that owns the run (runlock.py)

RunDir reads and writes those files; read_last returns what a resumed Trainer starts from.
Every file is replaced atomically (a temporary file renamed over it), so a run killed at any moment
leaves each file either old or new, never torn; temporaries a killed run left behind are removed
when the next one takes the lock. A write that fails (a full disk, a read-only place) stops the run
with one line, the previous file intact.
"""
import glob
import json
import os
from typing import NamedTuple

from .checkpoint import CheckpointError, atomic_write, read, save
from . import tokens
from .data import BUILTIN, Vocab, builtin_text, read_text, sha256
from .runlock import LOCK_NAME, RunLock

RUN_FILES = ("last.npz", "best.npz", "metrics.jsonl", "config.json")
TMP_PREFIX = ".run-tmp-"     # the temporaries of this directory's atomic writes


class TrainingError(ValueError):
    """A run that cannot start or continue (existing directory, changed text, non-finite loss)."""


class SavedRun(NamedTuple):
    """last.npz of a run: its path, metadata (meta["train"]: config, text, step, optimizer steps,
    RNG state, ...), weights and trainer arrays (optimizer moments, carried state; names without
    the "train." prefix); corpus: (Vocab, token array) of the run's text once checked (see load_corpus)."""
    path: str
    meta: dict
    weights: dict
    arrays: dict
    corpus: tuple = None

    @property
    def train(self):
        return self.meta["train"]

    def load_corpus(self):
        """self with the run's text, checked against the sha256 the run started with."""
        return self._replace(corpus=reload_corpus(self.train["text"]))


class RunDir:
    """The files of the run in directory out."""

    def __init__(self, out):
        self.out = os.fspath(out)
        self.lock = RunLock(self.out)

    def path(self, name):
        return os.path.join(self.out, name)

    def check_new(self, force):
        """Refuse a directory that holds anything (but a lock), unless force."""
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise TrainingError(f"{self.out} exists and is not a directory")
        held = os.path.isdir(self.out) and [n for n in os.listdir(self.out)
                                            if n != LOCK_NAME and not n.startswith(TMP_PREFIX)]
        if held and not force:
            raise TrainingError(f"run directory {self.out} already exists; continue it with "
                                f"--resume {self.out} or start over with --force")

    def acquire(self):
        """Take the directory's lock (creating it); remove temporaries a killed run left."""
        if not self.lock.held:
            self.lock.acquire()
            for tmp in glob.glob(os.path.join(glob.escape(self.out), TMP_PREFIX + "*")):
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def release(self):
        self.lock.release()

    def _write(self, name, write):
        """Atomically replace name; an OSError becomes a one-line TrainingError."""
        try:
            write()
        except OSError as e:
            why = e.strerror or str(e)
            raise TrainingError(f"could not write {self.path(name)} ({why}); the run stopped at this "
                                f"point and the previous {name} is intact") from None

    def _write_text(self, name, text):
        self._write(name, lambda: atomic_write(self.path(name), lambda f: f.write(text.encode("utf-8")),
                                               suffix=os.path.splitext(name)[1], prefix=TMP_PREFIX))

    def start(self, doc):
        """Write config.json (doc) and an empty metrics.jsonl; with --force, remove only the
        files a run writes. Needs the lock."""
        for name in RUN_FILES:
            if os.path.isfile(self.path(name)):
                os.unlink(self.path(name))
        self._write_text("metrics.jsonl", "")
        self._write_text("config.json", json.dumps(doc, indent=2) + "\n")

    def metrics(self):
        """metrics.jsonl, open for appending."""
        return open(self.path("metrics.jsonl"), "a", encoding="utf-8")

    def truncate_metrics(self, step):
        """Drop metric lines logged after step (a run killed between saves) and torn lines."""
        path = self.path("metrics.jsonl")
        if not os.path.exists(path):
            return
        keep = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    if line.endswith("\n") and json.loads(line)["step"] <= step:
                        keep.append(line)
                except (ValueError, KeyError, TypeError):
                    pass
        self._write_text("metrics.jsonl", "".join(keep))

    def save_last(self, model, meta, arrays):
        self._write("last.npz", lambda: save(self.path("last.npz"), model, extra_meta=meta, arrays=arrays,
                                             prefix=TMP_PREFIX))

    def save_best(self, model, meta, arrays):
        self._write("best.npz", lambda: save(self.path("best.npz"), model, extra_meta=meta, arrays=arrays,
                                             prefix=TMP_PREFIX))

    def read_last(self, name="last.npz"):
        """The SavedRun in last.npz, or in best.npz (name), its text not yet loaded."""
        if not os.path.isdir(self.out):
            raise TrainingError(f"{self.out}: no such run directory")
        last = self.path(name)
        if not os.path.exists(last):
            raise TrainingError(f"{self.out} has no {name} to resume from")
        try:
            meta, everything = read(last)
        except CheckpointError as e:
            raise CheckpointError(f"{e}{self._fallback_hint(name)}") from None
        t = meta.get("train")
        if not isinstance(t, dict) or "config" not in t:
            raise CheckpointError(f"{last} holds no training state to resume from")
        if name == "best.npz" and not t.get("full_state"):
            raise CheckpointError(f"{last} holds the weights without the optimizer state (written by "
                                  f"an older seqlearn); it cannot be resumed from")
        check_train_meta(last, meta)
        weights = {k: v for k, v in everything.items() if not k.startswith("train.")}
        arrays = {k[6:]: v for k, v in everything.items() if k.startswith("train.")}
        return SavedRun(last, meta, weights, arrays)

    def _fallback_hint(self, name):
        if name != "last.npz" or not os.path.exists(self.path("best.npz")):
            return ""
        return f"; best.npz may still be whole: seqlearn train --resume {self.out} --from-best"

    def set_aside_last(self):
        """Before resuming from best.npz: keep last.npz as last.damaged.npz (unreadable) or
        last.step-N.npz, so that nothing the user had is overwritten. Returns the new name."""
        last = self.path("last.npz")
        if not os.path.exists(last):
            return None
        try:
            name = f"last.step-{int(read(last)[0]['train']['step'])}.npz"
        except (CheckpointError, KeyError, TypeError, ValueError):
            name = "last.damaged.npz"
        os.replace(last, self.path(name))
        return name


class _NullFile:
    def write(self, text):
        pass

    def flush(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class ReadOnlyRunDir(RunDir):
    """The run directory as every MPI rank but rank 0 sees it (seqlearn/dist.py): read, never
    locked or written; rank 0 checks, locks and writes it for the run."""

    def check_new(self, force):
        pass

    def acquire(self):
        pass

    def release(self):
        pass

    def start(self, doc):
        pass

    def metrics(self):
        return _NullFile()

    def truncate_metrics(self, step):
        pass

    def save_last(self, model, meta, arrays):
        pass

    def save_best(self, model, meta, arrays):
        pass

    def set_aside_last(self):
        return None


MODEL_KEYS = {"cell": "cell", "hidden": "hidden_size", "layers": "num_layers", "embed": "embed_dim",
              "peephole": "peephole", "gru_variant": "gru_variant", "dtype": "dtype"}   # config -> meta


def check_train_meta(path, meta):
    """A checkpoint's training state, checked before a Trainer builds anything from it: the
    configuration must describe the weights the file holds (so it cannot make the trainer
    allocate a bigger model), and the text must be described as load_corpus describes it."""
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


def load_corpus(c):
    """(Vocab, tokens, description for config.json) of config c's text; sets c["text"] to its
    absolute path. A fresh prepared token file beside the text (tokens.py) is memory-mapped instead
    of reading the text."""
    if c["text"] is None:
        text = builtin_text()
        info = {"path": None, "source": BUILTIN}
    else:
        path = os.path.abspath(os.fspath(c["text"]))
        c["text"] = path
        prepared = tokens.fresh(path, c["encoding"]) if os.path.isfile(path) else None
        if prepared is not None:
            vocab, data = tokens.load(path, prepared)
            info = {"path": path, "source": "file", "sha256": prepared["sha256"], "encoding": c["encoding"],
                    "chars": prepared["chars"], "tokens": tokens.paths(path)[0]}
            return vocab, data, info
        text = read_text(path, c["encoding"])
        info = {"path": path, "source": "file"}
    info.update(sha256=sha256(text), encoding=c["encoding"], chars=len(text))
    return (*_encoded(text), info)


def _encoded(text):
    """(the vocabulary of text, text encoded with it)."""
    vocab = Vocab.from_text(text)
    return vocab, vocab.encode(text)


def reload_corpus(info):
    """(Vocab, tokens) of the text load_corpus described as info, refused where it changed or is gone."""
    if info["source"] == BUILTIN:
        text = builtin_text()
        where = "the built-in corpus (pydoc_data.topics) of this Python"
    else:
        if not os.path.exists(info["path"]):
            raise TrainingError(f"the run's text {info['path']} is gone; resume needs the same text")
        prepared = tokens.fresh(info["path"], info["encoding"])
        if prepared is not None and prepared["sha256"] == info["sha256"]:
            return tokens.load(info["path"], prepared)
        text = read_text(info["path"], info["encoding"])
        where = info["path"]
    if sha256(text) != info["sha256"]:
        raise TrainingError(f"{where} has changed since the run started (sha256 differs); "
                            f"resume needs the same text")
    return _encoded(text)
