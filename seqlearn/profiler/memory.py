"""Bytes: of arrays, of the model's workspace for (T, B), and the process's peak RSS."""
import resource
import sys

import numpy as np


def _nbytes(a):
    n = getattr(a, "nbytes", None)
    if n is None:
        n = int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize
    return int(n)


def _sum_bytes(obj):
    if isinstance(obj, dict):
        return sum(_sum_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_sum_bytes(v) for v in obj)
    if obj is None:
        return 0
    return _nbytes(obj)


def activation_memory(model, T, B):
    """Bytes of the workspace the model allocates for (T, B): per-layer cell workspaces (the
    activations kept for backward) and the model's projection/gradient buffers."""
    ws = model._workspace(T, B)
    cells = _sum_bytes(ws["layers"])
    rest = _sum_bytes({k: v for k, v in ws.items() if k != "layers"})
    return {"cell_workspaces": cells, "model_buffers": rest, "total": cells + rest}


def peak_rss_bytes():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)
