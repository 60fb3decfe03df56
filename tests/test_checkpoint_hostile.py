"""Damaged and hostile checkpoints: each refused with one line, before anything it claims is allocated."""
import io
import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest

from seqlearn import CharLM, load
from seqlearn.checkpoint import CheckpointError, read, save
from seqlearn.checkpoint_file import checksum

MiB = 1 << 20


def _model(vocab="abc\n"):
    return CharLM(vocab, cell="lstm", hidden_size=5, num_layers=2, device="ref", seed=1)


def _contents(path):
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def _rewrite(path, meta=None, arrays=None, reseal=True):
    """path rewritten with meta/arrays changed by the functions given; reseal: a matching checksum,
    so the check under test is the one that refuses."""
    m, a = _contents(path)
    m = meta(m) or m if meta else m
    a = arrays(a) or a if arrays else a
    if reseal:
        m["checksum"] = {"sha256": checksum(a)}
    np.savez(path, meta=np.array(json.dumps(m)), **a)


@pytest.fixture
def ckpt(tmp_path):
    p = tmp_path / "c.npz"
    save(p, _model())
    return p


def _refused(path, match, budget=32 * MiB):
    """read(path) raises a one-line CheckpointError matching match and naming the file, with
    at most budget bytes allocated on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=match) as e:
            read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert peak < budget, f"{peak / MiB:.0f} MiB allocated while refusing {path}"


def test_every_checkpoint_records_a_checksum_and_it_is_checked(ckpt):
    meta, arrays = _contents(ckpt)
    assert meta["checksum"]["sha256"] == checksum(arrays)
    _rewrite(ckpt, arrays=lambda a: {**a, "decoder.bias": a["decoder.bias"] + 1}, reseal=False)
    _refused(ckpt, "damaged")


def test_checkpoints_without_a_checksum_still_load(ckpt):
    """Files written before checksums existed have none: they load as before."""
    _rewrite(ckpt, meta=lambda m: m.pop("checksum") and None, reseal=False)
    assert "checksum" not in _contents(ckpt)[0]
    assert load(ckpt).vocab == "abc\n"


def test_bit_flips_anywhere_are_refused(ckpt):
    raw = bytearray(ckpt.read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(raw), 40, replace=False):
        flipped = bytearray(raw)
        flipped[pos] ^= 1 << int(rng.integers(8))
        ckpt.write_bytes(bytes(flipped))
        try:
            read(ckpt)
        except CheckpointError as e:
            assert "\n" not in str(e) and str(ckpt) in str(e)
        else:   # a flip in a field nothing reads (zip timestamps, padding) may leave the data intact
            _, arrays = _contents(ckpt)
            assert checksum(arrays) == checksum(_contents_bytes(raw))


def _contents_bytes(raw):
    with np.load(io.BytesIO(bytes(raw)), allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "meta"}


@pytest.mark.parametrize("keep", [10, 100, 1000, -1000, -22])
def test_truncated_files_are_refused(ckpt, keep):
    ckpt.write_bytes(ckpt.read_bytes()[:keep])
    _refused(ckpt, "not a|damaged|readable")


def _npy_header(shape, dtype="<f4"):
    h = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    h += b" " * (63 - (len(h) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h


def test_a_header_declaring_a_trillion_elements_is_not_allocated(ckpt):
    meta, arrays = _contents(ckpt)
    del arrays["decoder.bias"]
    np.savez(ckpt, meta=np.array(json.dumps(meta)), **arrays)
    with zipfile.ZipFile(ckpt, "a") as z:
        z.writestr("decoder.bias.npy", _npy_header((10 ** 12,)) + b"\0" * 64)
    _refused(ckpt, "decoder.bias.npy declares shape")
    p = ckpt.with_name("alone.npz")
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("meta.npy", _npy_header((10 ** 12,), "<U1") + b"\0" * 64)
    _refused(p, "declares shape")


def test_a_zip_member_that_lies_about_its_size_is_refused(ckpt):
    p = ckpt.with_name("liar.npz")
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("meta.npy", _npy_header((4,)) + b"\0" * 16)
    raw = bytearray(p.read_bytes())
    # the central directory's uncompressed size (offset 24 in its entry) claims 2^32-1 bytes
    cd = raw.rindex(b"PK\x01\x02")
    raw[cd + 24:cd + 28] = (2 ** 32 - 1).to_bytes(4, "little")
    p.write_bytes(bytes(raw))
    _refused(p, "claims|not a readable")


def test_a_zip_bomb_is_refused_without_inflating_it(tmp_path):
    p = tmp_path / "bomb.npz"
    n = 256 * MiB
    with zipfile.ZipFile(p, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("meta.npy", "w", force_zip64=True) as f:
            f.write(_npy_header((n // 4,)))
            zeros = bytes(16 * MiB)
            for _ in range(n // len(zeros)):
                f.write(zeros)
    assert p.stat().st_size < MiB
    _refused(p, "zip bomb")


def test_a_compressed_checkpoint_still_loads(ckpt):
    """np.savez_compressed of a real checkpoint is no bomb (weights compress ~1.1:1)."""
    meta, arrays = _contents(ckpt)
    np.savez_compressed(ckpt, meta=np.array(json.dumps(meta)), **arrays)
    assert load(ckpt).vocab == "abc\n"


@pytest.mark.parametrize("dtype,match", [
    (np.int64, "dtype int64"), (np.complex128, "dtype complex128"), (np.float16, None),
    ([("a", "<f4"), ("b", "<f4")], "no checkpoint holds"), ("S5", "no checkpoint holds"),
])
def test_wrong_dtypes_are_refused(ckpt, dtype, match):
    def cast(a):
        w = a["decoder.bias"]
        a["decoder.bias"] = np.zeros(w.shape, dtype)
    _rewrite(ckpt, arrays=cast)
    if match is None:                           # a float of another width is converted on load
        assert load(ckpt).state_dict()["decoder.bias"].dtype == np.float32
    else:
        _refused(ckpt, match)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["rnn.weight_hh_l1", "train.optim.m"])
def test_non_finite_arrays_are_refused(ckpt, value, name):
    def poison(a):
        a[name] = np.zeros(6, np.float32) if name not in a else a[name].copy()
        a[name].flat[3] = value
    _rewrite(ckpt, arrays=poison)
    _refused(ckpt, f"{name}.*NaN or infinite")


@pytest.mark.parametrize("key,value,match", [
    ("hidden_size", 10 ** 9, "shape"), ("hidden_size", "5", "hidden_size"), ("hidden_size", True, "hidden_size"),
    ("num_layers", 0, "num_layers"), ("num_layers", 10 ** 6, "do not match"), ("embed_dim", -1, "embed_dim"),
    ("cell", "transformer", "cell"), ("cell", ["lstm"], "cell"), ("vocab", "aab\n", "distinct"),
    ("vocab", 17, "vocab"), ("vocab", "ab\ud800\n", "surrogate"), ("peephole", "yes", "peephole"),
    ("dtype", "int8", "dtype"), ("gru_variant", None, "gru_variant"), ("format_version", "1", "format_version"),
    ("dropout", 5, "dropout"), ("seed", -3, "seed"),
])
def test_nonsense_metadata_is_refused_before_a_model_is_built(ckpt, key, value, match):
    _rewrite(ckpt, meta=lambda m: m.update({key: value}))
    _refused(ckpt, match)


@pytest.mark.parametrize("meta", ['"just a string"', "[1, 2]", "[" * 100000 + "]" * 100000, "null"])
def test_metadata_that_is_not_an_object_is_refused(ckpt, meta):
    _, arrays = _contents(ckpt)
    np.savez(ckpt, meta=np.array(meta), **arrays)
    _refused(ckpt, "metadata")


def test_metadata_stored_as_bytes_or_an_array_is_refused(ckpt):
    meta, arrays = _contents(ckpt)
    np.savez(ckpt, meta=np.array([json.dumps(meta)] * 2), **arrays)
    _refused(ckpt, "unreadable metadata")


def test_a_member_named_twice_is_refused(ckpt):
    with pytest.warns(UserWarning), zipfile.ZipFile(ckpt, "a") as z:
        z.writestr("decoder.bias.npy", _npy_header((4,)) + b"\0" * 16)
    _refused(ckpt, "names a member twice")


def test_members_that_are_not_arrays_are_refused(ckpt):
    with zipfile.ZipFile(ckpt, "a") as z:
        z.writestr("../../etc/evil.sh", b"#!/bin/sh\n")
    _refused(ckpt, "not an array")
    assert not os.path.exists(ckpt.parent.parent.parent / "etc" / "evil.sh")


def test_a_vocabulary_with_terminal_escapes_loads_but_never_reaches_a_terminal(tmp_path, monkeypatch):
    """Control characters are legitimate text (a corpus may hold form feeds or ESC); what a model
    generates is escaped when it is written to a terminal, raw into a pipe or a file."""
    from click.testing import CliRunner
    from seqlearn.cli import sample as sample_cli
    from seqlearn.cli.main import cli
    vocab = "ab\x1b[]2J\x07\x9b\r\n"
    p = tmp_path / "esc.npz"
    save(p, _model(vocab))
    assert load(p).vocab == vocab
    args = ["sample", str(p), "--length", "300", "--seed", "1", "--temperature", "3"]
    raw = CliRunner().invoke(cli, args)
    assert raw.exit_code == 0 and "\x1b" in raw.output
    monkeypatch.setattr(sample_cli, "_to_terminal", lambda: True)
    shown = CliRunner().invoke(cli, args)
    assert shown.exit_code == 0, shown.output
    assert not any(ch in shown.output for ch in "\x1b\x07\x9b\r") and "\\x1b" in shown.output
    assert shown.output.count("\n") == raw.output.count("\n")


def test_terminal_escaping_keeps_text_and_escapes_controls():
    from seqlearn.cli.terminal import safe
    assert safe("ROMEO:\n\tO Juliet, café ☃") == "ROMEO:\n\tO Juliet, café ☃"
    assert safe("a\x1b[2Jb\x07\x9b\u202e\r\x7f") == "a\\x1b[2Jb\\x07\\x9b\\u202e\\x0d\\x7f"
