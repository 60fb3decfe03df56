"""Prepared token files: a text encoded once into TEXT.tokens.npy (one unsigned integer per
character, memory-mapped by every process that trains on it, like nanoGPT's train.bin) with
TEXT.tokens.json beside it (the vocabulary, the text's sha256 and the size and time of the text it
was made from).

`seqlearn prepare TEXT` makes them, reading the text in pieces (it never holds the whole text);
training on TEXT uses them where they are fresh (made from this very file, with this encoding), so
a corpus bigger than memory trains, and each MPI rank reads only the streams it owns.
"""
import codecs
import hashlib
import json
import os

import numpy as np

from .checkpoint_file import atomic_write
from .data import DataError, Vocab, undecodable, wide_encoding

PIECE = 1 << 24           # bytes read at a time
SUFFIX = ".tokens"


class WriteError(DataError):
    """The token file could not be written (an unwritable folder, a full disk)."""


def paths(text_path):
    """(TEXT.tokens.npy, TEXT.tokens.json)."""
    base = os.fspath(text_path) + SUFFIX
    return base + ".npy", base + ".json"


def _pieces(path, encoding):
    """The text of path as decoded pieces (a leading BOM dropped); DataError for what read_text refuses."""
    try:
        dec = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r}") from None
    wide = wide_encoding(encoding)
    offset, first = 0, True
    with open(path, "rb") as f:
        while True:
            raw = f.read(PIECE)
            if offset == 0 and b"\x00" in raw[:65536] and not wide:
                raise DataError(f"{path} looks like a binary file (it holds NUL bytes), not text")
            try:
                s = dec.decode(raw, final=not raw)
            except UnicodeDecodeError as e:     # its start counts in this piece (or the bytes held over)
                at = max(e.start, 0)
                byte = e.object[at] if at < len(e.object) else 0
                raise undecodable(path, encoding, byte, offset + at - (len(e.object) - len(raw))) from None
            if first and s:
                s, first = (s[1:] if s.startswith("\ufeff") else s), False
            if s:
                yield s
            offset += len(raw)
            if not raw:
                return


def _stat(path):
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def prepare(text_path, encoding="utf-8"):
    """Write TEXT.tokens.npy and TEXT.tokens.json; returns the description (the json's content)."""
    text_path = os.path.abspath(os.fspath(text_path))
    if not os.path.isfile(text_path):
        raise DataError(f"{text_path}: no such file" if not os.path.exists(text_path)
                        else f"{text_path} is not a regular file")
    before = _stat(text_path)
    chars, n, sha = set(), 0, hashlib.sha256()
    for s in _pieces(text_path, encoding):                       # pass 1: vocabulary, length, sha256
        chars.update(s)
        n += len(s)
        sha.update(s.encode("utf-8"))
    if not n:
        raise DataError(f"{text_path} is empty")
    vocab = Vocab("".join(sorted(chars)))
    dtype = np.uint8 if len(vocab) <= 1 << 8 else (np.uint16 if len(vocab) <= 1 << 16 else np.uint32)
    npy, meta_path = paths(text_path)

    def write_tokens(f):                                          # pass 2: the tokens
        fmt = np.lib.format
        fmt.write_array_header_1_0(f, {"descr": fmt.dtype_to_descr(np.dtype(dtype)),
                                       "fortran_order": False, "shape": (n,)})
        for s in _pieces(text_path, encoding):
            f.write(vocab.encode(s).astype(dtype).tobytes())

    try:
        atomic_write(npy, write_tokens, suffix=".npy")
        info = {"vocab": vocab.chars, "sha256": sha.hexdigest(), "chars": n, "encoding": encoding,
                "dtype": np.dtype(dtype).name, "text": text_path, **before}
        atomic_write(meta_path, lambda f: f.write(json.dumps(info).encode("utf-8")), suffix=".json")
    except OSError as e:
        raise WriteError(f"could not write {npy} ({e.strerror or e})") from None
    if _stat(text_path) != before:
        raise DataError(f"{text_path} changed while it was being prepared; run seqlearn prepare again")
    return info


def fresh(text_path, encoding):
    """The description of TEXT's token file where one was made from this file as it is now, with
    this encoding; else None."""
    npy, meta_path = paths(text_path)
    try:
        with open(meta_path, encoding="utf-8") as f:
            info = json.load(f)
        ok = (isinstance(info, dict) and info.get("encoding") == encoding
              and {k: info.get(k) for k in ("size", "mtime_ns")} == _stat(text_path) and os.path.isfile(npy))
    except (OSError, ValueError):
        return None
    return info if ok else None


def load(text_path, info):
    """(Vocab, the tokens memory-mapped read-only) of a fresh token file."""
    npy, _ = paths(text_path)
    try:
        data = np.load(npy, mmap_mode="r", allow_pickle=False)
        vocab = Vocab(info["vocab"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{npy} is not a token file seqlearn prepare wrote ({e}); run seqlearn prepare again") from None
    if data.ndim != 1 or data.shape[0] != info.get("chars") or data.dtype.kind != "u" or \
            (len(data) and int(data[: 1 << 20].max()) >= len(vocab)):
        raise DataError(f"{npy} does not match {paths(text_path)[1]}; run seqlearn prepare again")
    return vocab, data
