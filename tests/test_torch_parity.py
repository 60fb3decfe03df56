"""Same weights in PyTorch and seqlearn: same loss, same gradients (lstm, gru torch variant, rnn)."""
import numpy as np
import pytest

import seqlearn

from conftest import random_batch, random_state

torch = pytest.importorskip("torch")

DEVICES = ["ref", "cpu"]


class Ref(torch.nn.Module):
    """The module whose state_dict names the checkpoint format follows."""

    def __init__(self, V, H, L, cell, E=0):
        super().__init__()
        if E:
            self.encoder = torch.nn.Embedding(V, E)
        rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
        self.rnn = rnn(E or V, H, L, batch_first=True)
        self.decoder = torch.nn.Linear(H, V)
        self.V, self.E = V, E

    def forward(self, x, state):
        inp = self.encoder(x) if self.E else torch.nn.functional.one_hot(x, self.V).to(self.decoder.weight.dtype)
        out, state = self.rnn(inp, state)
        return self.decoder(out), state


def torch_loss_and_grads(m, x, y, state):
    tdt = torch.float64 if m.dtype == np.float64 else torch.float32
    ref = Ref(m.V, m.H, m.L, m.cell, m.E).to(tdt)
    ref.load_state_dict({k: torch.tensor(v) for k, v in m.state_dict().items()})
    if m.cell == "lstm":
        st = tuple(torch.tensor(s, requires_grad=True) for s in state)
    else:
        st = torch.tensor(state, requires_grad=True)
    logits, _ = ref(torch.tensor(x), st)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, m.V), torch.tensor(y).reshape(-1))
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in ref.named_parameters()}
    dstate = tuple(s.grad.numpy() for s in st) if m.cell == "lstm" else st.grad.numpy()
    return loss.item(), grads, dstate


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("E", [0, 5])
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-4), ("float64", 1e-8)])
def test_parity(device, cell, E, dtype, tol):
    m = seqlearn.CharLM("abcdefg", cell=cell, hidden_size=16, num_layers=2, embed_dim=E,
                        dtype=dtype, device=device, seed=1)
    x, y = random_batch(7, B=3, T=6, seed=2)
    state = random_state(m, 3)
    loss, grads, _ = m.loss_and_grads(x, y, state)
    grads = {k: np.array(v) for k, v in grads.items()}
    dstate = m.dstate
    tloss, tgrads, tdstate = torch_loss_and_grads(m, x, y, state)
    assert abs(loss - tloss) / abs(tloss) < tol
    assert set(grads) == set(tgrads)
    for k in grads:
        assert rel(grads[k], tgrads[k]) < tol, k
    pairs = zip(dstate, tdstate) if cell == "lstm" else [(dstate, tdstate)]
    for a, b in pairs:
        assert rel(a, b) < tol
