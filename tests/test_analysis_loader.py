"""The one loader (``load_inputs``) at the edges of its logs: a raw log that runs past the
landmarks log, a face the meta log names but no landmarks row holds, settings that count frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from facemap.analysis import AnalysisConfig, analyze_logs, load_config, load_inputs
from facemap.analysis.synth import synthetic_logs
from facemap.errors import UsageError
from facemap.io.schema import RAW_COLUMNS
from tests.standins import write_basis


@pytest.mark.parametrize("face_id", [False, True])
def test_a_raw_log_that_runs_past_the_landmarks_spans_both(tmp_path, face_id):
    """Landmarks for frames 1-50, raw params for 1-60, no meta log: 60 frames, the last 10 judged
    from the params (before: an IndexError, "a bug in facemap")."""
    lm_path, _meta = synthetic_logs(tmp_path, n_frames=50, no_face=None, stem="c")
    lm = pd.read_csv(lm_path).copy()
    rng = np.random.default_rng(0)
    raw = pd.DataFrame(rng.normal(0, 0.05, (60, 265)), columns=RAW_COLUMNS[1:])
    raw.insert(0, "frame", np.arange(1, 61))
    if face_id:
        lm.insert(1, "face_id", 0)
        raw.insert(1, "face_id", 0)
    lm.to_csv(tmp_path / "lm.csv", index=False)
    raw.to_csv(tmp_path / "raw.csv", index=False)
    faces = load_inputs(
        tmp_path / "lm.csv", None, tmp_path / "raw.csv", basis_dir=write_basis(tmp_path / "b"), fps=30.0,
        config=AnalysisConfig(landmarks_first=0),
    )
    assert list(faces) == [0]
    assert faces[0].frames.tolist() == list(range(1, 61)) and faces[0].face.all()
    assert faces[0].source == "raw+basis"
    # by default the landmarks judge (the better path held out): the params' last 10 frames
    # have no face there
    faces = load_inputs(tmp_path / "lm.csv", None, tmp_path / "raw.csv", basis_dir=write_basis(tmp_path / "b"), fps=30.0)
    assert faces[0].source == "landmarks"
    assert faces[0].frames.tolist() == list(range(1, 61)) and faces[0].face.sum() == 50


def test_a_face_with_no_landmarks_row_is_a_face_never_seen(tmp_path):
    """The meta log names face 2 once (an unusable model output, no landmarks row): its analysis
    has no face in any frame, and the other faces are analysed as before (before: "a bug")."""
    lm_path, meta_path = synthetic_logs(tmp_path, n_frames=60, no_face=None, stem="c")
    lm, meta = pd.read_csv(lm_path).copy(), pd.read_csv(meta_path)
    lm.insert(1, "face_id", 0)
    meta.insert(1, "face_id", 0)
    odd = meta.iloc[[10]].copy()
    odd["face_id"], odd["status"], odd["reason"] = 2, "unstable", "non_finite_output"
    meta = pd.concat([meta, odd]).sort_values(["frame", "face_id"])
    lm.to_csv(tmp_path / "lm.csv", index=False)
    meta.to_csv(tmp_path / "meta.csv", index=False)
    faces = analyze_logs(tmp_path / "lm.csv", tmp_path / "meta.csv")
    assert sorted(faces) == [0, 2]
    assert faces[0].inputs.face.all() and not faces[2].inputs.face.any()


def test_smile_off_left_at_its_default_follows_smile_on():
    """smile_on set alone (0.1, under the default smile_off 0.207) left the band inverted: the
    smile's off line above its on line. The default smile_off now follows it (0.9 x); one set
    explicitly is kept."""
    assert AnalysisConfig(smile_on=0.1).smile_off == pytest.approx(0.09)
    assert AnalysisConfig(smile_on=0.3, smile_off=0.2).smile_off == 0.2
    assert AnalysisConfig().smile_off == 0.207


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"baseline_max_frames": 0.5}, "baseline_max_frames must be whole numbers"),
        ({"max_gap_frames": 10.5}, "max_gap_frames must be whole numbers"),
        ({"frame_gap_factor": 0}, "frame_gap_factor must be above 0"),
        ({"spread_floor_iod": 0}, "spread_floor_iod must be above 0"),
    ],
)
def test_settings_that_count_frames_or_scale_time_are_checked(tmp_path, settings, needle):
    """baseline_max_frames 0.5 divided by zero ("a bug"); frame_gap_factor 0 silently removed
    every label."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps(settings))
    with pytest.raises(UsageError, match=needle):
        load_config(path)
    path.write_text(json.dumps({"baseline_max_frames": 500}))
    assert load_config(path).baseline_max_frames == 500 and isinstance(load_config(path).baseline_max_frames, int)


def test_the_defaults_written_out_load_back_and_python_settings_get_the_same_checks(tmp_path):
    """A config file holding every default (threedmm_rest_lip_corner_lift is -0.015) was refused
    as "must be >= 0"; an AnalysisConfig built in Python took any value unchecked."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps(AnalysisConfig().as_dict()))
    assert load_config(path) == AnalysisConfig()
    path.write_text(json.dumps({"threedmm_rest_brow_raise": -0.02}))
    assert load_config(path).threedmm_rest_brow_raise == -0.02
    with pytest.raises(UsageError, match="AnalysisConfig: setting.s. smile_on must be finite numbers >= 0"):
        AnalysisConfig(smile_on=-1.0)
    with pytest.raises(UsageError, match="frame_gap_factor must be above 0"):
        AnalysisConfig(frame_gap_factor=0)
    with pytest.raises(UsageError, match="held_quantile must be at most 1"):
        AnalysisConfig(held_quantile=2.0)
    with pytest.raises(UsageError, match="typical_lip_corner_lift must be finite"):
        AnalysisConfig(typical_lip_corner_lift=float("nan"))
    # numpy's numbers (a grid search's) are numbers; a switch takes False/True as 0/1, no other value
    import numpy as np

    cfg = AnalysisConfig(smile_on=np.float32(0.05), baseline_max_frames=np.int64(500), learned_mouth=False)
    assert (cfg.baseline_max_frames, cfg.learned_mouth) == (500, 0) and type(cfg.baseline_max_frames) is int
    assert type(cfg.smile_on) is float and abs(cfg.smile_on - 0.05) < 1e-8
    with pytest.raises(UsageError, match="learned_mouth must be 0 .off. or 1 .on."):
        AnalysisConfig(learned_mouth=2)
    with pytest.raises(UsageError, match="smile_on must be numbers, not true/false"):
        AnalysisConfig(smile_on=True)


def test_write_outputs_takes_one_analysis_as_before(tmp_path):
    """``write_outputs(analyze(inputs), out)``, the call before analyze_logs gave one per face,
    writes that face's files flat (it was an AttributeError: a bug line)."""
    from facemap.analysis import analyze
    from facemap.analysis.report import write_outputs

    lm, meta = synthetic_logs(tmp_path, n_frames=90, no_face=None, stem="c")
    one = analyze(load_inputs(lm, meta)[0])
    rows = write_outputs(one, tmp_path / "out", plots=False)
    assert len(rows) == 1 and (tmp_path / "out" / "report.json").is_file() and not (tmp_path / "out" / "face_0").exists()


@pytest.mark.parametrize("face_id", [False, True])
def test_a_stop_while_a_clip_is_written_lands_after_its_files(tmp_path, monkeypatch, face_id):
    """Ctrl-C arriving between two of a clip's files (a rerun with other settings): the clip's
    files are all of the new analysis, then the run stops (before: new score.txt beside the
    old report.json)."""
    import os
    import signal

    import facemap.analysis.report as report
    from facemap.analysis import AnalysisConfig

    lm_path, meta_path = synthetic_logs(tmp_path, n_frames=120, no_face=None, stem="c")
    if face_id:
        for p in (lm_path, meta_path):
            df = pd.read_csv(p)
            df.insert(1, "face_id", 0)
            df.to_csv(p, index=False)
    out, clean = tmp_path / "out", tmp_path / "clean"
    other = AnalysisConfig(smile_on=0.01)
    report.write_outputs(analyze_logs(lm_path, meta_path), out, plots=False)
    report.write_outputs(analyze_logs(lm_path, meta_path, config=other), clean, plots=False)
    real, calls = report.atomic_write_bytes, []

    def stop_on_second(path, data):
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        real(path, data)

    monkeypatch.setattr(report, "atomic_write_bytes", stop_on_second)
    with pytest.raises(KeyboardInterrupt):
        report.write_outputs(analyze_logs(lm_path, meta_path, config=other), out, plots=False)
    files = sorted(p.relative_to(clean) for p in clean.rglob("*") if p.is_file() and p.suffix != ".parquet")
    assert len(files) >= 4 and {f: (out / f).read_bytes() for f in files} == {f: (clean / f).read_bytes() for f in files}
