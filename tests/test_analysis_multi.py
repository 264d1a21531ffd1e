"""The analyzer on dlib logs, on several clips in one call, and ``facemap.load_logs``.

Real logs: dlib's reference runs in ../shared/data/ref (``<stem>_dlib_meta.csv``,
``<stem>_dlib_landmarks.csv``), copied into tmp_path under infer.py's names
(``<stem>_meta.csv``, ``<stem>_landmarks.csv``).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

import analyze_expressions
import facemap
from facemap.errors import FacemapError
from facemap.io.schema import RAW_COLUMNS
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
    # judged from the params (no landmarks log): the basis is needed
    rc, _, err = run(["--raw", logs["raw"], "--fps", 25, "--out", tmp_path / "o"], capsys)
    assert rc == 3 and "3DMM basis not found" in err and "--basis-dir" in err
    assert len(err.strip().splitlines()) == 1
    # the way on is the analyzer's own (it has no --landmarker, infer.py's way without a model)
    assert "--landmarks LOG without --raw" in err and "--landmarker" not in err
    # beside a landmarks log the landmarks judge (landmarks_first): no basis is looked for
    rc, _, err = run(
        ["--landmarks", logs["landmarks"], "--raw", logs["raw"], "--fps", 25, "--out", tmp_path / "o2"],
        capsys,
    )
    assert rc == 0, err


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


# ----------------------------------------------------------------------------- several clips

CLIPS = ("aniportrait_pose_ref_video", "dpe_s", "lp_d0")  # 25 fps each; the ref logs hold no timestamps
OUTPUTS = {"score.txt", "report.json", "expressions.csv", "timeline.png", "report.html", ".facemap-output"}


def folder_of(*stems: str, root: Path) -> Path:
    for stem in stems:
        logs_of(stem, root)
    return root


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_logs_folder_gives_one_folder_per_clip_and_a_summary_of_their_reports(tmp_path, capsys):
    logs = folder_of(*CLIPS, root=tmp_path / "out" / "logs")
    out = tmp_path / "analysis"
    rc, stdout, err = run(["--logs", logs, "--out", out, "--fps", 25], capsys)
    assert rc == 0 and err == "", err
    lines = stdout.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines[:-1]] == list(CLIPS)
    assert lines[-1].startswith("3 clips: 3 analysed;") and str(out) in lines[-1]
    assert {p.name for p in out.iterdir()} == {*CLIPS, "summary.csv", "summary.parquet", "index.html", ".facemap-output"}
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    typed = pd.read_parquet(out / "summary.parquet")  # the same table, typed
    assert list(typed.columns) == list(summary.columns)
    assert typed.astype(object).to_dict(orient="records") == summary.to_dict(orient="records")
    assert str(typed["blinks"].dtype) == "Int64" and str(typed["overall_score"].dtype) == "Float64"
    assert list(summary["stem"]) == list(CLIPS) and (summary["status"] == "ok").all()
    page = (out / "index.html").read_text()
    for stem, row in zip(CLIPS, summary.to_dict(orient="records"), strict=True):
        assert {p.name for p in (out / stem).iterdir()} == OUTPUTS
        rep = report(out / stem)
        ev = rep["events"]["summary"]
        assert row == {
            "stem": stem,
            "status": "ok",
            "frames": rep["inputs"]["frames"],
            "frames_with_face": rep["inputs"]["frames_with_face"],
            "overall_score": rep["overall_score"],
            **rep["sub_scores"],
            "blinks": ev["blink"]["count"],
            "smiles": ev["smile"]["count"],
            "yawns": ev["yawn"]["count"],
            "looking_away": ev["looking_away"]["count"],
            "talking": ev["talking"]["count"],
            "wink": ev["wink"]["count"],
            "speaking_s": rep["speaking"]["time_s"],
            "report": f"{stem}/report.html",
            "error": "",
        }
        meta = pd.read_csv(logs / f"{stem}_meta.csv")
        assert row["frames"] == len(meta) and row["frames_with_face"] == int((meta.status == "ok").sum())
        assert f'<a href="{stem}/report.html">{stem}</a>' in page
        assert rep["clip"] == {"stem": stem, "logs": str(logs.resolve())}
    assert summary.set_index("stem").loc["lp_d0", ["frames", "blinks", "smiles"]].tolist() == [78, 1, 1]  # MediaPipe: 1 blink
    # each clip's outputs are what a single-clip call writes
    single = tmp_path / "single"
    rc, _, _ = run(["--landmarks", logs / "dpe_s_landmarks.csv", "--meta", logs / "dpe_s_meta.csv",
                    "--fps", 25, "--out", single], capsys)
    assert rc == 0
    assert (single / "expressions.csv").read_bytes() == (out / "dpe_s" / "expressions.csv").read_bytes()
    # a clip of several links back to their index; a single clip's page has no index to link
    back = '<a href="../index.html">every clip of this run</a>'
    assert back in (out / "dpe_s" / "report.html").read_text()
    assert "index.html" not in (single / "report.html").read_text()
    assert report(single)["sub_scores"] == report(out / "dpe_s")["sub_scores"]


def test_a_glob_picks_clips_and_each_takes_its_logs_from_its_folder(tmp_path, capsys):
    logs = folder_of(*CLIPS, root=tmp_path / "logs")
    out = tmp_path / "o"
    rc, stdout, _ = run(["--logs", logs / "*p*_landmarks.csv", "--out", out, "--fps", 25, "--no-plots"], capsys)
    assert rc == 0
    assert list(pd.read_csv(out / "summary.csv")["stem"]) == ["aniportrait_pose_ref_video", "dpe_s", "lp_d0"]
    assert report(out / "lp_d0")["inputs"]["meta"] == str(logs / "lp_d0_meta.csv")  # the sibling
    out2 = tmp_path / "o2"
    rc, _, _ = run(["--logs", logs / "lp_d0_meta.csv", "--out", out2, "--fps", 25, "--no-plots"], capsys)
    assert rc == 0 and list(pd.read_csv(out2 / "summary.csv")["stem"]) == ["lp_d0"]
    # the logs folder's parent (infer.py's --output) is accepted too
    rc, _, _ = run(["--logs", tmp_path, "--out", tmp_path / "o3", "--fps", 25, "--no-plots"], capsys)
    assert rc == 0 and len(pd.read_csv(tmp_path / "o3" / "summary.csv")) == 3


def test_one_bad_clip_is_one_line_the_others_are_done_and_the_exit_is_3(tmp_path, capsys):
    # A video's meta log without its landmarks log fails (the run lacked --dump-landmarks-csv);
    # a picture's (one frame) without landmarks is not a failure: infer.py --image logs none
    # (they are in its JSON), so it is skipped with a note (issue 23: the README's sequence).
    logs = folder_of("lp_d0", "dpe_s", root=tmp_path / "logs")
    shutil.copyfile(logs / "lp_d0_landmarks.csv", logs / "mixed_landmarks.csv")
    shutil.copyfile(logs / "dpe_s_meta.csv", logs / "mixed_meta.csv")  # another video's meta log
    (logs / "nolm_meta.csv").write_text("frame,status\n1,ok\n2,ok\n")  # no landmarks log beside it
    (logs / "pic_meta.csv").write_text("frame,status\n1,ok\n")  # a picture's, its JSON not there
    out = tmp_path / "o"
    rc, stdout, err = run(["--logs", logs, "--out", out, "--fps", 25, "--no-plots"], capsys)
    assert rc == 3
    errs = err.strip().splitlines()
    assert len(errs) == 3, err  # one line per failed clip, and the final line
    assert errs[0].startswith("analyze_expressions.py: error: mixed: ") and "mixed_landmarks.csv" in errs[0]
    assert errs[1].startswith("analyze_expressions.py: error: nolm: ") and "nolm_meta.csv" in errs[1]
    assert "--dump-landmarks-csv" in errs[1]
    assert errs[2].startswith("5 clips: 2 analysed, 2 failed (mixed, nolm), 1 skipped (pic);")
    lines = stdout.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["dpe_s", "lp_d0", "pic"]
    assert lines[2].startswith(f"pic: skipped: {logs / 'pic_meta.csv'} is a picture's log")
    assert str(tmp_path / "pic.json") in lines[2] and "--landmarks" in lines[2]
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False).set_index("stem")
    assert summary["status"].to_dict() == {"dpe_s": "ok", "lp_d0": "ok", "mixed": "failed", "nolm": "failed"}
    assert "mixed_meta.csv" in summary.loc["mixed", "error"] and summary.loc["mixed", "overall_score"] == ""
    assert float(summary.loc["lp_d0", "overall_score"]) == report(out / "lp_d0")["overall_score"]
    assert not (out / "mixed").exists() and not (out / "nolm").exists() and not (out / "pic").exists()
    page = (out / "index.html").read_text()
    assert "failed: " in page and 'href="mixed/' not in page


def _single(stem: str, logs: Path, out: Path, *extra: object) -> list[object]:
    return ["--landmarks", logs / f"{stem}_landmarks.csv", "--meta", logs / f"{stem}_meta.csv",
            "--fps", 25, "--out", out, *extra]


@pytest.mark.parametrize("theirs", [["summary.csv"], ["summary.csv", "index.html"]])
def test_an_out_holding_another_s_summary_is_refused_before_any_clip(tmp_path, capsys, theirs):
    """The user's own summary.csv (and index.html) in --out: refused at once, each named (it was
    found after every clip had been analysed, only summary.csv named, the clip folders and a
    marker left behind); the folder is left as it was."""
    logs = folder_of("lp_d0", "dpe_s", root=tmp_path / "logs")
    out = tmp_path / "mine"
    out.mkdir()
    for name in theirs:
        (out / name).write_text("the user's own\n")
    rc, stdout, err = run(["--logs", logs, "--out", out, "--fps", 25, "--no-plots"], capsys)
    assert rc == 5 and not stdout
    if len(theirs) == 1:
        assert err.strip().endswith(f"{out / 'summary.csv'}: exists and was not written by facemap; facemap does not "
                                    "overwrite it: move it away or choose another --out")
    else:
        assert f"{out}: summary.csv, index.html exist and were not written by facemap" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(theirs)  # no clip folder, no marker
    assert all((out / n).read_text() == "the user's own\n" for n in theirs)


def test_a_single_clip_never_overwrites_another_clips_analysis(tmp_path, capsys):
    logs = folder_of("lp_d0", "dpe_s", root=tmp_path / "logs")
    out = tmp_path / "o"
    assert run(_single("lp_d0", logs, out), capsys)[0] == 0
    before = files(out)
    rc, _, err = run(_single("dpe_s", logs, out), capsys)
    lines = err.strip().splitlines()
    assert rc == 5 and len(lines) == 1, err
    assert str(out) in lines[0] and "another clip (lp_d0" in lines[0]
    assert "--out" in lines[0] and "--logs" in lines[0]
    assert files(out) == before  # byte-identical, nothing added
    # the same clip again replaces its own outputs
    cfg = tmp_path / "c.json"
    cfg.write_text('{"smile_on": 0.5}')
    rc, _, err = run(_single("lp_d0", logs, out, "--config", cfg), capsys)
    assert rc == 0, err
    assert report(out)["thresholds"]["configured"]["smile_on"] == 0.5
    assert report(out)["events"]["summary"]["smile"]["count"] == 0  # the grin no longer counts
    # the same clip's logs in another folder (another run) is another clip
    other = folder_of("lp_d0", root=tmp_path / "logs2")
    rc, _, err = run(_single("lp_d0", other, out), capsys)
    assert rc == 5 and "another clip (lp_d0, logs in " in err and str(logs.resolve()) in err


def test_single_and_several_clips_do_not_mix_in_one_out(tmp_path, capsys):
    logs = folder_of("lp_d0", "dpe_s", root=tmp_path / "logs")
    several, single = tmp_path / "several", tmp_path / "single"
    assert run(["--logs", logs, "--out", several, "--fps", 25, "--no-plots"], capsys)[0] == 0
    assert run(_single("lp_d0", logs, single, "--no-plots"), capsys)[0] == 0
    kept = files(several), files(single)
    rc, _, err = run(_single("lp_d0", logs, several), capsys)
    assert rc == 5 and "several clips (summary.csv)" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(["--logs", logs, "--out", single, "--fps", 25], capsys)
    assert rc == 5 and "one clip (lp_d0, report.json)" in err and len(err.strip().splitlines()) == 1
    assert (files(several), files(single)) == kept


def test_a_second_run_adds_clips_and_refuses_a_namesake(tmp_path, capsys):
    first = folder_of("lp_d0", "dpe_s", root=tmp_path / "a" / "logs")
    second = folder_of("aniportrait_pose_ref_video", "lp_d0", root=tmp_path / "b" / "logs")
    out = tmp_path / "o"
    assert run(["--logs", first, "--out", out, "--fps", 25, "--no-plots"], capsys)[0] == 0
    before = files(out / "lp_d0"), files(out / "dpe_s")
    rc, _, err = run(["--logs", second, "--out", out, "--fps", 25, "--no-plots"], capsys)
    assert rc == 5, err  # b's lp_d0 is not a's lp_d0: refused, a's kept
    assert "error: lp_d0: " in err and "another clip (lp_d0" in err
    assert err.strip().splitlines()[-1].endswith("(one row per clip; 1 more clip from an earlier run in that folder) in " + str(out))
    assert (files(out / "lp_d0"), files(out / "dpe_s")) == before
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False).set_index("stem")
    assert summary["status"].to_dict() == {"aniportrait_pose_ref_video": "ok", "dpe_s": "ok", "lp_d0": "failed"}
    assert float(summary.loc["dpe_s", "overall_score"]) == report(out / "dpe_s")["overall_score"]  # the earlier run's
    # the first folder again: its clips replace their own outputs
    assert run(["--logs", first, "--out", out, "--fps", 25, "--no-plots"], capsys)[0] == 0
    assert (pd.read_csv(out / "summary.csv")["status"] == "ok").all()


def test_an_output_that_cannot_be_written_is_exit_5_beside_clips_failing_for_their_logs(tmp_path, capsys):
    """A clip failing for its logs (3) listed before one whose output is refused (5): exit 5,
    the output's code, whatever the order (it was the first failure's)."""
    first = folder_of("lp_d0", root=tmp_path / "a" / "logs")
    second = folder_of("lp_d0", root=tmp_path / "b" / "logs")
    (second / "aaa_meta.csv").write_text("frame,status\n1,ok\n2,ok\n")
    (second / "aaa_landmarks.csv").write_text("frame,x0\n1,abc\n")  # not a landmarks log: exit 3
    out = tmp_path / "o"
    assert run(["--logs", first, "--out", out, "--fps", 25, "--no-plots"], capsys)[0] == 0
    rc, _, err = run(["--logs", second, "--out", out, "--fps", 25, "--no-plots"], capsys)
    assert rc == 5, err
    assert "error: aaa: " in err and "error: lp_d0: " in err and "another clip (lp_d0" in err, err


def test_a_run_whose_every_clip_fails_writes_nothing(tmp_path, capsys):
    # the shared logs have no timestamp_ms: without --fps every clip fails with the same line
    logs = folder_of("lp_d0", "dpe_s", root=tmp_path / "logs")
    out = tmp_path / "o"
    rc, _, err = run(["--logs", logs, "--out", out], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all("pass --fps (the video's frame rate)" in ln for ln in lines[:2])
    assert lines[2] == "2 clips: 0 analysed, 2 failed (dpe_s, lp_d0); nothing written"
    assert not out.exists()
    # a clip skipped (a picture's logs without landmarks) and the others failed: nothing analysed, nothing written
    (logs / "pic_meta.csv").write_text("frame,status\n1,ok\n")
    rc, _, err = run(["--logs", logs, "--out", out], capsys)
    assert rc == 2 and err.strip().splitlines()[-1] == "3 clips: 0 analysed, 2 failed (dpe_s, lp_d0), 1 skipped (pic); nothing written"
    assert not out.exists()
    (logs / "pic_meta.csv").unlink()
    # into a folder of an earlier run, its table is kept as it was
    assert run(["--logs", logs, "--out", out, "--fps", 25, "--no-plots"], capsys)[0] == 0
    before = files(out)
    assert run(["--logs", logs, "--out", out], capsys)[0] == 2
    assert files(out) == before


def test_some_clips_analysed_and_one_failing_for_its_times_is_exit_3(tmp_path, capsys):
    """Some clips analysed, another failed: exit 3, as cli.md's table says (it was the failed
    clip's own code: 2 for logs without times and no --fps)."""
    import pandas as pd

    logs = folder_of("lp_d0", "dpe_s", root=tmp_path / "logs")
    meta = pd.read_csv(logs / "lp_d0_meta.csv")
    meta.insert(1, "timestamp_ms", (meta["frame"] - 1) * 40.0)
    meta.to_csv(logs / "lp_d0_meta.csv", index=False)
    rc, _, err = run(["--logs", logs, "--out", tmp_path / "o", "--no-plots"], capsys)
    assert rc == 3 and err.strip().splitlines()[-1].startswith("2 clips: 1 analysed, 1 failed (dpe_s);"), err


@pytest.mark.parametrize(
    ("argv", "code", "needle"),
    [
        (["--logs", "{logs}", "--landmarks", "{logs}/lp_d0_landmarks.csv"], 2, "either --logs or"),
        (["--logs", "{tmp}/nowhere"], 3, "no such folder or file; --logs takes"),
        (["--logs", "{tmp}/*.txt"], 3, "holds no facemap logs"),
        (["--logs", "{tmp}/*/lp_d0_meta.csv"], 2, "two clips are named lp_d0"),
    ],
)
def test_bad_logs_options_are_one_line(argv, code, needle, tmp_path, capsys):
    logs = folder_of("lp_d0", root=tmp_path / "logs")
    folder_of("lp_d0", root=tmp_path / "logs2")
    argv = [a.replace("{logs}", str(logs)).replace("{tmp}", str(tmp_path)) for a in argv]
    rc, _, err = run([*argv, "--out", tmp_path / "o", "--fps", 25], capsys)
    assert rc == code and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_several_clips_as_a_script(tmp_path):
    import subprocess
    import sys

    logs = folder_of("lp_d0", "dpe_s", root=tmp_path / "out" / "logs")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parents[1] / "analyze_expressions.py"),
         "--logs", "out/logs", "--out", "out/analysis", "--fps", "25", "-q"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    scores = {stem: report(tmp_path / "out" / "analysis" / stem)["overall_score"] for stem in ("dpe_s", "lp_d0")}
    assert proc.stdout.splitlines() == [f"{s} {v:.1f}" for s, v in sorted(scores.items())]
    assert logs.exists()


# ----------------------------------------------------------------------------- facemap.load_logs


def _with_pose_and_time(meta: Path) -> None:
    """The ref meta log in infer.py's full layout: timestamps (25 fps) and a head pose."""
    df = pd.read_csv(meta)
    df["timestamp_ms"] = (df["frame"] - 1) * 40.0
    df["pitch_deg"], df["yaw_deg"], df["roll_deg"] = 1.5, -2.5, 0.5
    df.to_csv(meta, index=False)


def test_load_logs_joins_on_frame_with_unambiguous_names(tmp_path, capsys):
    logs = logs_of("lp_d0", tmp_path / "out" / "logs")
    _with_pose_and_time(logs["meta"])
    rc, _, _ = run(["--landmarks", logs["landmarks"], "--meta", logs["meta"], "--out",
                    tmp_path / "out" / "analysis", "--no-plots"], capsys)
    assert rc == 0
    meta, lm = pd.read_csv(logs["meta"]), pd.read_csv(logs["landmarks"])
    expr = pd.read_csv(tmp_path / "out" / "analysis" / "expressions.csv")
    assert "x0_x" in meta.merge(lm, on="frame").columns  # the logs as they are do not join

    table = facemap.load_logs(tmp_path / "out" / "logs", "lp_d0")  # expressions found beside
    cols = list(table.columns)
    assert len(cols) == len(set(cols)) and cols.count("frame") == 1 and cols.count("timestamp_ms") == 1
    assert not [c for c in cols if c.endswith(("_x", "_y"))]
    assert cols[:11] == ["frame", "status", "reason", "box_x0", "box_y0", "box_x1", "box_y1",
                         "timestamp_ms", "pitch_deg", "yaw_deg", "roll_deg"]
    assert cols[11:147] == [f"lm_{a}{i}" for i in range(68) for a in "xy"]
    assert {"label", "score", "ear", "smile", "expr_pitch_deg", "expr_yaw_deg", "expr_roll_deg"} <= set(cols)
    assert not [c for c in cols if c.startswith("p") and c[1:].isdigit()]  # no raw log
    assert len(table) == len(meta) == 78 and table["frame"].tolist() == meta["frame"].tolist()
    row = table.set_index("frame").loc[40]
    assert row["box_x0"] == meta.set_index("frame").loc[40, "x0"]
    assert row["box_y1"] == meta.set_index("frame").loc[40, "y1"]
    assert row["lm_x0"] == lm.set_index("frame").loc[40, "x0"]
    assert row["lm_y67"] == lm.set_index("frame").loc[40, "y67"]
    assert row["yaw_deg"] == -2.5 and row["expr_yaw_deg"] == expr.set_index("frame").loc[40, "yaw_deg"]
    assert row["label"] == expr.set_index("frame").loc[40, "label"]
    assert (table["label"].to_numpy() == expr["label"].to_numpy()).all()
    # infer.py's output folder (holding logs/) is accepted too
    assert facemap.load_logs(tmp_path / "out", "lp_d0").equals(table)


def test_load_logs_finds_each_clip_in_an_analysis_of_several(tmp_path, capsys):
    logs = folder_of("lp_d0", "dpe_s", root=tmp_path / "logs")
    out = tmp_path / "several"
    assert run(["--logs", logs / "*_landmarks.csv", "--out", out, "--fps", 25, "--no-plots"], capsys)[0] == 0
    head = ",".join(RAW_COLUMNS) + "\n"
    (logs / "dpe_s_raw.csv").write_text(head + "".join(
        f"{f}," + ",".join([f"{f / 100:g}"] * (len(RAW_COLUMNS) - 1)) + "\n" for f in (3, 4)
    ))
    (logs / "lp_d0_raw.csv").write_text(head)  # a dlib run: no params
    for stem in ("lp_d0", "dpe_s"):
        table = facemap.load_logs(logs, stem, analysis=out)
        expr = pd.read_csv(out / stem / "expressions.csv")
        assert table["score"].tolist() == expr["score"].tolist()
        assert table["timestamp_ms"].tolist() == expr["timestamp_ms"].tolist()  # the logs have none
    dpe = facemap.load_logs(logs, "dpe_s", analysis=out).set_index("frame")
    assert dpe.loc[4, "p0"] == 0.04 and dpe.loc[3, "p264"] == 0.03 and dpe["p0"].notna().sum() == 2
    assert "p0" not in facemap.load_logs(logs, "lp_d0", analysis=out).columns
    # no analysis beside the logs: the logs alone
    assert "label" not in facemap.load_logs(logs, "lp_d0").columns


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("no folder", "nowhere: no such folder"),
        ("no such stem", "lp_d9_meta.csv: meta log not found; clips with a meta log in"),
        ("analysis of another clip", "holds no analysis of lp_d0"),
        ("duplicated frame", "lp_d0_landmarks.csv: landmarks log row 4 repeats frame 2 after frame 2"),
        ("not a number", "lp_d0_meta.csv: meta log row 2 column x0 is not a number"),
        ("truncated row", "lp_d0_landmarks.csv: frame 10 has empty or NaN coordinates"),
    ],
)
def test_load_logs_errors_name_the_file(case, needle, tmp_path, capsys):
    logs = folder_of("lp_d0", "dpe_s", root=tmp_path / "logs")
    folder, stem, analysis = logs, "lp_d0", None
    if case == "no folder":
        folder = tmp_path / "nowhere"
    elif case == "no such stem":
        stem = "lp_d9"
    elif case == "analysis of another clip":
        analysis = tmp_path / "single"
        rc, _, _ = run(["--landmarks", logs / "dpe_s_landmarks.csv", "--fps", 25, "--out", analysis,
                        "--no-plots"], capsys)
        assert rc == 0
    elif case == "duplicated frame":
        lines = (logs / "lp_d0_landmarks.csv").read_text().splitlines(keepends=True)
        (logs / "lp_d0_landmarks.csv").write_text("".join(lines[:3] + lines[2:]))
    elif case == "not a number":
        text = (logs / "lp_d0_meta.csv").read_text().replace("1,ok,,136", "1,ok,,abc", 1)
        (logs / "lp_d0_meta.csv").write_text(text)
    elif case == "truncated row":  # the analyzer refuses it with the same line
        lines = (logs / "lp_d0_landmarks.csv").read_text().splitlines(keepends=True)
        lines[10] = ",".join(lines[10].split(",")[:50]) + "\n"
        (logs / "lp_d0_landmarks.csv").write_text("".join(lines))
        rc, _, err = run(["--logs", logs, "--out", tmp_path / "o", "--fps", 25, "--no-plots"], capsys)
        assert rc == 3 and needle in err
    with pytest.raises(FacemapError) as info:
        facemap.load_logs(folder, stem, analysis)
    assert info.value.exit_code == 3 and needle in str(info.value), str(info.value)
    assert "\n" not in str(info.value)
    if case == "no such stem":
        assert str(info.value).endswith("dpe_s, lp_d0")


def test_load_logs_refuses_the_analysis_of_another_videos_logs(tmp_path, capsys):
    """Two videos named talk, each in its own output folder: out2's analysis (its report.json
    names out2/logs) is never joined to out1's frames; one line names the report and both."""
    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    for out, clip in ((out1, "lp_d0"), (out2, "dpe_s")):
        for kind, path in logs_of(clip, out / "logs").items():
            path.rename(out / "logs" / f"talk_{kind}.csv")
    rc, _, _ = run(["--landmarks", out2 / "logs" / "talk_landmarks.csv", "--meta", out2 / "logs" / "talk_meta.csv",
                    "--fps", 25, "--out", out2 / "analysis", "--no-plots"], capsys)
    assert rc == 0
    assert "label" in facemap.load_logs(out2, "talk", analysis=out2 / "analysis").columns  # its own logs
    with pytest.raises(FacemapError) as info:
        facemap.load_logs(out1, "talk", analysis=out2 / "analysis")
    msg = str(info.value)
    assert info.value.exit_code == 3 and "\n" not in msg, msg
    assert msg.startswith(f"{out2 / 'analysis' / 'report.json'}: is the analysis of the logs in "
                          f"{(out2 / 'logs').resolve()}"), msg
    assert str((out1 / "logs").resolve()) in msg
    # the folders moved together: the report names a folder that is gone, the analysis is these logs'
    moved = tmp_path / "moved"
    out2.rename(moved)
    assert "label" in facemap.load_logs(moved, "talk").columns


def test_load_logs_lists_the_clips_in_the_logs_subfolder(tmp_path):
    """``load_logs("out", "short_x")`` where out/logs holds two clips: it lists those two."""
    folder_of("lp_d0", "dpe_s", root=tmp_path / "out" / "logs")
    with pytest.raises(FacemapError) as info:
        facemap.load_logs(tmp_path / "out", "short_x")
    msg = str(info.value)
    assert info.value.exit_code == 3 and msg.endswith(f"clips with a meta log in {tmp_path / 'out' / 'logs'}: dpe_s, lp_d0"), msg


def test_an_interrupt_stops_the_run_with_130_and_leaves_done_clips_whole(tmp_path, capsys, monkeypatch):
    import facemap.analysis.clips as batch

    logs = folder_of("lp_d0", "dpe_s", root=tmp_path / "logs")
    real = batch.analyze_logs
    calls = []

    def second_is_interrupted(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "analyze_logs", second_is_interrupted)
    out = tmp_path / "o"
    rc, stdout, err = run(["--logs", logs, "--out", out, "--fps", 25, "--no-plots"], capsys)
    assert rc == 130 and err.strip() == "analyze_expressions.py: interrupted"
    assert stdout.startswith("dpe_s: overall_score ") and len(stdout.strip().splitlines()) == 1
    assert {p.name for p in (out / "dpe_s").iterdir()} == OUTPUTS - {"timeline.png"}
    assert not (out / "summary.csv").exists() and not (out / "lp_d0").exists()
    assert not list(out.rglob("*.part")) and not (out / ".facemap.lock").exists()


def test_load_logs_prefixes_z_columns_and_keeps_the_files_as_they_are(tmp_path):
    logs = logs_of("lp_d0", tmp_path / "logs")
    lm = pd.read_csv(logs["landmarks"])
    z = pd.DataFrame({f"z{i}": lm["frame"] * 0.5 + i for i in range(68)})  # a 3-D landmarks log
    lm = pd.concat([lm, z], axis=1)
    lm.to_csv(logs["landmarks"], index=False)
    before = {k: p.read_bytes() for k, p in logs.items()}
    table = facemap.load_logs(logs["meta"].parent, "lp_d0").set_index("frame")
    assert table.loc[10, "lm_z0"] == 5.0 and table.loc[10, "lm_z67"] == 72.0
    assert table.loc[10, "lm_x5"] == lm.set_index("frame").loc[10, "x5"]
    assert not [c for c in table.columns if c[0] in "xyz" and c[1:].isdigit()]
    assert {k: p.read_bytes() for k, p in logs.items()} == before


# ----------------------------------------------------------------------------- the summary table


def _report(events: dict[str, int], score: float = 61.5) -> dict:
    """The report.json fields a summary row is made of."""
    return {
        "overall_score": score,
        "sub_scores": {"positivity": 50.0, "expressiveness": 40.5, "attention": 90.0},
        "inputs": {"frames": 100, "frames_with_face": 97},
        "events": {"summary": {k: {"count": n, "rate_per_min": 1.0} for k, n in events.items()}},
    }


def test_a_new_event_type_is_a_new_column_of_the_table(tmp_path):
    from facemap.analysis.summary import summary_row
    from facemap.analysis.summary import write_tables as _write_tables
    from facemap.io.outputs import OutputDir

    usual = {"blink": 3, "smile": 1, "yawn": 0, "looking_away": 2}
    rows = [summary_row("a", _report(usual)), summary_row("b", _report({**usual, "frown": 4}, 70.25)),
            {"stem": "c", "status": "failed", "error": "c_meta.csv: bad"}]
    with OutputDir(tmp_path) as out:
        _write_tables(out, rows)
    csv = (tmp_path / "summary.csv").read_text().splitlines()
    assert csv == [
        "stem,status,frames,frames_with_face,overall_score,positivity,expressiveness,attention,"
        "blinks,smiles,yawns,looking_away,frown,report,error",
        "a,ok,100,97,61.5,50.0,40.5,90.0,3,1,0,2,,a/report.html,",
        "b,ok,100,97,70.25,50.0,40.5,90.0,3,1,0,2,4,b/report.html,",
        "c,failed,,,,,,,,,,,,,c_meta.csv: bad",
    ]
    typed = pd.read_parquet(tmp_path / "summary.parquet")
    assert typed["frown"].tolist() == [pd.NA, 4, pd.NA] or typed["frown"].isna().tolist() == [True, False, True]
    assert typed.loc[1, "frown"] == 4 and str(typed["frown"].dtype) == "Int64"
    assert typed["overall_score"].isna().tolist() == [False, False, True] and typed.loc[1, "overall_score"] == 70.25
    page = (tmp_path / "index.html").read_text()
    assert "<th>looking away</th><th>frown</th>" in page
    assert "<td>2</td><td>4</td></tr>" in page and '<td colspan="11" class="error">failed: c_meta.csv: bad' in page


def test_without_pyarrow_the_parquet_is_one_warning_line(tmp_path, capsys, monkeypatch, caplog):
    logs = folder_of("lp_d0", root=tmp_path / "logs")
    from facemap.analysis import summary as batch

    monkeypatch.setattr(batch, "have_pyarrow", lambda: False)
    rc, stdout, err = run(["--logs", logs, "--out", tmp_path / "o", "--fps", 25, "--no-plots"], capsys)
    assert rc == 0
    assert err == "" and warnings(caplog) == [
        f"{tmp_path / 'o' / 'summary.parquet'}: not written: Parquet needs pyarrow "
        "(pip install pyarrow); summary.csv holds the same table"]
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"lp_d0", "summary.csv", "index.html", ".facemap-output"}


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--landmarks", "a.csv", "--ray"], "--ray spreads the clips of --logs over Ray workers; give --logs (several clips)"),
        (["--logs", "LOGS", "--ray", "--ray-workers", "0"], "--ray-workers must be >= 1, got 0"),
        (["--logs", "LOGS", "--ray", "--ray-cpus", "0"], "--ray-cpus must be > 0, got 0"),
    ],
)
def test_bad_ray_options_of_the_analyzer(argv, line, tmp_path, capsys):
    logs = folder_of("lp_d0", root=tmp_path / "logs")
    argv = [str(logs) if a == "LOGS" else a for a in argv]
    rc, _, err = run([*argv, "--out", tmp_path / "o"], capsys)
    assert (rc, err.strip()) == (2, f"analyze_expressions.py: error: {line}")
    assert not (tmp_path / "o").exists()


def test_the_analyzer_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    logs = folder_of("lp_d0", root=tmp_path / "logs")
    monkeypatch.setitem(sys.modules, "ray", None)
    rc, _, err = run(["--logs", logs, "--out", tmp_path / "o", "--ray"], capsys)
    assert (rc, err.strip()) == (2, "analyze_expressions.py: error: --ray needs Ray, an optional extra: pip install "
                                    "-r requirements-ray.txt (or pip install '.[ray]')")
    assert not (tmp_path / "o").exists()


def test_a_pictures_logs_are_analysed_as_a_picture_from_its_json(tmp_path, capsys):
    # infer.py --image writes <out>/<stem>.json (the points) and a one-row meta log: --logs reads
    # the points from the JSON and judges the picture as --landmarks on a landmarks log would.
    lm = pd.read_csv(need_shared(REF / "lp_d0_dlib_landmarks.csv")).iloc[[40]].copy()  # the broad grin
    meta = pd.read_csv(REF / "lp_d0_dlib_meta.csv").iloc[[40]]
    lm = lm.assign(frame=1, timestamp_ms=0.0)
    meta = meta.assign(frame=1, timestamp_ms=0.0)
    pts = lm[[c for c in lm.columns if c[0] in "xy" and c[1:].isdigit()]].to_numpy().reshape(68, 2)
    out = tmp_path / "out"
    (out / "logs").mkdir(parents=True)
    meta.to_csv(out / "logs" / "pic_meta.csv", index=False)
    (out / "pic.json").write_text(json.dumps({"image": "pic.jpg", "landmarks": pts.tolist()}))
    ref = tmp_path / "ref"
    ref.mkdir()
    lm.to_csv(ref / "pic_landmarks.csv", index=False)
    rc, _, err = run(["--landmarks", ref / "pic_landmarks.csv", "--meta", out / "logs" / "pic_meta.csv",
                      "--out", tmp_path / "as_log", "--no-plots"], capsys)
    assert rc == 0, err
    rc, stdout, err = run(["--logs", out / "logs", "--out", tmp_path / "all", "--no-plots"], capsys)
    assert rc == 0 and err == "", err
    assert stdout.splitlines()[-1].startswith("1 clip: 1 analysed;")
    got, want = report(tmp_path / "all" / "pic"), report(tmp_path / "as_log")
    assert got["inputs"]["landmarks"] == str(out / "pic.json")
    assert got["baseline"]["against_typical"] is True
    for key in ("overall_score", "sub_scores", "class_distribution"):
        assert got[key] == want[key]
    assert got["events"]["summary"]["smile"]["count"] == 1
