import os

import numpy as np
import pytest

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")

# (cell, kwargs) for every cell and variant
CELL_CONFIGS = [
    ("lstm", {}),
    ("lstm", {"peephole": True}),
    ("gru", {"gru_variant": "torch"}),
    ("gru", {"gru_variant": "cho"}),
    ("rnn", {}),
]
CELL_IDS = ["lstm", "lstm-peephole", "gru-torch", "gru-cho", "rnn"]


def random_batch(V, B, T, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


def random_state(model, B, seed=1, scale=0.5):
    rng = np.random.default_rng(seed)
    mk = lambda: (scale * rng.standard_normal((model.L, B, model.H))).astype(model.dtype)  # noqa: E731
    return (mk(), mk()) if model.cell == "lstm" else mk()


@pytest.fixture
def shared_data():
    if not os.path.isdir(SHARED):
        pytest.skip("../shared/data is absent")
    return SHARED
