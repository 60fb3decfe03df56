"""Beam search over characters: the K likeliest continuations, extended one character at a time.

Each step scores every (beam, next character) pair by the sum of log-probabilities so far and keeps
the K best (ties to the lower beam, then the lower character index), carrying each survivor's
recurrent state. K = 1 is greedy decoding (sample --argmax)."""
import numpy as np

from .scoring import log_softmax


def _take(state, rows):
    """The recurrent state (host arrays (L, B, H), a pair for lstm) of the given streams."""
    if isinstance(state, tuple):
        return tuple(s[:, rows] for s in state)
    return state[:, rows]


def beam_search(model, start, length, K):
    """(indices (length,), total log-probability) of the best continuation of the index sequence
    start (at least one character) found with K beams."""
    start = np.asarray(start, np.int64)
    if length <= 0:
        return np.zeros(0, np.int64), 0.0
    z, state = model.logits(start[None], None)
    first = log_softmax(z[0, -1])
    order = np.argsort(-first, kind="stable")[:K]
    seqs = order[:, None]
    scores = first[order]
    state = _take(state, np.zeros(len(order), np.int64))
    for _ in range(length - 1):
        z, state = model.logits(seqs[:, -1:], state)
        cand = scores[:, None] + log_softmax(z[:, -1])          # (beams, V)
        flat = np.argsort(-cand.ravel(), kind="stable")[:K]
        parent, char = np.divmod(flat, model.V)
        seqs = np.concatenate([seqs[parent], char[:, None]], 1)
        scores = cand[parent, char]
        state = _take(state, parent)
    return seqs[0], float(scores[0])
