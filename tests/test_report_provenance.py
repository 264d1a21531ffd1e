"""What made a report (issue 23): infer.py records the landmarker, detector, model file and its
SHA-256, the basis's SHA-256 and the non-default settings beside the logs
(``logs/<stem>_run.json``) and in a picture's JSON; the analyzer's report.json and report.html
show them, with the baseline frames, the caution about thresholds chosen on dlib logs where it
applies, and the overall score's parts explained."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

import analyze_expressions
import infer
from facemap.assets import load_basis
from facemap.io.schema import META_COLUMNS
from facemap.provenance import basis_sha256
from tests.conftest import need_shared
from tests.standins import DATA

D19 = DATA / "videos" / "lp_d19.mp4"
REF = DATA / "ref"


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _analyze(argv: list[object], capsys) -> dict:
    rc = analyze_expressions.main([str(a) for a in argv])
    _, err = capsys.readouterr()
    assert rc == 0, err
    out = Path(argv[argv.index("--out") + 1])
    return json.loads((out / "report.json").read_text())


def test_a_facemap_video_run_records_what_made_it_and_the_report_shows_it(tmp_path, standin_model, basis_dir, capsys):
    out = tmp_path / "out"
    rc = infer.main(["--video", str(need_shared(D19)), "--model", str(standin_model), "--basis-dir", str(basis_dir),
                     "--max-frames", "30", "--every", "2", "--jump-threshold", "2", "--dump-landmarks-csv",
                     "-o", str(out), "-q"])
    assert rc == 0, capsys.readouterr().err
    info = json.loads((out / "logs" / "lp_d19_run.json").read_text())
    assert info["landmarker"] == "facemap" and info["detector"] == "yunet"
    assert info["model"] == str(standin_model) and info["model_sha256"] == _sha(standin_model)
    assert info["model_data_sha256"] == {"model.data": _sha(standin_model.parent / "model.data")}
    assert info["basis_sha256"] == basis_sha256(load_basis(basis_dir))
    assert info["detector_model_sha256"] == _sha(info["detector_model"])
    # the range and rules, not the inputs, outputs or drawing
    assert info["settings"] == {"--every": 2, "--max-frames": 30, "--jump-threshold": 2.0}
    assert "logs/lp_d19_run.json" in (out / ".facemap-output").read_text().splitlines()
    # the CSV logs keep their columns
    assert (out / "logs" / "lp_d19_meta.csv").read_text().splitlines()[0] == ",".join(META_COLUMNS)

    report = _analyze(["--landmarks", out / "logs/lp_d19_landmarks.csv", "--meta", out / "logs/lp_d19_meta.csv",
                       "--out", tmp_path / "a", "--config", _config(tmp_path, smile_on=0.3)], capsys)
    assert report["made_by"] == info
    assert report["analysis_settings_changed"] == {"smile_on": 0.3, "smile_off": pytest.approx(0.27)}  # the band follows
    assert "untested on facemap's logs" in report["caution"]
    page = (tmp_path / "a" / "report.html").read_text()
    for text in (info["model_sha256"], info["basis_sha256"], "yunet", "--every 2", "smile_on 0.3",
                 "untested on facemap&#x27;s logs", "mixes presence with affect"):
        assert text in page, text


def _config(tmp_path: Path, **settings: float) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(settings))
    return path


def _dlib_logs(folder: Path, stem: str = "lp_d0") -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind in ("meta", "landmarks"):
        paths[kind] = folder / f"{stem}_{kind}.csv"
        shutil.copyfile(need_shared(REF / f"{stem}_dlib_{kind}.csv"), paths[kind])
    return paths


def test_logs_made_by_dlib_carry_no_caution_and_unrecorded_logs_say_so(tmp_path, capsys):
    logs = _dlib_logs(tmp_path / "logs")
    args = ["--landmarks", logs["landmarks"], "--meta", logs["meta"], "--fps", 25, "--no-plots"]
    report = _analyze([*args, "--out", tmp_path / "unknown"], capsys)
    assert report["made_by"] == {}
    assert "logs whose landmarker is not recorded" in report["caution"]
    assert "not recorded" in (tmp_path / "unknown" / "report.html").read_text()
    made_by = {"landmarker": "dlib", "detector": "dlib-hog", "model": "/x/shape_predictor.dat",
               "model_sha256": "ab" * 32, "facemap_version": "0.1.0", "settings": {}}
    (tmp_path / "logs" / "lp_d0_run.json").write_text(json.dumps(made_by))
    report = _analyze([*args, "--out", tmp_path / "dlib"], capsys)
    assert report["made_by"] == made_by and report["caution"] is None
    page = (tmp_path / "dlib" / "report.html").read_text()
    assert "ab" * 32 in page and 'class="caution"' not in page


def test_the_score_is_explained_by_its_parts_and_the_baseline_frames_are_listed(tmp_path, capsys):
    # a clip whose face is there a third of the time: positivity high, overall low
    logs = _dlib_logs(tmp_path / "logs", "lp_d14")
    meta = logs["meta"].read_text().splitlines()
    head, rows = meta[0], meta[1:]
    cols = head.split(",")
    kept = []
    for i, row in enumerate(rows):
        cells = row.split(",")
        if i % 3:  # two frames in three: no face
            cells = [cells[0], "no_face", "detector_failed", *[""] * (len(cols) - 3)]
        kept.append(",".join(cells))
    logs["meta"].write_text("\n".join([head, *kept]) + "\n")
    lm = logs["landmarks"].read_text().splitlines()
    logs["landmarks"].write_text("\n".join([lm[0], *(r for i, r in enumerate(lm[1:]) if i % 3 == 0)]) + "\n")
    report = _analyze(["--landmarks", logs["landmarks"], "--meta", logs["meta"], "--fps", 25, "--out", tmp_path / "a"],
                      capsys)
    sub, overall = report["sub_scores"], report["overall_score"]
    assert sub["positivity"] > 2 * overall  # the case the page must explain
    text = report["score_explained"]
    att, affect, product = (float(x) for x in re.search(r"so ([\d.]+) x ([\d.]+) / 100 = (\d+\.\d)", text).groups())
    assert att == sub["attention"] and product == overall
    assert abs(att * affect / 100 - overall) < 0.1  # the parts make the score
    assert f"Positivity ({sub['positivity']:.1f})" in text
    base = report["baseline"]
    frames = [f for a, b in base["frames"] for f in range(a, b + 1)]
    assert len(frames) == base["n_frames"] and frames == sorted(frames)
    assert all(f % 3 == 1 for f in frames)  # only frames with a face
    page = (tmp_path / "a" / "report.html").read_text()
    assert "shaded gold on the timeline" in page and text.replace("'", "&#x27;") in page


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="the dlib extra is not installed")
def test_a_dlib_picture_records_what_made_it(tmp_path, capsys):
    out = tmp_path / "out"
    assert infer.main(["--image", str(need_shared(DATA / "images" / "fr_obama-720p.jpg")), "--landmarker", "dlib",
                       "-o", str(out), "-q"]) == 0
    doc = json.loads((out / "fr_obama-720p.json").read_text())
    assert doc["landmarker"] == "dlib" and doc["detector"] == "dlib-hog"
    assert doc["model_sha256"] == _sha(doc["predictor"]) and doc["settings"] == {}  # dlib names its model predictor
    assert not (out / "logs" / "fr_obama-720p_run.json").exists()  # a picture's record is its JSON
    rc = analyze_expressions.main(["--logs", str(out / "logs"), "--out", str(tmp_path / "all"), "--no-plots"])
    assert rc == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "all" / "fr_obama-720p" / "report.json").read_text())
    assert report["made_by"]["model"] == doc["predictor"] and report["made_by"]["model_sha256"] == doc["model_sha256"]
    assert "predictor" not in report["made_by"] and report["caution"] is None
