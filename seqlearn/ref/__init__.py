"""The numpy reference backend: written to be read, float32 or float64; the oracle for the others."""
from . import gru, head, lstm, ops, rnn  # noqa: F401

name = "ref"
