"""Quality per budget: the best validation loss that M minutes of this machine buy, seqlearn against
PyTorch, one budget after the other in one invocation.

seqlearn: the user's command, `seqlearn train TEXT --max-time Mm` in a fresh process (start-up,
compile, sizing and evaluations all inside the budget), its best validation loss read from
best.npz. PyTorch (nn.LSTM / nn.GRU, one-hot input, nn.Linear head; torch.set_num_threads as
seqlearn's threads): its best recipe is the same sizing rule (seqlearn/sizing.py) given PyTorch's
own measured step times (the same statistic: sizing.typical_step), so a slower framework gets the
smaller model its speed affords; then Adam, dropout between layers (nn.LSTM's) and before the head
(nn.Dropout), a cosine whose progress is the fraction of the budget spent, an evaluation of the
whole validation split (state carried, as `seqlearn eval`) every 200 steps and at the end; its
best of them counts. Same text, split (last 10 %) and batches layout (data.Streams).

    python benchmarks/quality.py --minutes 5 15 30 60        # ../shared/data/tinyshakespeare.txt
    python benchmarks/quality.py --text other.txt --minutes 5 --threads 2
    python benchmarks/quality.py --minutes 30 --no-seqlearn  # PyTorch's side alone (the other: --no-torch)
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TEXT = os.path.join(HERE, "..", "..", "shared", "data", "tinyshakespeare.txt")


def run_seqlearn(text, seconds, threads, out):
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "seqlearn", "train", text, "--max-time", f"{seconds:g}", "--out", out,
           "--threads", str(threads)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(f"seqlearn train failed: {p.stderr.strip()[-300:]}")
    from seqlearn.checkpoint import read
    meta = read(os.path.join(out, "best.npz"))[0]
    doc = json.load(open(os.path.join(out, "config.json")))
    c = doc["config"]
    return {"best": meta["train"]["best_val_loss"], "step": meta["train"]["step"], "wall_s": wall,
            "recipe": recipe(c), "sizing": doc.get("sizing", {}).get("why", "")}


def recipe(c):
    return (f"{c['cell']} {c['layers']}x{c['hidden']} d{c['dropout']:g}/{c['dropout_top']:g} "
            f"B{c['batch']} T{c['seq_len']} lr {c['lr']:g}")


class TorchLM:
    def __init__(self, V, cell, H, L, dropout, dropout_top, seed=0):
        import torch
        from torch import nn
        torch.manual_seed(seed)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.V = V
        self.rnn = rnn(V, H, L, dropout=dropout if L > 1 else 0.0)
        self.drop, self.decoder = nn.Dropout(dropout_top), nn.Linear(H, V)
        self.modules = nn.ModuleList([self.rnn, self.drop, self.decoder])

    def __call__(self, x, state):
        import torch
        h, state = self.rnn(torch.nn.functional.one_hot(x, self.V).float(), state)
        return self.decoder(self.drop(h)), state


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def torch_step_time(V):
    def step_time(cell, H, L, B, T):
        import torch
        from seqlearn import sizing
        net = TorchLM(V, cell, H, L, 0.0, 0.0)
        opt = torch.optim.Adam(net.modules.parameters(), lr=2e-3)
        x = torch.randint(0, V, (T, B))

        def step():
            z, _ = net(x, None)
            loss = torch.nn.functional.cross_entropy(z.reshape(-1, V), x.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.modules.parameters(), 5.0)
            opt.step()
        return sizing.typical_step(step)        # the statistic seqlearn's own Timer takes
    return step_time


def evaluate_torch(net, chunks):
    import torch
    net.modules.eval()
    state, total, n = None, 0.0, 0
    with torch.no_grad():
        for x, y in chunks:
            z, state = net(torch.from_numpy(np.ascontiguousarray(x.T)), state)
            yt = torch.from_numpy(np.ascontiguousarray(y.T))
            total += torch.nn.functional.cross_entropy(z.reshape(-1, net.V), yt.reshape(-1), reduction="sum").item()
            n += y.size
    net.modules.train()
    return total / n


def run_torch(text, seconds, eval_every=200):
    import torch
    from seqlearn import sizing
    from seqlearn.data import Streams, Vocab, eval_chunks, read_text, split
    t_start = time.perf_counter()
    s = read_text(text)
    vocab = Vocab.from_text(s)
    train, val = split(vocab.encode(s), 0.1)
    V = len(vocab)
    c, _ = sizing.choose(len(train), len(val), V, seconds, torch_step_time(V))
    streams, chunks = Streams(train, c["batch"], c["seq_len"]), eval_chunks(val, c["batch"], c["seq_len"])
    net = TorchLM(V, c["cell"], c["hidden"], c["layers"], c["dropout"], c["dropout_top"])
    opt = torch.optim.Adam(net.modules.parameters(), lr=c["lr"])
    best, best_step, eval_time, step, state = math.inf, 0, 0.0, 0, None
    t_train = time.perf_counter()
    span = seconds - (t_train - t_start)
    while True:
        spent = time.perf_counter() - t_train
        if spent + eval_time >= span:
            break
        i = step % streams.num_batches
        if i == 0:
            state = None
        warm = min(1.0, (step + 1) / c["warmup"])
        lr = c["lr"] * warm * (0.5 * (1 + math.cos(math.pi * min(1.0, spent / span))) if warm >= 1 else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = (torch.from_numpy(np.ascontiguousarray(a.T)) for a in streams.batch(i))
        z, state = net(x, state)
        state = detach(state)
        loss = torch.nn.functional.cross_entropy(z.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.modules.parameters(), 5.0)
        opt.step()
        step += 1
        if step % eval_every == 0:
            te = time.perf_counter()
            v = evaluate_torch(net, chunks)
            eval_time = time.perf_counter() - te
            if v < best:
                best, best_step = v, step
    v = evaluate_torch(net, chunks)
    if v < best:
        best, best_step = v, step
    return {"best": best, "step": best_step, "wall_s": time.perf_counter() - t_start, "recipe": recipe(c)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", default=DEFAULT_TEXT)
    ap.add_argument("--minutes", type=float, nargs="+", default=[5, 15, 30, 60])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-seqlearn", action="store_true", help="PyTorch's side alone")
    a = ap.parse_args(argv)
    if not os.path.exists(a.text):
        print(f"skipped: {a.text} is absent")
        return 0
    torch = None
    if not a.no_torch:
        try:
            import torch
            torch.set_num_threads(a.threads)
        except ImportError:
            print("PyTorch is not installed: seqlearn only")
    print(f"{os.path.basename(a.text)}, {a.threads} threads; best validation loss (nats) per budget")
    print("| budget | seqlearn | recipe | PyTorch | recipe | PyTorch - seqlearn |\n|---|---|---|---|---|---|")
    for m in a.minutes:
        s = None
        if not a.no_seqlearn:
            with tempfile.TemporaryDirectory() as d:
                s = run_seqlearn(a.text, 60 * m, a.threads, os.path.join(d, "run"))
        t = run_torch(a.text, 60 * m) if torch is not None else None
        row = [f"{m:g} min"]
        for r in (s, t):
            row += [f"{r['best']:.4f} (step {r['step']}, {r['wall_s']:.0f} s)", r["recipe"]] if r else ["-", "-"]
        row.append(f"{t['best'] - s['best']:+.4f}" if s and t else "-")
        print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
