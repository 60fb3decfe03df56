"""Synthetic long-range memory task: remember the first symbol.

After Hochreiter & Schmidhuber (1997), experiment 2: the first character of a sequence is a
*key*, the next ``lag - 2`` characters are *fillers* drawn uniformly and independently of the key,
then a *query* mark ``?``; the character that follows the query (``lag`` characters after the key)
is the key again. The answer therefore depends only on the character ``lag`` steps back, and the
fillers are distractors that carry no information about it.

As a sequence-labelling problem for CharLM (which predicts one character per input position):

    stream   K f f f ... f ? K            (lag + 1 characters; K a key, f fillers)
    inputs   K f f f ... f ?              (lag characters)
    targets  . . . . ... . K              ("." = nothing to say yet, then the answer)

Every target except the last is the blank ".", a function of the current input alone, so its loss
falls to ~0 within a few dozen steps and the training signal that remains is the answer's.
Accuracy is measured on the answer position only (chance: 1 / number of keys).
"""
import numpy as np

BLANK, QUERY = ".", "?"


class RememberFirst:
    """The task for one lag. ``batch(rng, B)`` -> (inputs, targets), both int64 (B, lag)."""

    def __init__(self, lag, keys="ABCD", fillers="abcd"):
        lag = int(lag)
        if lag < 2:
            raise ValueError("lag must be at least 2 (the key, then the query)")
        if set(keys) & set(fillers) or {BLANK, QUERY} & (set(keys) | set(fillers)):
            raise ValueError("keys, fillers, '.' and '?' must be distinct characters")
        if len(set(keys)) != len(keys) or len(set(fillers)) != len(fillers) or len(keys) < 2 or not fillers:
            raise ValueError("need at least two distinct keys and one filler")
        self.lag, self.keys, self.fillers = lag, keys, fillers
        self.vocab = BLANK + QUERY + keys + fillers
        self.index = {c: i for i, c in enumerate(self.vocab)}
        self.key_ids = np.array([self.index[c] for c in keys], np.int64)
        self.filler_ids = np.array([self.index[c] for c in fillers], np.int64)
        self.blank, self.query = self.index[BLANK], self.index[QUERY]

    @property
    def chance(self):
        return 1.0 / len(self.keys)

    def batch(self, rng, B):
        T = self.lag
        x = np.empty((B, T), np.int64)
        x[:, 0] = self.key_ids[rng.integers(0, len(self.keys), B)]
        x[:, 1:T - 1] = self.filler_ids[rng.integers(0, len(self.fillers), (B, T - 2))]
        x[:, T - 1] = self.query
        y = np.full((B, T), self.blank, np.int64)
        y[:, T - 1] = self.answer(x)
        return x, y

    def answer(self, x):
        """The correct answer for each row of inputs x (B, lag): the character lag steps before
        the answer position, i.e. the first input."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.lag:
            raise ValueError(f"inputs must have shape (B, {self.lag})")
        return x[:, -self.lag].copy()

    def decode(self, ids):
        return "".join(self.vocab[i] for i in ids)
