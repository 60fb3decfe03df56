"""The checkpoint file format: one .npz that numpy.load(path, allow_pickle=False) reads.

Weights are stored under PyTorch state_dict names; metadata is JSON text under the key "meta".
Arrays whose names start with "train." hold trainer state (optimizer moments and the like).
Files are written to a temporary file in the same folder and renamed into place.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from .errors import CheckpointError

FORMAT_VERSION = 1
META_KEYS = ("format_version", "cell", "hidden_size", "num_layers", "embed_dim", "gru_variant",
             "peephole", "vocab")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write, suffix=".npz"):
    """Call write(fileobj) on a temporary file beside path, then rename it over path."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())      # mkstemp makes 0600; a plain open() would honour the umask
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save(path, model, extra_meta=None, arrays=None):
    meta = {"format_version": FORMAT_VERSION, **model.config(), "dtype": model.dtype.name,
            "device": model.device, "seed": model.seed}
    meta.update(extra_meta or {})
    out = {k: np.ascontiguousarray(v) for k, v in model.params.items()}
    for k, v in (arrays or {}).items():
        out[f"train.{k}"] = np.asarray(v)
    out["meta"] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **out))


def read(path):
    """(meta dict, {name: array}) from a checkpoint; CheckpointError for anything else."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a directory, not a checkpoint")
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":    # every .npz is a zip archive
            raise CheckpointError(f"{path} is not a .npz checkpoint (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise CheckpointError(f"{path} holds pickled objects; refusing to load it") from None
        raise CheckpointError(f"{path} is not a readable .npz checkpoint ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise CheckpointError(f"{path} is not a readable .npz checkpoint ({type(e).__name__})") from None
    if "meta" not in arrays:
        raise CheckpointError(f"{path} has no seqlearn metadata (no 'meta' entry)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (TypeError, ValueError):
        raise CheckpointError(f"{path} has unreadable metadata") from None
    if not isinstance(meta, dict) or any(k not in meta for k in META_KEYS):
        raise CheckpointError(f"{path} metadata lacks {[k for k in META_KEYS if k not in meta]}")
    if meta["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format_version {meta['format_version']}; this seqlearn reads {FORMAT_VERSION}")
    return meta, arrays


def train_arrays(path):
    """The trainer's arrays (names without the "train." prefix) and the metadata."""
    meta, arrays = read(path)
    return meta, {k[6:]: v for k, v in arrays.items() if k.startswith("train.")}
