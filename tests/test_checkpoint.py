"""Checkpoint files as the trainer uses them: atomic writes, train.* arrays, refusing bad files."""
import os

import numpy as np
import pytest

import seqlearn
from seqlearn import CharLM
from seqlearn.checkpoint import CheckpointError, atomic_write, read, save, train_arrays

TINY = os.path.join(os.path.dirname(__file__), "..", "data", "tiny.txt")


def _model():
    return CharLM("abc\n", cell="lstm", hidden_size=5, num_layers=2, device="ref", seed=1)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "last.npz"
    save(p, _model())
    before = p.read_bytes()

    def broken(f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        atomic_write(p, broken)
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.npz"]


def test_train_arrays_round_trip(tmp_path):
    m = _model()
    arrays = {"optim.m": np.arange(5.0), "state_h": np.ones((2, 3, 5), np.float32)}
    save(tmp_path / "c.npz", m, extra_meta={"train": {"step": 7}}, arrays=arrays)
    meta, got = train_arrays(tmp_path / "c.npz")
    assert meta["train"] == {"step": 7} and sorted(got) == ["optim.m", "state_h"]
    np.testing.assert_array_equal(got["state_h"], arrays["state_h"])
    m2 = seqlearn.load(tmp_path / "c.npz")               # weights load; train.* entries are ignored
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(m2.state_dict()[k], v)


@pytest.mark.parametrize("kind,match", [
    ("garbage", "not a .npz checkpoint"), ("truncated", "not a readable"), ("foreign", "no seqlearn metadata"),
    ("pickled", "pickled"), ("missing", "no such file"), ("directory", "directory"),
    ("badmeta", "unreadable metadata"), ("version", "format_version"),
])
def test_bad_files_are_refused(tmp_path, kind, match):
    p = tmp_path / "x.npz"
    if kind == "garbage":
        p.write_bytes(os.urandom(300))
    elif kind == "truncated":
        save(p, _model())
        p.write_bytes(p.read_bytes()[:200])
    elif kind == "foreign":
        np.savez(p, a=np.zeros(2))
    elif kind == "pickled":
        np.savez(p, meta=np.array([print], dtype=object))
    elif kind == "directory":
        p.mkdir()
    elif kind == "badmeta":
        np.savez(p, meta=np.array("{not json"))
    elif kind == "version":
        save(p, _model(), extra_meta={"format_version": 99})
    with pytest.raises(CheckpointError, match=match):
        read(p)


def test_best_checkpoint_of_a_run_loads_for_sampling(tmp_path):
    from seqlearn.train import Trainer
    t = Trainer({"text": TINY, "hidden": 8, "layers": 1, "batch": 4, "seq_len": 10, "steps": 10,
                 "eval_every": 10, "device": "ref"}, tmp_path / "r", echo=lambda s: None)
    t.run()
    m = seqlearn.load(tmp_path / "r" / "best.npz", device="ref")
    x = np.array([[1, 2, 3, 4]])
    np.testing.assert_array_equal(m.logits(x)[0], t.model.logits(x)[0])
    assert m.vocab == t.vocab.chars
