"""Checkpoints as models: `load(path)` builds the CharLM a checkpoint describes.

The file format (writing, reading, checking) is checkpoint_file.py; its names are re-exported here,
the module users import.
"""
from .checkpoint_file import FORMAT_VERSION, META_KEYS, atomic_write, read, save, train_arrays  # noqa: F401
from .errors import CheckpointError
from .model import CharLM


def load(path, device=None, dtype=None):
    """A CharLM from a checkpoint. device/dtype override what the file says."""
    meta, arrays = read(path)
    weights = {k: v for k, v in arrays.items() if not k.startswith("train.")}
    try:
        m = CharLM(meta["vocab"], cell=meta["cell"], hidden_size=meta["hidden_size"],
                   num_layers=meta["num_layers"], embed_dim=meta["embed_dim"],
                   peephole=meta["peephole"], gru_variant=meta["gru_variant"],
                   dropout=meta.get("dropout", 0.0), dtype=dtype or meta.get("dtype", "float32"),
                   device=device or meta.get("device", "cpu"), seed=meta.get("seed", 0),
                   dropout_top=meta.get("dropout_top", 0.0))
        m.load_state_dict(weights)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    return m
