"""Reading text, the vocabulary, the validation split and the B-stream batch layout."""
import os
import warnings

import numpy as np
import pytest

from seqlearn.data import (DataError, Streams, Vocab, builtin_text, eval_chunks, fit_batch, read_text,
                           split)

TINY = os.path.join(os.path.dirname(__file__), "..", "data", "tiny.txt")


def test_read_text_utf8_and_bom(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes("\ufeffhéllo wörld ✓\n".encode("utf-8"))
    assert read_text(p) == "héllo wörld ✓\n"


@pytest.mark.parametrize("content,match", [
    (None, "no such file"),
    (b"", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"caf\xe9 au lait", r"not valid utf-8 \(byte 0xe9 at offset 3\).*--encoding"),
])
def test_read_text_errors(tmp_path, content, match):
    p = tmp_path / "t.txt"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(DataError, match=match):
        read_text(p)


def test_read_text_directory_and_encodings(tmp_path):
    with pytest.raises(DataError, match="directory"):
        read_text(tmp_path)
    p = tmp_path / "latin.txt"
    p.write_bytes(b"caf\xe9 au lait")
    assert read_text(p, "latin-1") == "café au lait"
    with pytest.raises(DataError, match="unknown encoding"):
        read_text(p, "no-such-codec")
    q = tmp_path / "u16.txt"
    q.write_bytes("hi there".encode("utf-16"))       # NUL bytes are fine when the encoding says so
    assert read_text(q, "utf-16") == "hi there"


def test_vocab_sorted_code_points_round_trip():
    text = "hello, wörld! ✓\n"
    v = Vocab.from_text(text)
    assert v.chars == "".join(sorted(set(text)))
    idx = v.encode(text)
    assert idx.dtype == np.int64 and v.decode(idx) == text
    assert list(idx[:2]) == [v.chars.index("h"), v.chars.index("e")]


def test_vocab_unknown_characters():
    v = Vocab("abc ")
    with pytest.raises(DataError, match=r"2 characters \('x' 'é'\)"):
        v.encode("a béx")
    assert v.decode(v.encode("a béx", unk="skip")) == "a b"
    assert v.unknown("abz") == ["z"]


def test_split_is_the_contiguous_tail():
    d = np.arange(100)
    tr, va = split(d, 0.1)
    assert list(va) == list(range(90, 100)) and list(tr) == list(range(90))
    tr, va = split(d, 0.0)
    assert len(va) == 0 and len(tr) == 100
    with pytest.raises(DataError, match="validation split would hold 0"):
        split(np.arange(5), 0.1)
    with pytest.raises(DataError):
        split(d, 1.0)


def test_fit_batch_shrinks_with_a_warning_or_fails():
    assert fit_batch(1000, 4, 10) == (4, 10)
    with pytest.warns(UserWarning, match="too small for --batch 50 --seq-len 50; using --batch 3 --seq-len 50"):
        assert fit_batch(200, 50, 50) == (3, 50)
    with pytest.warns(UserWarning, match="using --batch 1 --seq-len 19"):
        assert fit_batch(20, 8, 50) == (1, 19)
    with pytest.raises(DataError, match="at least 2"):
        fit_batch(1, 1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_batch(101, 10, 10)                       # exactly fits: no warning


def test_streams_layout_carries_state_between_batches():
    data = np.arange(103)
    s = Streams(data, B=4, T=5)                      # S = 25 steps per stream, 5 batches
    assert s.num_batches == 5
    x0, y0 = s.batch(0)
    x1, _ = s.batch(1)
    assert x0.shape == (4, 5)
    np.testing.assert_array_equal(y0, x0 + 1)        # targets are the next characters
    np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)   # batch i+1 continues batch i
    np.testing.assert_array_equal(x0[:, 0], [0, 25, 50, 75])
    with pytest.raises(DataError):
        Streams(np.arange(10), B=4, T=5)


def test_eval_chunks_cover_the_split():
    d = np.arange(1000)
    chunks = eval_chunks(d, B=8, T=30)
    xs = np.concatenate([x for x, _ in chunks], 1)
    ys = np.concatenate([y for _, y in chunks], 1)
    assert xs.shape == (8, 999 // 8)
    np.testing.assert_array_equal(ys, xs + 1)
    assert xs.ravel()[0] == 0 and sorted(xs.ravel()) == list(range(8 * (999 // 8)))
    small = eval_chunks(np.arange(12), B=8, T=30)  # fewer streams when the split is short
    assert len(small) == 1 and small[0][0].shape == (1, 11)


def test_builtin_corpus_and_tiny_file():
    t = builtin_text()
    assert len(t) > 100_000 and "\n" in t
    assert len(read_text(TINY)) > 1000
