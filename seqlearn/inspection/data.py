"""What the inspect page shows, computed from one traced pass over the text."""
import base64
import math

import numpy as np

from ..params import GATE_NAMES

TOP = 5                     # predictions listed per character
SAT_LO, SAT_HI = 0.1, 0.9   # a sigmoid gate is left- or right-saturated outside these
SIGMOID_GATES = {"lstm": ("input", "forget", "output"), "gru": ("reset", "update"), "rnn": ()}
RANKED = 8                  # units listed per feature


def trace_text(model, data, seq_len=100):
    """Per layer {quantity: (T, H)} over the index sequence data, and the log-probabilities (T, V)
    of the character after each one."""
    data = np.asarray(data, np.int64)
    parts, logps, state = [], [], None
    for a in range(0, len(data), seq_len):
        layers, lp, state = model.trace(data[None, a:a + seq_len], state)
        parts.append([{k: v[0] for k, v in d.items()} for d in layers])
        logps.append(lp[0])
    layers = [{k: np.concatenate([p[i][k] for p in parts]) for k in parts[0][i]} for i in range(model.L)]
    return layers, np.concatenate(logps)


def features(text):
    """Simple properties of each character's position that units are known to track."""
    line, word, quote = [], [], []
    ln = wd = 0
    inside = False
    for c in text:
        if c == '"':
            inside = not inside
        ln = 0 if c == "\n" else ln + 1
        wd = 0 if c in " \n\t" else wd + 1
        line.append(ln)
        word.append(wd)
        quote.append(float(inside))
    return {"position in line": np.array(line, float), "inside double quotes": np.array(quote),
            "position in word": np.array(word, float)}


def _corr(X, f):
    """Pearson correlation of each column of X (T, H) with f (T,); 0 where either is constant."""
    Xc, fc = X - X.mean(0), f - f.mean()
    den = np.sqrt((Xc * Xc).sum(0) * (fc * fc).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (Xc * fc[:, None]).sum(0) / den
    return np.where(den > 0, r, 0.0)


def rank_units(layers, text, cell):
    """Per feature that varies over the text, the units (layer, quantity, unit, r) whose value
    correlates most with it."""
    q = "c" if cell == "lstm" else "h"
    out = {}
    for name, f in features(text).items():
        if f.min() == f.max():          # the text never varies it (no quotes, say): nothing to track
            continue
        rows = [(k, q, int(u), float(r)) for k, d in enumerate(layers) for u, r in enumerate(_corr(d[q], f))]
        out[name] = sorted(rows, key=lambda t: -abs(t[3]))[:RANKED]
    return out


def saturation(layers, cell):
    """Per layer and sigmoid gate: each unit's fraction of steps below SAT_LO and above SAT_HI."""
    return [{g: {"left": (d[g] < SAT_LO).mean(0).round(4).tolist(), "right": (d[g] > SAT_HI).mean(0).round(4).tolist()}
             for g in SIGMOID_GATES[cell]} for d in layers]


def _quantise(X, sym):
    """(T, H) -> base64 of H x T bytes (unit-major) and each unit's range: [lo, hi] per unit, or
    [-m, m] where sym (tanh-valued quantities, the cell state)."""
    if sym:
        hi = np.maximum(np.abs(X).max(0), 1e-12)
        lo = -hi
    else:
        lo, hi = np.zeros(X.shape[1]), np.ones(X.shape[1])
    b = np.clip(np.rint((X - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)
    return base64.b64encode(np.ascontiguousarray(b.T).tobytes()).decode("ascii"), lo.round(5).tolist(), hi.round(5).tolist()


def collect(model, text, seq_len=100):
    """Everything the page draws, as plain JSON-ready data."""
    vocab = {c: i for i, c in enumerate(model.vocab)}
    data = np.array([vocab[c] for c in text], np.int64)
    layers, logp = trace_text(model, data, seq_len)
    bits = [None] + [round(-float(logp[i - 1, data[i]]) / math.log(2), 3) for i in range(1, len(data))]
    top = np.argsort(-logp, axis=1, kind="stable")[:, :TOP]
    preds = [None] + [[[model.vocab[j], round(float(np.exp(logp[i - 1, j])), 4)] for j in top[i - 1]]
                      for i in range(1, len(data))]
    quantities = ["h"] + (["c"] if model.cell == "lstm" else []) + list(GATE_NAMES[model.cell])
    acts = []
    for d in layers:
        acts.append({q: dict(zip(("data", "lo", "hi"), _quantise(d[q], q in ("h", "c", "candidate"))))
                     for q in quantities})
    scored = [b for b in bits if b is not None]
    return {"model": repr(model), "cell": model.cell, "layers": model.L, "hidden": model.H,
            "text": text, "bits": bits, "top": preds, "quantities": quantities, "acts": acts,
            "mean_bits": round(float(np.mean(scored)), 4) if scored else None,
            "ranked": rank_units(layers, text, model.cell), "saturation": saturation(layers, model.cell),
            "thresholds": [SAT_LO, SAT_HI]}
