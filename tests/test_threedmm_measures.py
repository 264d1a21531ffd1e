"""Named expression measures on the real FaceMap basis (../shared/data/basis) and, through a fit
of dlib's points, against MediaPipe on shared clips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facemap.assets import load_basis
from facemap.io.records import read_landmarks, read_meta
from facemap.threedmm.decode import Decoder
from facemap.threedmm.fit import Fitter
from facemap.threedmm.measures import MEASURES, UNVALIDATED, Measurer, measures
from facemap.types import N_ID, N_PARAMS
from tests.conftest import need_shared
from tests.standins import DATA


@pytest.fixture(scope="module")
def basis():
    return load_basis(need_shared(DATA / "basis"))


def _params(coeffs: dict[int, float]) -> np.ndarray:
    """One frame of raw params: mean identity, frontal, expression coefficients ``coeffs`` (0 elsewhere)."""
    p = np.zeros((1, N_PARAMS))
    p[0, N_ID : N_ID + 39] = -1.0  # coefficient 0 = raw -1
    for k, c in coeffs.items():
        p[0, N_ID + k] = 2.0 * c - 1.0
    return p


def test_the_basis_mean_face_measures_zero(basis):
    m = measures(_params({}), basis, MEASURES + UNVALIDATED)
    assert set(m) == set(MEASURES + UNVALIDATED)
    for name, v in m.items():
        assert v.shape == (1,) and abs(v[0]) < 1e-9, name


@pytest.mark.parametrize(
    ("component", "up", "still"),
    [
        # measured on the real basis: 37 closes the subject's left eye, 38 the right one
        (37, "eye_closure_left", ["eye_closure_right", "jaw_open", "smile"]),
        (38, "eye_closure_right", ["eye_closure_left", "jaw_open", "smile"]),
        (25, "jaw_open", ["eye_closure_left", "eye_closure_right"]),
        (13, "jaw_open", ["eye_closure_left", "eye_closure_right"]),
        (2, "smile", ["eye_closure_left", "eye_closure_right"]),
        (3, "smile", ["eye_closure_left", "eye_closure_right"]),
        (29, "brow_raise", ["jaw_open", "smile"]),
    ],
)
def test_each_component_moves_its_measure(basis, component, up, still):
    m = measures(_params({component: 1.0}), basis, MEASURES + UNVALIDATED)
    assert m[up][0] > 0.35
    for name in still:
        assert abs(m[name][0]) < 0.05, name


def test_both_eye_components_close_both_eyes_and_units_are_their_full_strength(basis):
    m = measures(_params({37: 1.0, 38: 1.0, 25: 1.0}), basis)
    assert m["eye_closure_left"][0] == pytest.approx(1.0, abs=1e-4)
    assert m["eye_closure_right"][0] == pytest.approx(1.0, abs=1e-4)
    assert m["jaw_open"][0] == pytest.approx(1.0, abs=1e-4)
    half = measures(_params({37: 0.5, 38: 0.5}), basis)
    assert 0.3 < half["eye_closure_left"][0] < 0.7


def test_measures_ignore_head_pose_and_accept_decoded(basis):
    p = np.repeat(_params({2: 0.6, 3: 0.6, 25: 0.3, 38: 0.4}), 3, axis=0)
    p[1, 258:261] = [0.2, -0.3, 0.1]  # pitch, yaw, roll
    p[2, 261:264] = [0.5, -0.5, 0.9]  # translation, focal
    meas = Measurer(basis)
    m = meas(p)
    for name in MEASURES:
        assert np.ptp(m[name]) < 1e-9
    from_decoded = meas(Decoder(basis).decode(p))
    for name in MEASURES:
        np.testing.assert_allclose(from_decoded[name], m[name])
    nan = meas(np.full((2, N_PARAMS), np.nan))
    assert all(np.isnan(v).all() for v in nan.values())
    with pytest.raises(ValueError, match="unknown measure"):
        meas(p, ("pucker",))


# Per-clip Pearson r of each measure against MediaPipe's blendshape of the same meaning, on fits
# of dlib's points (every 2nd frame), floors a little under the values measured (lp_d3: 0.82 0.98
# 0.90 0.84; lp_d14: 0.87 0.94 0.85 0.86; latentsync_demo2_video: 0.87 0.45 0.73 0.81).
MP = {
    "smile": ["mouthSmileLeft", "mouthSmileRight"],
    "jaw_open": ["jawOpen"],
    "eye_closure_left": ["eyeBlinkLeft"],
    "eye_closure_right": ["eyeBlinkRight"],
}


@pytest.mark.parametrize(
    ("clip", "floors"),
    [
        ("lp_d3", {"smile": 0.75, "jaw_open": 0.9, "eye_closure_left": 0.8, "eye_closure_right": 0.75}),
        ("lp_d14", {"smile": 0.8, "jaw_open": 0.85, "eye_closure_left": 0.75, "eye_closure_right": 0.75}),
        ("latentsync_demo2_video", {"smile": 0.8, "jaw_open": 0.35, "eye_closure_left": 0.65, "eye_closure_right": 0.7}),
    ],
)
def test_measures_follow_mediapipe_on_shared_clips(basis, clip, floors):
    ref = need_shared(DATA / "ref")
    lm = read_landmarks(ref / f"{clip}_dlib_landmarks.csv", strict=True)
    mt = read_meta(ref / f"{clip}_dlib_meta.csv", strict=True)
    boxes = mt.boxes[np.searchsorted(mt.frames, lm.frames)]
    fit = Fitter(basis).fit(lm.landmarks, boxes)
    m = measures(fit.params, basis)
    mp = pd.read_csv(ref / f"{clip}_mediapipe_blendshapes.csv").set_index("frame").reindex(lm.frames)
    for name, cols in MP.items():
        y = mp[cols].mean(axis=1).to_numpy()
        ok = np.isfinite(y) & np.isfinite(m[name])
        r = np.corrcoef(m[name][ok], y[ok])[0, 1]
        assert r >= floors[name], (name, round(float(r), 3))
