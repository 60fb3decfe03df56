"""Phase names and labels, how a backend call maps to a phase, and the FLOPs of each phase."""

PHASE_LABELS = {
    "input": "input gather/projection",
    "forward": "recurrent forward",
    "backward": "recurrent backward",
    "weight_grads": "weight-gradient products",
    "head_loss": "head and loss",
    "clip": "clipping",
    "optimizer": "optimizer update",
    "other_ops": "zeroing, copies, transfers",
    "glue": "Python glue (untimed rest)",
    "sample_b1": "sampling step, batch 1",
    "generate_b1": "generation, batch 1",
}

_OPS_PHASE = {"project_onehot": "input", "onehot_input": "input", "linear": "input", "lookup": "input",
              "project_onehot_backward": "weight_grads", "linear_backward": "weight_grads",
              "lookup_backward": "weight_grads"}
_CLIP_FNS = ("sumsq", "scale", "clip_value")
# Sub-phase hooks: plain Python functions that a backend's cell module calls from its (Python-level)
# backward, looked up as module globals at call time, so they can be wrapped for the run. When the
# cpu backend computes dW_hh through one of these, it is timed in place instead of estimated.
SUBPHASE_HOOKS = {"wgrad": "weight_grads", "backward_weights": "weight_grads"}
CELL_MODULES = ("lstm", "gru", "rnn")


def label(name):
    base, _, layer = name.partition("_l")
    if base in ("forward", "backward") and layer.isdigit():
        return f"{PHASE_LABELS[base]} L{layer}"
    return PHASE_LABELS.get(name, name)


def fuses_input(model):
    """Whether the backend's time loop multiplies a dense input itself (the cpu lstm's
    fused_input): then a dense layer's projection is part of its recurrent forward phase."""
    mod = model.cell_impl.mod
    return getattr(mod, "fused_input", None) is not None


def phase_flops(model, T, B, split_dwhh):
    """Floating-point operations of the products executed per training step, per phase.
    Pointwise work, gathers and scatter-adds count as 0 (their GFLOP/s is shown as '-')."""
    G, H, V, L, E = model.cell_impl.G, model.H, model.V, model.L, model.E
    N, GH = T * B, G * H
    f = {"input": 0.0, "weight_grads": 0.0, "head_loss": 6.0 * N * H * V}
    fused = fuses_input(model)
    for k in range(L):
        I = (E or V) if k == 0 else H
        dense_input = k > 0 or E > 0
        f[f"forward_l{k}"] = 2.0 * N * GH * H
        if dense_input:
            f[f"forward_l{k}" if fused else "input"] += 2.0 * N * GH * I
            f["weight_grads"] += 4.0 * N * GH * I      # dW_ih += dG.T @ x and dx = dG @ W_ih
        dwhh = 2.0 * N * GH * H
        f[f"backward_l{k}"] = 2.0 * N * GH * H + (0.0 if split_dwhh else dwhh)
        if split_dwhh:
            f["weight_grads"] += dwhh
    return f


def model_flops(model, T, B):
    """The model FLOP formula (docs/profile.md): per layer and time step forward 2*B*G*H*(I + H) (I = V for a
    one-hot first layer), training = 3 x forward, plus the head 3*2*B*H*V, times T."""
    G, H, V, L, E = model.cell_impl.G, model.H, model.V, model.L, model.E
    fwd = sum(2.0 * B * G * H * (((E or V) if k == 0 else H) + H) for k in range(L))
    return T * (3.0 * fwd + 3.0 * 2.0 * B * H * V)


def sample_flops(model):
    G, H, V, L, E = model.cell_impl.G, model.H, model.V, model.L, model.E
    f = 2.0 * H * V
    for k in range(L):
        I = E if k == 0 else H
        f += 2.0 * G * H * (I + H)
    return f
