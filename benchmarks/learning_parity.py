"""Learning check: the same training run with seqlearn and with PyTorch, same validation loss?

Both start from the same weights (seqlearn's initialisation copied into torch), see the same
batches in the same order (B parallel streams, truncated BPTT with the state carried and detached,
reset at each epoch) and take the same number of Adam steps with gradients clipped to global norm 5.
PyTorch's model is one-hot -> nn.LSTM -> nn.Linear. Both then report the mean cross-entropy on the
whole validation split (the last 10% of the text, state carried). Floating-point differences grow
during training, so the two runs drift apart step by step; the check is that they end within 2%.

    python benchmarks/learning_parity.py                  # ../shared/data/tinyshakespeare.txt
    python benchmarks/learning_parity.py --steps 500 --hidden 128 --layers 2
"""
import argparse
import math
import os
import sys
import time

import numpy as np

from seqlearn import CharLM
from seqlearn.data import Streams, Vocab, eval_chunks, evaluate, read_text, split
from seqlearn.optim import Optimizer

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TEXT = os.path.join(HERE, "..", "..", "shared", "data", "tinyshakespeare.txt")


def train_seqlearn(model, streams, steps, lr, clip):
    opt = Optimizer(model, "adam", lr=lr, clip=clip)
    state, losses = None, []
    for step in range(steps):
        epoch, i = divmod(step, streams.num_batches)
        if i == 0:
            state = None
        x, y = streams.batch(i)
        loss, state = model.forward_backward(x, y, state)
        opt.clip_grads()
        opt.step()
        losses.append(loss)
    return losses


def torch_model(model):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(model.V, model.H, model.L)
            self.decoder = nn.Linear(model.H, model.V)

        def forward(self, x, state):                  # x (T, B) int64
            h, state = self.rnn(nn.functional.one_hot(x, model.V).float(), state)
            return self.decoder(h), state

    net = Net()
    net.load_state_dict({k: torch.tensor(np.array(v)) for k, v in model.state_dict().items()})
    return net


def train_torch(net, streams, steps, lr, clip):
    import torch
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    state, losses = None, []
    for step in range(steps):
        epoch, i = divmod(step, streams.num_batches)
        if i == 0:
            state = None
        x, y = (torch.from_numpy(np.ascontiguousarray(a.T)) for a in streams.batch(i))
        z, state = net(x, state)
        state = tuple(s.detach() for s in state)
        loss = torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        losses.append(loss.item())
    return losses


def eval_torch(net, chunks):
    import torch
    state, total, n = None, 0.0, 0
    with torch.no_grad():
        for x, y in chunks:
            z, state = net(torch.from_numpy(np.ascontiguousarray(x.T)), state)
            yt = torch.from_numpy(np.ascontiguousarray(y.T))
            total += torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), yt.reshape(-1),
                                                       reduction="sum").item()
            n += y.size
    return total / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", default=DEFAULT_TEXT)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seq-len", type=int, default=50)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (0: torch's default; 1 is steadier on a shared machine)")
    a = ap.parse_args()
    if not os.path.exists(a.text):
        print(f"skipped: {a.text} is absent")
        return 0
    try:
        import torch
    except ImportError:
        print("skipped: PyTorch is not installed")
        return 0
    if a.threads:
        torch.set_num_threads(a.threads)
    text = read_text(a.text)
    vocab = Vocab.from_text(text)
    train, val = split(vocab.encode(text), 0.1)
    streams = Streams(train, a.batch, a.seq_len)
    chunks = eval_chunks(val, a.batch, a.seq_len)
    model = CharLM(vocab.chars, "lstm", a.hidden, a.layers, device=a.device, seed=a.seed)
    net = torch_model(model)
    print(f"{os.path.basename(a.text)}: {len(text):,} chars, V={len(vocab)}; {a.layers}x{a.hidden} LSTM, "
          f"B={a.batch} T={a.seq_len}, Adam lr {a.lr:g}, clip {a.clip:g}, {a.steps} steps "
          f"({a.steps / streams.num_batches:.2f} epochs); torch {torch.__version__}", flush=True)
    ln2 = math.log(2)
    v0 = evaluate(model, chunks)
    print(f"initial val loss {v0:.4f} nats", flush=True)
    t0 = time.perf_counter()
    ls = train_seqlearn(model, streams, a.steps, a.lr, a.clip)
    t_s = time.perf_counter() - t0
    v_s = evaluate(model, chunks)
    print(f"seqlearn ({a.device}) val loss {v_s:.4f} nats ({v_s / ln2:.3f} bpc), mean of the last 20 "
          f"train losses {np.mean(ls[-20:]):.4f}, training {t_s:.1f} s", flush=True)
    t0 = time.perf_counter()
    lt = train_torch(net, streams, a.steps, a.lr, a.clip)
    t_t = time.perf_counter() - t0
    v_t = eval_torch(net, chunks)
    print(f"pytorch (cpu) val loss {v_t:.4f} nats ({v_t / ln2:.3f} bpc), mean of the last 20 "
          f"train losses {np.mean(lt[-20:]):.4f}, training {t_t:.1f} s", flush=True)
    rel = abs(v_s - v_t) / v_t
    print(f"relative difference {100 * rel:.2f}% ({'within' if rel < 0.02 else 'OUTSIDE'} 2%)", flush=True)
    return 0 if rel < 0.02 else 1


if __name__ == "__main__":
    sys.exit(main())
