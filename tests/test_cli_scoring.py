"""eval --per-char, sample --logprobs and sample --beam through the CLI."""
import json
import math

from test_cli import fails, ok, run  # noqa: F401  (run: test_cli's trained-run fixture)


def test_eval_per_char_lines_average_to_the_printed_loss(run, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("The lighthouse keeper\nOne wave")
    out = tmp_path / "scores.jsonl"
    line = ok("eval", run, text, "--per-char", out, "--seq-len", 4)
    recs = [json.loads(s) for s in out.read_text(encoding="utf-8").splitlines()]
    assert len(recs) == len(text.read_text()) - 1
    assert [r["i"] for r in recs] == list(range(1, len(recs) + 1))
    assert "".join(r["char"] for r in recs) == text.read_text()[1:]
    nats = -sum(r["logprob"] for r in recs) / len(recs)
    assert f"nats {nats:.4f}" in line
    assert all(abs(r["bits"] - -r["logprob"] / math.log(2)) < 1e-5 for r in recs)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_eval_per_char_refuses_to_overwrite_its_input(run, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("The keeper:")
    fails("eval", run, text, "--per-char", text, match="is an input")
    assert text.read_text() == "The keeper:"
    fails("eval", run, text, "--per-char", tmp_path / "nowhere" / "x.jsonl", match="not a folder")


def test_sample_logprobs_are_json_lines_of_the_generated_text(run):
    plain = ok("sample", run, "--length", 30, "--seed", 4, "--prime", "Th")
    recs = [json.loads(s) for s in ok("sample", run, "--length", 30, "--seed", 4, "--prime", "Th",
                                      "--logprobs").splitlines()]
    assert len(recs) == 30
    assert "Th" + "".join(r["char"] for r in recs) == plain.rstrip("\n")
    assert all(r["logprob"] <= 0 for r in recs)
    two = [json.loads(s) for s in ok("sample", run, "--length", 5, "--num-samples", 2, "--logprobs").splitlines()]
    assert [r["sample"] for r in two] == [0] * 5 + [1] * 5


def test_beam_search_text_and_its_options(run):
    a = ok("sample", run, "--beam", 4, "--length", 20, "--prime", "Th")
    assert a.startswith("Th") and len(a.rstrip("\n")) == 22
    assert ok("sample", run, "--beam", 4, "--length", 20, "--prime", "Th", "--seed", 9) == a   # no randomness
    greedy = ok("sample", run, "--argmax", "--length", 20, "--prime", "Th")
    assert ok("sample", run, "--beam", 1, "--length", 20, "--prime", "Th") == greedy
    beam = [json.loads(s) for s in ok("sample", run, "--beam", 4, "--length", 20, "--prime", "Th", "--logprobs").splitlines()]
    gre = [json.loads(s) for s in ok("sample", run, "--argmax", "--length", 20, "--prime", "Th", "--logprobs").splitlines()]
    assert sum(r["logprob"] for r in beam) >= sum(r["logprob"] for r in gre) - 1e-4
    fails("sample", run, "--beam", 4, "--top-k", 3, match="--beam")
    fails("sample", run, "--beam", 0, match="--beam")
