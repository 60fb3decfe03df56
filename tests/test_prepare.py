"""Prepared token files (seqlearn/tokens.py, seqlearn prepare): the same tokens as the text,
memory-mapped by training, used only while fresh."""
import os
import subprocess
import sys

import numpy as np
import pytest

from seqlearn import tokens
from seqlearn.checkpoint_file import read
from seqlearn.data import DataError, Vocab, sha256
from seqlearn.train import Trainer

TEXT = "\ufeffÀ la claire fontaine, m'en allant promener — 𝄞 — " * 60 + "end\n"
RUN = {"steps": 6, "hidden": 8, "layers": 2, "batch": 4, "seq_len": 10, "device": "ref", "dtype": "float64",
       "dropout": 0.2, "eval_every": 3, "log_every": 3}


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def test_tokens_are_the_texts_even_when_pieces_split_characters(text, monkeypatch):
    monkeypatch.setattr(tokens, "PIECE", 7)               # cuts multi-byte characters apart
    info = tokens.prepare(text)
    body = TEXT[1:]                                       # the BOM is not text
    vocab = Vocab.from_text(body)
    assert info["vocab"] == vocab.chars and info["chars"] == len(body) and info["sha256"] == sha256(body)
    got_vocab, data = tokens.load(text, tokens.fresh(text, "utf-8"))
    assert isinstance(data, np.memmap) and data.dtype == np.uint8
    assert np.array_equal(data, vocab.encode(body)) and got_vocab.chars == vocab.chars


def test_training_on_the_token_file_is_training_on_the_text(text, tmp_path):
    plain = Trainer(dict(RUN, text=text), tmp_path / "plain", echo=lambda s: None)
    plain.run()
    tokens.prepare(text)
    mapped = Trainer(dict(RUN, text=text), tmp_path / "mapped", echo=lambda s: None)
    assert mapped.text_info["tokens"] == tokens.paths(text)[0]
    assert mapped.text_info["sha256"] == plain.text_info["sha256"]
    mapped.run()
    (_, a), (_, b) = read(tmp_path / "plain" / "last.npz"), read(tmp_path / "mapped" / "last.npz")
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    again = Trainer.resume(tmp_path / "mapped", echo=lambda s: None, steps=8)   # resumes on the tokens
    again.run()
    assert read(tmp_path / "mapped" / "last.npz")[0]["step"] == 8


def test_a_changed_text_or_another_encoding_makes_the_file_stale(text):
    tokens.prepare(text)
    assert tokens.fresh(text, "utf-8") is not None
    assert tokens.fresh(text, "latin-1") is None
    with open(text, "a", encoding="utf-8") as f:
        f.write("more")
    assert tokens.fresh(text, "utf-8") is None


def test_refusals(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9 au lait")
    with pytest.raises(DataError, match=r"is not valid utf-8 \(byte 0xe9 at offset 3\); name its encoding"):
        tokens.prepare(bad)
    binary = tmp_path / "bin.dat"
    binary.write_bytes(b"\x00\x01\x02" * 10)
    with pytest.raises(DataError, match="binary"):
        tokens.prepare(binary)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        tokens.prepare(empty)
    assert not os.path.exists(tokens.paths(bad)[0]) and not os.path.exists(tokens.paths(empty)[0])


def test_a_damaged_token_file_is_refused_in_one_line(text):
    tokens.prepare(text)
    npy, _ = tokens.paths(text)
    with open(npy, "r+b") as f:
        f.seek(-3, 2)
        f.write(b"\xff\xff\xff")                          # indices beyond the vocabulary
    with pytest.raises(DataError, match="does not match"):
        tokens.load(text, tokens.fresh(text, "utf-8"))


def test_cli_prepare(text, tmp_path):
    p = subprocess.run([sys.executable, "-m", "seqlearn", "prepare", text], capture_output=True, text=True)
    assert p.returncode == 0 and "characters, " in p.stdout and os.path.exists(tokens.paths(text)[0])
    p = subprocess.run([sys.executable, "-m", "seqlearn", "prepare", str(tmp_path / "none.txt")],
                       capture_output=True, text=True)
    assert p.returncode == 1 and p.stderr.strip() == f"Error: {tmp_path / 'none.txt'}: no such file"
