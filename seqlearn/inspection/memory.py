"""The inspect page for the long-range memory task: the unit that carries the key across the lag.

A unit carries the key when its value, at the steps between the key and the query, is explained by
which key the sequence started with: the score is the variance between the key groups (per step,
averaged over the steps) over the unit's variance across all sequences and steps (a correlation
ratio, eta^2: a unit that ramps the same way for every key scores near 0)."""
import numpy as np

from .data import collect, trace_text

EXAMPLES = 256


def key_scores(model, task, seed=0):
    """(quantity, (H,) scores, per-step values (B, lag, H) and the key of each sequence)."""
    x, _ = task.batch(np.random.default_rng(seed), EXAMPLES)
    layers, _, _ = model.trace(x)
    q = "c" if model.cell == "lstm" else "h"
    V = layers[0][q].astype(np.float64)                  # (B, lag, H), the first layer's
    key = x[:, 0]
    W = V[:, :-1]                                        # the steps from the key up to before the query
    means = np.stack([W[key == k].mean(0) for k in np.unique(key)])
    counts = np.array([(key == k).sum() for k in np.unique(key)])[:, None, None]
    between = ((counts * (means - W.mean(0)) ** 2).sum(0) / len(key)).mean(0)   # (H,)
    total = W.reshape(-1, W.shape[2]).var(0)            # over sequences and steps: a ramp is not memory
    with np.errstate(invalid="ignore", divide="ignore"):
        eta = np.where(total > 1e-12 * (W * W).mean((0, 1)) + 1e-30, between / total, 0.0)
    return q, eta, V, key


def memory_page_data(model, task, seed=0):
    """collect()'s data for one sequence of the task, with the key-carrying unit chosen and its
    value over the steps, averaged per key, as a chart."""
    q, score, V, key = key_scores(model, task, seed)
    best = int(score.argmax())
    x, y = task.batch(np.random.default_rng(seed + 1), 1)
    text = task.decode(x[0]) + task.decode(y[0, -1:])
    data = collect(model, text)
    order = np.argsort(-score, kind="stable")[:8]
    data["ranked"] = {f"carries the key (eta^2 over the {task.lag - 1} steps before the query)":
                      [(0, q, int(u), float(score[u])) for u in order]}
    data["score_name"] = "eta^2"
    data["select"] = [0, q, best]
    data["series"] = {"title": f"layer 0 {q} of unit {best} over the sequence, mean per key "
                               f"({len(key)} sequences)",
                      "labels": [task.vocab[k] for k in np.unique(key)],
                      "lines": [V[key == k][:, :, best].mean(0).round(4).tolist() for k in np.unique(key)]}
    return data
