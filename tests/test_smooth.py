"""facemap.track.smooth: the One Euro filter and the landmark smoother, on synthetic and real motion."""

from __future__ import annotations

import math
from dataclasses import replace

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


# --------------------------------------------------------------- smoothing is for drawing only
# Issue 13: One Euro smoothing eats blinks and lip motion, so Face.landmarks / Face.pose (and
# every log) stay what the landmarker returned; the smoothed ones ride beside them for drawing.

FACES_AT = (BBox(60, 60, 219, 219), BBox(400, 80, 559, 239))  # where the planned faces are
_U = np.linspace(0.0, 2.0 * np.pi, 68, endpoint=False)
_SHAPE = np.stack([0.5 + 0.45 * np.cos(_U), 0.5 + 0.45 * np.sin(3 * _U) * np.cos(_U)], axis=1)


class _Still:
    """Finds the first ``n`` planned faces on every frame."""

    name = "still"

    def __init__(self, n: int) -> None:
        self.n = n

    def detect(self, image):
        return list(FACES_AT[: self.n])


class _Jittery:
    """A landmarker answering each box with the planned face it is on, plus 1.5 px / 2 degree
    noise that depends only on (frame, face): the same answers in every run. Keeps what it
    returned: (frame, which face) -> (landmarks, pose)."""

    name = "jittery"

    def __init__(self) -> None:
        self.returned: dict[tuple[int, int], tuple[np.ndarray, Pose]] = {}

    def landmark(self, image, faces, frame=1, timestamp_ms=0.0):
        out = []
        for roi in faces:
            k = max(range(len(FACES_AT)), key=lambda i: FACES_AT[i].iou(roi))
            at = FACES_AT[k]
            rng = np.random.default_rng(1000 * frame + k)
            lm = _SHAPE * [at.width, at.height] + [at.x0, at.y0] + rng.normal(0.0, 1.5, (68, 2))
            pose = Pose(*map(float, rng.normal(0.0, 2.0, 3)))
            self.returned[frame, k] = (lm, pose)
            out.append(Face(frame, timestamp_ms, Status.OK, "", roi, lm, pose))
        return out


def _which(face: Face) -> int:
    return int(face.box.center[0] > 320)


def _run(smooth: str, max_faces: int = 1, sinks=()) -> tuple[list, _Jittery]:
    """40 frames (30 fps) of a still scene with one or two faces, in video mode."""
    lmk = _Jittery()
    fm = facemap.open(lmk, detector=_Still(max(max_faces, 1) if max_faces else 2), smooth=smooth,
                      max_faces=max_faces)
    pictures = [np.full((320, 640, 3), 90, np.uint8) for _ in range(40)]
    return list(fm.process(pictures, mode=facemap.Mode.VIDEO, sinks=sinks)), lmk


@pytest.mark.parametrize("max_faces", [1, 0])
def test_face_landmarks_are_the_landmarkers_and_smoothed_ones_are_beside(max_faces):
    """The API: Face.landmarks / pose are exactly what the landmarker returned for that frame
    and face; Face.smoothed / smoothed_pose are the smoother's, calmer, and what is drawn."""
    frames, lmk = _run("high", max_faces)
    n_faces = 1 if max_faces == 1 else 2
    assert all(len(f.faces) == n_faces and all(x.status is Status.OK for x in f.faces) for f in frames)
    calm, jitter = [], []
    for frame in frames:
        for face in frame.faces:
            lm, pose = lmk.returned[frame.index, _which(face)]
            np.testing.assert_array_equal(face.landmarks, lm)
            assert face.pose == pose
            assert face.smoothed.shape == (68, 2) and face.smoothed_pose is not None
            assert face.drawn is face.smoothed and face.drawn_pose is face.smoothed_pose
            if frame.index > 1:  # the first frame passes through the filter
                assert not np.allclose(face.smoothed, face.landmarks)
    for k in range(n_faces):
        track = [next(x for x in f.faces if _which(x) == k) for f in frames]
        calm.append(np.abs(np.diff([x.smoothed for x in track[10:]], axis=0)).mean())
        jitter.append(np.abs(np.diff([x.landmarks for x in track[10:]], axis=0)).mean())
    assert all(c < 0.5 * j for c, j in zip(calm, jitter, strict=True)), (calm, jitter)
    # the smoother follows each face on its own: the smoothed points stay on their face
    for frame in frames:
        for face in frame.faces:
            assert np.abs(face.smoothed - face.landmarks).max() < 8.0


@pytest.mark.parametrize("max_faces", [1, 0])
def test_smoothing_off_leaves_nothing_beside_and_the_logs_equal_smoothing_on(tmp_path, max_faces):
    """--smooth high and --smooth off: the same per-frame logs byte for byte (the landmarker's
    landmarks and pose), but different overlays; the overlay draws the smoothed points."""
    from facemap.sinks import CsvLogSink

    runs = {}
    for level in ("high", "off"):
        sink = CsvLogSink(tmp_path / level, "clip", raw=True, landmarks=True)
        frames, _ = _run(level, max_faces, sinks=[sink])
        runs[level] = frames
    off_faces = [x for f in runs["off"] for x in f.faces]
    assert all(x.smoothed.shape == (0, 2) and x.smoothed_pose is None for x in off_faces)
    assert all(x.drawn is x.landmarks and x.drawn_pose is x.pose for x in off_faces)
    logs = sorted(p.name for p in (tmp_path / "off" / "logs").iterdir())
    assert "clip_landmarks.csv" in logs and "clip_meta.csv" in logs
    for name in logs:
        assert (tmp_path / "high" / "logs" / name).read_bytes() == (tmp_path / "off" / "logs" / name).read_bytes(), name
    style = facemap.DrawStyle(hud=True)
    differ = 0
    for high, off in zip(runs["high"], runs["off"], strict=True):
        drawn = facemap.annotate(high, style)
        differ += not np.array_equal(drawn, facemap.annotate(off, style))
        # what is drawn is today's overlay: the smoothed points and pose in the landmarks' place
        as_before = replace(high, faces=tuple(
            replace(x, landmarks=x.smoothed, pose=x.smoothed_pose, smoothed=None, smoothed_pose=None)
            for x in high.faces))
        np.testing.assert_array_equal(drawn, facemap.annotate(as_before, style))
    assert differ >= 35


def test_face_validates_the_smoothed_fields():
    lm = _SHAPE * 100
    face = Face(1, 0.0, Status.OK, "", None, lm, Pose(1, 2, 3), smoothed=lm + 1, smoothed_pose=Pose(0, 0, 0))
    assert not face.smoothed.flags.writeable and face.drawn is face.smoothed
    with pytest.raises(ValueError, match="smoothed must have the landmarks' shape"):
        Face(1, 0.0, Status.OK, "", None, lm, smoothed=lm[:10])
    with pytest.raises(ValueError, match="smoothed must have shape"):
        Face(1, 0.0, Status.OK, "", None, lm, smoothed=np.zeros((68, 3)))
    with pytest.raises(ValueError, match="smoothed_pose needs smoothed landmarks"):
        Face(1, 0.0, Status.OK, "", None, lm, smoothed_pose=Pose(0, 0, 0))
    assert Face(1, 0.0, Status.OK, "", None, lm).drawn is not None
