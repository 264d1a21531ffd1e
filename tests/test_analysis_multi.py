"""The analyzer on dlib logs, on several clips in one call, and ``facemap.load_logs``.

Real logs: dlib's reference runs in ../shared/data/ref (``<stem>_dlib_meta.csv``,
``<stem>_dlib_landmarks.csv``), copied into tmp_path under infer.py's names
(``<stem>_meta.csv``, ``<stem>_landmarks.csv``).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

import analyze_expressions
from facemap.io.records import RAW_COLUMNS
from tests.conftest import need_shared
from tests.standins import DATA

REF = DATA / "ref"
FPS = {"lp_d0": 25, "dpe_s": 25, "fye_temple_video": 30}


def run(argv: list[object], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    rc = analyze_expressions.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def logs_of(stem: str, folder: Path, raw: str | None = None) -> dict[str, Path]:
    """dlib's reference logs of ``stem`` in ``folder`` under infer.py's names; ``raw``: the text of a
    ``<stem>_raw.csv`` to write beside them."""
    need_shared(REF / f"{stem}_dlib_meta.csv")
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind in ("meta", "landmarks"):
        paths[kind] = folder / f"{stem}_{kind}.csv"
        shutil.copyfile(REF / f"{stem}_dlib_{kind}.csv", paths[kind])
    if raw is not None:
        paths["raw"] = folder / f"{stem}_raw.csv"
        paths["raw"].write_text(raw)
    return paths


HEADER_ONLY_RAW = ",".join(RAW_COLUMNS) + "\n"  # what infer.py --landmarker dlib --dump-csv writes


def report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


# ----------------------------------------------------------------------------- dlib logs


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warning lines the run logged (in-process, logging goes to caplog, not stderr)."""
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    caplog.clear()
    return lines


def test_a_raw_log_without_params_is_noted_once_and_the_landmarks_are_used(
    tmp_path, capsys, caplog, monkeypatch
):
    monkeypatch.setenv("QAIHM_STORE_ROOT", str(tmp_path / "no-basis-here"))  # no basis anywhere
    logs = logs_of("lp_d0", tmp_path / "logs", raw=HEADER_ONLY_RAW)
    rc, out, err = run(
        ["--landmarks", logs["landmarks"], "--meta", logs["meta"], "--raw", logs["raw"],
         "--fps", 25, "--out", tmp_path / "with_raw"],
        capsys,
    )
    assert rc == 0, err
    lines = warnings(caplog)
    assert len(lines) == 1 and str(logs["raw"]) in lines[0] and "no 3DMM parameters" in lines[0]
    assert str(logs["landmarks"]) in lines[0] and err == ""
    assert out.startswith("overall_score ")
    rc, _, err = run(
        ["--landmarks", logs["landmarks"], "--meta", logs["meta"], "--fps", 25,
         "--out", tmp_path / "without_raw"],
        capsys,
    )
    assert rc == 0 and err == "" and warnings(caplog) == []
    a, b = report(tmp_path / "with_raw"), report(tmp_path / "without_raw")
    assert a["inputs"]["features_from"] == "landmarks" and "raw" not in a["inputs"]
    assert a["frames_scored"] == b["frames_scored"] == 78
    assert (a["overall_score"], a["sub_scores"]) == (b["overall_score"], b["sub_scores"])
    assert (tmp_path / "with_raw" / "expressions.csv").read_bytes() == (
        tmp_path / "without_raw" / "expressions.csv"
    ).read_bytes()


def test_a_raw_log_without_params_and_no_landmarks_is_one_line(tmp_path, capsys):
    logs = logs_of("lp_d0", tmp_path / "logs", raw=HEADER_ONLY_RAW)
    rc, _, err = run(["--raw", logs["raw"], "--meta", logs["meta"], "--out", tmp_path / "o"], capsys)
    lines = err.strip().splitlines()
    assert rc == 3 and len(lines) == 1, err
    assert str(logs["raw"]) in lines[0] and "--landmarks" in lines[0]
    assert not (tmp_path / "o").exists()


def test_a_raw_log_with_params_still_needs_the_basis(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QAIHM_STORE_ROOT", str(tmp_path / "no-basis-here"))
    row = "1," + ",".join(["0.1"] * (len(RAW_COLUMNS) - 1)) + "\n"
    logs = logs_of("lp_d0", tmp_path / "logs", raw=HEADER_ONLY_RAW + row)
    rc, _, err = run(
        ["--landmarks", logs["landmarks"], "--raw", logs["raw"], "--fps", 25, "--out", tmp_path / "o"],
        capsys,
    )
    assert rc == 3 and "3DMM basis not found" in err and "--basis-dir" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="needs the dlib extra")
def test_the_original_readme_command_on_an_infer_dlib_run(tmp_path, monkeypatch):
    """infer.py --landmarker dlib --dump-csv, then the original README's analyzer command."""
    import subprocess
    import sys

    video = need_shared(DATA / "videos" / "lp_d0.mp4")
    repo = Path(__file__).resolve().parents[1]
    env = {**__import__("os").environ, "QAIHM_STORE_ROOT": str(tmp_path / "no-basis-here")}
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(repo / "infer.py"), "--video", str(video), "--landmarker", "dlib",
         "--detector", "dlib-hog", "--dump-csv", "--dump-landmarks-csv", "-o", str(out), "-q"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    logs = out / "logs"
    proc = subprocess.run(
        [sys.executable, str(repo / "analyze_expressions.py"),
         "--landmarks", str(logs / "lp_d0_landmarks.csv"), "--meta", str(logs / "lp_d0_meta.csv"),
         "--raw", str(logs / "lp_d0_raw.csv"), "--out", str(out / "analysis")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "lp_d0_raw.csv" in lines[0] and "landmarks" in lines[0]
    rep = report(out / "analysis")
    assert rep["inputs"]["features_from"] == "landmarks" and rep["inputs"]["frames"] == 78
