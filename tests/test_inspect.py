"""The inspect page's data: surprisal and predictions, unit ranking, saturation, quantisation,
and the command's refusals."""
import base64
import json
import math

import numpy as np

from seqlearn import CharLM
from seqlearn.inspection import collect, render
from seqlearn.inspection.data import _quantise, features, rank_units, saturation
from seqlearn.scoring import char_logprobs

from test_cli import TINY, fails, ok, run  # noqa: F401  (run: test_cli's trained-run fixture)

TEXT = 'say "hi" to\nthe "dog" now\n'


def _model(cell="lstm", extra=""):
    return CharLM(sorted(set(TEXT + extra)), cell=cell, hidden_size=6, num_layers=2, device="ref", seed=1, dtype="float64")


def test_collect_surprisal_predictions_and_activations():
    m = _model()
    d = collect(m, TEXT, seq_len=7)          # four chunks, state carried
    data = np.array([m.vocab.index(c) for c in TEXT])
    lp, rows = char_logprobs(m, data)
    assert d["bits"][0] is None and d["top"][0] is None
    np.testing.assert_allclose(d["bits"][1:], -lp / math.log(2), atol=1e-3)
    for i in (1, 9, len(TEXT) - 1):
        probs = [p for _, p in d["top"][i]]
        assert probs == sorted(probs, reverse=True) and len(probs) == 5
        c, p = d["top"][i][0]
        assert abs(p - np.exp(rows[i - 1]).max()) < 1e-4 and m.vocab.index(c) == rows[i - 1].argmax()
    assert d["quantities"] == ["h", "c", "input", "forget", "candidate", "output"]
    layers, _, _ = m.trace(data[None])
    a = d["acts"][1]["c"]
    raw = np.frombuffer(base64.b64decode(a["data"]), np.uint8).reshape(m.H, len(TEXT)) / 255
    lo, hi = np.array(a["lo"]), np.array(a["hi"])
    np.testing.assert_allclose(lo[:, None] + raw * (hi - lo)[:, None], layers[1]["c"][0].T,
                               atol=(hi - lo).max() / 255)
    json.dumps(d)                              # JSON-ready


def test_quantise_ranges():
    X = np.array([[0.0, -3.0], [1.0, 1.5]])
    _, lo, hi = _quantise(X, sym=True)
    assert lo == [-1.0, -3.0] and hi == [1.0, 3.0]
    blob, lo, hi = _quantise(np.array([[0.0], [0.5], [1.0]]), sym=False)
    assert list(base64.b64decode(blob)) == [0, 128, 255] and (lo, hi) == ([0.0], [1.0])


def test_rank_units_finds_the_unit_that_tracks_a_feature():
    f = features(TEXT)
    assert f["position in line"][TEXT.index("\n") + 1] == 1 and f["inside double quotes"][TEXT.index("h")] == 1
    rng = np.random.default_rng(0)
    X = rng.standard_normal((len(TEXT), 5))
    X[:, 3] = -f["inside double quotes"] + 0.01 * rng.standard_normal(len(TEXT))
    ranked = rank_units([{"c": rng.standard_normal(X.shape)}, {"c": X}], TEXT, "lstm")
    k, q, u, r = ranked["inside double quotes"][0]
    assert (k, q, u) == (1, "c", 3) and r < -0.99
    assert "inside double quotes" not in rank_units([{"h": X[:14]}], "no quotes here", "gru")


def test_saturation_fractions():
    g = np.array([[0.05, 0.5], [0.95, 0.5], [0.99, 0.01], [0.5, 0.5]])
    s = saturation([{"reset": g, "update": 1 - g}], "gru")
    assert s[0]["reset"] == {"left": [0.25, 0.25], "right": [0.5, 0.0]}
    assert s[0]["update"]["left"] == [0.5, 0.0]


def test_rendered_page_is_self_contained():
    page = render(collect(_model("gru", "</script>"), TEXT + "</script>"))
    assert page.count("</script>") == 1 and "<script src" not in page and "<link" not in page
    assert "https://" not in page and "@import" not in page


def test_inspect_command_writes_the_page_and_refuses_bad_input(run, tmp_path):
    out = tmp_path / "page.html"
    line = ok("inspect", run, TINY, "--out", out, "--max-chars", 300)
    assert "300 characters" in line and out.read_text(encoding="utf-8").startswith("<!doctype html>")
    text = tmp_path / "t.txt"
    text.write_text("The keeper")
    fails("inspect", run, text, "--out", text, match="is an input")
    assert text.read_text() == "The keeper"
    text.write_text("The keeper Zzz")
    fails("inspect", run, text, "--out", out, match="not in the model's vocabulary")
    fails("inspect", run, tmp_path / "missing.txt", "--out", out, match="missing.txt")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_memory_page_finds_a_unit_that_holds_the_key():
    """A hand-set lstm whose unit 0 stores the key (input gate open only at the key, forget gate
    shut to 1): that unit ranks first."""
    from seqlearn.experiments.tasks import RememberFirst
    from seqlearn.inspection.memory import key_scores, memory_page_data
    task = RememberFirst(8)
    m = CharLM(task.vocab, cell="lstm", hidden_size=3, num_layers=1, device="ref", seed=0, dtype="float64")
    sd = {k: v * 0.01 for k, v in m.state_dict().items()}
    H = m.H
    A = task.index["A"]
    W = sd["rnn.weight_ih_l0"]
    W[0:H] = -20.0                       # input gate shut ...
    W[0, A], W[0, task.index["B"]] = 40.0, 40.0   # ... open for the keys A and B at unit 0
    W[2 * H, A], W[2 * H, task.index["B"]] = 20.0, -20.0   # candidate +1 for A, -1 for B
    sd["rnn.bias_ih_l0"][H:2 * H] = 20.0  # forget gate open: keep
    m.load_state_dict(sd)
    q, score, _, _ = key_scores(m, task)
    assert q == "c" and score.argmax() == 0 and score[0] > 0.3
    d = memory_page_data(m, task)
    assert d["select"] == [0, "c", 0] and len(d["series"]["lines"]) == 4
    assert d["text"][-2] == "?" and d["text"][-1] == d["text"][0]


def test_memory_command_writes_the_page(tmp_path):
    out = tmp_path / "memory.html"
    ok("experiment", "memory", "--cells", "rnn,lstm", "--lags", "5", "--max-steps", 30, "--inspect", out, "-q")
    page = out.read_text(encoding="utf-8")
    assert '"score_name":"eta^2"' in page and '"cell":"lstm"' in page
