"""The package's structure: no import loops (top-level or inside functions), and one backend object
that answers for every part of a backend."""
import ast
import importlib
import pathlib

import pytest

from seqlearn import backends
from seqlearn.errors import BackendError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _modules():
    """Module name -> path, for seqlearn and its CLI (installed as seqlearn.cli)."""
    out = {}
    for folder, pkg in (("seqlearn", "seqlearn"), ("cli", "seqlearn.cli")):
        for p in (ROOT / folder).rglob("*.py"):
            parts = [pkg, *p.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = p
    return out


def _imports(name, path, mods):
    """The package modules that module `name` imports anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t not in mods and "." in t:
                t = t.rsplit(".", 1)[0]
            # a module's own package __init__ runs first anyway: not an edge of a loop
            if t in mods and t != name and not name.startswith(t + "."):
                found.add(t)
    return found


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_sees_a_loop():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_loops():
    mods = _modules()
    assert "seqlearn.cpu.lstm" in mods and "seqlearn.cli.train" in mods
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    assert "seqlearn.model" in graph["seqlearn.checkpoint"]
    assert _cycles(graph) == []


@pytest.mark.parametrize("name", ["ref", "cpu"])
def test_backend_object(name):
    b = backends.get(name)
    assert b is backends.get(name) and b.name == name and b.on_host
    for part in ("ops", "head", "lstm", "gru", "rnn"):
        assert getattr(b, part) is importlib.import_module(f"seqlearn.{name}.{part}")
    assert b.cell("gru") is b.gru
    assert b.optim is importlib.import_module(f"seqlearn.{name}.optim")
    assert (b.generation is None) == (name == "ref")
    assert b.ops in b.modules() and all(m.__name__.startswith(f"seqlearn.{name}.") for m in b.modules())


def test_cuda_backend_object():
    b = backends.get("cuda")            # the simulator under pytest (conftest.py)
    assert not b.on_host and b.generation_kind == "streams"
    assert b.generation.__name__ == "seqlearn.cuda.sample"


def test_unknown_backend():
    with pytest.raises(BackendError, match="unknown device 'tpu'"):
        backends.get("tpu")
