"""Talking, winks, eyes closed by the absolute EAR, and photos judged against a typical face."""

from __future__ import annotations

import numpy as np
import pytest

from facemap.analysis import AnalysisConfig, Inputs, analyze
from facemap.analysis.features import landmark_features
from facemap.analysis.report import report_dict
from facemap.analysis.synth import Expression, faces_3d, project

FPS = 30.0


def _inputs(n: int = 300, **amounts: np.ndarray) -> Inputs:
    """A frontal synthetic face (small jitter) with per-frame ``Expression`` amounts."""
    rng = np.random.default_rng(3)
    zero = np.zeros(n)
    get = {k: amounts.get(k, zero) for k in ("smile", "mouth_open", "eyes_closed", "brow_raise")}
    expr = Expression(**get, pitch_deg=rng.normal(0, 0.3, n), yaw_deg=zero, roll_deg=zero)
    feats = landmark_features(project(faces_3d(expr), np.zeros((n, 3)), 100.0, (300, 300)))
    frames = np.arange(1, n + 1)
    return Inputs(frames, (frames - 1) * 1000.0 / FPS, np.ones(n, bool), feats, "landmarks")


def _runs(mask: np.ndarray) -> int:
    m = np.asarray(mask, dtype=int)
    return int(np.sum(np.diff(np.concatenate([[0], m])) == 1))


def test_syllable_rate_lip_motion_is_talking_and_a_held_open_mouth_is_not():
    n = 300  # 10 s: quiet 0-3 s, talking 3-7 s (5 Hz, a half-open mouth), quiet again
    t = np.arange(n) / FPS
    speech = (t >= 3) & (t < 7)
    talk = np.where(speech, 0.2 * (1 + np.sin(2 * np.pi * 5 * t)), 0.0)
    res = analyze(_inputs(n, mouth_open=talk))
    got = res.labelled.flags["talking"].to_numpy().astype(bool)
    assert _runs(got) == 1
    on = np.flatnonzero(got)
    assert abs(on[0] / FPS - 3.0) < 0.4 and abs((on[-1] + 1) / FPS - 7.0) < 0.4
    assert res.event_summary["talking"]["count"] == 1
    rep = report_dict(res)
    assert rep["speaking"]["time_s"] == pytest.approx(4.0, abs=0.6)
    assert rep["speaking"]["share_of_face_time"] == pytest.approx(0.4, abs=0.06)
    # a yawn-like slow opening held 2 s: an open mouth, no talking
    held = np.clip(np.where((t >= 4) & (t < 6), 1.0, 0.0), 0, 1)
    held = np.convolve(held, np.ones(9) / 9, mode="same")
    res = analyze(_inputs(n, mouth_open=held))
    assert res.labelled.flags["mouth_open"].to_numpy().sum() >= 45
    assert res.labelled.flags["talking"].to_numpy().sum() == 0


def test_a_wink_is_a_wink_not_a_blink():
    n = 300
    inp = _inputs(n)
    feats = inp.features.copy()
    blink, wink = slice(60, 66), slice(180, 190)  # 200 ms blink, 333 ms wink of the left eye
    feats.loc[feats.index[blink], ["ear_left", "ear_right", "ear"]] *= 0.2
    feats.loc[feats.index[wink], "ear_left"] *= 0.2
    feats["ear"] = (feats["ear_left"] + feats["ear_right"]) / 2
    res = analyze(Inputs(inp.frames, inp.timestamp_ms, inp.face, feats, "landmarks"))
    ev = res.event_summary
    assert ev["blink"]["count"] == 1 and ev["wink"]["count"] == 1
    row = res.events.set_index("type")
    assert row.loc["wink", "start_frame"] == 181 and row.loc["blink", "start_frame"] == 61
    # the wink halves the two eyes' mean EAR, yet it is no brief dip: its frames read wink
    assert set(res.labelled.label[wink]) == {"wink"}
    assert res.labelled.flags["eyes_closed"].to_numpy()[wink].sum() == 0


def test_narrow_eyes_are_not_closed_but_a_closure_of_them_is():
    """The absolute EAR limit alone would call a person with narrow eyes (EAR 0.16, below the
    0.17 limit) closed all clip long; the guard against their own open level does not."""
    n = 300
    inp = _inputs(n)
    feats = inp.features.copy()
    for col in ("ear_left", "ear_right", "ear"):
        feats[col] *= 0.16 / float(feats["ear"].median())
    feats.loc[feats.index[100:106], ["ear_left", "ear_right", "ear"]] *= 0.3
    res = analyze(Inputs(inp.frames, inp.timestamp_ms, inp.face, feats, "landmarks"))
    closed = res.labelled.flags["eyes_closed"].to_numpy().astype(bool)
    assert np.flatnonzero(closed).tolist() == list(range(100, 106))
    assert res.event_summary["blink"]["count"] == 1


@pytest.mark.parametrize(("smile", "label"), [(0.0, "neutral"), (1.0, "smile")])
def test_a_single_photo_is_judged_against_a_typical_neutral_face(smile, label):
    """One picture has no neutral frames of its own: a broad smile is a smile, a neutral face
    neutral (before, every photo came out neutral)."""
    inp = _inputs(1, smile=np.array([smile]))
    res = analyze(inp)
    assert res.baseline.against_typical and res.baseline.method.startswith("typical neutral")
    assert res.labelled.label.tolist() == [label]


def test_a_clip_long_enough_keeps_its_own_baseline():
    res = analyze(_inputs(90))  # 3 s
    assert not res.baseline.against_typical and res.baseline.method == "low_activity"
    short = analyze(_inputs(45))  # 1.5 s < min_baseline_ms
    assert short.baseline.against_typical
    assert (
        analyze(_inputs(45), AnalysisConfig(min_baseline_ms=1000)).baseline.method == "low_activity"
    )


def test_a_droop_that_grazes_the_closed_limit_is_not_a_blink():
    """Lids lowered to just under the closed EAR for 200 ms (a droop, a slow look down) on eyes
    open at EAR 0.25: eyes closed frames, but not a blink; a full closure of the same length is
    one. (On eyes open at 0.33 the same droop halves the EAR: a brief dip, and so a blink, as
    test_a_blink_that_never_reaches_the_closed_limit_is_a_brief_dip shows.)"""
    n = 300
    eyes = np.zeros(n)
    eyes[60:66] = 0.37  # EAR 0.25 -> 0.165, just under eyes_closed_ear 0.17 (0.66 of the open level)
    eyes[200:206] = 1.0  # lids meet
    inp = _inputs(n, eyes_closed=eyes)
    feats = inp.features.copy()
    feats[["ear_left", "ear_right", "ear"]] *= 0.25 / float(feats["ear"].median())
    inp = Inputs(inp.frames, inp.timestamp_ms, inp.face, feats, "landmarks")
    assert feats["ear"].iloc[60:66].between(0.16, 0.17).all()
    res = analyze(inp)
    closed = res.labelled.flags["eyes_closed"].to_numpy().astype(bool)
    blink = res.labelled.flags["blink"].to_numpy().astype(bool)
    assert closed[60:66].all() and closed[200:206].all()
    assert not blink[55:70].any()
    assert blink[200:206].all()
    assert res.event_summary["blink"]["count"] == 1
    # a brief droop is no more inattention than a blink: attention stays 100
    assert res.scores.attention == pytest.approx(100.0)
    # judged by depth: with no depth rule both closures are blinks
    both = analyze(inp, AnalysisConfig(blink_depth=9.0))
    assert both.event_summary["blink"]["count"] == 2


def _with_ear(inp: Inputs, ear: np.ndarray) -> Inputs:
    feats = inp.features.copy()
    feats["ear_left"] = feats["ear_right"] = feats["ear"] = ear
    return Inputs(inp.frames, inp.timestamp_ms, inp.face, feats, "landmarks")


def test_a_blink_that_never_reaches_the_closed_limit_is_a_brief_dip():
    """A webcam's small eyes (open EAR 0.34): dlib's lids stop at EAR 0.18 on a blink, above the
    closed limit 0.17 but 0.53 of the eyes' level around it: a 100 ms dip is closed and a blink.
    The same EAR held 2 s (a squint) is not (it lowers the level around it), nor is the dip with
    eyes_dip_ratio 0, nor a dip under 0.6 of its level but above 1.18 x the closed limit."""
    n = 300
    rng = np.random.default_rng(5)
    ear = 0.34 + rng.normal(0, 0.004, n)
    ear[100:103] = 0.18
    ear[200:260] = 0.18  # 2 s
    inp = _with_ear(_inputs(n), ear)
    res = analyze(inp)
    closed = res.labelled.flags["eyes_closed"].to_numpy().astype(bool)
    assert np.flatnonzero(closed).tolist() == [100, 101, 102]
    assert res.event_summary["blink"]["count"] == 1 and res.labelled.label[101] == "blink"
    level = res.labelled.signals["eye_level"].to_numpy()
    assert level[101] == pytest.approx(max(0.18 / (1.18 * 0.17), 0.18 / 0.34 / 0.6), rel=0.02)
    off = analyze(inp, AnalysisConfig(eyes_dip_ratio=0))
    assert off.labelled.flags["eyes_closed"].to_numpy().sum() == 0 and off.event_summary["blink"]["count"] == 0
    wide = ear.copy()
    wide[:] = 0.40 + rng.normal(0, 0.004, n)
    wide[100:103] = 0.21  # 0.53 of its level, above 1.18 x 0.17 = 0.2006
    assert analyze(_with_ear(_inputs(n), wide)).labelled.flags["eyes_closed"].to_numpy().sum() == 0


def test_a_dip_longer_than_a_blink_is_not_one():
    """A closure past blink_max_ms (500 ms) that stays above the closed limit is judged by the
    closed limit alone: not closed."""
    n = 300
    ear = np.full(n, 0.34)
    ear[100:118] = 0.19  # 600 ms
    res = analyze(_with_ear(_inputs(n), ear))
    assert res.labelled.flags["eyes_closed"].to_numpy().sum() == 0
