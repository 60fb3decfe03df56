"""The profiled text: loading, encoding, random batches."""
import numpy as np


def load_text(path=None, encoding="utf-8"):
    if path is None:
        try:
            from pydoc_data.topics import topics
            return "\n".join(topics[k] for k in sorted(topics))
        except ImportError:  # pragma: no cover - some distributions strip pydoc_data
            rng = np.random.default_rng(0)
            return "".join(chr(32 + int(i)) for i in rng.integers(0, 64, 200_000))
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not valid {encoding} text ({e.reason} at byte {e.start})") from None


def encode(text):
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    uniq, ids = np.unique(codes, return_inverse=True)
    return "".join(chr(int(c)) for c in uniq), ids.astype(np.int64)


def _batches(ids, B, T, n, rng):
    span = len(ids) - T - 1
    if span < 1:
        raise ValueError(f"the text has {len(ids)} characters; --seq-len {T} needs at least {T + 2}")
    out = []
    for _ in range(n):
        starts = rng.integers(0, span, B)
        idx = starts[:, None] + np.arange(T + 1)[None, :]
        chunk = ids[idx]
        out.append((chunk[:, :-1], chunk[:, 1:]))
    return out
