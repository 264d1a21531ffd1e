"""One face or many, one implementation (issue 21): no module keeps a one-face and a many-face
version of the same step. Walks the package's syntax trees and fails on

- a parallel pair by name: a function or class ``X`` beside ``X`` with a ``face``, ``faces`` or
  ``multi`` word added, in one module (``analyze`` / ``analyze_faces``, ``load_inputs`` /
  ``load_face_inputs``: one face's function and the same again for several), unless the second
  only warns that it is deprecated and calls the first;
- a name of the pairs this issue removed, wherever it is defined (``write_faces``, ``run_faces``,
  ``MultiFaceTracker`` ...), but for such a deprecated alias;
- a ``multi`` flag: any function, class, argument, keyword or attribute with the word ``multi``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "facemap"
PLURAL_WORDS = {"face", "faces", "multi"}
# the second halves of the pairs issue 21 found, each beside its one-face twin in another module
REMOVED = {
    "MultiFaceTracker", "_multi_video_step", "load_face_inputs", "analyze_faces", "write_faces", "run_faces",
    "find_face_expressions", "_multi_only",
}
# names of other libraries' APIs (cv2.CascadeClassifier.detectMultiScale)
FOREIGN = {"detectMultiScale"}
# scripts at the top of the repository are front ends of the package: checked too
SOURCES = [*sorted(PKG.rglob("*.py")), REPO / "infer.py", REPO / "analyze_expressions.py"]


def _words(name: str) -> list[str]:
    """``MultiFaceTracker`` -> multi, face, tracker; ``_load_face_inputs`` -> load, face, inputs."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w.lower() for w in spaced.split("_") if w]


def _deprecated_alias(node: ast.AST) -> bool:
    """A function whose body warns DeprecationWarning and calls another (nothing of its own)."""
    if not isinstance(node, ast.FunctionDef):
        return False
    text = ast.unparse(node)
    body = [n for n in node.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    return "DeprecationWarning" in text and len(body) <= 2


def problems(sources: dict[str, str]) -> list[str]:
    """Parallel pairs and multi flags in ``sources`` (file name -> source text)."""
    defs: dict[str, list[tuple[str, ast.AST]]] = {}
    out = []
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            named = None
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                named = node.name
                defs.setdefault(node.name, []).append((name, node))
            elif isinstance(node, ast.arg) or isinstance(node, ast.keyword) and node.arg:
                named = node.arg
            elif isinstance(node, ast.Attribute):
                named = node.attr
            if named and named not in FOREIGN and "multi" in _words(named):
                out.append(f"{name}:{node.lineno}: {named}: a one-face/many-face flag or name")
    for name, places in defs.items():
        if name in REMOVED and not all(_deprecated_alias(node) for _, node in places):
            out.append(f"{places[0][0]}:{places[0][1].lineno}: {name}: the many-face half of a removed pair")
        words = _words(name)
        if not PLURAL_WORDS & set(words):
            continue
        base = "_".join(w for w in words if w not in PLURAL_WORDS)
        for file, node in places:
            twins = [n for n in defs if n != name and base and "_".join(_words(n)) == base and any(f == file for f, _ in defs[n])]
            if twins and not _deprecated_alias(node):
                out.append(f"{file}:{node.lineno}: {name} beside {twins[0]}: a parallel pair")
    return sorted(set(out))


def test_the_checker_finds_the_pairs_it_is_for():
    """It fails on the layout this issue removed (so it can fail), and passes a deprecated alias."""
    old = {
        "a.py": "def analyze_logs(x):\n    return x\n\ndef analyze_faces(x):\n    return {0: x}\n",
        "b.py": "def load_inputs(p):\n    pass\n\ndef load_face_inputs(p):\n    pass\n",
        "c.py": "class FaceTracker:\n    pass\n\nclass MultiFaceTracker:\n    pass\n",
        "f.py": "def write_faces(rows):\n    pass\n",
        "d.py": "def write(frame, multi=False):\n    log(frame, multi=multi)\n",
    }
    found = problems(old)
    assert any("load_face_inputs beside load_inputs" in p for p in found)
    assert any("MultiFaceTracker" in p for p in found)
    assert any("write_faces: the many-face half" in p for p in found)
    assert sum("multi: a one-face/many-face flag" in p for p in found) == 2  # the argument and the keyword
    assert not any("analyze_faces beside" in p for p in found)  # no "analyze" in a.py yet
    old["a.py"] += "\ndef analyze(x):\n    return x\n"
    assert any("analyze_faces beside analyze" in p for p in problems(old))
    # a function and a face's helper in different modules are not a pair
    assert problems({"g.py": "def check(x):\n    pass\n", "h.py": "def _check_faces(x):\n    pass\n"}) == []
    alias = (
        "def analyze_faces(x):\n    '''Deprecated.'''\n"
        "    warnings.warn('use analyze_logs', DeprecationWarning, stacklevel=2)\n    return analyze(x)\n"
    )
    assert not any("analyze_faces" in p for p in problems({"a.py": "def analyze(x):\n    pass\n", "e.py": alias}))


def test_no_module_keeps_a_one_face_and_a_many_face_version_of_a_step():
    sources = {p.relative_to(REPO).as_posix(): p.read_text(encoding="utf-8") for p in SOURCES}
    assert problems(sources) == []
