"""A lower bound for one cpu training step of an LSTM: every phase timed alone, in a loop, on one
thread with half of the batch (the share of each of the two threads), and summed. The real step
also pays for thread hand-offs, barriers, the Python between phases and caches shared by phases;
this floor does not, so no schedule of these kernels on two cores runs a step faster.

    python benchmarks/step_floor.py                       # LSTM H=128, L=1, B=32, T=64, V=65
    python benchmarks/step_floor.py --hidden 256 --batch 32 --seq-len 100

Phases (one layer, one-hot input, as in the performance table's first row): the one-hot table (W_ih.T + b_ih,
ops.onehot_input), the recurrent forward (per step: the product h @ W_hh.T, then the pointwise
update reading the step's input rows from the table), the head (logits, softmax and its gradient,
dh), the recurrent backward (pointwise, then da @ W_hh), dW_hh, the one-hot scatter into dW_ih,
clipping and Adam. Prints each phase in ms, the floor, and the chars/s it
allows, next to the measured step (seqlearn's trainer path, both threads).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, today  # noqa: E402

V = 65


def best(fn, reps=15, setup=None):
    """Median seconds of fn(); setup(), if given, runs untimed before every call."""
    ts = []
    for i in range(reps + 1):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        if i:
            ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    a = ap.parse_args(argv)
    import seqlearn
    from seqlearn.cpu import _gemm, _threads, head, lstm, ops, wgrad
    from seqlearn.cpu._blas import consts
    from seqlearn.optim import Optimizer

    H, B, T = a.hidden, a.batch, a.seq_len
    Bh = B // 2                      # one thread's rows
    dt = np.float32
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((4 * H, H)) * 0.1).astype(dt)
    W_ih = (rng.standard_normal((4 * H, V)) * 0.1).astype(dt)
    b = np.zeros(4 * H, dt)
    Wd = (rng.standard_normal((V, H)) * 0.1).astype(dt)
    bd = np.zeros(V, dt)
    x = rng.integers(0, V, (T, B)).astype(np.int64)
    y = rng.integers(0, V, T * Bh).astype(np.int64)
    xg = rng.standard_normal((T, B, 4 * H)).astype(dt)
    ws = lstm.workspace(T, Bh, H, dt)
    h0 = np.zeros((Bh, H), dt)
    dhs = (rng.standard_normal((T, Bh, H)) * 0.01).astype(dt)
    dxg = np.zeros((T, Bh, 4 * H), dt)
    dW, db = np.zeros_like(W), np.zeros_like(b)
    dWd, dbd = np.zeros_like(Wd), np.zeros_like(bd)
    dh0, dc0 = np.zeros_like(h0), np.zeros_like(h0)
    top = (rng.standard_normal((T * Bh, H)) * 0.5).astype(dt)
    dtop = np.zeros_like(top)

    prev_threads = _threads.NUM_THREADS
    _threads.set_num_threads(1)
    ph = {}
    ph["one-hot table"] = best(lambda: ops.onehot_input(W_ih, b, x, xg))
    xh = ops.onehot_input(W_ih, b, np.ascontiguousarray(x[:, :Bh]), xg)
    ph["recurrent forward"] = best(lambda: lstm.forward(ws, xh, W, b, None, h0, h0))
    ph["head: logits, softmax, dh"] = best(lambda: head._rows(top, Wd, bd, y, np.empty((T * Bh, V), dt), dtop,
                                                              True, 0, T * Bh))
    z = np.abs(rng.standard_normal((T * Bh, V))).astype(dt)
    ph["head: dW, db"] = best(lambda: wgrad.wgrad(z, top, dWd, dbd, consts(z)))     # the trainer's path
    da = []     # the backward overwrites the gates with their gradients: a forward before each
    ph["recurrent backward (with dW_hh)"] = best(
        lambda: da.append(lstm.backward(ws, xh, W, b, None, dhs, None, None, dxg, dW, db, None, dh0, dc0)),
        setup=lambda: lstm.forward(ws, xh, W, b, None, h0, h0))
    dxg2 = np.concatenate([da[-1], da[-1]], 1)
    dW_ih, db_ih = np.zeros_like(W_ih), np.zeros_like(b)
    ph["one-hot scatter (both threads' rows)"] = best(lambda: ops.project_onehot_backward(dxg2, x, dW_ih, db_ih))
    m = seqlearn.CharLM([chr(33 + i) for i in range(V)], cell="lstm", hidden_size=H, num_layers=1, device="cpu",
                        seed=0)
    opt = Optimizer(m, "adam", lr=2e-3, clip=5.0)
    m.forward_backward(rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T)))
    def update():
        opt.clip_grads()
        opt.step()
    ph["clipping and Adam (whole model)"] = best(update)
    # the real step, both threads
    _threads.set_num_threads(2)
    xs, ys = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))

    def step():
        m.forward_backward(xs, ys)
        update()
    real = best(step, 9)
    _threads.set_num_threads(prev_threads)
    print(f"# {machine()}; {today()}; load average {os.getloadavg()[0]:.2f}")
    print(f"# LSTM H={H} L=1 B={B} T={T} V={V} float32; each phase alone on one thread with {Bh} of the {B} rows "
          f"(table, scatter, optimizer: whole); medians")
    for k, v in ph.items():
        print(f"{k:<40} {v * 1e3:8.3f} ms")
    floor = sum(ph.values())
    print(f"{'floor (sum)':<40} {floor * 1e3:8.3f} ms  -> {T * B / floor:,.0f} chars/s at most")
    print(f"{'measured step (2 threads)':<40} {real * 1e3:8.3f} ms  -> {T * B / real:,.0f} chars/s "
          f"({real / floor:.2f}x the floor)")


if __name__ == "__main__":
    main()
