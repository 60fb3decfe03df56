"""Text, vocabulary and batches for character-level training.

- Text is read as UTF-8 unless another encoding is named; the vocabulary is the sorted set of
  Unicode code points.
- The validation split is the contiguous tail of the text (val_frac of it).
- Training batches are B parallel streams (char-rnn's layout): the training text is cut into B
  equal contiguous pieces and batch i holds characters [i*T, (i+1)*T) of every piece, so the hidden
  state after batch i is the right initial state for batch i+1.
"""
import hashlib
import os
import stat
import warnings

import numpy as np

from .errors import DataError

BUILTIN = "builtin:pydoc_data"


# ---- reading ----------------------------------------------------------------------------------
def builtin_text():
    """The built-in corpus: Python's own documentation topics (pydoc_data.topics, ~465 kB, no download)."""
    from pydoc_data.topics import topics
    return "".join(topics[k] for k in sorted(topics))


def sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def wide_encoding(encoding):
    """UTF-16/32 text holds NUL bytes; any other text that does is binary."""
    return encoding.lower().replace("-", "").replace("_", "").startswith(("utf16", "utf32"))


def undecodable(path, encoding, byte, offset):
    """The DataError of a byte that is not valid in encoding."""
    hint = "; name its encoding with --encoding (for example --encoding latin-1)" \
        if encoding.lower().replace("-", "") in ("utf8", "utf8sig") else ""
    return DataError(f"{path} is not valid {encoding} (byte 0x{byte:02x} at offset {offset}){hint}")


def read_text(path, encoding="utf-8"):
    """The text of a file; DataError with a one-line reason for anything unusable."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise DataError(f"{path} is a directory, not a text file")
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise DataError(f"{path}: {e.strerror or e}") from None
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise DataError(f"{path} is a device or socket, not a text file")   # /dev/zero would never end
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"{path}: {e.strerror or e}") from None
    if not raw:
        raise DataError(f"{path} is empty")
    if b"\x00" in raw[:65536] and not wide_encoding(encoding):
        raise DataError(f"{path} looks like a binary file (it holds NUL bytes), not text")
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as e:
        raise undecodable(path, encoding, raw[e.start], e.start) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text:
        raise DataError(f"{path} is empty")
    return text


# ---- vocabulary -------------------------------------------------------------------------------
class Vocab:
    """Characters (Unicode code points) in sorted order; index i <-> chars[i]."""

    def __init__(self, chars):
        chars = "".join(chars)
        if not chars or len(set(chars)) != len(chars):
            raise ValueError("a vocabulary needs distinct characters")
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}
        self._codes = np.array([ord(c) for c in chars], np.int64)
        self._sorted = np.argsort(self._codes)

    @classmethod
    def from_text(cls, text):
        return cls("".join(sorted(set(text))))

    def __len__(self):
        return len(self.chars)

    def unknown(self, text):
        """The characters of text that are not in the vocabulary, sorted."""
        return sorted(set(text) - set(self.chars))

    def encode(self, text, unk="error"):
        """int64 indices of text; unk="error" raises naming unknown characters, "skip" drops them."""
        codes = np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64)
        sc = self._codes[self._sorted]
        pos = np.clip(np.searchsorted(sc, codes), 0, len(sc) - 1)
        ok = sc[pos] == codes
        if not ok.all():
            if unk == "skip":
                return self._sorted[pos[ok]]
            raise DataError(f"{describe_unknown(self.unknown(text))} not in the model's vocabulary")
        return self._sorted[pos]

    def decode(self, idx):
        return "".join(self.chars[i] for i in np.asarray(idx).ravel())


def describe_unknown(chars, limit=12):
    shown = " ".join(repr(c) for c in chars[:limit])
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return f"{len(chars)} character{'s' if len(chars) != 1 else ''} ({shown}{more})"


# ---- splits and batches -----------------------------------------------------------------------
def split(data, val_frac):
    """(train, val) index arrays; val is the contiguous tail (empty when val_frac is 0)."""
    if not 0 <= val_frac < 1:
        raise DataError(f"--val-frac must be in [0, 1), got {val_frac}")
    n_val = int(len(data) * val_frac)
    if val_frac > 0 and n_val < 2:
        raise DataError(f"the validation split would hold {n_val} characters of {len(data)}; "
                        f"raise --val-frac or use a longer text")
    return data[:len(data) - n_val], data[len(data) - n_val:]


def fit_batch(n_train, batch, seq_len, warn=True):
    """(batch, seq_len) that fit n_train training characters (at least one batch per epoch),
    shrinking batch first, then seq_len, with a warning; DataError when nothing fits."""
    if n_train < 2:
        raise DataError(f"the training split holds {n_train} character(s); at least 2 are needed")
    if n_train - 1 >= batch * seq_len:
        return batch, seq_len
    b = max(1, (n_train - 1) // seq_len)
    t = min(seq_len, n_train - 1)
    if warn:
        warnings.warn(f"the training text ({n_train} characters) is too small for --batch {batch} "
                      f"--seq-len {seq_len}; using --batch {b} --seq-len {t}", stacklevel=2)
    return b, t


def share(n, part):
    """The rows (r0, r1) of n that part = (rank, size) owns: contiguous, sizes differing by at most 1."""
    rank, size = part
    return rank * n // size, (rank + 1) * n // size


class Streams:
    """B parallel streams over the training data, cut into batches of T steps (char-rnn's layout).

    rows=(r0, r1): hold only streams r0:r1 of the B (one rank's share; the layout, the batches per
    epoch and self.B are still those of all B). data keeps its integer dtype (a memory-mapped token
    file is read only where this share's streams lie); batch() hands out views."""

    def __init__(self, data, B, T, rows=None):
        data = np.asarray(data)
        if not np.issubdtype(data.dtype, np.integer):
            data = data.astype(np.int64)
        S = (len(data) - 1) // B
        if S < T:
            raise DataError(f"{len(data)} characters do not fill one batch of {B} x {T}")
        self.B, self.T = B, T
        self.rows = (0, B) if rows is None else tuple(rows)
        r0, r1 = self.rows
        self.chars = B * S                 # characters in all B streams
        self.x = data[:B * S].reshape(B, S)[r0:r1]
        self.y = data[1:B * S + 1].reshape(B, S)[r0:r1]
        self.num_batches = S // T          # batches per epoch; the remainder of each stream is unused

    def batch(self, i):
        """(inputs, targets), each (r1 - r0, T), of batch i of an epoch."""
        s = slice(i * self.T, (i + 1) * self.T)
        return self.x[:, s], self.y[:, s]


def eval_chunks(data, B, T, part=None):
    """Validation layout over the whole split: Bv <= B streams, each of S = (n-1)//Bv steps, in
    chunks of at most T steps; returns [(inputs, targets)]. Predicts n-1 - (n-1) % Bv characters.
    part=(rank, size): only this rank's share of the Bv streams (none where it has no stream)."""
    data = np.asarray(data)
    n = len(data) - 1
    if n < 1:
        return []
    Bv = max(1, min(B, n // T))
    S = n // Bv
    r0, r1 = share(Bv, part) if part is not None else (0, Bv)
    if r0 == r1:
        return []
    x = data[:Bv * S].reshape(Bv, S)[r0:r1]
    y = data[1:Bv * S + 1].reshape(Bv, S)[r0:r1]
    return [(x[:, a:a + T], y[:, a:a + T]) for a in range(0, S, T)]


def evaluate_sum(model, chunks):
    """(summed nats, predicted characters) over chunks, carrying the state between them."""
    state, total, count = None, 0.0, 0
    for x, y in chunks:
        loss, state = model.evaluate(x, y, state)
        total += loss * x.size
        count += x.size
    return total, count


def evaluate(model, chunks):
    """Mean nats per predicted character over chunks, carrying the state between them."""
    total, count = evaluate_sum(model, chunks)
    return total / count if count else float("nan")
