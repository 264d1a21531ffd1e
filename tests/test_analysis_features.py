"""Features: EAR/MAR geometry, 2D pose fit, scale invariance, and the pose-free 3DMM path."""

from __future__ import annotations

import numpy as np
import pytest

from facemap.analysis.features import (
    SHAPE_FEATURES,
    canonical_features,
    estimate_pose_2d,
    eye_aspect_ratio,
    landmark_features,
)
from facemap.analysis.synth import Expression, faces_3d, project
from facemap.threedmm.decode import Basis, Decoder
from tests.conftest import need_shared
from tests.standins import GOLDEN, synthetic_basis_arrays


def _expr(n: int, **kw: float) -> Expression:
    vals = {k: np.full(n, kw.get(k, 0.0)) for k in Expression.__dataclass_fields__}
    return Expression(**vals)


def test_eye_aspect_ratio_of_a_known_eye():
    # p1..p6 of an eye 0.3 wide with lids 0.05 above and below: EAR = (0.1 + 0.1) / (2 * 0.3)
    eye = np.array([[[0, 0], [0.1, -0.05], [0.2, -0.05], [0.3, 0], [0.2, 0.05], [0.1, 0.05]]])
    assert eye_aspect_ratio(eye)[0] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("kw", "feature", "direction"),
    [
        ({"smile": 1.0}, "mouth_width", 1),
        ({"smile": 1.0}, "lip_corner_lift", 1),
        ({"mouth_open": 1.0}, "mar", 1),
        ({"mouth_open": 1.0}, "jaw_open", 1),
        ({"eyes_closed": 1.0}, "ear", -1),
        ({"brow_raise": 1.0}, "brow_raise", 1),
    ],
)
def test_each_expression_moves_its_feature(kw, feature, direction):
    pose = np.zeros((1, 3))
    neutral = landmark_features(project(faces_3d(_expr(1)), pose, 100.0, (300, 300)))
    moved = landmark_features(project(faces_3d(_expr(1, **kw)), pose, 100.0, (300, 300)))
    assert direction * (moved[feature][0] - neutral[feature][0]) > 0.04


@pytest.mark.parametrize("pose", [(0, 0, 0), (20, 0, 0), (0, 30, 0), (0, 0, 15), (10, -20, 5)])
def test_pose_fit_recovers_yaw_and_roll_of_a_face(pose):
    p = np.array([pose], dtype=float)
    est = estimate_pose_2d(project(faces_3d(_expr(1)), p, 100.0, (300, 300)))[0]
    frontal = estimate_pose_2d(project(faces_3d(_expr(1)), np.zeros((1, 3)), 100.0, (300, 300)))[0]
    # the generic face is not this face: compare changes from frontal, to a few degrees
    np.testing.assert_allclose(est - frontal, pose, atol=8.0)


def test_landmark_features_do_not_depend_on_face_size_or_position():
    expr = _expr(3, smile=0.5, mouth_open=0.3)
    pose = np.array([[5.0, 10.0, 8.0]] * 3)
    small = landmark_features(project(faces_3d(expr), pose, 60.0, (100, 100)))
    big = landmark_features(project(faces_3d(expr), pose, 240.0, (900, 500)))
    np.testing.assert_allclose(small.to_numpy(), big.to_numpy(), rtol=1e-9, atol=1e-9)


def test_pose_free_features_stay_constant_while_2d_features_drift():
    """Golden basis, fixed expression, pitch/yaw/roll each swept over +-40 degrees."""
    decoder = Decoder(Basis(*synthetic_basis_arrays()))
    rng = np.random.default_rng(3)
    params = np.zeros(265)
    params[:219] = rng.uniform(-0.3, 0.3, 219)
    params[219:258] = rng.uniform(-0.5, 0.5, 39)
    sweep = np.repeat(params[None], 3 * 41, axis=0)
    angles = np.linspace(-40.0, 40.0, 41)
    for k in range(3):
        sweep[k * 41 : (k + 1) * 41, 258 + k] = angles / 90.0
    dec = decoder.decode(sweep)
    pose_free = canonical_features(dec.vertices_canonical, dec.pose_deg)
    from_2d = landmark_features(dec.landmarks_model)

    # each feature's natural range: the same face with random expressions
    expr = np.repeat(params[None], 60, axis=0)
    expr[:, 219:258] = rng.uniform(-1.0, 1.0, (60, 39))
    dec_e = decoder.decode(expr)
    ranges = canonical_features(dec_e.vertices_canonical, dec_e.pose_deg)[SHAPE_FEATURES].apply(
        np.ptp
    )

    drift_free = pose_free[SHAPE_FEATURES].apply(np.ptp) / ranges
    drift_2d = from_2d[SHAPE_FEATURES].apply(np.ptp) / ranges
    assert (drift_free <= 0.01).all(), drift_free.to_dict()
    assert (drift_2d > 0.05).all(), drift_2d.to_dict()
    # pose comes from the params
    np.testing.assert_allclose(pose_free["pitch_deg"][:41], angles, atol=1e-9)
    np.testing.assert_allclose(pose_free["yaw_deg"][41:82], angles, atol=1e-9)
    np.testing.assert_allclose(pose_free["roll_deg"][82:], angles, atol=1e-9)


def test_2d_pose_has_the_sign_convention_of_the_params():
    need_shared(GOLDEN)  # a face-shaped mean face (the random stand-in basis has none to turn)
    decoder = Decoder(Basis(*synthetic_basis_arrays()))
    p = np.zeros((4, 265))
    p[1, 258], p[2, 259], p[3, 260] = 20 / 90, 20 / 90, 20 / 90  # pitch, yaw, roll +20
    est = estimate_pose_2d(decoder.decode(p).landmarks_model)
    change = est[1:] - est[0]
    assert np.sign(change[0, 0]) == 1 and np.sign(change[1, 1]) == 1 and np.sign(change[2, 2]) == 1
    np.testing.assert_allclose(np.diag(change), 20.0, atol=6.0)


def _face_with_depth(n: int) -> np.ndarray:
    """(N, 68, 3) neutral faces whose brows sit in front of the eyes and whose lip corners sit
    behind the lip centre, by the depths that AnalysisConfig's pitch slopes measure on real faces (the
    template itself is flat there, so its brows would not move with pitch)."""
    from facemap.analysis.config import AnalysisConfig
    from facemap.analysis.synth import TEMPLATE

    cfg = AnalysisConfig()

    iod = float(np.linalg.norm(TEMPLATE[45] - TEMPLATE[36]))
    f = faces_3d(_expr(n))
    f[:, 17:27, 2] -= cfg.brow_pitch_slope * iod  # z grows away from the camera
    f[:, [48, 54, 60, 64], 2] += cfg.lip_corner_pitch_slope * iod
    return f


def test_a_pitch_sweep_at_a_fixed_neutral_face_does_not_read_as_a_frown(monkeypatch):
    """Pitch swept to -20 and +20 degrees and back at a fixed neutral face (as the pose-free test
    sweeps the 3DMM): the depth of brows and lip corners moves them on the picture, and the brow
    and frown tests undo it with the estimated pitch change. Without the correction, the same
    sweep reads as a frown."""
    from facemap.analysis import AnalysisConfig, Inputs, analyze

    fps, n = 30.0, 600  # 20 s: level 0-6 s, down to -20 (7-10 s), level, up to +20 (15-18 s)
    t = np.arange(n) / fps
    ramp = np.interp(t, [0, 6, 7, 10, 11, 14, 15, 18, 19, 20], [0, 0, -20, -20, 0, 0, 20, 20, 0, 0])
    rng = np.random.default_rng(5)
    pose = np.stack([ramp + rng.normal(0, 0.2, n), np.zeros(n), np.zeros(n)], axis=1)
    feats = landmark_features(project(_face_with_depth(n), pose, 100.0, (300, 300)))
    # the brows really do move on the picture: 2D brow height drifts with pitch
    assert np.ptp(feats["brow_raise"]) > 0.03
    frames = np.arange(1, n + 1)
    inputs = Inputs(frames, (frames - 1) * 1000.0 / fps, np.ones(n, bool), feats, "landmarks")
    res = analyze(inputs)
    flags = res.labelled.flags
    tipped = np.abs(ramp) >= 15
    assert not flags["frown"].to_numpy().any()
    brow_left = np.abs(res.labelled.signals["brow_delta"].to_numpy()[tipped]).max()
    assert brow_left < 0.013
    raw = analyze(inputs, AnalysisConfig(brow_pitch_slope=0.0, lip_corner_pitch_slope=0.0)).labelled
    assert np.abs(raw.signals["brow_delta"].to_numpy()[tipped]).max() > 1.5 * brow_left
    uncorrected = raw.flags["frown"].to_numpy().astype(bool)
    # tipped one way, the lip corners (behind the lip centre) drop below the lip line on the
    # picture: a frown through that whole hold
    assert uncorrected[ramp >= 15].mean() > 0.9
