"""The inspect page: one self-contained HTML file showing what a model computes over a text.

data.collect runs the model over the text (model.trace, one stream, state carried) and gathers
per-character surprisal and top predictions, every layer's gates, cell and hidden state
(quantised to bytes), the units that track simple features of the text, and gate saturation;
page.render writes them into page.html (inline script and style, no network)."""
from .data import collect
from .page import render

__all__ = ["collect", "render"]
