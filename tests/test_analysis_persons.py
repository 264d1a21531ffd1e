"""The analyzer on logs with a face_id column (issue 15 item 4): each face analysed on its own.

Two-face logs are built in tmp_path from dlib's reference runs of two real clips: lp_d14 as face 0
and dpe_s as face 1 of the same frame numbers (truncated to dpe_s's 228 frames), face 1's
landmarks and boxes moved right by SHIFT pixels, some of face 1's rows dropped (GAPS), and one
frame without any face (EMPTY: one no_face row with an empty face_id), as infer.py --max-faces
writes them. Each face's analysis must be that clip's analysis on its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analyze_expressions
import facemap
from facemap.analysis import analyze_faces, analyze_logs, load_inputs
from facemap.analysis.features import landmark_features
from facemap.analysis.report import OUTPUT_NAMES, report_dict
from facemap.analysis.summary import SUMMARY_COLUMNS
from facemap.errors import EXIT_INPUT, EXIT_OUTPUT
from facemap.io.records import read_landmarks, read_meta
from facemap.io.schema import FACE_ABSENT
from tests.conftest import need_shared
from tests.standins import DATA

REPO = Path(__file__).resolve().parents[1]
REF = DATA / "ref"
CLIPS = ("lp_d14", "dpe_s")  # face 0, face 1
FPS = 30.0
SHIFT = 600.0
GAPS = [*range(60, 66), *range(150, 153)]  # frames without face 1
EMPTY = [100]  # a frame without any face


def ref_logs(stem: str, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """dlib's meta and landmarks logs of ``stem``, frames 1..n, with timestamps at FPS."""
    need_shared(REF / f"{stem}_dlib_meta.csv")
    meta = pd.read_csv(REF / f"{stem}_dlib_meta.csv", keep_default_na=False)
    lm = pd.read_csv(REF / f"{stem}_dlib_landmarks.csv")
    meta = meta[meta.frame <= n].copy()
    meta["timestamp_ms"] = ((meta.frame - 1) * 1000 / FPS).round(3)
    return meta, lm[lm.frame <= n].copy()


def frames_of_shorter() -> int:
    return min(len(pd.read_csv(need_shared(REF / f"{s}_dlib_meta.csv"))) for s in CLIPS)


def two_faces(folder: Path, stem: str = "two") -> dict[str, Path]:
    """The two-face logs ``<stem>_meta.csv`` and ``<stem>_landmarks.csv`` in ``folder``."""
    n = frames_of_shorter()
    metas, lms = [], []
    for fid, clip in enumerate(CLIPS):
        meta, lm = ref_logs(clip, n)
        if fid == 1:
            meta[["x0", "x1"]] = meta[["x0", "x1"]].astype(float) + SHIFT
            xs = [c for c in lm.columns if c.startswith("x")]
            lm[xs] = lm[xs] + SHIFT
            meta, lm = meta[~meta.frame.isin(GAPS)], lm[~lm.frame.isin(GAPS)]
        meta, lm = meta[~meta.frame.isin(EMPTY)].copy(), lm[~lm.frame.isin(EMPTY)].copy()
        meta.insert(1, "face_id", str(fid))
        lm.insert(1, "face_id", str(fid))
        metas.append(meta)
        lms.append(lm)
    empty = pd.DataFrame(
        {"frame": EMPTY, "face_id": "", "status": "no_face", "reason": "detector_failed",
         "timestamp_ms": [round((f - 1) * 1000 / FPS, 3) for f in EMPTY]}
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"meta": folder / f"{stem}_meta.csv", "landmarks": folder / f"{stem}_landmarks.csv"}
    pd.concat([*metas, empty]).sort_values("frame", kind="stable").to_csv(paths["meta"], index=False)
    pd.concat(lms).sort_values("frame", kind="stable").to_csv(paths["landmarks"], index=False)
    return paths


def alone(clip: str, folder: Path, absent: list[int]) -> dict[str, Path]:
    """``clip``'s own logs, truncated as in two_faces, with ``absent`` frames as no_face."""
    meta, lm = ref_logs(clip, frames_of_shorter())
    gone = meta.frame.isin(absent)
    meta[["x0", "y0", "x1", "y1"]] = meta[["x0", "y0", "x1", "y1"]].astype(float)
    meta.loc[gone, ["status", "reason"]] = ["no_face", "detector_failed"]
    meta.loc[gone, ["x0", "y0", "x1", "y1"]] = np.nan
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"meta": folder / f"{clip}_meta.csv", "landmarks": folder / f"{clip}_landmarks.csv"}
    meta.to_csv(paths["meta"], index=False)
    lm[~lm.frame.isin(absent)].to_csv(paths["landmarks"], index=False)
    return paths


ABSENT = {0: EMPTY, 1: sorted(EMPTY + GAPS)}  # frames each face is not in


def run(argv: list[object], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    rc = analyze_expressions.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def counts(rep: dict, skip: tuple[str, ...] = ()) -> dict[str, int]:
    return {k: v["count"] for k, v in rep["events"]["summary"].items() if k not in skip}


# ----------------------------------------------------------------------------- the analysis


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("persons")
    logs = two_faces(root / "logs")
    faces = analyze_logs(logs["landmarks"], logs["meta"])
    same = {f: analyze_logs(**alone(c, root / f"same{f}", ABSENT[f]))[0] for f, c in enumerate(CLIPS)}
    plain = {f: analyze_logs(**alone(c, root / f"plain{f}", []))[0] for f, c in enumerate(CLIPS)}
    return {"logs": logs, "faces": faces, "same": same, "plain": plain}


def test_each_face_is_its_clip_analysed_alone(built):
    faces, same = built["faces"], built["same"]
    assert sorted(faces) == [0, 1]
    for fid in (0, 1):
        mine, theirs = faces[fid], same[fid]
        assert mine.inputs.face_id == fid and theirs.inputs.face_id is None
        assert mine.inputs.frames.size == frames_of_shorter() == 228  # every frame of the clip
        assert int(mine.inputs.face.sum()) == 228 - len(ABSENT[fid])  # 227 and 218
        assert not mine.inputs.face[np.isin(mine.inputs.frames, ABSENT[fid])].any()
        # the same clip, the same frames without a face: the same analysis, frame by frame
        pd.testing.assert_frame_equal(mine.frame_table(), theirs.frame_table())
        a, b = report_dict(mine), report_dict(theirs)
        assert a["face_id"] == fid and "face_id" not in b
        assert a["overall_score"] == b["overall_score"] and a["sub_scores"] == b["sub_scores"]
        assert counts(a) == counts(b) and a["baseline"] == b["baseline"]


def test_against_the_untouched_clip_only_the_missing_frames_count(built):
    faces, plain = built["faces"], built["plain"]
    for fid in (0, 1):
        a, b = report_dict(faces[fid]), report_dict(plain[fid])
        # long events (talking) are cut by the frames without the face; short ones are not
        assert counts(a, ("talking",)) == counts(b, ("talking",))
        # lp_d14 7 blinks, dpe_s 9 in their first 228 frames (MediaPipe: 11 and 8 over the clips;
        # lp_d14's 7th, frame 80, is a brief dip, closed lids that MediaPipe scores 0.30)
        assert counts(a)["blink"] == (7, 9)[fid]
    # face 0 misses one frame of 228: within 1 point
    assert abs(faces[0].scores.overall_score - plain[0].scores.overall_score) <= 1.0
    # face 1 misses 10 frames: attention drops by their share of time, nothing else moves
    share = len(ABSENT[1]) / 228
    assert plain[1].scores.attention == pytest.approx(100.0)
    assert faces[1].scores.attention == pytest.approx(100.0 * (1 - share), abs=0.1)
    assert faces[1].scores.positivity == pytest.approx(plain[1].scores.positivity, abs=0.1)


def test_the_shift_does_not_matter_features_are_translation_and_scale_invariant():
    lm = read_landmarks(need_shared(REF / "dpe_s_dlib_landmarks.csv")).landmarks
    base = landmark_features(lm)
    for scale, shift in ((1.0, (SHIFT, 0.0)), (2.5, (-40.0, 310.0))):
        moved = landmark_features(lm * scale + np.array(shift))
        np.testing.assert_allclose(moved.to_numpy(), base.to_numpy(), rtol=1e-9, atol=1e-9)


def test_one_face_view_of_a_meta_log(built):
    meta = read_meta(built["logs"]["meta"], strict=True)
    assert meta.face_ids is not None and sorted(set(meta.face_ids)) == [-1, 0, 1]
    one = meta.of_face(1)
    assert one.frames.tolist() == list(range(1, 229))
    gone = np.isin(one.frames, ABSENT[1])
    assert (one.status[gone] == "no_face").all() and (one.status[~gone] == "ok").all()
    assert one.reason[one.frames == EMPTY[0]][0] == "detector_failed"  # the frame's own no_face row
    assert set(one.reason[np.isin(one.frames, GAPS)]) == {FACE_ABSENT}
    assert np.isnan(one.boxes[gone]).all() and (one.boxes[~gone, 0] >= SHIFT).all()
    assert one.timestamps_ms[-1] == pytest.approx(227 * 1000 / FPS, abs=1e-3)


# ----------------------------------------------------------------------------- the command line


def test_cli_writes_one_folder_per_face_and_one_summary_row_per_face(built, tmp_path, capsys):
    logs = built["logs"]
    out = tmp_path / "analysis"
    rc, stdout, err = run(["--landmarks", logs["landmarks"], "--meta", logs["meta"], "--out", out], capsys)
    assert rc == 0, err
    lines = stdout.splitlines()
    assert lines[0].startswith("face_0: overall_score ") and ", with a face 227;" in lines[0]
    assert lines[1].startswith("face_1: overall_score ") and ", with a face 218;" in lines[1]
    assert lines[2] == f"2 faces: face_0/, face_1/; report.json, summary.csv and index.html (one row per face) in {out}"
    for fid in (0, 1):
        folder = out / f"face_{fid}"
        assert all((folder / name).is_file() for name in OUTPUT_NAMES)
        rep = report(folder)
        assert rep["face_id"] == fid and rep["clip"]["stem"] == "two"
        assert rep["overall_score"] == round(built["same"][fid].scores.overall_score, 1)
        assert (folder / "score.txt").read_text() == f"{rep['overall_score']:.1f}\n"
    top = report(out)
    assert top["clip"] == {"stem": "two", "logs": str(logs["meta"].parent.resolve())}
    assert [(f["face_id"], f["folder"], f["frames_with_face"]) for f in top["faces"]] == [
        (0, "face_0", 227), (1, "face_1", 218)
    ]
    assert top["inputs"]["frames"] == 228
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    # the fixed columns, then the event types that came later (one column each) and speaking time
    extra = ["wink", "talking", "speaking_s"]
    assert sorted(summary.columns) == sorted(SUMMARY_COLUMNS + extra)
    assert [c for c in summary.columns if c not in extra] == SUMMARY_COLUMNS
    assert summary.stem.tolist() == ["face_0", "face_1"]
    for row in summary.to_dict("records"):
        rep = report(out / row["stem"])
        sub, ev = rep["sub_scores"], rep["events"]["summary"]
        assert row["status"] == "ok" and row["report"] == f"{row['stem']}/report.html"
        assert (row["frames"], row["frames_with_face"]) == (228, rep["inputs"]["frames_with_face"])
        assert row["overall_score"] == rep["overall_score"]
        assert [row[k] for k in ("positivity", "expressiveness", "attention")] == [
            sub["positivity"], sub["expressiveness"], sub["attention"]
        ]
        assert [row["blinks"], row["smiles"], row["yawns"], row["looking_away"]] == [
            ev[k]["count"] for k in ("blink", "smile", "yawn", "looking_away")
        ]
    page = (out / "index.html").read_text()
    assert 'href="face_0/report.html"' in page and 'href="face_1/report.html"' in page
    assert "Expression analysis: 2 faces of two" in page
    assert "Expression report: face 1" in (out / "face_1" / "report.html").read_text()

    # the same clip again: replaced; -q prints one score per face
    rc, stdout, err = run(["--landmarks", logs["landmarks"], "--meta", logs["meta"], "--out", out, "-q"], capsys)
    assert rc == 0, err
    assert stdout.splitlines() == [f"face_{f} {report(out / f'face_{f}')['overall_score']:.1f}" for f in (0, 1)]


def test_logs_without_face_id_keep_todays_layout(tmp_path, capsys):
    paths = alone("dpe_s", tmp_path / "logs", [])
    out = tmp_path / "one"
    rc, stdout, err = run(["--landmarks", paths["landmarks"], "--meta", paths["meta"], "--out", out], capsys)
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUT_NAMES, ".facemap-output"])
    rep = report(out)
    assert "face_id" not in rep and "faces" not in rep
    assert stdout.splitlines()[0].startswith("overall_score ")


def test_several_clips_one_row_per_face(tmp_path, capsys):
    logs = tmp_path / "logs"
    two_faces(logs)
    alone("dpe_s", logs, [])
    out = tmp_path / "all"
    rc, stdout, err = run(["--logs", logs, "--out", out], capsys)
    assert rc == 0, err
    lines = stdout.splitlines()
    assert [ln.split(":")[0] for ln in lines[:3]] == ["dpe_s", "two/face_0", "two/face_1"]
    assert lines[3] == (
        f"2 clips: 2 analysed; summary.csv, summary.parquet and index.html (one row per clip; one row per face for "
        f"the 1 with face_id) in {out}"
    )
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert summary.stem.tolist() == ["dpe_s", "two/face_0", "two/face_1"]
    assert summary.report.tolist() == ["dpe_s/report.html", "two/face_0/report.html", "two/face_1/report.html"]
    for row in summary.to_dict("records"):
        rep = report(out / row["stem"])
        assert (row["overall_score"], row["frames_with_face"]) == (
            rep["overall_score"], rep["inputs"]["frames_with_face"]
        )
    assert summary.frames_with_face.tolist() == [228, 227, 218]
    assert [f["folder"] for f in report(out / "two")["faces"]] == ["face_0", "face_1"]
    assert (out / "two" / "summary.csv").is_file() and (out / "two" / "index.html").is_file()
    page = (out / "index.html").read_text()
    assert "<h1>Expression analysis: 2 clips</h1>" in page and "3 analysed (one row per face" in page
    assert 'href="two/face_1/report.html"' in page and 'href="../index.html"' in (out / "two/face_1/report.html").read_text()
    assert '<a href="../index.html">every clip of this run</a>' in (out / "two" / "index.html").read_text()
    first = summary

    # another clip added later: the faces of the first run are read back from their reports
    more = tmp_path / "more"
    alone("lp_d14", more, [])
    rc, stdout, err = run(["--logs", more, "--out", out], capsys)
    assert rc == 0, err
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert summary.stem.tolist() == ["dpe_s", "lp_d14", "two/face_0", "two/face_1"]
    pd.testing.assert_frame_equal(
        summary[summary.stem != "lp_d14"].reset_index(drop=True), first.reset_index(drop=True)
    )


def test_never_writes_over_another_clips_analysis(built, tmp_path, capsys):
    logs = built["logs"]
    faces = tmp_path / "faces"
    rc, _, err = run(["--landmarks", logs["landmarks"], "--meta", logs["meta"], "--out", faces], capsys)
    assert rc == 0, err
    one = alone("dpe_s", tmp_path / "logs", [])
    # one face over several faces' analysis
    rc, _, err = run(["--landmarks", one["landmarks"], "--meta", one["meta"], "--out", faces], capsys)
    assert rc == EXIT_OUTPUT and "holds the analysis of several faces of two" in err and "--out" in err
    assert err.count("\n") == 1
    # several clips over it
    rc, _, err = run(["--logs", tmp_path / "logs", "--out", faces], capsys)
    assert rc == EXIT_OUTPUT and "holds the analysis of one clip (two" in err
    # several faces over one clip's analysis, or over several clips'
    single = tmp_path / "single"
    assert run(["--landmarks", one["landmarks"], "--meta", one["meta"], "--out", single], capsys)[0] == 0
    rc, _, err = run(["--landmarks", logs["landmarks"], "--meta", logs["meta"], "--out", single], capsys)
    assert rc == EXIT_OUTPUT and "holds the analysis of another clip (dpe_s" in err
    many = tmp_path / "many"
    assert run(["--logs", tmp_path / "logs", "--out", many], capsys)[0] == 0
    rc, _, err = run(["--landmarks", logs["landmarks"], "--meta", logs["meta"], "--out", many], capsys)
    assert rc == EXIT_OUTPUT and "holds the analysis of several clips (summary.csv)" in err
    assert report(faces)["clip"]["stem"] == "two" and report(single)["clip"]["stem"] == "dpe_s"


def rewrite(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("mixed", "two_landmarks.csv: has no face_id column but "),
        ("duplicate", "meta log row 5 repeats frame 2 with face_id 0; each face has one row per frame"),
        ("duplicate_landmarks", "landmarks log row 5 repeats frame 2 with face_id 0"),
        ("bad_id", "meta log row 2 has face_id 'a'; a face_id is a whole number"),
        ("empty_id_ok", "is ok with an empty face_id; only a frame without a face has an empty face_id"),
        ("empty_id_landmarks", "two_landmarks.csv: frame 1 has a row with an empty face_id"),
        ("face_not_in_meta", "two_landmarks.csv: frame 65 has a face but "),
    ],
)
def test_bad_face_id_logs_are_one_line_errors_exit_3(tmp_path, capsys, case, needle):
    logs = two_faces(tmp_path / "logs")
    meta, lm = logs["meta"], logs["landmarks"]
    if case == "mixed":  # the landmarks of a one-face run beside a face_id meta log
        rewrite(lm, lambda ls: [",".join(c for i, c in enumerate(ln.split(",")) if i != 1) for ln in ls])
    elif case == "duplicate":  # rows 2-3 are frame 1 (faces 0, 1), row 4 frame 2 face 0
        rewrite(meta, lambda ls: ls[:4] + [ls[3]] + ls[4:])
    elif case == "duplicate_landmarks":
        rewrite(lm, lambda ls: ls[:4] + [ls[3]] + ls[4:])
    elif case == "bad_id":
        rewrite(meta, lambda ls: [ls[0], ls[1].replace("1,0,", "1,a,", 1), *ls[2:]])
    elif case == "empty_id_ok":
        rewrite(meta, lambda ls: [ls[0], ls[1].replace("1,0,", "1,,", 1), *ls[2:]])
    elif case == "empty_id_landmarks":
        rewrite(lm, lambda ls: [ls[0], ls[1].replace("1,0,", "1,,", 1), *ls[2:]])
    elif case == "face_not_in_meta":  # face 1 gets landmarks in frame 65, where the meta log has none
        def add(ls: list[str]) -> list[str]:
            at = next(i for i, ln in enumerate(ls) if ln.startswith("66,"))
            return [*ls[:at], "65" + next(ln for ln in ls if ln.startswith("66,1,"))[2:], *ls[at:]]

        rewrite(lm, add)
    rc, out, err = run(["--landmarks", lm, "--meta", meta, "--out", tmp_path / "a"], capsys)
    assert rc == EXIT_INPUT, err
    assert needle in err and err.count("\n") == 1 and out == ""
    assert err.startswith("analyze_expressions.py: error: ")
    if case == "face_not_in_meta":
        assert err.rstrip().endswith("(face_id 1)")
    assert not (tmp_path / "a").exists()


def test_one_loader_reads_both_layouts(built, tmp_path):
    logs = built["logs"]
    assert sorted(load_inputs(logs["landmarks"], logs["meta"])) == [0, 1]
    one = alone("dpe_s", tmp_path, [])
    only = load_inputs(one["landmarks"], one["meta"])
    assert list(only) == [0] and only[0].face_id is None
    # of_face(0) of a log without face_id is the log as the one-face path read it
    meta = read_meta(one["meta"], strict=True)
    assert not meta.has_face_id and (meta.face_ids == 0).all() and meta.of_face(0) is meta
    lm = read_landmarks(one["landmarks"], strict=True)
    view = lm.of_face(0)
    assert (view.frames == lm.frames).all() and (view.landmarks == lm.landmarks).all()
    with pytest.warns(DeprecationWarning, match="use analyze_logs"):
        assert list(analyze_faces(one["landmarks"], one["meta"])) == [0]
    # without the meta log every frame from the first to the last logged one is each face's
    faces = load_inputs(logs["landmarks"], fps=FPS)
    assert [f.frames.size for f in faces.values()] == [228, 228]
    assert [int(f.face.sum()) for f in faces.values()] == [227, 218]


# ----------------------------------------------------------------------------- load_logs


def test_load_logs_gives_one_row_per_frame_and_face(built, tmp_path, capsys):
    folder = tmp_path / "out"
    (folder / "logs").mkdir(parents=True)
    for path in built["logs"].values():
        shutil.copyfile(path, folder / "logs" / path.name)
    rc, _, err = run(["--landmarks", folder / "logs" / "two_landmarks.csv", "--meta",
                      folder / "logs" / "two_meta.csv", "--out", folder / "analysis"], capsys)
    assert rc == 0, err
    table = facemap.load_logs(folder, "two")
    assert len(table) == 227 + 218 + 1 and str(table.face_id.dtype) == "Int64"
    assert table.groupby("face_id").size().to_dict() == {0: 227, 1: 218}
    empty = table[table.face_id.isna()]
    assert empty.frame.tolist() == EMPTY and empty.status.tolist() == ["no_face"]
    assert empty.lm_x0.isna().all() and empty.label.isna().all()
    for fid in (0, 1):
        mine = table[table.face_id == fid].set_index("frame")
        expr = pd.read_csv(folder / "analysis" / f"face_{fid}" / "expressions.csv").set_index("frame")
        assert (mine.label == expr.label.loc[mine.index]).all()
        assert mine.score.tolist() == expr.score.loc[mine.index].tolist()
    face1 = table[table.face_id == 1]
    assert (face1.box_x0 >= SHIFT).all() and (face1.lm_x0 >= SHIFT - 50).all()
    assert not face1.frame.isin(GAPS).any()


def test_end_to_end_as_a_user_runs_it(built, tmp_path):
    logs = built["logs"]
    out = tmp_path / "analysis"
    proc = subprocess.run(
        [sys.executable, str(REPO / "analyze_expressions.py"), "--landmarks", str(logs["landmarks"]),
         "--meta", str(logs["meta"]), "--out", str(out), "--no-plots"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2].startswith("2 faces: face_0/, face_1/;")
    assert not (out / "face_0" / "timeline.png").exists() and (out / "face_0" / "report.html").is_file()
    assert pd.read_csv(out / "summary.csv").stem.tolist() == ["face_0", "face_1"]


def test_a_new_id_mid_clip_is_a_face_of_its_own_in_clip_time(tmp_path):
    """Ids are not carried over a scene cut: face 1 becomes face 2 from frame 153 on."""
    logs = two_faces(tmp_path / "logs")
    for path in logs.values():
        rewrite(path, lambda ls: [
            ln.replace(",1,", ",2,", 1) if ln.split(",")[1] == "1" and int(ln.split(",")[0]) >= 153 else ln
            for ln in ls
        ])
    faces = analyze_logs(logs["landmarks"], logs["meta"])
    assert sorted(faces) == [0, 1, 2]
    assert [f.inputs.frames.size for f in faces.values()] == [228, 228, 228]
    late = faces[2]
    assert late.inputs.frames[late.inputs.face].min() == 153 and int(late.inputs.face.sum()) == 76
    assert int(faces[1].inputs.face.sum()) == 218 - 76
    # its events are where they happened in the clip, and its blink rate is per minute of its own face time
    assert (late.events.start_frame >= 153).all() and (late.events.start_ms >= 152 * 1000 / FPS - 1e-6).all()
    assert late.event_summary["blink"]["count"] >= 1


def test_a_clip_without_any_face(tmp_path, capsys):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "none_meta.csv").write_text(
        "frame,face_id,status,reason,x0,y0,x1,y1,timestamp_ms\n"
        + "".join(f"{f},,no_face,detector_failed,,,,,{(f - 1) * 40}\n" for f in (1, 2, 3))
    )
    (folder / "none_landmarks.csv").write_text("frame,face_id," + ",".join(f"x{i},y{i}" for i in range(68)) + ",timestamp_ms\n")
    out = tmp_path / "a"
    rc, stdout, err = run(["--landmarks", folder / "none_landmarks.csv", "--meta", folder / "none_meta.csv",
                           "--out", out], capsys)
    assert rc == 0, err
    assert stdout.splitlines() == [f"0 faces: no face in any frame; report.json, summary.csv and index.html (one row per face) in {out}"]
    top = report(out)
    assert top["faces"] == [] and top["inputs"]["frames"] is None and top["clip"]["stem"] == "none"
    assert pd.read_csv(out / "summary.csv").empty


def test_baseline_frames_apply_to_every_face_and_an_error_names_the_face(built, tmp_path, capsys, caplog):
    """One range for every face; a face not seen in it gets the automatic baseline, with a
    warning (before: exit 2 for all, so a clip of several faces in turn could not be given a
    range at all); a range where no face is seen is an error naming the face."""
    logs = built["logs"]
    args = ["--landmarks", logs["landmarks"], "--meta", logs["meta"], "-q"]
    rc, out, err = run([*args, "--baseline-frames", "60:65", "--out", tmp_path / "a"], capsys)
    assert rc == 0, err
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == ["face_id 1: no frame with this face in --baseline-frames 60:65; its baseline is chosen as without the option"]
    assert report(tmp_path / "a" / "face_0")["baseline"]["method"] == "frames 60:65"
    assert report(tmp_path / "a" / "face_1")["baseline"]["method"] == "low_activity"
    rc, out, err = run([*args, "--baseline-frames", "900:950", "--out", tmp_path / "c"], capsys)
    assert rc == 2 and err.rstrip().endswith("holds no frame with a face; choose frames where the person is visible and at rest (face_id 0)")
    rc, out, err = run([*args, "--baseline-frames", "1:40", "--out", tmp_path / "b"], capsys)
    assert rc == 0, err
    for fid in (0, 1):
        base = report(tmp_path / "b" / f"face_{fid}")["baseline"]
        assert base["n_frames"] == 40 and base["method"] != "low_activity"


def test_raw_params_logs_with_face_id_give_each_face_its_pose_free_analysis(tmp_path):
    """FaceMap's raw log with face_id (a stand-in basis, synthetic params): each face's analysis
    is that of its own rows alone."""
    from facemap.io.schema import RAW_COLUMNS
    from tests.standins import write_basis

    basis = write_basis(tmp_path / "basis")
    rng = np.random.default_rng(0)
    n, gap = 60, range(20, 25)
    params = {f: rng.normal(0, 0.05, (n, 265)) for f in (0, 1)}
    for f in (0, 1):
        params[f][:, 219:258] = 0.02 * (f + 1) * np.sin(np.arange(n) / 5)[:, None]
    raw, meta = [], []
    for i in range(1, n + 1):
        for f in (0, 1):
            if f == 1 and i in gap:
                continue
            raw.append([i, f, *params[f][i - 1]])
            meta.append([i, f, "ok", "detected", 10 + 500 * f, 10, 200 + 500 * f, 200, (i - 1) * 40])
    raw = pd.DataFrame(raw, columns=["frame", "face_id", *RAW_COLUMNS[1:]])
    meta = pd.DataFrame(meta, columns=["frame", "face_id", "status", "reason", "x0", "y0", "x1", "y1", "timestamp_ms"])
    raw.to_csv(tmp_path / "two_raw.csv", index=False)
    meta.to_csv(tmp_path / "two_meta.csv", index=False)
    faces = analyze_logs(None, tmp_path / "two_meta.csv", tmp_path / "two_raw.csv", basis_dir=basis)
    for f in (0, 1):
        mine = meta[meta.face_id == f].drop(columns="face_id")
        if f == 1:
            absent = pd.DataFrame({"frame": list(gap), "status": "no_face", "reason": "detector_failed",
                                   "timestamp_ms": [(i - 1) * 40 for i in gap]})
            mine = pd.concat([mine, absent]).sort_values("frame")
        mine.to_csv(tmp_path / f"s{f}_meta.csv", index=False)
        raw[raw.face_id == f].drop(columns="face_id").to_csv(tmp_path / f"s{f}_raw.csv", index=False)
        alone_ = analyze_logs(None, tmp_path / f"s{f}_meta.csv", tmp_path / f"s{f}_raw.csv", basis_dir=basis)[0]
        assert faces[f].inputs.source == "raw+basis" and faces[f].inputs.frames.size == n
        pd.testing.assert_frame_equal(faces[f].frame_table(), alone_.frame_table())
    assert int(faces[1].inputs.face.sum()) == n - len(gap)
