"""Parameter layout: names and shapes (PyTorch state_dict names), one flat buffer, named views.

The weights of every layer live in one contiguous buffer so that the optimizer, clipping and
checkpointing see a single array; each name is a reshaped view into it.
"""
import math

import numpy as np

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
# the activated gates in the order the weight rows hold them (PyTorch's): lstm input (the lecture's
# update gate), forget, candidate cell, output; gru reset (the lecture's relevance gate), update,
# candidate; rnn none beyond h
GATE_NAMES = {"lstm": ("input", "forget", "candidate", "output"), "gru": ("reset", "update", "candidate"),
              "rnn": ()}
PEEPHOLES = ("weight_pi", "weight_pf", "weight_po")   # input, forget, output gate; H each


def layout(cell, V, H, L, E=0, peephole=False):
    """[(name, shape)] in buffer order. The peephole vectors of a layer are adjacent (a (3, H) view)."""
    G = GATES[cell]
    out = []
    if E:
        out.append(("encoder.weight", (V, E)))
    for k in range(L):
        I = (E or V) if k == 0 else H
        out += [(f"rnn.weight_ih_l{k}", (G * H, I)), (f"rnn.weight_hh_l{k}", (G * H, H)),
                (f"rnn.bias_ih_l{k}", (G * H,)), (f"rnn.bias_hh_l{k}", (G * H,))]
        if peephole:
            out += [(f"rnn.{p}_l{k}", (H,)) for p in PEEPHOLES]
    out += [("decoder.weight", (V, H)), ("decoder.bias", (V,))]
    return out


def offsets(spec):
    """{name: (start, stop, shape)} and the total size."""
    table, pos = {}, 0
    for name, shape in spec:
        n = math.prod(shape)
        table[name] = (pos, pos + n, shape)
        pos += n
    return table, pos


def views(flat, table):
    return {name: flat[a:b].reshape(shape) for name, (a, b, shape) in table.items()}


def init(spec, H, rng, dtype):
    """PyTorch's default initialisation: U(-1/sqrt(H), 1/sqrt(H)) for the recurrent layers and the
    decoder, N(0, 1) for the embedding."""
    table, size = offsets(spec)
    flat = np.empty(size, dtype)
    k = 1.0 / math.sqrt(H)
    for name, (a, b, shape) in table.items():
        if name == "encoder.weight":
            flat[a:b] = rng.standard_normal(b - a)
        else:
            flat[a:b] = rng.uniform(-k, k, b - a)
    return flat, table
