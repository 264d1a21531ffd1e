"""The online analyzer (facemap.analysis.online) against the offline one, and as a stage of the
chain: facemap.open(..., analyze=True), facemap.analyze(), infer.py --analyze (a fake camera).

The agreement tests replay dlib's reference logs of shared clips (../shared/data/ref) through
both analyzers with the current AnalysisConfig, so they hold whatever the label rules are
(bench/bench_online.py prints the same numbers for all 34 clips)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import facemap
from facemap.analysis import AnalysisConfig, analyze_logs
from facemap.analysis.labels import LABELS
from facemap.analysis.online import (
    MEASURES,
    OnlineAnalyzer,
    default_lag_ms,
    judge_still,
    settle_ms,
    window_ms,
)
from facemap.errors import UsageError
from facemap.io.records import read_landmarks, read_meta
from facemap.types import Event, Face, Status
from tests.conftest import need_shared
from tests.standins import DATA

REF = DATA / "ref"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

# Clips long enough for frames after the warm-up, with smiles, talking and blinks between them:
# each agrees on every label.
AGREE_CLIPS = ("lp_d19", "edtalk_mouth_source", "lp_s20")


@pytest.fixture(scope="module")
def replays():
    """Every shared clip with dlib logs (34) through both analyzers (bench_online.replay), once
    for the module (about 12 s)."""
    import bench_online

    need_shared(REF)
    return {stem: bench_online.replay(stem) for stem in bench_online.clips()}


@pytest.mark.parametrize("stem", AGREE_CLIPS)
def test_online_labels_agree_with_offline_after_the_warm_up(stem, replays):
    import bench_online

    r = replays[stem]
    judged = r.trusted & r.face
    assert judged.sum() >= 90  # frames after the warm-up to judge by
    agree = bench_online.agreement(r)
    low = {name: round(v, 3) for name, v in agree.items() if v < 0.9}
    assert not low, f"{stem}: labels under 90% agreement: {low}"
    # the warm-up is the first online_trust_ms of face time: before it, every face is provisional
    t = r.times_ms - r.times_ms[r.face][0]
    assert not r.trusted[t < AnalysisConfig().online_trust_ms - 100].any()


def test_online_labels_agree_with_offline_on_the_shared_clips(replays):
    """Every clip long enough to have frames after the warm-up (26 of the 34) agrees on every
    label on 90% of those frames (issue 22's bar; measured lowest 93.1%, lp_d13; dagan_driving's
    frowns were at 79.7% before the last step judged against the reference from every frame
    seen; docs/analysis.md)."""
    import bench_online

    assert len(replays) == 34
    lowest = {stem: min(bench_online.agreement(r).values()) for stem, r in replays.items() if (r.trusted & r.face).any()}
    assert len(lowest) == 26
    under = {stem: round(v, 3) for stem, v in lowest.items() if v < 0.9}
    assert not under, under


@pytest.mark.parametrize("stem", ["eamm_disgusted", "dagan_driving", "lp_d13", "styletalk_nice_clip1"])
def test_with_the_whole_clip_reference_the_online_mechanism_is_the_offline_analyzer(stem):
    """Given the offline reference face, the online analyzer (its window, lag, steps and event
    tracking) labels every face frame, warm-up included, as the offline one (talking, whose
    lip-motion window reaches furthest, on 97%) and finds the same events: what differs
    without it is the reference the first seconds give (the two clips that were under 90% after
    the warm-up, dagan_driving and eamm_disgusted, are among these)."""
    import bench_online

    need_shared(REF)
    r = bench_online.replay(stem, whole_clip_reference=True)
    agree = bench_online.agreement(r, r.face)
    assert min(agree.values()) >= 0.97, {k: round(v, 3) for k, v in agree.items() if v < 1}
    assert sum(v < 1.0 for v in agree.values()) <= 2, agree
    off = sorted(zip(r.offline_events["type"], r.offline_events["start_frame"], r.offline_events["end_frame"], strict=True))
    on = sorted((e.kind, e.start_frame, e.end_frame) for e in r.online_events)
    assert on == off


def test_online_events_match_offline_within_two_frames(replays):
    import bench_online

    found = np.sum([bench_online.event_match(r, 2) for r in replays.values()], axis=0)
    assert found[1] >= 40  # offline events after the warm-up, to match
    assert found[0] >= 0.9 * found[1], f"offline events found online: {found[0]}/{found[1]}"
    assert found[2] >= 0.9 * found[3], f"online events found offline: {found[2]}/{found[3]}"


def test_the_settings_reach_the_online_analyzer(replays):
    """No copied thresholds: a smile threshold nobody reaches silences both analyzers, and the
    windows and lags follow the settings."""
    import bench_online

    cfg = replace(AnalysisConfig(), smile_on=50.0, smile_off=45.0)
    r = bench_online.replay("lp_d19", cfg)
    assert not r.offline["smile"].any() and not r.online["smile"].any()
    assert replays["lp_d19"].offline["smile"].any() and replays["lp_d19"].online["smile"].any()
    longer = replace(AnalysisConfig(), yawn_min_ms=4000.0, talk_window_ms=1200.0)
    assert window_ms(longer) > window_ms(AnalysisConfig())
    assert default_lag_ms(longer) > default_lag_ms(AnalysisConfig())
    assert settle_ms(replace(AnalysisConfig(), smile_gap_ms=500.0))["smile"] > settle_ms(AnalysisConfig())["smile"]


def test_a_yawn_is_labelled_live_once_it_lasted_its_minimum_and_reported_whole(tmp_path):
    """The scripted yawn (12-15 s): live, its frames from yawn_min_ms - lag_ms (at most) after
    its start, none before; its event as the offline one. A run still short at the newest
    frame is not a yawn yet (lp_d3's 1.4 s opening is not one offline)."""
    from facemap.analysis.synth import synthetic_logs

    lm_path, meta_path = synthetic_logs(tmp_path, n_frames=900, fps=30.0)
    a = analyze_logs(lm_path, meta_path)[0]
    lm = read_landmarks(lm_path)
    points = dict(zip(lm.frames.tolist(), lm.landmarks, strict=True))
    analyzer = OnlineAnalyzer()
    out = []
    for f, t in zip(a.inputs.frames.tolist(), a.inputs.timestamp_ms.tolist(), strict=True):
        out += analyzer.update(f, t, (Face(f, t, Status.OK, "", None, points[f]),) if f in points else ())
    out += analyzer.finish()
    offline = a.inputs.frames[a.labelled.flags["yawn"].to_numpy() == 1]
    live = [v.frame for v in out if v.faces and "yawn" in v.faces[0].labels]
    assert len(offline) == offline[-1] - offline[0] + 1 >= 60  # one yawn, 2-3 s
    cfg = AnalysisConfig()
    late_frames = (cfg.yawn_min_ms - analyzer.lag_ms) * 30 / 1000
    assert live == list(range(live[0], offline[-1] + 1))
    assert offline[0] < live[0] <= offline[0] + late_frames
    events = [(e.start_frame, e.end_frame) for v in out for e in v.events if e.kind == "yawn"]
    assert events == list(a.events.loc[a.events["type"] == "yawn", ["start_frame", "end_frame"]].itertuples(index=False, name=None))


def _faces(stem: str, face_id: int = 0, shift: float = 0.0):
    lm, meta = read_landmarks(REF / f"{stem}_dlib_landmarks.csv"), read_meta(REF / f"{stem}_dlib_meta.csv")
    points = dict(zip(lm.frames.tolist(), lm.landmarks, strict=True))
    for f in meta.frames.tolist():
        t = (f - 1) * 40.0
        yield f, t, ((Face(f, t, Status.OK, "", None, points[f] + shift, id=face_id),) if f in points else ())


def test_every_frame_comes_out_once_in_order_with_its_events_at_or_after_their_end():
    need_shared(REF / "lp_d0_dlib_meta.csv")
    a = OnlineAnalyzer()
    out = []
    for f, t, faces in _faces("lp_d0"):
        got = a.update(f, t, faces)
        # decided at least lag_ms after it came, at most a step and a frame gap more
        assert all(v.frame <= f and a.lag_ms <= t - v.timestamp_ms < a.lag_ms + AnalysisConfig().online_step_ms + 40
                   for v in got)
        out += got
    out += a.finish()
    assert [v.frame for v in out] == list(range(1, 79))
    events = [(v.frame, e) for v in out for e in v.events]
    assert events and all(e.end_frame <= frame for frame, e in events)
    assert all(isinstance(e, Event) and e.face_id == 0 and e.start_frame <= e.end_frame for _, e in events)
    labelled = [v.faces[0] for v in out if v.faces]
    assert all(f.labels and set(f.labels) <= set(LABELS) for f in labelled)
    assert all(set(f.measures) <= set(MEASURES) for f in labelled)
    assert all(f.provisional for f in labelled)  # 3 s of face: never past the 5 s warm-up


@pytest.mark.parametrize("pause_ms", [7000.0, 60000.0, "every"])
def test_frames_before_a_pause_are_labelled(pause_ms):
    """A pause in the frames longer than the window (a camera that stalled, a notebook's
    breakpoint, a frame every 10 s): every face is still labelled, with every measure, and the
    grin still a smile (the frames before the pause came out with no labels: the window was
    taken back from the newest frame only)."""
    need_shared(REF / "lp_d0_dlib_meta.csv")
    frames = list(_faces("lp_d0"))
    if pause_ms == "every":  # a frame every 10 s
        frames = [(f, 10000.0 * i, faces) for i, (f, _, faces) in enumerate(frames[::4])]
    else:  # a pause after frame 55, in the grin
        frames = [(f, t + (pause_ms if f > 55 else 0.0), faces) for f, t, faces in frames]
    a = OnlineAnalyzer()
    out = [v for f, t, faces in frames for v in a.update(f, t, faces)] + a.finish()
    assert [v.frame for v in out] == [f for f, _, _ in frames]
    faces = [v.faces[0] for v in out if v.faces]
    assert len(faces) == len(out) and all(f.labels and len(f.measures) == len(MEASURES) for f in faces)
    if pause_ms != "every":
        assert "smile" in {lab for v in out if 45 <= v.frame <= 55 for lab in v.faces[0].labels}


@pytest.mark.parametrize("cut", range(45, 57))  # a step falls on one of any 10 frames in a row
def test_with_no_lag_the_run_open_at_the_end_is_still_reported(cut):
    """lag_ms=0 judges from the past only; the newest frame still waits for the next one, so
    the smile open when the frames end (lp_d0's grin, cut short) goes out with a frame, even
    when the last frame given completes a step."""
    need_shared(REF / "lp_d0_dlib_meta.csv")
    a = OnlineAnalyzer(lag_ms=0.0)
    out = []
    for f, t, faces in _faces("lp_d0"):
        if f > cut:
            break
        out += a.update(f, t, faces)
    last = a.finish()
    out += last
    assert [v.frame for v in out] == list(range(1, cut + 1)) and last
    assert "smile" in out[-1].faces[0].labels
    smiles = [(e.start_frame, e.end_frame) for v in out for e in v.events if e.kind == "smile"]
    assert smiles and smiles[-1][1] == cut


def test_two_faces_are_judged_apart():
    """The same face twice (ids 0 and 1, one shifted on the picture) gets the same labels, each
    from its own state; a face gone for good is forgotten after the window."""
    need_shared(REF / "lp_d0_dlib_meta.csv")
    a = OnlineAnalyzer()
    out = []
    for (f, t, one), (_, _, two) in zip(_faces("lp_d0"), _faces("lp_d0", 1, 300.0), strict=True):
        out += a.update(f, t, one + two)
    out += a.finish()
    labels = [(v.faces[0].labels, v.faces[1].labels) for v in out if len(v.faces) == 2]
    assert labels and all(x == y for x, y in labels)
    kinds = sorted((e.face_id, e.kind, e.start_frame, e.end_frame) for v in out for e in v.events)
    assert [k[1:] for k in kinds if k[0] == 0] == [k[1:] for k in kinds if k[0] == 1]
    b = OnlineAnalyzer()
    b.update(1, 0.0, next(_faces("lp_d0"))[2])
    b.update(2, window_ms(b.cfg) + 100.0, ())
    assert not b.faces


def test_a_picture_is_judged_as_the_offline_analyzer_judges_a_photo():
    stem = "fr_obama-720p"
    lm_path = need_shared(REF / f"{stem}_dlib_landmarks.csv")
    offline = analyze_logs(lm_path, REF / f"{stem}_dlib_meta.csv")[0]
    lm = read_landmarks(lm_path)
    face = judge_still([Face(1, 0.0, Status.OK, "", None, lm.landmarks[0])])[0]
    assert face.labels[0] == offline.labelled.label[0] == "smile"
    on = [n for n in LABELS if offline.labelled.flags[n].iloc[0]]
    assert sorted(face.labels) == sorted(on) and not face.provisional
    assert face.measures["smile"] > 1.0  # past the smile threshold


def test_facemap_analyze_judges_each_array_of_image_mode_as_a_photo(caplog):
    """facemap.analyze(arrays, mode="image"): each array a picture of its own (stem
    frames_<n>), judged against the typical face as each alone is; they were one clip with one
    baseline, and a smile among smiles was 'neutral'."""
    pytest.importorskip("dlib", reason="the dlib extra is not installed")
    import cv2

    photos = [need_shared(DATA / "images" / f"{n}.jpg") for n in ("fr_obama-720p", "dlib_dogs", "fr_obama-720p")]
    arrays = [cv2.imread(str(p)) for p in photos]
    with facemap.open("dlib", detector="dlib-hog") as fm:
        df = facemap.analyze(arrays, fm, mode="image")
        alone = [facemap.analyze(a, fm)["label"].tolist() for a in arrays]
    assert df["stem"].tolist() == ["frames_000001", "frames_000002", "frames_000003"]
    assert [[x] for x in df["label"]] == alone == [["smile"], ["no_face"], ["smile"]]
    assert df.attrs["scores"]["stem"].tolist() == ["frames_000001", "frames_000002", "frames_000003"]
    # the picture without a face: one warning naming it, none naming facemap's temp logs
    said = [r.getMessage() for r in caplog.records if r.levelno >= 30]
    assert "frames_000002: no face in any frame; every frame is no_face" in said
    assert not [m for m in said if "facemap-analyze-" in m], said


def test_a_reference_that_is_not_a_baseline_is_one_clear_line():
    with pytest.raises(UsageError, match="reference must be a facemap.analysis.Baseline"):
        OnlineAnalyzer(reference={"mar": 0.1})


@pytest.mark.parametrize("lag", [-1.0, float("nan"), 1e9])
def test_a_bad_lag_is_one_clear_line(lag):
    with pytest.raises(UsageError, match="lag_ms"):
        OnlineAnalyzer(lag_ms=lag)
    with pytest.raises(UsageError):
        facemap.open("dlib", analyze=True, analyze_lag_ms=lag)


def test_analyze_takes_true_false_or_a_config():
    with pytest.raises(UsageError, match="analyze"):
        facemap.open("dlib", analyze="yes")


# -- the chain, with dlib's real landmarks on talk.mp4 (lp_d0: neutral, a grin, neutral)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """infer.py then analyze_expressions.py on lp_d0 with dlib, as the README runs them."""
    pytest.importorskip("dlib", reason="the dlib extra is not installed")
    import analyze_expressions
    import infer

    clip = need_shared(DATA / "videos" / "lp_d0.mp4")
    out = tmp_path_factory.mktemp("cli")
    assert infer.main(["--video", str(clip), "--landmarker", "dlib", "--dump-landmarks-csv", "-o", str(out), "-q"]) == 0
    logs = out / "logs"
    assert analyze_expressions.main(["--landmarks", str(logs / "lp_d0_landmarks.csv"), "--meta",
                                     str(logs / "lp_d0_meta.csv"), "--out", str(out / "analysis"), "--no-plots"]) == 0
    return clip, out


def test_facemap_analyze_equals_the_two_scripts(cli_run):
    clip, out = cli_run
    df = facemap.analyze(clip, "dlib")
    expr = pd.read_csv(out / "analysis" / "expressions.csv")
    assert len(df) == len(expr) == 78 and (df["face_id"] == 0).all() and (df["stem"] == "lp_d0").all()
    np.testing.assert_array_equal(df["frame"], expr["frame"])
    np.testing.assert_array_equal(df["label"], expr["label"])
    for name in LABELS:
        assert df[name].dtype == bool
        np.testing.assert_array_equal(df[name], expr[name].astype(bool))
    np.testing.assert_allclose(df["score"], expr["score"])
    meta = pd.read_csv(out / "logs" / "lp_d0_meta.csv")
    np.testing.assert_allclose(df["box_x0"], meta["x0"])
    lm = pd.read_csv(out / "logs" / "lp_d0_landmarks.csv")
    np.testing.assert_allclose(df["lm_x30"], lm["x30"])
    assert {f"measure_{m}" for m in MEASURES} <= set(df.columns)
    assert (df.loc[df["smile"], "measure_smile"] > 0.9).all()
    report = json.loads((out / "analysis" / "report.json").read_text())
    ev = df.attrs["events"]
    assert len(ev) == len(report["events"]["list"])
    assert sorted(zip(ev["type"], ev["start_frame"], ev["end_frame"], strict=True)) == sorted(
        (e["type"], e["start_frame"], e["end_frame"]) for e in report["events"]["list"])
    assert df.attrs["scores"]["overall_score"].round(1).tolist() == [report["overall_score"]]
    # the scripts' files through load_logs: the same labels, of the same dtype
    logs = facemap.load_logs(out, "lp_d0", analysis=out / "analysis")
    for name in LABELS:
        assert logs[name].dtype == bool and (logs[name].to_numpy() == df[name].to_numpy()).all()


def test_open_analyze_labels_faces_and_gives_events_as_the_scripts(cli_run):
    clip, out = cli_run
    expr = pd.read_csv(out / "analysis" / "expressions.csv")
    report = json.loads((out / "analysis" / "report.json").read_text())
    frames, events = [], []
    with facemap.open("dlib", analyze=True) as fm:
        for frame in fm.process(clip):
            frames.append(frame)
            events += [(e.kind, e.start_frame, e.end_frame) for e in frame.events]
            assert all(e.end_frame <= frame.index for e in frame.events)
    assert [f.index for f in frames] == list(range(1, 79))
    # every measure on every frame (talking lacked its key on the first frame: a KeyError),
    # NaN only where it cannot be measured yet
    from facemap.analysis.online import MEASURES

    assert all(tuple(f.faces[0].measures) == MEASURES for f in frames)
    unknown = {k for f in frames for k, v in f.faces[0].measures.items() if not np.isfinite(v)}
    assert unknown == {"talking"} and np.isfinite(frames[1].faces[0].measures["talking"])
    dominant = np.array([f.faces[0].labels[0] for f in frames])
    assert np.mean(dominant == expr["label"].to_numpy()) >= 0.9
    offline = [(e["type"], e["start_frame"], e["end_frame"]) for e in report["events"]["list"]]
    close = [any(k == k2 and abs(s - s2) <= 2 and abs(e - e2) <= 2 for k2, s2, e2 in events) for k, s, e in offline]
    assert offline and all(close), (offline, events)
    with facemap.open("dlib", analyze=True) as fm:  # a picture: against the typical face
        face = next(fm.process(need_shared(DATA / "images" / "fr_obama-720p.jpg"))).faces[0]
    assert face.labels[0] == "smile" and not face.provisional


def test_a_break_leaves_logs_with_every_frame_given(tmp_path):
    """Frames wait for the analyzer's verdict; a break out of the loop still hands the waiting
    ones to the sinks, so the logs hold every frame read."""
    pytest.importorskip("dlib", reason="the dlib extra is not installed")
    from facemap.io.video import read_frames
    from facemap.sinks import CsvLogSink

    clip = need_shared(DATA / "videos" / "lp_d0.mp4")
    read = []

    def frames():
        for vf in read_frames(clip, max_frames=60):
            read.append(vf.index)
            yield vf.image

    with facemap.open("dlib", analyze=True) as fm:
        run = fm.process(frames(), sinks=[CsvLogSink(tmp_path, "clip")])
        seen = [next(run).index for _ in range(5)]
        run.close()
    meta = read_meta(tmp_path / "logs" / "clip_meta.csv")
    # those waiting when it stopped too: every frame read, once, in order
    assert seen == [1, 2, 3, 4, 5] and len(read) > 5
    assert meta.frames.tolist() == list(range(1, len(read) + 1))


def test_the_fake_camera_draws_labels_and_writes_the_analysis(tmp_path, monkeypatch, capsys):
    """infer.py --camera 0 --analyze with a capture that plays lp_d0: the overlay shows the
    label panel beside the face, and OUTPUT/analysis/camera0/ holds the analyzer's files."""
    pytest.importorskip("dlib", reason="the dlib extra is not installed")
    import cv2

    import infer
    from facemap.io.video import read_frames

    clip = need_shared(DATA / "videos" / "lp_d0.mp4")
    source = [f.image for f in read_frames(clip, max_frames=40)]

    class Capture:
        """Plays the clip at its 25 fps, as a webcam delivers frames."""

        def __init__(self, index):
            self.frames, self.last = list(source), 0.0

        def isOpened(self):  # noqa: N802 - OpenCV's name
            return True

        def read(self):
            time.sleep(max(0.0, self.last + 0.04 - time.monotonic()))
            self.last = time.monotonic()
            return (True, self.frames.pop(0)) if self.frames else (False, None)

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Capture)
    out = tmp_path / "o"
    assert infer.main(["--camera", "0", "--no-preview", "--analyze", "--save-video", "--landmarker", "dlib",
                       "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "camera0: overall_score" in said and f"analysis of camera0 in {out / 'analysis' / 'camera0'}/" in said
    for name in ("score.txt", "report.json", "expressions.csv", "timeline.png", "report.html"):
        assert (out / "analysis" / "camera0" / name).is_file()
    expr = pd.read_csv(out / "analysis" / "camera0" / "expressions.csv")
    assert len(expr) == 40 and (expr["smile"] == 1).any()
    # the label panel: yellow text (provisional: the first seconds) on a darkened patch beside the box
    monkeypatch.undo()
    drawn = [f.image for f in read_frames(out / "camera0_overlay.mp4")]
    assert len(drawn) == 40
    b, g, r = (np.stack(drawn)[..., i].astype(int) for i in range(3))
    yellow = (r > 190) & (g > 160) & (b < 110)
    b0, g0, r0 = (np.stack(source)[..., i].astype(int) for i in range(3))
    assert not ((r0 > 190) & (g0 > 160) & (b0 < 110)).any()  # none in the clip itself
    per_frame = yellow.reshape(len(drawn), -1).sum(axis=1)
    assert (per_frame > 20).mean() > 0.9
    meta = pd.read_csv(out / "logs" / "camera0_meta.csv")
    ys, xs = np.nonzero(yellow[20])
    assert xs.max() < meta["x0"].iloc[20] or xs.min() > meta["x1"].iloc[20]  # beside the box, not on the face


def test_infer_image_analyze_writes_the_verdict_into_the_json_and_refuses_ray(tmp_path, capsys):
    pytest.importorskip("dlib", reason="the dlib extra is not installed")
    import infer

    photo = need_shared(DATA / "images" / "fr_obama-720p.jpg")
    out = tmp_path / "o"
    assert infer.main(["--image", str(photo), "--landmarker", "dlib", "--analyze", "-o", str(out), "-q"]) == 0
    doc = json.loads((out / "fr_obama-720p.json").read_text())
    assert doc["labels"][0] == "smile" and doc["measures"]["smile"] > 1.0
    plain = tmp_path / "p"
    assert infer.main(["--image", str(photo), "--landmarker", "dlib", "-o", str(plain), "-q"]) == 0
    assert "labels" not in json.loads((plain / "fr_obama-720p.json").read_text())
    capsys.readouterr()
    clip = need_shared(DATA / "videos" / "lp_d0.mp4")
    assert infer.main(["--video", str(clip), "--landmarker", "dlib", "--analyze", "--ray", "-o", str(out)]) == 2
    assert "--analyze runs with --video or --camera" in capsys.readouterr().err


def test_video_preview_analyze_shows_the_labels(tmp_path, monkeypatch, capsys):
    """infer.py --video --preview --analyze: the window gets every frame with its label panel
    (cv2.imshow stands in for the screen); without a display, one line and exit 2."""
    pytest.importorskip("dlib", reason="the dlib extra is not installed")

    import infer
    from facemap import sinks

    clip = need_shared(DATA / "videos" / "lp_d0.mp4")
    shown = []
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(sinks.cv2, "imshow", lambda title, image: shown.append(image.copy()))
    monkeypatch.setattr(sinks.cv2, "waitKey", lambda ms: -1)
    monkeypatch.setattr(sinks.cv2, "destroyWindow", lambda title: None, raising=False)
    monkeypatch.setattr(sinks.cv2, "namedWindow", lambda *a, **k: None, raising=False)
    out = tmp_path / "o"
    assert infer.main(["--video", str(clip), "--landmarker", "dlib", "--preview", "--analyze", "--max-frames", "30",
                       "-o", str(out), "-q"]) == 0
    assert len(shown) == 30
    b, g, r = (np.stack(shown)[..., i].astype(int) for i in range(3))
    yellow = ((r > 190) & (g > 160) & (b < 110)).reshape(len(shown), -1).sum(axis=1)
    assert (yellow > 20).all()  # provisional labels (yellow) on every frame shown
    assert (out / "analysis" / "lp_d0" / "report.json").is_file()
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        capsys.readouterr()
        assert infer.main(["--video", str(clip), "--landmarker", "dlib", "--preview", "-o", str(tmp_path / "p")]) == 2
        assert "--preview: no display" in capsys.readouterr().err
        assert not (tmp_path / "p").exists()


def test_facemap_analyze_gives_the_3dmm_expression_coefficients(standin_model, basis_dir):
    """With FaceMap (the stand-in model) the table holds the raw parameters and exp0..exp38,
    the same coefficients a Face carries, and every frame is labelled."""
    clip = need_shared(DATA / "videos" / "lp_d19.mp4")
    opts = dict(model=str(standin_model), basis_dir=str(basis_dir), detector="haar")
    df = facemap.analyze(clip, "facemap", max_frames=8, **opts)
    with facemap.open("facemap", **opts) as fm:
        faces = [frame.result for frame in fm.process(clip, max_frames=8)]
    assert len(df) == 8 and {"p0", "p264", "exp0", "exp38", "label", "measure_smile"} <= set(df.columns)
    with_face = [i for i, f in enumerate(faces) if f.expression.size]
    assert with_face
    np.testing.assert_allclose(df[[f"exp{i}" for i in range(39)]].to_numpy()[with_face],
                               np.stack([faces[i].expression for i in with_face]), atol=1e-5)


def test_a_long_session_keeps_memory_and_work_per_frame_bounded(monkeypatch):
    """A long webcam session in miniature (a history of 1,500 frames, 5,400 frames of a scripted
    face): the history's arrays stop growing at 1,500 rows and a spare quarter, and hold the
    newest 1,500 frames; the frames
    waiting stay within the lag and a step; each step judges at most the window; the baseline
    refreshes read at most the history, and no more rows a frame at the end than at the start;
    and the last 30 s are labelled as the second 30 s were (the same script)."""
    import facemap.analysis.online as online
    from facemap.analysis.synth import faces_3d, project, scripted_expression

    fps, cycle = 30.0, 900  # the script repeats every 30 s
    expr = scripted_expression(cycle, fps)
    pose = np.stack([expr.pitch_deg, expr.yaw_deg, expr.roll_deg], -1)
    pts = project(faces_3d(expr), pose, 150.0, (330.0, 270.0))
    pts += np.random.default_rng(1).normal(0.0, 0.3, pts.shape)
    cfg = replace(AnalysisConfig(), baseline_max_frames=1500)
    judged_rows, base_rows = [], []
    label_frames, face_baseline = online.label_frames, online.face_baseline
    monkeypatch.setattr(online, "label_frames", lambda feats, *a, **k: judged_rows.append(len(feats)) or label_frames(feats, *a, **k))
    monkeypatch.setattr(online, "face_baseline", lambda feats, *a, **k: base_rows.append(len(feats)) or face_baseline(feats, *a, **k))
    a = OnlineAnalyzer(cfg)
    n = 6 * cycle
    waiting = (a.lag_ms + cfg.online_step_ms) * fps / 1000.0 + 2
    out, arrays, base_at = [], None, []
    for i in range(n):
        t = i * 1000.0 / fps
        out += a.update(i + 1, t, (Face(i + 1, t, Status.OK, "", None, pts[i % cycle]),))
        assert len(a.pending) <= waiting
        assert len(a.faces[0].hist) == min(i + 1, 1500)
        if i == n // 2:
            arrays = a.faces[0].hist.values
        base_at.append(len(base_rows))
    assert a.faces[0].hist.values is arrays and arrays.shape[0] == 1875  # the same arrays from halfway on
    assert a.faces[0].hist.frames[a.faces[0].hist.n - 1] == n  # the newest frame kept
    out += a.finish()
    assert [v.frame for v in out] == list(range(1, n + 1))
    assert not a.faces  # finish forgets
    assert max(judged_rows) <= window_ms(cfg) * fps / 1000.0 + 1
    assert max(base_rows) == 1500
    early = sum(base_rows[base_at[cycle] : base_at[2 * cycle]])
    late = sum(base_rows[base_at[-cycle - 1] : base_at[-1]])  # the frames, not finish()'s last refresh
    assert late <= early  # refreshes every online_rebase_share of the history: not more work later
    labels = [tuple(v.faces[0].labels) for v in out]
    second, last = labels[cycle : 2 * cycle], labels[-cycle:]
    assert sum(x == y for x, y in zip(second, last, strict=True)) >= 0.97 * cycle
    blinks = [(e.start_frame - 1) // cycle for v in out for e in v.events if e.kind == "blink"]
    assert blinks.count(1) == blinks.count(5) >= 7  # a blink every 4 s


def test_a_small_history_or_a_long_step_loses_no_frame_and_a_step_past_the_window_is_refused():
    """baseline_max_frames 10 left 289 of 299 frames unlabelled (the history dropped frames
    still to be decided); online_step_ms 6000 (past the window) lost frames the same way."""
    from facemap.analysis.synth import faces_3d, project, scripted_expression

    expr = scripted_expression(300, 30.0)
    pts = project(faces_3d(expr), np.stack([expr.pitch_deg, expr.yaw_deg, expr.roll_deg], -1), 150.0, (330.0, 270.0))
    for cfg in (replace(AnalysisConfig(), baseline_max_frames=10), AnalysisConfig()):
        a = OnlineAnalyzer(cfg)
        out = []
        for i in range(300):
            t = i * 1000.0 / 30.0
            out += a.update(i + 1, t, (Face(i + 1, t, Status.OK, "", None, pts[i]),))
        out += a.finish()
        assert [v.frame for v in out] == list(range(1, 301))
        assert all(v.faces[0].labels for v in out)
    with pytest.raises(UsageError, match="online_step_ms must be above 0 and at most 2900 ms"):
        OnlineAnalyzer(replace(AnalysisConfig(), online_step_ms=6000.0))


def test_the_last_step_judges_against_the_reference_from_every_frame_seen(monkeypatch):
    """The frames still waiting at finish() were judged against the last refresh's reference,
    up to online_rebase_ms of face time old (dagan_driving's frowns at its end: 79.7% agreement);
    the last step refreshes it from every frame seen, as the offline analyzer's whole clip."""
    import facemap.analysis.online as online
    from facemap.analysis.synth import faces_3d, project, scripted_expression

    expr = scripted_expression(250, 30.0)
    pts = project(faces_3d(expr), np.stack([expr.pitch_deg, expr.yaw_deg, expr.roll_deg], -1), 150.0, (330.0, 270.0))
    seen = []
    rebase = online.FaceState.rebase
    monkeypatch.setattr(online.FaceState, "rebase", lambda self: seen.append(self.hist.n) or rebase(self))
    a = OnlineAnalyzer(AnalysisConfig())
    for i in range(250):
        t = i * 1000.0 / 30.0
        a.update(i + 1, t, (Face(i + 1, t, Status.OK, "", None, pts[i]),))
    before = list(seen)
    a.finish()
    assert before[-1] < 250 and seen[-1] == 250  # the last refresh had every frame


def test_analyze_runs_the_live_analyzer_only_where_labels_are_shown():
    """--video X --analyze without an overlay or a window shows no live label: the analyzer's
    files come from the offline run at the end, so the frames are not analysed (and held) twice."""
    from facemap.cli.build import chain_options
    from facemap.cli.config import InferConfig

    def live(**flags) -> bool:
        return chain_options(InferConfig(analyze=True, **flags)).analyze is not None

    assert not live(video=["x.mp4"])
    assert not live(camera=0, no_preview=True)
    assert live(video=["x.mp4"], save_video=True) and live(video=["x.mp4"], preview=True)
    assert live(camera=0) and live(image=["a.jpg"])


def test_the_frames_waiting_for_a_verdict_keep_to_the_hold_budget(monkeypatch):
    """A frame's image waits in the chain until its verdict: about 0.9 s of frames at the
    default lag, 1.3 GB of a 4K video at 60 fps. ``size_hold`` caps them (here 6 frames): the
    oldest are then decided early, every frame still comes out once and in order, labelled;
    without the cap up to 23 wait. Through the chain, ``pipeline.HOLD_BYTES`` sets it."""
    need_shared(REF / "lp_d0_dlib_meta.csv")
    steps = {}
    for cap in (None, 6):
        a = OnlineAnalyzer()
        if cap:
            a.size_hold(1000, 6 * 1000 + 999)
        judge, calls = a._judge, []
        monkeypatch.setattr(a, "_judge", lambda state, oldest, judge=judge, calls=calls: calls.append(1) or judge(state, oldest))
        out, most = [], 0
        for f, t, faces in _faces("lp_d0"):
            out += a.update(f, t, faces)
            most = max(most, f - len(out))
        out += a.finish()
        assert [v.frame for v in out] == list(range(1, 79))
        assert all(v.faces[0].labels for v in out if v.faces)
        assert most == (cap or 23), most
        steps[cap] = len(calls)
    # over the cap, frames are decided down to half of it at once: a step's work for 3 frames
    assert steps[None] == 6 and steps[6] <= 26, steps  # one a frame past the cap was 73
    import facemap.pipeline as pipeline
    from facemap.io.video import read_frames
    from facemap.types import Mode
    from tests.video_fakes import lag_behind_reading

    frame_bytes = next(iter(read_frames(DATA / "videos" / "lp_d0.mp4", max_frames=1))).image.nbytes
    monkeypatch.setattr(pipeline, "HOLD_BYTES", int(4.5 * frame_bytes))
    with facemap.open("dlib", detector="dlib-hog", analyze=True) as fm:
        lag = lag_behind_reading(lambda frames: fm.pipeline.run(frames, Mode.VIDEO), "lp_d0.mp4", 40)
    assert len(lag) == 40 and max(lag) == 4 and lag[-1] == 0  # 4 frames wait, behind the one given


@pytest.mark.parametrize(("x0", "x1", "side"), [(40, 180, "right"), (330, 470, "left"), (140, 372, "right"), (98, 496, "left")])
def test_the_label_panel_stands_beside_the_box_with_one_label_a_line(x0, x1, side):
    """Labels one a line keep the panel narrow, beside the box on the side with room (right
    first); where neither side has room at the box's text size (a 232-pixel box in a 512-pixel
    frame: 134 on each side), the panel is drawn smaller beside it. A live run under load once
    drew 'smile talking ~' on one line from x 8 to 180, over the face of a box at 139-374.
    98-496: 92 pixels on its left, where only the smallest text fits (shrunk step by step)."""
    from facemap.draw import draw_overlay
    from facemap.types import BBox, Face, Status

    image = np.full((360, 512, 3), 120, np.uint8)
    measures = {"smile": 1.4, "mouth_open": 0.3, "eyes_closed": 0.1, "brow_raise": 0.2, "brow_lower": 0.0}
    face = Face(frame=1, status=Status.OK, box=BBox(x0, 60.0, x1, 300.0), labels=("smile", "talking", "mouth_open"),
                measures=measures, provisional=True)
    drawn = draw_overlay(image, face).astype(int)
    b, g, r = drawn[..., 0], drawn[..., 1], drawn[..., 2]
    ys, xs = np.nonzero((r > 190) & (g > 160) & (b < 110))  # the labels' yellow
    assert len(xs) > 50
    assert xs.min() > x1 if side == "right" else xs.max() < x0
    panel = drawn.sum(axis=2) < 3 * 120 * 0.35 + 3  # darkened to 35 %
    on_box = panel[:, int(x0) : int(x1) + 1]
    assert not on_box.any()


def test_the_label_panel_on_4k_is_as_tall_on_screen_as_on_1080p():
    """The same face on a 1080p and a 4K picture (the 4K one twice the size): the panel's text
    is twice as tall on 4K, so it reads the same on a screen (capped at the 1080p size, it was
    half as tall there: a few pixels once scaled down to a screen)."""
    from facemap.draw import draw_overlay
    from facemap.types import BBox, Face, Status

    heights = []
    for k in (1, 2):
        image = np.full((1080 * k, 1920 * k, 3), 120, np.uint8)
        face = Face(frame=1, status=Status.OK, box=BBox(600.0 * k, 300.0 * k, 1100.0 * k, 800.0 * k),
                    labels=("smile",), measures={"smile": 1.4}, provisional=True)
        drawn = draw_overlay(image, face).astype(int)
        ys, _ = np.nonzero((drawn[..., 2] > 190) & (drawn[..., 1] > 160) & (drawn[..., 0] < 110))
        heights.append(ys.max() - ys.min())
    assert heights[1] == pytest.approx(2 * heights[0], rel=0.15), heights


def test_a_measure_not_known_draws_an_empty_bar():
    """A Face built by hand may carry NaN in ``measures``: its bar is drawn empty, no error."""
    from facemap.draw import draw_overlay
    from facemap.types import BBox, Face, Status

    face = Face(frame=1, status=Status.OK, box=BBox(40.0, 60.0, 180.0, 300.0), labels=("smile",),
                measures={"smile": float("nan"), "mouth_open": 0.5})
    drawn = draw_overlay(np.full((360, 512, 3), 120, np.uint8), face)
    assert drawn.shape == (360, 512, 3) and (drawn[:, 185:] != 120).any()


def test_two_faces_label_panels_do_not_cover_each_other_or_the_other_face():
    """Side by side (two 256-pixel tiles), each face's panel beside its box used to be placed
    without the other face: face 0's to its right and face 1's to its left, both in the gap
    between them, one over the other and unreadable. Each panel now ends before the other
    face's box and the panels drawn before it (double-darkened pixels: none)."""
    from facemap.draw import annotate
    from facemap.types import BBox, Face, Frame, Status

    image = np.full((256, 512, 3), 120, np.uint8)
    m = {"smile": 1.4, "mouth_open": 0.3, "eyes_closed": 0.1, "talking": 0.5, "brow_raise": 0.2, "looking_away": 0.0}
    faces = (Face(frame=1, status=Status.OK, box=BBox(65.0, 95.0, 195.0, 218.0), labels=("talking",), measures=m, id=0),
             Face(frame=1, status=Status.OK, box=BBox(320.0, 97.0, 445.0, 215.0), labels=("eyes_closed",), measures=m, id=1))
    drawn = annotate(Frame(index=1, timestamp_ms=0.0, image=image, faces=faces)).astype(int)
    dark = drawn.max(axis=2) <= int(120 * 0.35) + 1  # a panel's background
    assert dark[:, 196:320].any()  # face 0's panel, in the gap
    assert not (drawn.max(axis=2) < 25).any()  # no pixel darkened twice: the panels do not overlap
    assert not dark[97:216, 320:330].any()  # nor does face 0's cover face 1's box's left side


@pytest.mark.parametrize(("a", "b", "room"), [((100, 100, 160, 160), (170, 165, 300, 295), True),
                                              ((400, 150, 460, 210), (520, 80, 580, 140), False)])
def test_a_small_face_s_panel_taller_than_its_box_keeps_clear_of_the_face_below(a, b, room):
    """A face under about 74 pixels has a panel taller than its box, even at the smallest text:
    the faces level with the panel's rows (not only the box's) are kept clear of. Found by a
    review: face 0's panel drew 578 pixels into face 1's box below it. Where no side has room
    (face 1 of the second case: the picture's edge on its right, face 0 and its panel on its
    left), the panel goes on the wider side over its own box's edge, and may touch another
    panel; never into another face's box."""
    from facemap.draw import annotate
    from facemap.types import BBox, Face, Frame, Status

    image = np.full((360, 640, 3), 120, np.uint8)
    m = {"smile": 1.4, "mouth_open": 0.3, "eyes_closed": 0.1, "talking": 0.5, "brow_raise": 0.2, "looking_away": 0.0}
    faces = tuple(Face(frame=1, status=Status.OK, box=BBox(*map(float, r)), labels=("talking",), measures=m, id=i)
                  for i, r in enumerate((a, b)))
    drawn = annotate(Frame(index=1, timestamp_ms=0.0, image=image, faces=faces)).astype(int)
    dark = drawn.max(axis=2) <= int(120 * 0.35) + 1
    assert dark.sum() > 2000  # both panels
    for x0, y0, x1, y1 in (a, b) if room else (a,):  # no panel inside another face's box
        assert not dark[y0 + 3 : y1 - 2, x0 + 3 : x1 - 2].any()
    if room:
        assert not (drawn.max(axis=2) < 25).any()  # no pixel darkened twice
