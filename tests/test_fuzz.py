"""Property-based fuzzing (hypothesis) of the checkpoint loader, the text reader and the CLI's
options: whatever the input, a result or a one-line refusal, never a traceback.

The example counts (settings below) add up to more than 10,000 cases; derandomized, so a run in
CI is the same run every time; test_case_count checks that they all ran."""
import io
import json
import os
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from seqlearn import CharLM, load  # noqa: E402
from seqlearn.checkpoint import CheckpointError, read, save  # noqa: E402
from seqlearn.checkpoint_file import checksum  # noqa: E402
from seqlearn.cli.main import cli  # noqa: E402
from seqlearn.data import DataError, read_text  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "..", "data", "tiny.txt")
COUNTS = {}
EXAMPLES = {"bytes": 2500, "meta": 1500, "members": 1000, "text": 2500, "train": 1500, "sample": 1000}


def fuzz(name):
    return settings(max_examples=EXAMPLES[name], deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def count(name):
    COUNTS[name] = COUNTS.get(name, 0) + 1


def one_line(e):
    msg = str(e)
    assert msg and "\n" not in msg and "Traceback" not in msg, repr(msg)


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    p = d / "c.npz"
    save(p, CharLM("ab\n", cell="gru", hidden_size=3, num_layers=1, device="ref", seed=0))
    return d, p.read_bytes()


def _loads(path):
    """read and load path: a model or a one-line CheckpointError, nothing else."""
    try:
        read(path)
        load(path, device="ref")
    except CheckpointError as e:
        one_line(e)


# ---- the checkpoint loader ----------------------------------------------------------------------
edits = st.lists(st.tuples(st.integers(0, 10 ** 6), st.sampled_from(["flip", "set", "cut", "insert"]),
                           st.integers(0, 255)), min_size=1, max_size=6)


@fuzz("bytes")
@given(edits=edits)
def test_mutated_checkpoint_bytes(valid, edits):
    d, raw = valid
    b = bytearray(raw)
    for pos, op, v in edits:
        pos %= max(len(b), 1)
        if op == "flip" and b:
            b[pos] ^= 1 << (v % 8)
        elif op == "set" and b:
            b[pos] = v
        elif op == "cut":
            del b[pos:]
        else:
            b[pos:pos] = bytes([v]) * (v % 9 + 1)
    p = d / "m.npz"
    p.write_bytes(bytes(b))
    _loads(p)
    count("bytes")


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
                           max_leaves=12)
META_FIELDS = ["format_version", "cell", "hidden_size", "num_layers", "embed_dim", "gru_variant", "peephole",
               "vocab", "dtype", "dropout", "dropout_top", "seed", "device", "checksum", "train"]


@fuzz("meta")
@given(changes=st.dictionaries(st.sampled_from(META_FIELDS) | st.text(max_size=5), json_values, min_size=1, max_size=4),
       drop=st.lists(st.sampled_from(META_FIELDS), max_size=2), reseal=st.booleans())
def test_fuzzed_metadata(valid, changes, drop, reseal):
    d, raw = valid
    with np.load(io.BytesIO(raw)) as z:
        meta = json.loads(str(z["meta"]))
        arrays = {k: z[k] for k in z.files if k != "meta"}
    meta.update(changes)
    for k in drop:
        meta.pop(k, None)
    if reseal:
        meta["checksum"] = {"sha256": checksum(arrays)}
    p = d / "meta.npz"
    try:
        text = json.dumps(meta)
    except ValueError:
        return
    np.savez(p, meta=np.array(text), **arrays)
    _loads(p)
    count("meta")


dtypes = st.sampled_from(["<f4", "<f8", ">f4", "<f2", "<i8", "|b1", "<c8", "<U3", "|S2", "|u1", "<m8"])


@fuzz("members")
@given(members=st.dictionaries(st.sampled_from(["meta", "decoder.bias", "decoder.weight", "rnn.weight_ih_l0",
                                                "train.optim.m", "x"])
                               | st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=4),   # zipfile cuts at NUL
                               st.tuples(dtypes, st.lists(st.integers(0, 4), max_size=3)), max_size=5),
       compressed=st.booleans())
def test_fuzzed_archive_members(valid, members, compressed):
    d, _ = valid
    p = d / "members.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as z:
        for name, (dtype, shape) in members.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.zeros(shape, dtype), allow_pickle=False)
            z.writestr(name + ".npy", buf.getvalue())
    _loads(p)
    count("members")


# ---- the text reader ------------------------------------------------------------------------------
@fuzz("text")
@given(data=st.binary(max_size=300) | st.text(max_size=100).map(lambda s: s.encode("utf-8", "surrogatepass")),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "ascii", "cp1252", "nonsense", "utf-32"]))
def test_fuzzed_text_files(valid, data, encoding):
    d, _ = valid
    p = d / "t.txt"
    p.write_bytes(data)
    try:
        text = read_text(p, encoding)
        assert isinstance(text, str) and text
    except DataError as e:
        one_line(e)
    count("text")


# ---- the CLI's options ----------------------------------------------------------------------------
def _value():
    return (st.integers(-3, 70).map(str) | st.sampled_from(["0", "1e9", "nan", "inf", "-1", "0.5", "1.5", "",
                                                            "abc", "10m", "2h", "90s", "torch", "cosine", "lstm",
                                                            "sgd", "float64", "\x1b[2J", "☃"]))


TRAIN_OPTS = ["--cell", "--hidden", "--layers", "--embed", "--gru-variant", "--dropout", "--dtype", "--seq-len",
              "--batch", "--optimizer", "--lr", "--momentum", "--weight-decay", "--clip", "--clip-mode",
              "--schedule", "--warmup", "--lr-decay", "--lr-decay-after", "--steps", "--epochs", "--max-time",
              "--val-frac", "--eval-every", "--log-every", "--seed", "--device", "--threads", "--encoding",
              "--bogus"]
FLAGS = ["--peephole", "--nesterov", "--force", "--from-best"]


@pytest.fixture(scope="module")
def no_training():
    """seqlearn train with Trainer.run replaced: the options are parsed and checked and the trainer
    built (model, optimizer, run directory) as for real, then it stops."""
    from seqlearn.train import Trainer
    mp = pytest.MonkeyPatch()
    mp.setattr(Trainer, "run", lambda self: (self.close(), {"interrupted": False})[1])
    yield
    mp.undo()


@fuzz("train")
@given(opts=st.lists(st.tuples(st.sampled_from(TRAIN_OPTS), _value()), max_size=5),
       flags=st.lists(st.sampled_from(FLAGS), max_size=2, unique=True), resume=st.booleans())
def test_fuzzed_train_options(valid, no_training, opts, flags, resume):
    d, _ = valid
    small = {"--hidden", "--layers", "--embed", "--batch", "--seq-len"}
    opts = [(k, v) for k, v in opts if not (k in small and v.lstrip("-").isdigit() and int(v) > 64)]
    args = ["train", TINY, "--hidden", "4", "--layers", "1", "--batch", "2", "--seq-len", "4"]
    if resume:
        args = ["train", "--resume", str(d / "nowhere")]
    args += [x for kv in opts for x in kv] + flags + ["--out", str(d / f"r{COUNTS.get('train', 0)}")]
    r = CliRunner().invoke(cli, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    if r.exit_code:
        assert r.output.strip().splitlines()[-1].startswith("Error:"), r.output
    count("train")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzzrun") / "run"
    r = CliRunner().invoke(cli, ["train", TINY, "--hidden", "8", "--layers", "1", "--batch", "4", "--seq-len", "8",
                                 "--steps", "4", "--eval-every", "4", "--out", str(d)])
    assert r.exit_code == 0, r.output
    return d


SAMPLE_OPTS = ["--length", "--temperature", "--top-k", "--top-p", "--prime", "--num-samples", "--seed", "--beam",
               "--device", "--encoding", "--prime-file", "--threads"]


@fuzz("sample")
@given(opts=st.lists(st.tuples(st.sampled_from(SAMPLE_OPTS), _value() | st.text(max_size=6)), max_size=4),
       flags=st.lists(st.sampled_from(["--argmax", "--logprobs"]), max_size=2, unique=True))
def test_fuzzed_sample_options(tiny_run, opts, flags):
    opts = [(k, v) for k, v in opts if not (k in ("--length", "--num-samples", "--beam")
                                           and v.lstrip("-").isdigit() and int(v) > 40)]
    args = ["sample", str(tiny_run), "--length", "10", *[x for kv in opts for x in kv], *flags]
    r = CliRunner().invoke(cli, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    if r.exit_code:
        assert r.output.strip().splitlines()[-1].startswith("Error:"), r.output
    count("sample")


def test_case_count():
    """Every fuzz test above ran its examples (the total recorded in docs/reliability.md)."""
    if set(COUNTS) != set(EXAMPLES):
        pytest.skip("run with the fuzz tests above")
    print(f"fuzz cases: {COUNTS} = {sum(COUNTS.values())}")
    assert sum(COUNTS.values()) >= 10_000, COUNTS


@pytest.mark.parametrize("name", ["\x85", "a\u2028b", "x\ry", "p\x1cq"])
def test_file_names_that_break_lines_do_not_split_the_error(tiny_run, name):
    """A case the fuzzer found: --prime-file '\\x85' printed its error over two lines
    (str.splitlines breaks at NEL, LS, PS, CR, FS...); such characters are shown escaped."""
    for args in (["sample", str(tiny_run), "--prime-file", name], ["train", name]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, repr(r.output)
        assert r.output.startswith("Error: ")
