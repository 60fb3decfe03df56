"""The checkpoint file format: one .npz that numpy.load(path, allow_pickle=False) reads.

Weights are stored under PyTorch state_dict names; metadata is JSON text under the key "meta".
Arrays whose names start with "train." hold trainer state (optimizer moments and the like).
Files are written to a temporary file in the same folder and renamed into place.
meta["checksum"] is the sha256 of the arrays (see checksum); files written before it existed have
none and still load. Reading checks every member before allocating it (npz_safe.py), the metadata's
types, the weights' names and shapes against the model the metadata describes, and that every
array is finite: a damaged or hostile file is refused with one line, never half-loaded.
"""
import hashlib
import json
import os
import tempfile

import numpy as np

from . import params as P
from .errors import CheckpointError
from .npz_safe import read_npz, shown

FORMAT_VERSION = 1
META_KEYS = ("format_version", "cell", "hidden_size", "num_layers", "embed_dim", "gru_variant",
             "peephole", "vocab")
CELLS, VARIANTS, DTYPES = ("lstm", "gru", "rnn"), ("torch", "cho"), ("float32", "float64")
TMP_PREFIX = ".tmp-"       # temporary files of atomic_write; a killed writer may leave one behind


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, write, suffix=".npz", prefix=TMP_PREFIX):
    """Call write(fileobj) on a temporary file beside path, then rename it over path."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())      # mkstemp makes 0600; a plain open() would honour the umask
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _fsync_dir(folder):
    """Make the rename itself durable (a power cut after it keeps the new file)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def checksum(arrays):
    """sha256 over the arrays in name order: each one's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}\0{a.dtype.str}\0{a.shape}\0".encode("utf-8", "surrogatepass"))
        h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def save(path, model, extra_meta=None, arrays=None, prefix=TMP_PREFIX):
    meta = {"format_version": FORMAT_VERSION, **model.config(), "dtype": model.dtype.name,
            "device": model.device, "seed": model.seed}
    meta.update(extra_meta or {})
    out = {k: np.ascontiguousarray(v) for k, v in model.params.items()}
    for k, v in (arrays or {}).items():
        out[f"train.{k}"] = np.asarray(v)
    meta["checksum"] = {"sha256": checksum(out)}
    out["meta"] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **out), prefix=prefix)


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
    arrays = read_npz(path)
    if "meta" not in arrays:
        raise CheckpointError(f"{path} has no seqlearn metadata (no 'meta' entry)")
    raw = arrays.pop("meta")
    try:
        if raw.dtype.kind != "U" or raw.shape != ():
            raise TypeError
        meta = json.loads(str(raw))
    except (TypeError, ValueError, RecursionError):
        raise CheckpointError(f"{path} has unreadable metadata") from None
    if not isinstance(meta, dict) or any(k not in meta for k in META_KEYS):
        missing = [k for k in META_KEYS if k not in meta] if isinstance(meta, dict) else list(META_KEYS)
        raise CheckpointError(f"{path} metadata lacks {missing}")
    if meta["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format_version {meta['format_version']!r}; this seqlearn reads {FORMAT_VERSION}")
    _check_checksum(path, meta, arrays)
    _check_meta(path, meta)
    _check_arrays(path, meta, arrays)
    return meta, arrays


def _check_checksum(path, meta, arrays):
    if "checksum" not in meta:
        return
    want = meta["checksum"].get("sha256") if isinstance(meta["checksum"], dict) else None
    if not isinstance(want, str):
        raise CheckpointError(f"{path} has a malformed checksum entry")
    if checksum(arrays) != want:
        raise CheckpointError(f"{path} is damaged: its arrays do not match the sha256 recorded when it was written")


def _is_int(x, low):
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def _check_meta(path, meta):
    """The model description, checked for type and range before anything is built from it."""
    v = meta["vocab"]
    if not (isinstance(v, str) and len(v) >= 1 and len(set(v)) == len(v)):
        raise CheckpointError(f"{path}: vocab is not a string of distinct characters")
    problems = [
        (not any(0xD800 <= ord(ch) <= 0xDFFF for ch in v), "vocab holds lone surrogates (no text decodes to them)"),
        (meta["cell"] in CELLS, f"cell {meta['cell']!r} is not one of {', '.join(CELLS)}"),
        (_is_int(meta["hidden_size"], 1), f"hidden_size {meta['hidden_size']!r} is not a positive integer"),
        (_is_int(meta["num_layers"], 1), f"num_layers {meta['num_layers']!r} is not a positive integer"),
        (_is_int(meta["embed_dim"], 0), f"embed_dim {meta['embed_dim']!r} is not a non-negative integer"),
        (meta["gru_variant"] in VARIANTS, f"gru_variant {meta['gru_variant']!r} is not torch or cho"),
        (isinstance(meta["peephole"], bool), "peephole is not true or false"),
        (meta.get("dtype", "float32") in DTYPES, f"dtype {meta.get('dtype')!r} is not float32 or float64"),
        (_is_number(meta.get("dropout", 0.0)) and 0 <= meta.get("dropout", 0.0) < 1, "dropout is not a number in [0, 1)"),
        (_is_number(meta.get("dropout_top", 0.0)) and 0 <= meta.get("dropout_top", 0.0) < 1,
         "dropout_top is not a number in [0, 1)"),
        (_is_int(meta.get("seed", 0), 0), "seed is not a non-negative integer"),
    ]
    for ok, what in problems:
        if not ok:
            raise CheckpointError(f"{path}: {what}")


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_arrays(path, meta, arrays):
    """Weights named and shaped as the described model's, every array floating point and finite.
    Run before a model is built, so a header cannot make one allocate more than the file holds."""
    if meta["num_layers"] > len(arrays):      # each layer has 4 arrays: no file can hold more layers
        raise CheckpointError(f"{path}: its weights do not match the model its metadata describes "
                              f"({meta['num_layers']} layers in {len(arrays)} arrays)")
    spec = dict(P.layout(meta["cell"], len(meta["vocab"]), meta["hidden_size"], meta["num_layers"],
                         meta["embed_dim"], meta["peephole"] and meta["cell"] == "lstm"))
    weights = {k: a for k, a in arrays.items() if not k.startswith("train.")}
    missing, extra = sorted(set(spec) - set(weights)), sorted(set(weights) - set(spec))
    if missing or extra:
        raise CheckpointError(f"{path}: its weights do not match the model its metadata describes "
                              f"(missing {missing[:4]}, unexpected {[shown(k) for k in extra[:4]]})")
    for k, a in arrays.items():
        if k in spec and a.shape != tuple(spec[k]):
            raise CheckpointError(f"{path}: {k} has shape {a.shape}, the metadata implies {tuple(spec[k])}")
        if a.dtype.kind != "f":
            raise CheckpointError(f"{path}: {shown(k)} has dtype {a.dtype}; checkpoints hold floating-point arrays")
        if a.size and not np.isfinite(a).all():
            raise CheckpointError(f"{path}: {shown(k)} holds NaN or infinite values; refusing to load it")


def train_arrays(path):
    """The trainer's arrays (names without the "train." prefix) and the metadata."""
    meta, arrays = read(path)
    return meta, {k[6:]: v for k, v in arrays.items() if k.startswith("train.")}
