"""Checkpoints exchange weights with PyTorch in both directions, as the README shows."""
import json

import numpy as np
import pytest

import seqlearn

from conftest import random_batch
from test_torch_parity import Ref, torch_loss_and_grads

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("cell,E", [("lstm", 0), ("gru", 4), ("rnn", 0)])
def test_seqlearn_checkpoint_loads_into_torch(tmp_path, cell, E):
    m = seqlearn.CharLM("xyz\n", cell=cell, hidden_size=6, num_layers=2, embed_dim=E, device="ref", seed=5)
    path = tmp_path / "m.npz"
    m.save(path)
    with np.load(path, allow_pickle=False) as z:
        sd = {k: torch.from_numpy(z[k]) for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"]))
    ref = Ref(m.V, m.H, m.L, cell, E)
    ref.load_state_dict(sd)                       # strict: names and shapes match exactly
    assert meta["vocab"] == "xyz\n" and meta["cell"] == cell
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), m.params[k])


@pytest.mark.parametrize("cell,E", [("lstm", 3), ("gru", 0), ("rnn", 2)])
def test_torch_state_dict_loads_into_seqlearn(tmp_path, cell, E):
    torch.manual_seed(0)
    vocab = "abcde"
    ref = Ref(len(vocab), 7, 2, cell, E)
    meta = {"format_version": 1, "cell": cell, "hidden_size": 7, "num_layers": 2, "embed_dim": E,
            "gru_variant": "torch", "peephole": False, "vocab": vocab}
    path = tmp_path / "from_torch.npz"
    np.savez(path, meta=np.array(json.dumps(meta)), **{k: v.detach().numpy() for k, v in ref.state_dict().items()})
    m = seqlearn.load(path, device="ref", dtype="float64")
    x, y = random_batch(5, 2, 6)
    state = m.zero_state(2)
    loss, _, _ = m.loss_and_grads(x, y, state)
    tloss, _, _ = torch_loss_and_grads(m, x, y, state)
    assert abs(loss - tloss) < 1e-10
    with torch.no_grad():
        out, _ = ref(torch.tensor(x), None)
        tl = torch.nn.functional.cross_entropy(out.reshape(-1, len(vocab)), torch.tensor(y).reshape(-1)).item()
    assert abs(loss - tl) < 1e-5


def test_roundtrip_keeps_everything(tmp_path):
    m = seqlearn.CharLM("ab\n", cell="lstm", hidden_size=5, num_layers=1, peephole=True, device="ref", seed=2)
    m.save(tmp_path / "p.npz")
    m2 = seqlearn.load(tmp_path / "p.npz")
    assert m2.peephole and m2.vocab == "ab\n" and m2.device == "ref"
    assert set(m2.params) == set(m.params)
    for k in m.params:
        np.testing.assert_array_equal(m.params[k], m2.params[k])
    assert seqlearn.load(tmp_path / "p.npz", dtype="float64").dtype == np.float64
