"""The learned label models (facemap/analysis/learned.py, label_models.json)."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from facemap.analysis import AnalysisConfig
from facemap.analysis.baseline import Baseline
from facemap.analysis.features import FEATURE_COLUMNS
from facemap.analysis.labels import judge, label_frames, mouth_open_level
from facemap.analysis.learned import MODELS_FILE, LabelModel, label_models
from facemap.errors import ModelError


def _one(**values: float) -> dict[str, np.ndarray]:
    return {k: np.array([v]) for k, v in values.items()}


def test_the_shipped_mouth_model_is_the_configured_one():
    m = label_models()["mouth_open"]
    assert m.features == ("mar_d", "jaw_d", "mar", "width_d", "lift_d", "mar_d*jaw_d")
    assert m.threshold == AnalysisConfig().mouth_open_p == 0.3
    assert m.mean.shape == m.scale.shape == m.weights.shape == (6,)
    assert not m.weights.flags.writeable


def test_probability_is_the_logistic_of_the_standardised_sum_in_the_file():
    """An independent evaluation from the JSON numbers, on a real open mouth of lp_d12
    (dlib: MAR 0.31 above a closed 0.03, jaw 0.11 IOD down, frame 21)."""
    doc = json.loads(resources.files("facemap.analysis").joinpath(MODELS_FILE).read_text())
    (entry,) = [e for e in doc["models"] if e["label"] == "mouth_open"]
    x = {"mar_d": 0.275, "jaw_d": 0.108, "mar": 0.305, "width_d": -0.01, "lift_d": 0.02}
    x["mar_d*jaw_d"] = x["mar_d"] * x["jaw_d"]
    z = entry["bias"] + sum(
        w * (x[f] - mu) / sd
        for f, w, mu, sd in zip(
            entry["features"], entry["weights"], entry["mean"], entry["scale"], strict=True
        )
    )
    got = label_models()["mouth_open"].probability(
        _one(**{k: v for k, v in x.items() if "*" not in k})
    )
    assert got[0] == pytest.approx(1.0 / (1.0 + np.exp(-z)), rel=1e-12)


@pytest.mark.parametrize(
    ("values", "low", "high"),
    [
        # a closed mouth at its reference
        (dict(mar=0.03, mar_d=0.0, jaw_d=0.0, width_d=0.0, lift_d=0.0), 0.0, 0.02),
        # the old rule's corner (lips 0.3 apart, jaw 0.02 down): at the model's threshold
        (dict(mar=0.33, mar_d=0.3, jaw_d=0.02, width_d=0.0, lift_d=0.0), 0.25, 0.35),
        # a wide-open mouth (a shout)
        (dict(mar=0.45, mar_d=0.4, jaw_d=0.1, width_d=0.0, lift_d=0.0), 0.7, 0.85),
        # a grin: lips parted 0.2, mouth widened 0.2 IOD, corners up, jaw still: not open
        (dict(mar=0.25, mar_d=0.2, jaw_d=0.0, width_d=0.2, lift_d=0.05), 0.0, 0.03),
        # the same lips apart without the grin, the jaw dropping: more open than the grin
        (dict(mar=0.25, mar_d=0.2, jaw_d=0.05, width_d=0.0, lift_d=0.0), 0.08, 0.2),
    ],
)
def test_mouth_probability_on_typical_faces(values, low, high):
    p = label_models()["mouth_open"].probability(_one(**values))[0]
    assert low <= p <= high


def test_no_face_gives_nan():
    p = label_models()["mouth_open"].probability(
        _one(mar=np.nan, mar_d=np.nan, jaw_d=np.nan, width_d=np.nan, lift_d=np.nan)
    )
    assert np.isnan(p[0])


def test_a_malformed_model_is_refused():
    with pytest.raises(ModelError, match="weights must be 2 finite numbers"):
        LabelModel("mouth_open", ("mar", "mar_d"), np.zeros(2), np.ones(2), np.zeros(3), 0.0, 0.3)
    with pytest.raises(ModelError, match="scale must be above 0"):
        LabelModel("mouth_open", ("mar",), np.zeros(1), np.zeros(1), np.ones(1), 0.0, 0.3)


def _frames(mar: np.ndarray, jaw: np.ndarray) -> tuple[pd.DataFrame, Baseline]:
    n = len(mar)
    f = pd.DataFrame({c: np.zeros(n) for c in FEATURE_COLUMNS})
    f["ear"] = f["ear_left"] = f["ear_right"] = 0.3
    f["mouth_width"], f["brow_raise"], f["mar"], f["jaw_open"] = 0.55, 0.24, mar, jaw
    median = {c: float(f[c].iloc[0]) for c in FEATURE_COLUMNS} | {"ear_open": 0.3}
    median.update(mar=0.03, jaw_open=0.78)
    return f, Baseline(median, {c: 0.001 for c in FEATURE_COLUMNS}, n, "test")


def test_the_analyzer_opens_the_mouth_by_the_model_on_landmarks_only():
    """Half a second of an opening that the rule misses (lips 0.29 apart, jaw 0.10 down; the
    rule wants 0.3) and the model takes (its probability 0.37 > 0.3); the 3DMM path
    (no foreshortening undone: raw params) keeps the rule."""
    n = 30
    mar = np.full(n, 0.03)
    jaw = np.full(n, 0.78)
    mar[10:25], jaw[10:25] = 0.32, 0.88
    f, base = _frames(mar, jaw)
    t = np.arange(n) * 1000.0 / 30.0
    dur = np.full(n, 1000.0 / 30.0)
    face = np.ones(n, bool)
    cfg = AnalysisConfig()
    j = judge(f, face, t, dur, base, cfg, undo_foreshortening=True)
    level = mouth_open_level(j)
    assert level[15] == pytest.approx(
        label_models()["mouth_open"].probability(
            _one(mar=0.32, mar_d=0.29, jaw_d=0.10, width_d=0.0, lift_d=0.0)
        )[0]
        / 0.3,
        rel=1e-9,
    )
    assert 0.36 < level[15] * 0.3 < 0.38
    learned = label_frames(f, face, t, dur, base, cfg, undo_foreshortening=True).flags["mouth_open"]
    rule = label_frames(
        f, face, t, dur, base, replace(cfg, learned_mouth=0), undo_foreshortening=True
    )
    raw = label_frames(f, face, t, dur, base, cfg, undo_foreshortening=False)
    assert learned.iloc[13:22].all() and not learned.iloc[:8].any() and not learned.iloc[27:].any()
    assert not rule.flags["mouth_open"].any() and not raw.flags["mouth_open"].any()
    # the report's effective thresholds say which decided
    assert j.th["mouth_open_p"] == 0.3
    assert "mouth_open_p" not in rule.thresholds and "mouth_open_p" not in raw.thresholds
    # moving the threshold moves the label: at 0.5 the same opening is not open
    high = label_frames(
        f, face, t, dur, base, replace(cfg, mouth_open_p=0.5), undo_foreshortening=True
    )
    assert not high.flags["mouth_open"].any()


def test_unreadable_label_models_are_one_line_not_a_traceback(monkeypatch):
    from facemap.analysis import learned
    from facemap.errors import ModelError

    monkeypatch.setattr(learned, "MODELS_FILE", "no_such_models.json")
    learned.label_models.cache_clear()
    try:
        with pytest.raises(ModelError, match="no_such_models.json: facemap's label models cannot be read .*reinstall"):
            learned.label_models()
    finally:
        learned.label_models.cache_clear()
