"""Per-character log-probabilities of a text under a model, and their JSON-lines form.

The text is read as one stream from its first character, the state carried through chunks of
seq_len characters; character i (i >= 1) is scored given characters 0..i-1."""
import json
import math

import numpy as np

from .checkpoint_file import atomic_write


def log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def char_logprobs(model, data, seq_len=100):
    """(len(data) - 1,) natural-log probabilities of data[1:], and their (len(data) - 1, V) rows."""
    data = np.asarray(data, np.int64)
    n = len(data) - 1
    lp = np.empty(n)
    rows = np.empty((n, model.V))
    state = None
    for a in range(0, n, seq_len):
        x = data[a:min(n, a + seq_len)]
        z, state = model.logits(x[None], state)
        r = log_softmax(z[0])
        rows[a:a + len(x)] = r
        lp[a:a + len(x)] = r[np.arange(len(x)), data[a + 1:a + 1 + len(x)]]
    return lp, rows


def records(chars, logprobs, offset=0):
    """One dict per scored character: its index, the character, nats and bits."""
    for i, (c, lp) in enumerate(zip(chars, logprobs)):
        yield {"i": offset + i, "char": c, "logprob": round(float(lp), 6), "bits": round(-float(lp) / math.log(2), 6)}


def write_jsonl(path, recs, echo=None):
    """JSON lines to path (written beside it and renamed into place: a failed run leaves what was
    there), or through echo when path is "-"."""
    lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
    if path == "-":
        for line in lines:
            echo(line, nl=False)
        return
    atomic_write(path, lambda f: f.writelines(line.encode("utf-8") for line in lines), suffix=".jsonl")
