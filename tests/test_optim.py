"""Optimizer kernels (ref numpy and cpu numba) against hand-computed steps and torch.optim."""
import math

import numpy as np
import pytest

import seqlearn.ref
from seqlearn.optim import Optimizer, Schedule

DEVICES = ["ref", "cpu"]


class _Flat:
    """What an Optimizer needs of a model: flat buffers, dtype, device and backend ops (numpy
    arrays for both ref and cpu), so the kernels are tested on their own."""

    def __init__(self, device, dtype="float64", n=37, seed=0):
        self.device, self.dtype, self.backend = device, np.dtype(dtype), seqlearn.ref
        self.flat = np.random.default_rng(seed).uniform(-1, 1, n).astype(dtype)
        self.grad_flat = np.zeros(n, dtype)
        self.num_params = n

    def set_flat(self, host):
        self.flat[...] = host


def _model(device, dtype="float64"):
    return _Flat(device, dtype)


def _grads(n, steps, seed=0):
    return np.random.default_rng(seed).standard_normal((steps, n))


@pytest.mark.parametrize("device", DEVICES)
def test_adam_hand_computed_first_two_steps(device):
    m = _model(device)
    p0 = m.flat.copy()
    opt = Optimizer(m, "adam", lr=0.1, clip=0)
    g1, g2 = _grads(m.num_params, 2)
    m.grad_flat[:] = g1
    opt.step()
    # step 1: m = 0.1 g, v = 0.001 g^2, bias-corrected m/sqrt(v) = sign(g)
    expect1 = p0 - 0.1 * g1 / (np.abs(g1) + 1e-8)
    np.testing.assert_allclose(m.flat, expect1, rtol=1e-12, atol=1e-12)
    m.grad_flat[:] = g2
    opt.step()
    mm = 0.9 * 0.1 * g1 + 0.1 * g2
    vv = 0.999 * 0.001 * g1 ** 2 + 0.001 * g2 ** 2
    expect2 = expect1 - 0.1 / (1 - 0.9 ** 2) * mm / (np.sqrt(vv) / math.sqrt(1 - 0.999 ** 2) + 1e-8)
    np.testing.assert_allclose(m.flat, expect2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_sgd_momentum_nesterov_weight_decay_hand_computed(device):
    m = _model(device)
    p0 = m.flat.copy()
    opt = Optimizer(m, "sgd", lr=0.5, momentum=0.9, nesterov=True, weight_decay=0.1, clip=0)
    g1, g2 = _grads(m.num_params, 2, seed=3)
    m.grad_flat[:] = g1
    opt.step()
    d1 = g1 + 0.1 * p0
    b1 = d1
    p1 = p0 - 0.5 * (d1 + 0.9 * b1)
    np.testing.assert_allclose(m.flat, p1, rtol=1e-12)
    m.grad_flat[:] = g2
    opt.step()
    d2 = g2 + 0.1 * p1
    b2 = 0.9 * b1 + d2
    np.testing.assert_allclose(m.flat, p1 - 0.5 * (d2 + 0.9 * b2), rtol=1e-12)
    np.testing.assert_array_equal(m.grad_flat, g2)      # the gradient is not modified


@pytest.mark.parametrize("device", DEVICES)
def test_adagrad_rmsprop_adamw_hand_computed(device):
    g = _grads(_model(device).num_params, 1, seed=5)[0]
    m = _model(device)
    p0 = m.flat.copy()
    m.grad_flat[:] = g
    Optimizer(m, "adagrad", lr=0.3, clip=0).step()
    np.testing.assert_allclose(m.flat, p0 - 0.3 * g / (np.abs(g) + 1e-10), rtol=1e-12)
    m = _model(device)
    m.grad_flat[:] = g
    Optimizer(m, "rmsprop", lr=0.01, alpha=0.9, clip=0).step()
    np.testing.assert_allclose(m.flat, p0 - 0.01 * g / (np.sqrt(0.1 * g * g) + 1e-8), rtol=1e-12)
    m = _model(device)
    m.grad_flat[:] = g
    Optimizer(m, "adamw", lr=0.1, weight_decay=0.5, clip=0).step()
    np.testing.assert_allclose(m.flat, p0 * (1 - 0.05) - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_clipping_by_norm_and_value(device):
    m = _model(device)
    g = _grads(m.num_params, 1, seed=7)[0] * 10
    norm = np.linalg.norm(g)
    m.grad_flat[:] = g
    opt = Optimizer(m, "sgd", lr=1.0, clip=5.0, clip_mode="norm")
    assert opt.clip_grads() == pytest.approx(norm, rel=1e-12)
    np.testing.assert_allclose(m.grad_flat, g * 5.0 / (norm + 1e-6), rtol=1e-12)
    assert np.linalg.norm(m.grad_flat) < 5.0
    m.grad_flat[:] = g * 1e-3                           # below the threshold: untouched
    opt.clip_grads()
    np.testing.assert_array_equal(m.grad_flat, g * 1e-3)
    m.grad_flat[:] = g
    opt = Optimizer(m, "sgd", lr=1.0, clip=2.0, clip_mode="value")
    opt.clip_grads()
    np.testing.assert_array_equal(m.grad_flat, np.clip(g, -2, 2))


def test_cpu_kernels_equal_ref_in_float32():
    for name, kw in [("adam", {}), ("adamw", {"weight_decay": 0.01}), ("rmsprop", {}),
                     ("adagrad", {}), ("sgd", {"momentum": 0.9})]:
        ms = [_model(d, "float32") for d in ("ref", "cpu")]
        opts = [Optimizer(mm, name, lr=0.01, **kw) for mm in ms]
        for g in _grads(ms[0].num_params, 4, seed=11):
            for mm, o in zip(ms, opts):
                mm.grad_flat[:] = g
                o.clip_grads()
                o.step()
        np.testing.assert_allclose(ms[0].flat, ms[1].flat, rtol=1e-5, atol=1e-6, err_msg=name)


TORCH_CASES = [
    ("sgd", {"momentum": 0.9}, lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.9)),
    ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
     lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("sgd", {"momentum": 0.5, "dampening": 0.3},
     lambda t, p: t.optim.SGD(p, lr=0.1, momentum=0.5, dampening=0.3)),
    ("sgd", {}, lambda t, p: t.optim.SGD(p, lr=0.1)),
    ("adagrad", {"weight_decay": 0.02}, lambda t, p: t.optim.Adagrad(p, lr=0.1, weight_decay=0.02)),
    ("rmsprop", {"alpha": 0.95, "weight_decay": 0.01},
     lambda t, p: t.optim.RMSprop(p, lr=0.01, alpha=0.95, weight_decay=0.01)),
    ("adam", {"weight_decay": 0.01}, lambda t, p: t.optim.Adam(p, lr=0.01, weight_decay=0.01)),
    ("adamw", {"weight_decay": 0.1, "betas": (0.8, 0.99)},
     lambda t, p: t.optim.AdamW(p, lr=0.01, weight_decay=0.1, betas=(0.8, 0.99))),
]


@pytest.mark.torch
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,kw,make", TORCH_CASES, ids=[f"{c[0]}{i}" for i, c in enumerate(TORCH_CASES)])
@pytest.mark.parametrize("clip_mode", ["norm", "value"])
def test_matches_torch_optim(device, name, kw, make, clip_mode):
    torch = pytest.importorskip("torch")
    lr = {"sgd": 0.1, "adagrad": 0.1}.get(name, 0.01)
    m = _model(device)
    opt = Optimizer(m, name, lr=lr, clip=1.5, clip_mode=clip_mode, **kw)
    tp = torch.nn.Parameter(torch.tensor(m.flat.copy()))
    topt = make(torch, [tp])
    for g in _grads(m.num_params, 6, seed=13):
        m.grad_flat[:] = g
        opt.clip_grads()
        opt.step()
        tp.grad = torch.tensor(g.copy())
        if clip_mode == "norm":
            torch.nn.utils.clip_grad_norm_([tp], 1.5)
        else:
            torch.nn.utils.clip_grad_value_([tp], 1.5)
        topt.step()
    np.testing.assert_allclose(m.flat, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_optimizer_state_round_trip():
    m = _model("ref")
    opt = Optimizer(m, "adam", lr=0.01)
    for g in _grads(m.num_params, 3):
        m.grad_flat[:] = g
        opt.step()
    arrays = opt.state_arrays()
    m2 = _model("ref")
    m2.set_flat(m.flat)
    opt2 = Optimizer(m2, "adam", lr=0.01)
    opt2.load_state_arrays(arrays, opt.steps)
    g = _grads(m.num_params, 1, seed=9)[0]
    for mm, o in ((m, opt), (m2, opt2)):
        mm.grad_flat[:] = g
        o.step()
    np.testing.assert_array_equal(m.flat, m2.flat)
    with pytest.raises(ValueError, match="optimizer state"):
        opt2.load_state_arrays({}, 1)


def test_bad_optimizer_options():
    m = _model("ref")
    for kw in [{"name": "nope"}, {"lr": -1.0}, {"lr": 0.0}, {"clip_mode": "x"}, {"clip": -1.0},
               {"name": "sgd", "nesterov": True}]:
        with pytest.raises(ValueError):
            Optimizer(m, **kw)


def test_schedules():
    s = Schedule("constant", lr=0.1)
    assert s(0) == s(1000, 50) == 0.1
    s = Schedule("step", lr=1.0, decay=0.5, decay_after=2)
    # char-rnn: multiplied by decay at the end of every epoch e >= decay_after
    assert [s(0, e) for e in range(5)] == [1.0, 1.0, 0.5, 0.25, 0.125]
    s = Schedule("cosine", lr=1.0, warmup=4, total_steps=14)
    assert [s(i) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert s(4) == 1.0
    assert s(9) == pytest.approx(0.5)
    assert s(14) == pytest.approx(0.0) and s(100) == pytest.approx(0.0)
    assert all(s(i) >= s(i + 1) for i in range(4, 20))
    s = Schedule("constant", lr=0.2, warmup=2)
    assert [s(0), s(1), s(2)] == [0.1, 0.2, 0.2]
    with pytest.raises(ValueError, match="cosine"):
        Schedule("cosine", lr=1.0)
    with pytest.raises(ValueError):
        Schedule("linear")


@pytest.mark.torch
def test_cosine_warmup_matches_torch_lambda():
    torch = pytest.importorskip("torch")
    s = Schedule("cosine", lr=0.1, warmup=5, total_steps=30)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    f = lambda i: (i + 1) / 5 if i < 5 else 0.5 * (1 + math.cos(math.pi * min(1.0, (i - 5) / 25)))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
    for i in range(35):
        assert s(i) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()
