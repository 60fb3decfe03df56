"""Central-difference gradient checks of a CharLM's hand-written backward pass (use float64)."""
import numpy as np

from . import params as P


def rel_error(a, b):
    """Norm-wise relative error ||a - b|| / max(||a||, ||b||), 0 when both are zero."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    den = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if den == 0 else float(np.linalg.norm(a - b) / den)


def numeric_grads(f, x, eps=1e-5, max_entries=None, rng=None):
    """Central differences of scalar f() w.r.t. the host array x (perturbed in place). The default
    step 1e-5 balances float64 round-off (~1e-16 / eps) against truncation (~eps^2).
    Returns (indices, estimates); a random subset of entries when max_entries is set."""
    flat = x.reshape(-1)
    idx = np.arange(flat.size)
    if max_entries is not None and flat.size > max_entries:
        idx = np.sort((rng or np.random.default_rng(0)).choice(flat.size, max_entries, replace=False))
    est = np.empty(len(idx))
    for j, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        est[j] = (fp - fm) / (2 * eps)
    return idx, est


def check_model(model, inputs, targets, state=None, eps=1e-5, max_entries=None, seed=0):
    """{name: relative error} for every parameter (and "state.h0" / "state.c0" when a state is
    given), comparing the model's gradients with central differences of its training loss. With
    dropout the masks are held fixed: every loss is computed from the same generator state, so
    it draws the masks of the analytic pass."""
    rng = np.random.default_rng(seed)
    drawn = model.rng.bit_generator.state
    _, grads, _ = model.loss_and_grads(inputs, targets, state)
    analytic = {k: np.array(v, np.float64) for k, v in grads.items()}
    dstate = model.dstate
    host = model.backend.ops.to_host(model.flat).copy()
    views = P.views(host, model.table)

    def loss():
        model.rng.bit_generator.state = drawn
        return model.forward_backward(inputs, targets, state)[0]

    def loss_with_host():
        model.set_flat(host)
        return loss()

    out = {}
    for name, v in views.items():
        idx, est = numeric_grads(loss_with_host, v, eps, max_entries, rng)
        out[name] = rel_error(analytic[name].reshape(-1)[idx], est)
    model.set_flat(host)
    if state is not None:
        parts = state if model.cell == "lstm" else (state,)
        dparts = dstate if model.cell == "lstm" else (dstate,)
        for label, s, ds in zip(("state.h0", "state.c0"), parts, dparts):
            idx, est = numeric_grads(loss, s, eps, max_entries, rng)
            out[label] = rel_error(np.asarray(ds).reshape(-1)[idx], est)
    model.rng.bit_generator.state = drawn
    return out
