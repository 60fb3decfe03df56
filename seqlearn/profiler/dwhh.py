"""The recurrent weight-gradient product dW_hh, timed on its own where it is inside jitted code."""
import time

import numpy as np

from .machine import _njit_sgemm


def _dwhh_estimator(device, model, T, B):
    """(run, how): run() computes one recurrent weight-gradient product dW += dG.T @ h_prev of
    shapes (T*B, G*H), (T*B, H) through the routine the backend uses; None on cuda, where it is not
    timed separately. The profiler times run() between the measured steps (same machine load)."""
    if device == "cuda":
        return None
    G, H = model.cell_impl.G, model.H
    rng = np.random.default_rng(1)
    dG = rng.standard_normal((T * B, G * H)).astype(model.dtype)
    hp = rng.standard_normal((T * B, H)).astype(model.dtype)
    dW = np.zeros((G * H, H), model.dtype)
    how = "numpy dG.T @ h_prev (as seqlearn.ref)"
    run = lambda: np.add(dW, dG.T @ hp, out=dW)  # noqa: E731
    if device == "cpu":
        try:
            from ..cpu import gru
            from ..cpu._blas import consts
            from ..cpu.wgrad import wgrad
            db = np.zeros(G * H, model.dtype)
            if model.cell == "gru" and model.gru_variant == "cho":     # rows n see r * h_prev
                run = lambda: gru._wgrad_cho(dG, hp, hp, dW, db, consts(dG))  # noqa: E731
                how = "seqlearn.cpu.gru._wgrad_cho (the cpu backend's, on its threads)"
            else:
                run = lambda: wgrad(dG, hp, dW, db, consts(dG))  # noqa: E731
                how = "seqlearn.cpu.wgrad.wgrad (the cpu backend's dW += A.T @ X, on its threads)"
        except ImportError:
            f = _njit_sgemm()
            out = np.empty((G * H, H), model.dtype)
            run = lambda: f(dG.T, hp, out)  # noqa: E731
            how = "njit np.dot dG.T @ h_prev"
    run()
    return run, how


def _time_once(run):
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0
