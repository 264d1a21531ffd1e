"""The package's shape: no import cycles, nothing outside facemap.cli imports it, every option a
library message names is one the CLI can spell, and the scripts stay thin."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from facemap.cli.config import ANALYZE_FLAGS, FLAGS
from facemap.errors import OPTION_NAMES

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "facemap"


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """facemap modules that ``name`` imports anywhere in its body (top level, inside functions
    and under TYPE_CHECKING alike), resolved to module names."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import sub` imports the submodule; `from mod import name` the module
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_the_package():
    graph = _graph()
    assert {"facemap", "facemap.api", "facemap.pipeline", "facemap.cli.infer", "facemap.backends.haar",
            "facemap.track.tracker", "facemap.io.video", "facemap.analysis"} <= set(graph)
    assert "facemap.pipeline" in graph["facemap.api"]
    assert "facemap.backends.base" in graph["facemap.backends.haar"]  # relative imports resolved
    assert "facemap.api" in graph["facemap.cli.infer"]


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_outside_cli_imports_it():
    """The library never depends on its command line; ``python -m facemap`` (facemap.__main__)
    is a front end, as the two scripts are."""
    offenders = [
        (name, dep)
        for name, deps in _graph().items()
        if not (name == "facemap.cli" or name.startswith("facemap.cli.") or name == "facemap.__main__")
        for dep in deps
        if dep == "facemap.cli" or dep.startswith("facemap.cli.")
    ]
    assert offenders == []


@pytest.mark.parametrize("script", ["infer.py", "analyze_expressions.py"])
def test_scripts_only_parse_and_call(script):
    """The scripts import the library's CLI entry points and no stage of the chain."""
    tree = ast.parse((REPO / script).read_text(encoding="utf-8"))
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    chain = {"facemap.pipeline", "facemap.api", "facemap.backends", "facemap.track", "facemap.sinks"}
    assert not mods & chain


def _library_messages() -> set[str]:
    """Every ``{name}`` written in a string literal of the library (outside facemap/cli)."""
    names: set[str] = set()
    for path in PKG.rglob("*.py"):
        if "cli" in path.relative_to(PKG).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and not node.value.startswith('"""'):
                names |= set(re.findall(r"(?<!\{)\{([a-z][a-z0-9_]*)\}(?!\})", node.value))
    return names


def test_every_option_a_message_names_has_a_cli_spelling():
    named = _library_messages() & OPTION_NAMES
    assert {"every", "output", "basis_dir", "jump_threshold", "point_size"} <= named
    assert set(OPTION_NAMES) <= set(ANALYZE_FLAGS), sorted(set(OPTION_NAMES) - set(ANALYZE_FLAGS))
    assert set(FLAGS) <= set(ANALYZE_FLAGS)


def test_library_messages_name_no_cli_flag():
    """Library errors speak in library terms (the CLI adds its flags): no ``--flag`` of infer.py
    in a string that a library module raises."""
    flags = {f for f in ANALYZE_FLAGS.values() if f.startswith("--")} | {"--fetch-model"}
    hits = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] == "cli" or rel.name == "eval.py":
            continue  # the CLI layer (and eval.py, the CLI of python -m facemap.eval)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                text = " ".join(
                    c.value for c in ast.walk(node.exc) if isinstance(c, ast.Constant) and isinstance(c.value, str)
                )
                hits += [f"{rel}:{node.lineno}: {f}" for f in flags if re.search(re.escape(f) + r"(?![\w-])", text)]
    assert hits == []
