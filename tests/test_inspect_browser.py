"""The inspect page in a real browser (headless Chromium; skipped where none is installed): it
runs its script, has one element per character with the predictions in its tooltip, recolours
when a unit is chosen, renders something, and makes no network request."""
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from seqlearn import CharLM
from seqlearn.inspection import collect, render

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium (Debian: apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1000,1400"]
TEXT = 'The "keeper" counted\nthe waves, one "two" three.\n' * 3


def browse(*args, timeout=90):
    r = subprocess.run([BROWSER, *FLAGS, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


class Spans(HTMLParser):
    def __init__(self):
        super().__init__()
        self.spans, self.ready = [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "span" and "ch" in a.get("class", "").split():
            self.spans.append(a)
        if tag == "body" and a.get("data-ready") == "1":
            self.ready = True


def dom(url):
    p = Spans()
    p.feed(browse("--dump-dom", url))
    return p


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    d = tmp_path_factory.mktemp("page")
    m = CharLM(sorted(set(TEXT)), cell="lstm", hidden_size=8, num_layers=2, device="ref", seed=2)
    path = d / "page.html"
    path.write_text(render(collect(m, TEXT)), encoding="utf-8")
    return path


def test_one_element_per_character_with_predictions(page):
    p = dom(page.as_uri())
    assert p.ready, "the page's script did not run to its end"
    assert len(p.spans) == len(TEXT)
    assert "title" not in p.spans[0]                 # the first character has no prediction
    for s in p.spans[1:]:
        lines = s["title"].split("\n")
        assert lines[0].endswith(" bits") and len(lines) == 6
        assert all(0 <= float(line.rsplit(" ", 1)[1]) <= 1 for line in lines[1:])


def test_choosing_a_unit_recolours_the_text(page):
    colours = lambda p: [s.get("style", "") for s in p.spans]  # noqa: E731
    surprisal = colours(dom(page.as_uri()))
    unit2 = colours(dom(page.as_uri() + "#layer=1&q=c&unit=2"))
    unit3 = colours(dom(page.as_uri() + "#layer=1&q=c&unit=3"))
    gate = colours(dom(page.as_uri() + "#layer=0&q=forget&unit=2"))
    assert all("background" in c for c in surprisal + unit2)
    assert len({surprisal[5], surprisal[9], surprisal[20]}) > 1
    assert surprisal != unit2 and unit2 != unit3 and unit2 != gate


def test_screenshot_is_not_blank(page, tmp_path):
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body></body></html>")
    browse(f"--screenshot={tmp_path / 'page.png'}", page.as_uri())
    browse(f"--screenshot={tmp_path / 'blank.png'}", blank.as_uri())
    shot = (tmp_path / "page.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(shot) > 5 * (tmp_path / "blank.png").stat().st_size   # coloured text compresses far less


def page_requests(url, tmp_path):
    """URLs a page asked for (the browser's own background requests have no origin)."""
    log = tmp_path / "net.json"
    browse(f"--log-net-log={log}", "--dump-dom", url)
    d = json.loads(log.read_text())
    start = d["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    params = [e.get("params", {}) for e in d["events"] if e["type"] == start]
    return [p["url"] for p in params if "url" in p and p.get("initiator") != "not an origin"
            and not p["url"].startswith("file:")]


def test_no_network_request(page, tmp_path):
    control = tmp_path / "control.html"
    control.write_text('<!doctype html><html><body><img src="http://127.0.0.1:9/x.png"></body></html>')
    assert page_requests(control.as_uri(), tmp_path), "the check does not see a page's request"
    assert page_requests(page.as_uri(), tmp_path) == []
