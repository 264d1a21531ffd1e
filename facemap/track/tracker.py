"""Video mode: follow one face from frame to frame.

``FaceTracker`` is the roi -> model stage. It runs the detector on the first frame, whenever
the face is lost, on a scene cut, and every ``redetect_every`` frames; in between the next box
is the previous frame's landmark box, expanded (as MediaPipe's face landmarker derives its next
ROI from the previous landmarks). A sanity check on each output (finite, landmark box close to
the ROI in size and position, pose in range) decides whether the face is still held; when it is
not, the same frame is detected again at once. Results carry reason ``detected`` or
``tracked``; a frame without a box is ``no_face`` / ``detector_failed`` (no landmarks, no
model run), or, only with ``fallback_center``, the model runs on the centre of the frame and
the result is ``warn`` / ``no_bbox``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..backends.base import Detector, Landmarker
from ..errors import UsageError
from ..types import BBox, Face, Status

log = logging.getLogger(__name__)

# Next ROI = previous landmark box scaled by this about its centre.
TRACK_EXPAND = 1.0
# The next ROI moves on by this fraction of the face's last frame-to-frame shift.
VELOCITY_GAIN = 0.5
# Sanity: landmark box side / ROI side in this range, centre within this fraction of the ROI.
SANE_SIZE_RATIO = (0.55, 1.35)
SANE_CENTRE_SHIFT = 0.35
# A face whose landmark box is smaller than this (pixels) is not held: too small to trust.
MIN_FACE_PX = 20.0
# Pose limits (degrees) beyond which the model's output is not trusted.
MAX_ABS_POSE_DEG = (75.0, 90.0, 80.0)
# Detections must overlap the held face this much to confirm it; they are searched for in a
# region this many times the held box's size around it.
CONFIRM_IOU = 0.3
CONFIRM_REGION = 2.5
CONFIRM_FACE_PX = 96
DEFAULT_REDETECT_EVERY = 30  # frames between re-detections while a face is held (0 = only when lost)
# A held face the detector has not confirmed at this many re-detections in a row is dropped.
MAX_UNCONFIRMED = 3
# After losing a face in a shot where the detector has seen several faces, only a detection near
# its last place is taken for this many frames; where it has seen one face, that face is taken at once.
REACQUIRE_GAP = 15
# A held face whose box has shrunk by more than this factor since the detector last saw it is
# checked against the detector at once: a landmark box that creeps smaller frame after frame (a
# model fitting a face a little inside its ROI, e.g. dlib with the eyes shut) would otherwise
# collapse onto part of the face while every frame passes the sanity check. (A box that grows
# past the face fails the periodic confirmation, or the sanity check, by itself.)
SIZE_DRIFT = 1.3
# A detection is the held face when it covers this share of the smaller of the two boxes.
CONTAIN_SHARE = 0.6
# Scene cut: mean absolute difference of 32x18 grey thumbnails above this (0..255).
CUT_THRESHOLD = 20.0


@dataclass(frozen=True)
class TrackOptions:
    """Tracking settings (see the module constants for the fixed thresholds)."""

    redetect_every: int = DEFAULT_REDETECT_EVERY
    # no face box: run the model on the centre of the frame anyway (a ``warn`` / ``no_bbox``
    # face that may be on no face at all); off, the frame is ``no_face`` with no landmarks
    fallback_center: bool = False
    expand: float = TRACK_EXPAND
    cut_threshold: float = CUT_THRESHOLD

    def __post_init__(self) -> None:
        if self.redetect_every < 0:
            raise UsageError(f"{{redetect_every}} must be >= 0 (0 = never), got {self.redetect_every}")
        if not 1.0 <= self.expand <= 2.0:
            raise UsageError(f"track expand must be in 1..2, got {self.expand}")


def roi_from_landmarks(landmarks: np.ndarray, expand: float = TRACK_EXPAND) -> BBox:
    """The square box on the long side of the box around (68, 2) landmarks, scaled by
    ``expand`` about its centre (square, as the detectors' boxes and MediaPipe's ROI: a
    model that under-reaches on one axis cannot shrink the box along it frame after frame)."""
    b = BBox.from_points(landmarks)
    cx, cy = b.center
    half = max(b.width, b.height) * expand / 2.0
    return BBox(cx - half + 0.5, cy - half + 0.5, cx + half - 0.5, cy + half - 0.5)


def sanity(
    result: Face,
    roi: BBox,
    expand: float = TRACK_EXPAND,
    image_hw: tuple[int, int] | None = None,
) -> str:
    """'' when ``result`` (from ``roi``) still holds a face, else why not. With ``image_hw``
    the face must also lie mostly inside the image and be no larger than it."""
    if result.status is Status.UNSTABLE or not result.has_face:
        return "non_finite_output"
    lm = result.landmarks
    if not np.isfinite(lm).all():
        return "non_finite_output"
    b = BBox.from_points(lm)
    if max(b.width, b.height) < MIN_FACE_PX:
        return "face_too_small"
    if image_hw is not None:
        h, w = image_hw
        cx, cy = b.center
        if not (0 <= cx < w and 0 <= cy < h) or max(b.width, b.height) > 1.5 * max(h, w):
            return "landmarks_off_image"
    side = np.sqrt(b.area / roi.area) * expand
    lo, hi = SANE_SIZE_RATIO
    if not lo <= side <= hi:
        return "landmarks_off_box"
    cx, cy = b.center
    rx, ry = roi.center
    if abs(cx - rx) > SANE_CENTRE_SHIFT * roi.width or abs(cy - ry) > SANE_CENTRE_SHIFT * roi.height:
        return "landmarks_off_box"
    if result.pose is not None:
        pose = np.abs(np.array(result.pose.as_tuple()))
        if not np.isfinite(pose).all() or (pose > np.array(MAX_ABS_POSE_DEG)).any():
            return "pose_out_of_range"
    return ""


def _thumb(image: np.ndarray) -> np.ndarray:
    """32x18 thumbnail of the green channel (cheap brightness), for scene-cut detection."""
    step = max(1, min(image.shape[:2]) // 90)
    small = image[::step, ::step, 1] if image.ndim == 3 else image[::step, ::step]
    return cv2.resize(np.ascontiguousarray(small), (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)


def _with_reason(result: Face, reason: str, ok_reason: str = "") -> Face:
    """Name how the box was found, unless the result says something else: what is wrong with
    it, or (an ok face) more than the landmarker's ``ok_reason``."""
    if not result.reason or (result.status is Status.OK and result.reason == ok_reason):
        return replace(result, reason=reason)
    return result


def _side(box: BBox) -> float:
    return max(box.width, box.height)


def _covers(a: BBox, b: BBox) -> float:
    """The share of the smaller of ``a`` and ``b`` that their intersection covers."""
    ix = min(a.x1, b.x1) - max(a.x0, b.x0) + 1.0
    iy = min(a.y1, b.y1) - max(a.y0, b.y0) + 1.0
    if ix <= 0 or iy <= 0:
        return 0.0
    return ix * iy / min(a.area, b.area)


def _near(a: BBox, b: BBox) -> bool:
    """True when box ``a`` can be the face last seen in box ``b``: similar size, centre within
    0.75 face widths."""
    ax, ay = a.center
    bx, by = b.center
    ratio = np.sqrt(a.area / b.area)
    return 0.6 <= ratio <= 1.7 and np.hypot(ax - bx, ay - by) < 0.75 * max(b.width, b.height)


class FaceTracker:
    """The roi -> model stage for one face in a video. Build once per video; call per frame."""

    def __init__(
        self, detector: Detector, landmarker: Landmarker, options: TrackOptions = TrackOptions()
    ) -> None:
        self.detector = detector
        self.landmarker = landmarker
        self._ok_reason = getattr(landmarker, "ok_reason", "")
        self.options = options
        self.reset()

    def reset(self) -> None:
        """Forget the face (next frame is detected afresh)."""
        self._roi: BBox | None = None  # next frame's ROI while a face is held
        self._last_box: BBox | None = None  # last good landmark box
        self._lost_at: int | None = None
        self._held = -1  # frame whose landmarks gave the current ROI
        self._since_detect = 0
        self._unconfirmed = 0
        self._det_side: float | None = None  # the face's size when the detector last saw it
        self._thumb: np.ndarray | None = None
        self._crowd = False  # the detector has seen several faces in this shot
        self._pending_segment = True  # the next face found starts a new segment
        self.new_segment = True  # True when the face was (re)acquired: smoothing/guards restart
        self.detections = 0
        self.cuts = 0
        self.last_detections: list[BBox] = []  # what the detector found in the last frame

    @property
    def roi(self) -> BBox | None:
        """The box the next frame will be cropped from (None: it will be detected)."""
        return self._roi

    def follow(self, pred: Face) -> None:
        """Derive the next ROI from ``pred`` (used when the caller prefers another result than
        the one ``__call__`` returned, e.g. the guard's reference instead of an outlier)."""
        if pred.has_face and np.isfinite(pred.landmarks).all():
            self._roi = roi_from_landmarks(pred.landmarks, self.options.expand)

    def __call__(self, image: np.ndarray, frame: int, timestamp_ms: float) -> Face:
        """Find or follow the face in this frame and run the landmarker on it."""
        self.new_segment = False
        self.last_detections: list[BBox] = []
        opts = self.options
        thumb = _thumb(image)
        if self._thumb is not None and float(np.abs(thumb - self._thumb).mean()) > opts.cut_threshold:
            log.debug("frame %d: scene cut", frame)
            self.cuts += 1
            self._roi = None
            self._last_box = None
            self._lost_at = None
            self._crowd = False
            self._pending_segment = True
        self._thumb = thumb

        if self._roi is not None:
            self._since_detect += 1
            if opts.redetect_every and self._since_detect >= opts.redetect_every:
                self._confirm(image, frame)
        if self._roi is not None and self._det_side and _side(self._roi) * SIZE_DRIFT < self._det_side:
            self._recheck(image, frame)
        if self._roi is not None:
            roi = self._roi
            result = self._landmark(image, roi, frame, timestamp_ms)
            why = sanity(result, roi, opts.expand, image.shape[:2])
            if not why:
                self._hold(result, tracked=True)
                return _with_reason(result, "tracked", self._ok_reason)
            log.debug("frame %d: face lost (%s)", frame, why)
            self._lose(frame)
        faces = self._detect(image, frame)
        if faces:
            roi = faces[0]
            result = self._landmark(image, roi, frame, timestamp_ms)
            # held (followed into the next frame) only when the landmarks fit the detector's box;
            # else the next frame is detected again (one model run a frame, not two)
            if not sanity(result, roi, 1.0, image.shape[:2]):
                self._hold(result, tracked=False)
                self._since_detect = 0
                self._unconfirmed = 0
                self._det_side = _side(roi)
            if self._pending_segment and result.has_face and np.isfinite(result.landmarks).all():
                self.new_segment = True  # the first face after a reset, a cut or a loss
                self._pending_segment = False
            return _with_reason(result, "detected", self._ok_reason)
        if not opts.fallback_center:
            return Face.empty(frame, timestamp_ms, reason="detector_failed")
        h, w = image.shape[:2]
        side = min(h, w) * 0.8
        box = BBox((w - side) / 2, (h - side) / 2, (w + side) / 2 - 1, (h + side) / 2 - 1)
        result = self._landmark(image, box, frame, timestamp_ms)
        status = Status.UNSTABLE if result.status is Status.UNSTABLE else Status.WARN
        return replace(result, status=status, reason="no_bbox")

    # -- internals
    def _landmark(self, image: np.ndarray, roi: BBox, frame: int, ts: float) -> Face:
        results = self.landmarker.landmark(image, [roi], frame, ts)
        return results[0] if results else Face.empty(frame, ts, reason="detector_failed")

    def _hold(self, result: Face, tracked: bool) -> None:
        box = BBox.from_points(result.landmarks)
        roi = roi_from_landmarks(result.landmarks, self.options.expand)
        if tracked and self._last_box is not None and self._held == result.frame - 1:
            # constant-velocity prediction, damped: the ROI leads a moving face
            (cx, cy), (px, py) = box.center, self._last_box.center
            dx, dy = VELOCITY_GAIN * (cx - px), VELOCITY_GAIN * (cy - py)
            roi = BBox(roi.x0 + dx, roi.y0 + dy, roi.x1 + dx, roi.y1 + dy)
        self._last_box = box
        self._roi = roi
        self._held = result.frame
        self._lost_at = None

    def _lose(self, frame: int) -> None:
        self._roi = None
        self._lost_at = frame
        self._pending_segment = True

    def _detect(self, image: np.ndarray, frame: int) -> list[BBox]:
        self.detections += 1
        faces = list(self.detector.detect(image))
        self.last_detections = faces
        if not faces:
            return []
        self._crowd = self._crowd or len(faces) > 1
        if self._last_box is not None and self._lost_at is not None:
            near = [f for f in faces if _near(f, self._last_box)]
            if near:
                return sorted(near, key=lambda f: -f.iou(self._last_box))
            if self._crowd and frame - self._lost_at < REACQUIRE_GAP:
                return []  # other faces are in this shot: do not jump to one of them at once
        return faces

    def _confirm(self, image: np.ndarray, frame: int) -> None:
        """Periodic re-detection while holding a face: confirm it, or drop it when the detector
        has not seen it for MAX_UNCONFIRMED re-detections in a row."""
        self._since_detect = 0
        self.detections += 1
        held = self._roi
        if held is None:
            return
        faces = self._detect_near(image, held)
        if any(f.iou(held) >= CONFIRM_IOU for f in faces):
            self._unconfirmed = 0
            self._det_side = _side(held)  # the detector sees the face at this size
            return
        self._unconfirmed += 1
        if self._unconfirmed >= MAX_UNCONFIRMED:
            log.debug("held face not confirmed by %d re-detections; dropped", self._unconfirmed)
            self._unconfirmed = 0
            self._lose(frame)  # in a crowded shot, a face elsewhere waits REACQUIRE_GAP frames


    def _recheck(self, image: np.ndarray, frame: int) -> None:
        """The held box has shrunk since the detector's last view of the face: ask the detector
        now. A detection over the held box, of about the size the detector last saw the face
        at, becomes the ROI. With none (a face the detector misses, or one that really moved
        away), the held box stays and its size is the new reference; as with the periodic
        re-detection, a face unconfirmed MAX_UNCONFIRMED times in a row is dropped."""
        held, seen = self._roi, self._det_side
        self._since_detect = 0
        self.detections += 1
        over = [
            f
            for f in self._detect_near(image, held)
            if _covers(f, held) >= CONTAIN_SHARE and 1.0 / SIZE_DRIFT <= _side(f) / seen <= SIZE_DRIFT
        ]
        if not over:
            self._det_side = _side(held)
            self._unconfirmed += 1
            if self._unconfirmed >= MAX_UNCONFIRMED:
                log.debug("frame %d: held box drifted in size, not confirmed; dropped", frame)
                self._unconfirmed = 0
                self._lose(frame)
            return
        best = max(over, key=lambda f: f.iou(held))
        log.debug("frame %d: held box drifted in size; the detector's box taken", frame)
        self._roi = best
        self._det_side = _side(best)
        self._last_box = None  # no velocity across the correction
        self._unconfirmed = 0

    def _detect_near(self, image: np.ndarray, box: BBox) -> list[BBox]:
        """Detect in the region around ``box`` only (CONFIRM_REGION x its size): confirming
        the held face costs a fraction of a full-frame detection."""
        h, w = image.shape[:2]
        cx, cy = box.center
        half = max(box.width, box.height) * CONFIRM_REGION / 2.0
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(w, int(cx + half) + 1), min(h, int(cy + half) + 1)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        region = image[y0:y1, x0:x1]
        # shrink so the held face is about CONFIRM_FACE_PX wide: the detector then searches
        # few scales (faces from about a third of the held size up)
        scale = min(1.0, CONFIRM_FACE_PX / max(1.0, box.width))
        if scale < 1.0:
            size = (max(8, round((x1 - x0) * scale)), max(8, round((y1 - y0) * scale)))
            region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        fx, fy = (x1 - x0) / region.shape[1], (y1 - y0) / region.shape[0]
        found = self.detector.detect(region)
        return [
            BBox(f.x0 * fx + x0, f.y0 * fy + y0, f.x1 * fx + x0, f.y1 * fy + y0) for f in found
        ]
