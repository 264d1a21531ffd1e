"""analyze_expressions.py end to end: outputs, invariances, the pose-free path, hostile inputs."""

from __future__ import annotations

import base64
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analyze_expressions
from facemap.analysis import LABELS
from facemap.analysis.synth import synthetic_logs
from facemap.io.schema import RAW_COLUMNS
from facemap.threedmm.decode import Basis, Decoder
from tests.standins import synthetic_basis_arrays

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """30 s of synthetic logs at 30 fps with timestamps and a 1 s gap without a face."""
    return synthetic_logs(tmp_path_factory.mktemp("clip"), n_frames=900, fps=30.0)


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    rc = analyze_expressions.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def scores(out_dir: Path) -> dict[str, float]:
    rep = json.loads((out_dir / "report.json").read_text())
    return {"overall_score": rep["overall_score"], **rep["sub_scores"]}


def test_outputs_are_complete_and_valid(clip, tmp_path, capsys):
    lm, meta = clip
    out = tmp_path / "out"
    rc, stdout, _ = run(["--landmarks", lm, "--meta", meta, "--out", out], capsys)
    assert rc == 0
    assert "overall_score" in stdout
    assert sorted(p.name for p in out.iterdir() if p.name != ".facemap-output") == sorted(
        ["score.txt", "report.json", "expressions.csv", "timeline.png", "report.html"]
    )
    score_txt = (out / "score.txt").read_text()
    assert re.fullmatch(r"\d{1,3}\.\d\n", score_txt)

    rep = json.loads((out / "report.json").read_text())
    for key in (
        "overall_score",
        "frames_scored",
        "class_distribution",
        "sub_scores",
        "events",
        "time_fractions",
        "thresholds",
        "baseline",
        "inputs",
        "version",
        "formulas",
    ):
        assert key in rep
    assert float(score_txt) == rep["overall_score"]
    assert rep["frames_scored"] == 870  # 900 frames, 30 without a face (18.5-19.5 s)
    assert sum(rep["class_distribution"].values()) == 900
    assert rep["class_distribution"]["no_face"] == 30
    # the scripted story: a blink at 3 s and every 4 s after (the one at 19 s falls in the
    # no-face gap: 6), 2 smiles, 1 yawn, 1 looking-away period
    ev = rep["events"]["summary"]
    assert ev["blink"]["count"] == 6
    assert ev["blink"]["rate_per_min"] == pytest.approx(6 / (870 / 30 / 60), rel=0.01)
    assert 100 <= ev["blink"]["mean_duration_ms"] <= 250
    assert ev["smile"]["count"] == 2
    assert ev["smile"]["total_ms"] == pytest.approx(7000, abs=300)
    assert ev["yawn"]["count"] == 1
    assert ev["looking_away"]["count"] == 1
    assert ev["looking_away"]["total_ms"] == pytest.approx(2000, abs=200)
    for name in ("overall_score", "positivity", "expressiveness", "attention"):
        assert 0 <= scores(out)[name] <= 100

    with open(out / "expressions.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["frame", "timestamp_ms", "label", "score"]
    assert header[-len(LABELS) :] == LABELS
    assert len(body) == 900 and all(len(r) == len(header) for r in body)
    df = pd.read_csv(out / "expressions.csv")
    assert set(df["label"]) <= set(LABELS) | {"no_face"}
    assert (df.loc[df["label"] == "no_face", LABELS].to_numpy() == 0).all()
    assert df[LABELS].isin([0, 1]).all().all()
    for name in LABELS[1:]:  # the label column holds a label that is set
        assert (df.loc[df["label"] == name, name] == 1).all()
    assert df.loc[(df.timestamp_ms >= 2200) & (df.timestamp_ms < 4800), "smile"].all()
    assert df.loc[(df.timestamp_ms >= 12300) & (df.timestamp_ms < 14800), "label"].eq("yawn").all()
    assert (
        df.loc[(df.timestamp_ms >= 16600) & (df.timestamp_ms < 17800), "label"]
        .eq("looking_away")
        .all()
    )

    page = (out / "report.html").read_text()
    png = (out / "timeline.png").read_bytes()
    assert base64.b64encode(png).decode() in page
    assert "http://" not in page and "https://" not in page
    assert [p.name for p in out.glob(".*")] == [".facemap-output"]  # the marker; no temp files


def _scaled(src: tuple[Path, Path], folder: Path, factor: float) -> tuple[Path, Path]:
    folder.mkdir()
    lm = pd.read_csv(src[0])
    xy = [c for c in lm.columns if re.fullmatch(r"[xy]\d+", c)]
    lm[xy] *= factor
    meta = pd.read_csv(src[1])
    meta[["x0", "y0", "x1", "y1"]] *= factor
    lm.to_csv(folder / "s_landmarks.csv", index=False)
    meta.to_csv(folder / "s_meta.csv", index=False)
    return folder / "s_landmarks.csv", folder / "s_meta.csv"


def _every_other(src: tuple[Path, Path], folder: Path, renumber: bool) -> tuple[Path, Path]:
    folder.mkdir()
    meta = pd.read_csv(src[1]).iloc[::2].copy()
    lm = pd.read_csv(src[0])
    lm = lm[lm["frame"].isin(meta["frame"])].copy()
    if renumber:  # a genuine 15 fps log: frames 1, 2, 3 ... and no timestamps
        new = {f: i + 1 for i, f in enumerate(meta["frame"])}
        meta["frame"], lm["frame"] = meta["frame"].map(new), lm["frame"].map(new)
        meta = meta.drop(columns=["timestamp_ms"])
        lm = lm.drop(columns=["timestamp_ms"])
    lm.to_csv(folder / "r_landmarks.csv", index=False)
    meta.to_csv(folder / "r_meta.csv", index=False)
    return folder / "r_landmarks.csv", folder / "r_meta.csv"


def test_scores_do_not_depend_on_scale_or_frame_rate(clip, tmp_path, capsys):
    lm, meta = clip
    ref_out = tmp_path / "ref"
    assert run(["--landmarks", lm, "--meta", meta, "--out", ref_out, "--no-plots"], capsys)[0] == 0
    ref = scores(ref_out)
    assert ref["overall_score"] != pytest.approx(50.0, abs=5)  # the clip is not trivially neutral

    x2 = _scaled(clip, tmp_path / "x2", 2.0)
    half = _every_other(clip, tmp_path / "half", renumber=False)
    fps15 = _every_other(clip, tmp_path / "fps15", renumber=True)
    for name, (l2, m2), extra in (
        ("x2", x2, []),
        ("half", half, []),
        ("fps15", fps15, ["--fps", 15]),
    ):
        out = tmp_path / f"out_{name}"
        rc, _, err = run(
            ["--landmarks", l2, "--meta", m2, "--out", out, "--no-plots", *extra], capsys
        )
        assert rc == 0, err
        got = scores(out)
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, abs=1.0), (name, key)


def _original_layout(src: tuple[Path, Path], folder: Path) -> tuple[Path, Path]:
    """The original tool's layout: no timestamp_ms or pose columns."""
    folder.mkdir()
    lm = pd.read_csv(src[0]).drop(columns=["timestamp_ms"])
    meta = pd.read_csv(src[1])[["frame", "status", "reason", "x0", "y0", "x1", "y1"]]
    lm.to_csv(folder / "o_landmarks.csv", index=False)
    meta.to_csv(folder / "o_meta.csv", index=False)
    return folder / "o_landmarks.csv", folder / "o_meta.csv"


def test_fps_replaces_missing_timestamps(tmp_path, capsys):
    logs = synthetic_logs(tmp_path / "logs", n_frames=300, fps=25.0, no_face=None)
    lm, meta = _original_layout(logs, tmp_path / "orig")
    rc, _, err = run(["--landmarks", lm, "--meta", meta, "--out", tmp_path / "a"], capsys)
    assert rc == 2 and "--fps" in err
    rc, _, _ = run(
        ["--landmarks", lm, "--meta", meta, "--out", tmp_path / "b", "--fps", 25], capsys
    )
    df = pd.read_csv(tmp_path / "b" / "expressions.csv")
    assert rc == 0 and df["timestamp_ms"].iloc[-1] == pytest.approx(299 * 40.0)


def test_landmarks_without_meta_fill_missing_frames_as_no_face(clip, tmp_path, capsys):
    rc, _, _ = run(["--landmarks", clip[0], "--out", tmp_path / "o", "--no-plots"], capsys)
    df = pd.read_csv(tmp_path / "o" / "expressions.csv")
    assert rc == 0 and len(df) == 900 and (df["label"] == "no_face").sum() == 30


def test_baseline_frames_and_config(clip, tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"smile_on": 5.0, "smile_off": 4.0}))
    out = tmp_path / "o"
    rc, _, _ = run(
        [
            "--landmarks",
            clip[0],
            "--meta",
            clip[1],
            "--out",
            out,
            "--no-plots",
            "--baseline-frames",
            "1:50",
            "--config",
            cfg,
        ],
        capsys,
    )
    rep = json.loads((out / "report.json").read_text())
    assert rc == 0
    assert rep["baseline"]["method"] == "frames 1:50" and rep["baseline"]["n_frames"] == 50
    assert rep["thresholds"]["configured"]["smile_on"] == 5.0
    assert rep["events"]["summary"]["smile"]["count"] == 0


def _raw_log(path: Path, n: int = 120) -> np.ndarray:
    """Raw params: fixed identity and expression while the head turns and nods +-40 degrees."""
    rng = np.random.default_rng(5)
    p = np.zeros((n, 265))
    p[:, :219] = rng.uniform(-0.3, 0.3, 219)
    p[:, 219:258] = rng.uniform(-0.5, 0.5, 39)
    t = np.linspace(0, 2 * np.pi, n)
    p[:, 258], p[:, 259], p[:, 260] = (
        (40 / 90) * np.sin(t),
        (40 / 90) * np.cos(t),
        (40 / 90) * np.sin(2 * t),
    )
    df = pd.DataFrame(p, columns=RAW_COLUMNS[1:])
    df.insert(0, "frame", np.arange(1, n + 1))
    df.to_csv(path, index=False)
    return p


def test_raw_logs_with_basis_give_pose_free_features(tmp_path, basis_dir, capsys):
    raw = tmp_path / "x_raw.csv"
    params = _raw_log(raw)
    out = tmp_path / "o"
    rc, _, err = run(
        ["--raw", raw, "--basis-dir", basis_dir, "--fps", 30, "--out", out, "--no-plots"], capsys
    )
    assert rc == 0, err
    df = pd.read_csv(out / "expressions.csv")
    for name in ("ear", "mar", "mouth_width", "lip_corner_lift", "brow_raise", "jaw_open"):
        assert np.ptp(df[name]) <= 1e-4
    np.testing.assert_allclose(df["yaw_deg"], params[:, 259] * 90, atol=1e-3)
    assert json.loads((out / "report.json").read_text())["inputs"]["features_from"] == "raw+basis"
    # the same decoder's 2D projection is not pose-free
    lm2d = Decoder(Basis(*synthetic_basis_arrays())).decode(params).landmarks_model
    from facemap.analysis.features import landmark_features

    assert np.ptp(landmark_features(lm2d)["jaw_open"]) > 0.05


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _hostile(case: str, clip: tuple[Path, Path], d: Path) -> list[object]:
    lm_df, meta_df = pd.read_csv(clip[0]), pd.read_csv(clip[1])
    lm, meta = d / "h_landmarks.csv", d / "h_meta.csv"
    meta_df.to_csv(meta, index=False)
    if case == "missing column":
        lm_df.drop(columns=["y67"]).to_csv(lm, index=False)
    elif case == "empty file":
        _write(lm, "")
    elif case == "header only":
        _write(lm, ",".join(lm_df.columns) + "\n")
    elif case == "non-numeric":
        lm_df.astype(object).assign(x5=lambda f: f["x5"].where(f.index != 7, "abc")).to_csv(
            lm, index=False
        )
    elif case == "nan":
        lm_df.assign(y3=lambda f: f["y3"].where(f.index != 9, np.nan)).to_csv(lm, index=False)
    elif case == "duplicated frames":
        pd.concat([lm_df.iloc[:10], lm_df.iloc[9:]]).to_csv(lm, index=False)
    elif case == "unsorted frames":
        lm_df.iloc[np.r_[1, 0, 2 : len(lm_df)]].to_csv(lm, index=False)
    elif case == "meta from another video (frames)":
        lm_df.to_csv(lm, index=False)
        meta_df.iloc[:400].to_csv(meta, index=False)
    elif case == "meta from another video (boxes)":
        lm_df.to_csv(lm, index=False)
        meta_df.assign(x0=meta_df.x0 + 2000, x1=meta_df.x1 + 2000).to_csv(meta, index=False)
    elif case == "meta says no face":
        lm_df.to_csv(lm, index=False)
        meta_df.assign(status="no_face").to_csv(meta, index=False)
    elif case == "timestamps go back":
        lm_df.to_csv(lm, index=False)
        meta_df.assign(timestamp_ms=meta_df.timestamp_ms[::-1].to_numpy()).to_csv(meta, index=False)
    elif case == "missing file":
        lm = d / "nowhere_landmarks.csv"
    elif case == "binary garbage":
        lm.write_bytes(b"\x00\xff\xfe" * 100)
    return ["--landmarks", lm, "--meta", meta, "--out", d / "out"]


HOSTILE = [
    "missing column",
    "empty file",
    "header only",
    "non-numeric",
    "nan",
    "duplicated frames",
    "unsorted frames",
    "meta from another video (frames)",
    "meta from another video (boxes)",
    "meta says no face",
    "timestamps go back",
    "missing file",
    "binary garbage",
]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_csv_gives_one_line_and_exit_3(case, clip, tmp_path, capsys):
    rc, out, err = run(_hostile(case, clip, tmp_path), capsys)
    lines = err.strip().splitlines()
    assert rc == 3, (case, err)
    assert len(lines) == 1 and lines[0].startswith("analyze_expressions.py: error: "), err
    assert "Traceback" not in err and ".csv" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written for a refused input


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--baseline-frames", "7"], "A:B"),
        (["--baseline-frames", "5000:6000"], "no frame with a face"),
        (["--fps", "0"], "--fps"),
        (["--config", "{missing}"], "--config"),
        (["--out", ""], "--out is empty"),
    ],
)
def test_bad_options_exit_2(extra, needle, clip, tmp_path, capsys):
    extra = [str(tmp_path / "nope.json") if e == "{missing}" else e for e in extra]
    rc, _, err = run(
        ["--landmarks", clip[0], "--meta", clip[1], "--out", tmp_path / "o", *extra], capsys
    )
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"smile_on": NaN}', "smile_on must be finite numbers >= 0"),
        ('{"smile_on": Infinity}', "smile_on must be finite numbers >= 0"),
        ('{"smile_on": -1, "min_z": -0.5}', "smile_on, min_z must be finite numbers >= 0"),
        ('{"baseline_fraction": 0}', "baseline_fraction must be above 0 and at most 1"),
        ('{"baseline_fraction": 2}', "baseline_fraction must be above 0 and at most 1"),
    ],
)
def test_config_values_out_of_range_exit_2(text, needle, clip, tmp_path, capsys):
    cfg = _write(tmp_path / "c.json", text)
    rc, _, err = run(["--landmarks", clip[0], "--out", tmp_path / "o", "--config", cfg], capsys)
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_unknown_config_key_lists_valid_names(clip, tmp_path, capsys):
    cfg = _write(tmp_path / "c.json", '{"smile_treshold": 1}')
    rc, _, err = run(["--landmarks", clip[0], "--out", tmp_path / "o", "--config", cfg], capsys)
    assert rc == 2 and "smile_treshold" in err and "smile_on" in err


def test_no_input_and_missing_basis(tmp_path, capsys):
    assert run(["--out", tmp_path / "o"], capsys)[0] == 2
    rc, _, err = run(["--landmarks", "x.csv"], capsys)  # argparse: --out is required
    assert rc == 2 and "--out" in err
    assert run(["--help"], capsys)[0] == 0
    raw = tmp_path / "r_raw.csv"
    _raw_log(raw, 10)
    rc, _, err = run(
        ["--raw", raw, "--basis-dir", tmp_path / "nobasis", "--fps", 30, "--out", tmp_path / "o"],
        capsys,
    )
    assert rc == 3 and "meanFace.npy" in err


def test_output_path_that_is_a_file_exits_5(clip, tmp_path, capsys):
    target = _write(tmp_path / "file.txt", "keep me")
    rc, _, err = run(["--landmarks", clip[0], "--meta", clip[1], "--out", target], capsys)
    assert rc == 5 and target.read_text() == "keep me"


def test_interrupt_exits_130(clip, tmp_path, capsys, monkeypatch):
    import facemap.analysis as analysis

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(analysis, "analyze_logs", boom)
    rc, _, err = run(["--landmarks", clip[0], "--out", tmp_path / "o"], capsys)
    assert rc == 130 and "interrupted" in err


def test_runs_as_a_script(clip, tmp_path):
    out = tmp_path / "o"

    def script(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(REPO / "analyze_expressions.py"), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    proc = script("--landmarks", clip[0], "--meta", clip[1], "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("overall_score ")
    assert (out / "timeline.png").stat().st_size > 10_000
    bad = script("--landmarks", tmp_path / "no.csv", "--out", out)
    assert bad.returncode == 3 and "Traceback" not in bad.stderr and "no.csv" in bad.stderr


def test_raw_rows_with_non_finite_params_become_no_face(tmp_path, basis_dir, capsys):
    raw = tmp_path / "n_raw.csv"
    _raw_log(raw, 30)
    df = pd.read_csv(raw)
    df.loc[4, "p100"] = np.inf
    df.loc[5, "p7"] = np.nan
    df.to_csv(raw, index=False)
    out = tmp_path / "o"
    rc, _, err = run(
        ["--raw", raw, "--basis-dir", basis_dir, "--fps", 30, "--out", out, "--no-plots"], capsys
    )
    labels = pd.read_csv(out / "expressions.csv")["label"]
    assert rc == 0, err
    assert labels[[4, 5]].eq("no_face").all() and not labels.drop([4, 5]).eq("no_face").any()


def test_no_plots_rerun_removes_our_old_plot_only(tmp_path):
    """--no-plots after a run with plots: the stale timeline.png (ours) goes; a user's file stays."""
    lm, meta = synthetic_logs(tmp_path / "logs", n_frames=120, fps=30.0)
    out = tmp_path / "out"
    assert analyze_expressions.main(["--landmarks", str(lm), "--meta", str(meta), "--out", str(out), "-q"]) == 0
    assert (out / "timeline.png").exists()
    (out / "my_notes.txt").write_text("mine")
    assert analyze_expressions.main(
        ["--landmarks", str(lm), "--meta", str(meta), "--out", str(out), "-q", "--no-plots"]
    ) == 0
    assert not (out / "timeline.png").exists()
    assert (out / "my_notes.txt").read_text() == "mine"
    assert "timeline.png" not in (out / ".facemap-output").read_text()


def test_frames_without_a_found_face_are_not_scored(tmp_path):
    """infer.py runs the model on the frame's centre when no face is found (warn / no_bbox):
    the analyzer counts those frames as no face, not as expressions."""
    lm, meta = synthetic_logs(tmp_path / "logs", n_frames=120, fps=30.0, no_face=None)
    df = pd.read_csv(meta, dtype={"reason": str}, keep_default_na=False)
    df.loc[10:19, ["status", "reason"]] = ["warn", "no_bbox"]
    df.to_csv(meta, index=False)
    out = tmp_path / "out"
    assert analyze_expressions.main(["--landmarks", str(lm), "--meta", str(meta), "--out", str(out), "-q"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["frames_scored"] == 110
    assert report["class_distribution"]["no_face"] == 10


def test_a_mistyped_frame_number_is_refused_not_filled(clip, tmp_path, capsys):
    """A landmarks log whose last frame number is mistyped (900000000) and no --meta: refused in
    one line, instead of allocating gigabytes for the "gap"."""
    lm, _meta = clip
    lines = lm.read_text().splitlines()
    last = lines[-1].split(",")
    last[0] = "900000000"
    bad = tmp_path / "bad_landmarks.csv"
    bad.write_text("\n".join([*lines[:-1], ",".join(last)]) + "\n")
    rc, _, err = run(["--landmarks", bad, "--fps", 30, "--out", tmp_path / "o", "--no-plots"], capsys)
    assert rc == 3 and len(err.strip().splitlines()) == 1, err
    assert "frame numbers run from 1 to 900000000" in err and "pass --meta" in err
    assert not (tmp_path / "o").exists()
    # a real gap (a log with every other frame) is still filled
    half = tmp_path / "half_landmarks.csv"
    half.write_text("\n".join([lines[0], *lines[1::2]]) + "\n")
    rc, _, err = run(["--landmarks", half, "--fps", 30, "--out", tmp_path / "h", "--no-plots"], capsys)
    assert rc == 0, err


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ('{"smile_on": 0}', "smile_on must be above 0"),
        ('{"smile_on": ' + "9" * 400 + "}", "smile_on must be finite numbers >= 0"),
        # an inverted hysteresis band was taken as given (a smile "ends" above where it starts)
        ('{"smile_on": 0.1, "smile_off": 0.5}', "smile_off (0.5) must be at most smile_on (0.1)"),
    ],
)
def test_config_values_that_would_crash_are_one_line_errors(clip, tmp_path, capsys, config, needle):
    lm, meta = clip
    cfg = tmp_path / "cfg.json"
    cfg.write_text(config)
    rc, _, err = run(["--landmarks", lm, "--meta", meta, "--config", cfg, "--out", tmp_path / "o", "--no-plots"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert "Traceback" not in err


def test_an_infinite_timestamp_is_named(clip, tmp_path, capsys):
    lm, meta = clip
    lines = meta.read_text().splitlines()
    col = lines[0].split(",").index("timestamp_ms")
    row = lines[6].split(",")
    frame = row[0]
    row[col] = "inf"
    lines[6] = ",".join(row)
    bad = tmp_path / "meta.csv"
    bad.write_text("\n".join(lines) + "\n")
    rc, _, err = run(["--landmarks", lm, "--meta", bad, "--out", tmp_path / "o", "--no-plots"], capsys)
    assert rc == 3 and f"timestamp_ms is not a finite number at frame {frame}" in err, err
