"""The README's first-run sequence, as written: the dlib photo command, the video block, and the
analyzer over the whole logs folder (``--logs out/logs``), run as a user runs them, without any
model file, in a fresh folder. Every command exits 0 and every promised file is there; the photo
is analysed as a picture (issue 23: its logs hold only a meta log); and what they print is what
the README's two output blocks show, but for the times and frame rates."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess

import pandas as pd
import pytest

from tests.standins import DATA
from tests.test_docs import REPO, _argv, blocks, need_shared, printed_as_shown

if importlib.util.find_spec("dlib") is None:
    if os.environ.get("FACEMAP_REQUIRE_DLIB") == "1":
        pytest.fail("the dlib extra is not installed (FACEMAP_REQUIRE_DLIB=1)", pytrace=False)
    pytest.skip("the dlib extra is not installed: pip install -r requirements-dlib.txt", allow_module_level=True)

# The README's commands that need no model (dlib's, and the analyzer's), in the README's order.
FIRST_RUN = [
    cmd
    for b in blocks(REPO / "README.md")
    if b.skip is None
    for cmd in b.commands
    if "--landmarker dlib" in cmd or cmd.startswith("python analyze_expressions.py")
]

ANALYSIS = ["score.txt", "report.json", "expressions.csv", "timeline.png", "report.html"]


def test_the_readme_holds_the_sequence():
    assert FIRST_RUN == [
        "python infer.py --image face.jpg --landmarker dlib",
        "python infer.py --video talk.mp4 --landmarker dlib --save-video --dump-landmarks-csv",
        "python analyze_expressions.py --landmarks out/logs/talk_landmarks.csv --meta out/logs/talk_meta.csv --out out/analysis",
        "python analyze_expressions.py --logs out/logs --out out/all",
    ]


def test_the_readme_first_run_sequence_runs_to_exit_0_and_writes_every_promised_file(tmp_path):
    (tmp_path / "face.jpg").symlink_to(need_shared(DATA / "images" / "fr_obama-720p.jpg"))
    (tmp_path / "talk.mp4").symlink_to(need_shared(DATA / "videos" / "lp_d0.mp4"))
    env = dict(os.environ, FACEMAP_CACHE_DIR=str(tmp_path / ".cache"), MPLBACKEND="Agg",
               QAIHM_STORE_ROOT=str(tmp_path / ".store"))
    outputs = []
    for cmd in FIRST_RUN:
        proc = subprocess.run(_argv(cmd), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{cmd}\n{proc.stderr}"
        outputs.append(proc.stdout)
    promised = [
        "out/face_overlay.jpg", "out/face.json", "out/logs/face_meta.csv", "out/logs/face_summary.csv",
        "out/talk_overlay.mp4", "out/logs/talk_meta.csv", "out/logs/talk_summary.csv",
        "out/logs/talk_landmarks.csv",
        *(f"out/analysis/{n}" for n in ANALYSIS),
        "out/all/summary.csv", "out/all/index.html",
        *(f"out/all/{stem}/{n}" for stem in ("face", "talk") for n in ANALYSIS),
    ]
    assert [f for f in promised if not (tmp_path / f).is_file()] == []
    # the README's output blocks are what these commands print (times and frame rates aside)
    printed = dict(zip(FIRST_RUN, outputs, strict=True))
    shown = [b for b in blocks(REPO / "README.md") if b.shown is not None]
    assert [b.commands for b in shown] == [tuple(FIRST_RUN[:1]), tuple(FIRST_RUN[1:])]
    for b in shown:
        got = printed_as_shown("".join(printed[c] for c in b.commands))
        assert got == printed_as_shown(b.shown), f"README.md:{b.line}: prints\n" + "\n".join(got)
    assert not (tmp_path / "model.onnx").exists()  # no model was needed, none was fetched
    lines = outputs[-1].strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["face", "talk", "2 clips"]
    assert lines[2].startswith("2 clips: 2 analysed;")
    summary = pd.read_csv(tmp_path / "out/all/summary.csv").set_index("stem")
    assert summary["status"].to_dict() == {"face": "ok", "talk": "ok"}
    assert summary.loc["face", "frames"] == 1 and summary.loc["face", "frames_with_face"] == 1
    assert summary.loc["talk", "frames"] == 78
    face = json.loads((tmp_path / "out/all/face/report.json").read_text())
    assert face["baseline"]["against_typical"] is True  # a picture: judged against the typical face
    assert face["inputs"]["landmarks"].endswith("face.json")
    # the clip's analysis in the table is the one the single-clip command made
    single = json.loads((tmp_path / "out/analysis/report.json").read_text())
    assert summary.loc["talk", "overall_score"] == single["overall_score"]
