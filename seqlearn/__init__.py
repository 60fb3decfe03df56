"""seqlearn: character-level LSTM/GRU language models with hand-written backward passes."""
from .checkpoint import CheckpointError, load
from .model import CharLM

__version__ = "0.1.0"
__all__ = ["CharLM", "load", "CheckpointError", "__version__"]
