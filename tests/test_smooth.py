"""facemap.track.smooth: the One Euro filter and the landmark smoother, on synthetic and real motion."""

from __future__ import annotations

import math

import numpy as np
import pytest

import facemap
from facemap.backends import HaarDetector
from facemap.cli.config import cli_message
from facemap.errors import UsageError
from facemap.track.smooth import (
    SMOOTH_PRESETS,
    LandmarkSmoother,
    OneEuroFilter,
    SmoothParams,
    smooth_params,
)
from facemap.types import BBox, Face, Pose, Status
from tests.conftest import need_shared
from tests.standins import DATA
from tests.video_fakes import RefLandmarker, ref_landmarks


def _result(lm, t_ms, pose=(0.0, 0.0, 0.0), frame=1):
    return Face(frame, t_ms, Status.OK, "", BBox.from_points(lm), lm, Pose(*pose))


def test_first_sample_passes_and_constant_stays():
    f = OneEuroFilter(SmoothParams(1.0, 0.0))
    x = np.array([1.0, -2.0, 3.5])
    np.testing.assert_array_equal(f(x, 0.0), x)
    for i in range(1, 20):
        np.testing.assert_allclose(f(x, i / 30), x)


def test_matches_the_scalar_reference_formula():
    """One step by hand (Casiez 2012): alpha = 1 / (1 + tau / dt), tau = 1 / (2 pi fc)."""
    p = SmoothParams(min_cutoff=1.0, beta=0.5, d_cutoff=1.0)
    f = OneEuroFilter(p)
    f(np.array([0.0]), 0.0)
    dt = 0.1
    x1 = 2.0
    a_d = 1 / (1 + 1 / (2 * math.pi * 1.0) / dt)
    dx_hat = a_d * (x1 - 0.0) / dt
    fc = 1.0 + 0.5 * abs(dx_hat)
    a = 1 / (1 + 1 / (2 * math.pi * fc) / dt)
    assert f(np.array([x1]), dt)[0] == pytest.approx(a * x1)


@pytest.mark.parametrize("fps", [15.0, 30.0, 60.0])
def test_reduces_jitter_on_a_still_target(fps):
    rng = np.random.default_rng(1)
    f = OneEuroFilter(SmoothParams(1.0, 0.0))
    x = rng.normal(0, 1.0, (int(fps * 4), 10))
    y = np.stack([f(v, i / fps) for i, v in enumerate(x)])
    raw = np.abs(np.diff(x, axis=0)).mean()
    smooth = np.abs(np.diff(y[10:], axis=0)).mean()
    assert smooth < raw / 4


def test_timestamp_driven_same_result_for_same_times():
    """Dropping frames (longer dt) gives the value the filter would reach with that dt, not the
    same as assuming a fixed rate: two runs on the same signal sampled unevenly agree."""
    p = SmoothParams(1.0, 0.0)
    ts = np.array([0, 0.03, 0.2, 0.23, 0.6, 0.62, 1.0])
    sig = np.sin(ts * 3)[:, None]
    a = OneEuroFilter(p)
    out_uneven = [a(v, t) for v, t in zip(sig, ts, strict=True)][-1]
    b = OneEuroFilter(p)
    out_fixed = [b(v, i / 30) for i, v in enumerate(sig)][-1]
    assert abs(out_uneven[0] - sig[-1, 0]) < abs(out_fixed[0] - sig[-1, 0])


def test_speed_raises_cutoff_less_lag():
    ts = np.arange(60) / 30
    ramp = (ts * 100.0)[:, None]  # fast linear motion
    lag = {}
    for beta in (0.0, 1.0):
        f = OneEuroFilter(SmoothParams(1.0, beta))
        y = np.stack([f(v, t) for v, t in zip(ramp, ts, strict=True)])
        lag[beta] = float(ramp[-1, 0] - y[-1, 0])
    assert 0 < lag[1.0] < lag[0.0] / 5


def test_non_finite_sample_restarts():
    f = OneEuroFilter(SmoothParams(1.0, 0.0))
    f(np.zeros(2), 0.0)
    bad = np.array([np.nan, 1.0])
    assert np.isnan(f(bad, 0.1)[0])
    np.testing.assert_array_equal(f(np.ones(2), 0.2), np.ones(2))


def test_presets_and_overrides():
    assert smooth_params("off") is None
    strength = [SMOOTH_PRESETS[k].min_cutoff for k in ("low", "medium", "high")]
    assert strength == sorted(strength, reverse=True)
    p = smooth_params("medium", min_cutoff=0.3, beta=0.0)
    assert (p.min_cutoff, p.beta) == (0.3, 0.0)
    with pytest.raises(UsageError, match="choose one of off, low, medium, high"):
        smooth_params("max")
    with pytest.raises(UsageError) as err:
        smooth_params("low", min_cutoff=0)
    assert "--smooth-mincutoff" in cli_message(err.value)
    with pytest.raises(UsageError, match="beta"):
        smooth_params("low", beta=-1)


def test_landmark_smoother_scale_free_and_pose():
    """Same relative jitter on a small and a 10x larger face: same relative smoothing."""
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, (68, 2))
    ratios = []
    for size in (50.0, 500.0):
        sm = LandmarkSmoother(SMOOTH_PRESETS["medium"])
        raw, out = [], []
        for i in range(90):
            lm = base * size + 100 + rng.normal(0, 0.01 * size, (68, 2))
            given = _result(lm, i * 1000 / 30, pose=(rng.normal(0, 2), 10 + rng.normal(0, 2), 0))
            r = sm(given)
            raw.append(lm)
            out.append(r.smoothed)
            assert r.smoothed_pose is not None and r.params.size == 0 and r.status is Status.OK
            # the landmarker's landmarks and pose are kept; the smoothed ones are beside them
            np.testing.assert_array_equal(r.landmarks, lm)
            assert r.pose == given.pose
            assert r.drawn is r.smoothed and r.drawn_pose is r.smoothed_pose
        d_raw = np.abs(np.diff(raw, axis=0)).mean()
        d_out = np.abs(np.diff(out[10:], axis=0)).mean()
        ratios.append(d_out / d_raw)
    assert ratios[0] == pytest.approx(ratios[1], rel=0.15)
    assert ratios[0] < 0.5


def test_landmark_smoother_passes_empty_results():
    sm = LandmarkSmoother(SMOOTH_PRESETS["medium"])
    empty = Face.empty(3, 100.0, "detector_failed")
    assert sm(empty) is empty


def _still_mask(lms: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Frames whose face centre moves < 1 % of the face width per frame for +-7 frames."""
    c = lms.mean(axis=1)
    speed = np.r_[0, np.linalg.norm(np.diff(c, axis=0), axis=1)] / widths
    return np.array([speed[max(0, i - 7) : i + 8].max() < 0.01 for i in range(len(speed))])


def test_lp_d19_still_stretches_half_the_motion_with_smoothing():
    """dlib's landmarks of lp_d19 (real detector jitter) through the full chain with the real
    Haar detector: on still stretches, smoothing halves the frame-to-frame motion of the drawn
    landmarks or better."""
    need_shared(DATA / "videos" / "lp_d19.mp4")
    refs = ref_landmarks("lp_d19")
    frames = sorted(refs)
    truth = np.stack([refs[f] for f in frames])
    widths = np.ptp(truth[:, :, 0], axis=1)
    still = _still_mask(truth, widths)
    assert still.sum() > 100
    motion = {}
    for level in ("off", "medium"):
        fm = facemap.open(RefLandmarker("lp_d19"), detector=HaarDetector(), smooth=level)
        out = {f.index: f.result.drawn for f in fm.process(DATA / "videos" / "lp_d19.mp4")}
        lms = np.stack([out[f] for f in frames])
        step = np.linalg.norm(np.diff(lms, axis=0), axis=2).mean(axis=1) / widths[1:]
        motion[level] = step[still[1:]].mean()
    assert motion["medium"] <= 0.5 * motion["off"], motion
