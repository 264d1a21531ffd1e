"""Video mode: follow the faces of a video from frame to frame, each with an id that persists.

``FaceTracker`` is the roi -> model -> guard -> smoother stage for up to ``max_faces`` faces (1:
one face; 0: every face). It holds a list of ``Track``s, one per followed face, each with its
next box, its jump guard and its smoother. Between detections a face's next box is its
previous landmark box, squared and expanded (as MediaPipe's face landmarker derives its next
ROI from the previous landmarks; a landmarker with its own ``next_roi``, dlib, places that box
itself), moved by the face's own motion into the new frame: its rigid points followed by
optical flow (or, where flow cannot follow them, led by half the face's last shift when it was
followed on the frame before); a sanity
check on each output
(finite, landmark box close to the ROI in size and position, pose in range) decides whether the
face is still held. A scene cut ends every face. The crops of all faces of a frame go through
the landmarker as one batch. Smoothed points ride beside the landmarker's (``Face.smoothed``).
Faces carry reason ``detected`` or ``tracked``.

How detections are scheduled and matched to faces is the tracker's policy, set by ``max_faces``:

- one face (``max_faces=1``): the detector runs on the first frame and whenever the face is
  lost; every ``redetect_every`` frames, and when the followed box has shrunk since the
  detector last saw the face, it looks only around the held face to confirm it (a face not
  confirmed ``max_unconfirmed`` times in a row is dropped). After a loss, a detection near
  the face's last place is preferred; in a shot where the detector has seen several faces,
  one elsewhere is taken only after ``reacquire_gap`` frames (no jumping to a bystander).
  Each (re)acquired face gets a new id. Without a box, ``fallback_center`` runs the model on
  the centre of the frame (a ``warn`` / ``no_bbox`` face).
- several faces: the detector runs on the whole frame every ``redetect_every`` frames (where
  new faces join), whenever a followed face no longer fits its box, and on every frame while a
  face lost in the last ``reid_ms`` may come back; each detection goes to the face it continues
  (``assign.match``), the ``max_faces`` largest first. A face found again near where it was
  lost, at a similar size, within ``reid_ms``, gets its id back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import cv2
import numpy as np

from ..backends.base import Detector, Landmarker
from ..errors import UsageError, number
from ..types import BBox, Face, Status
from .assign import match
from .guard import GuardOptions, JumpGuard
from .smooth import LandmarkSmoother, SmoothOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackOptions:
    """Tracking settings, every one that changes a result."""

    # frames between re-detections while a face is held (0 = only when lost)
    redetect_every: int = 30
    # one face: while no face is followed, the whole frame is searched every this many frames
    # (1: every frame; more saves a slow detector's time where no face is, and finds a face
    # coming back up to that many frames late; the frames between are no_face, not_searched)
    lost_detect_every: int = 1
    # no face box: run the model on the centre of the frame anyway (a ``warn`` / ``no_bbox``
    # face that may be on no face at all); off, the frame is ``no_face`` with no landmarks
    fallback_center: bool = False
    # next ROI = previous landmark box scaled by this about its centre
    expand: float = 1.0
    # scene cut: mean absolute difference of 32x18 grey thumbnails above this (0..255); when a
    # face followed on the frame before has its surroundings (flow_lead's view of it) changed
    # by no more than this, only part of the frame changed (a video call's tile gone dark or
    # showing someone else, a screen behind): those faces go on, the others end (new ids)
    cut_threshold: float = 20.0
    # the next ROI moves on by this fraction of the face's last frame-to-frame shift
    velocity_gain: float = 0.5
    # the next ROI moves with the face: its rigid points (brows, nose, eye corners) followed
    # from the frame before into this one by optical flow (pyramidal Lucas-Kanade on the face
    # and flow_margin of its side around it, scaled so the face is flow_face_px wide), the
    # median of their shifts; where too few points are followed (a blank, covered or cut-off
    # face), velocity_gain's lead instead (when the face was followed on the frame before)
    flow_lead: bool = True
    flow_face_px: int = 96
    flow_margin: float = 0.25
    # sanity: landmark box side / ROI side in this range, centre within this fraction of the ROI,
    # at least this many pixels, pose (pitch, yaw, roll) within these degrees, no larger than
    # off_image_size times the image
    sane_size_ratio: tuple[float, float] = (0.55, 1.35)
    sane_centre_shift: float = 0.35
    min_face_px: float = 20.0
    max_abs_pose_deg: tuple[float, float, float] = (75.0, 90.0, 80.0)
    off_image_size: float = 1.5
    # a held face whose box has shrunk by more than this factor since the detector last saw it
    # is checked against the detector at once (a model fitting a face a little inside its ROI,
    # e.g. dlib with the eyes shut, would otherwise collapse the box frame after frame)
    size_drift: float = 1.3
    # a landmarker that places its own next box (dlib, ``next_roi``): when the box its points
    # on a followed face call for sits more than this share of the box's side away from the box
    # they came from (the face moved fast), it runs once more in that box (0: never)
    refine_shift: float = 0.1
    # ... and the next frame is confirmed by the detector at once (a fast face is where the
    # followed box drifts off: lp_d12's head turns); not with redetect_every 0; every face alike
    confirm_after_refine: bool = True
    # flow_lead: ... and so is a frame where flow measured the face moving more than this share
    # of its side since the last frame, or saw it move where it could not follow it back: a fast
    # face blurs, and dlib's points in a box a little off it keep the offset (0: never); not with
    # redetect_every 0; every face alike
    confirm_shift: float = 0.1
    # a landmarker whose next box is the one this detector would give (dlib with dlib-hog): a
    # confirmation whose best detection overlaps the held box by less than this takes the
    # detection as the next box (the held one had drifted; 0: never); only a detection over the
    # face's points, and (one face) not in a shot where the detector saw several faces
    confirm_take_iou: float = 0.75
    # a detection confirms the held face at this IoU; it is searched for in a region
    # this many times the held box around it, shrunk so the face is about confirm_face_px wide;
    # a detection covering this share of the smaller box is the held face after a shrink
    confirm_iou: float = 0.3
    confirm_region: float = 2.5
    confirm_face_px: int = 96
    contain_share: float = 0.6
    # one face: dropped after this many re-detections in a row that did not see it
    max_unconfirmed: int = 3
    # one face: after a loss, a detection is near the face's last place when its size is within
    # this ratio and its centre within this many face widths; in a shot with several faces, only
    # such a detection is taken for reacquire_gap frames
    near_size_ratio: tuple[float, float] = (0.6, 1.7)
    near_distance: float = 0.75
    reacquire_gap: int = 15
    # no face box with fallback_center: the model runs on a centred square of this share of the
    # frame's short side
    fallback_side: float = 0.8
    # several faces: a detection continues a face at this IoU with its predicted box; a lost
    # face is taken back within reid_ms, within reid_distance of its widths, at a size within
    # reid_size_ratio of its size then
    match_iou: float = 0.2
    reid_ms: float = 2000.0
    reid_distance: float = 1.0
    reid_size_ratio: float = 1.6

    def __post_init__(self) -> None:
        for f in fields(self):  # every number finite, whole where the default is
            value, default = getattr(self, f.name), f.default
            if isinstance(default, bool):
                continue
            if isinstance(default, tuple) and not (isinstance(value, tuple) and len(value) == len(default)):
                raise UsageError(f"track {f.name} must be {len(default)} numbers, got {value!r}")
            name = "{" + f.name + "}" if f.name in _FLAGGED else f"track {f.name}"
            for v in value if isinstance(default, tuple) else (value,):
                number(v, name, whole=isinstance(default, int))
                if f.name in _ZERO_OK and not v >= 0 and f.name != "redetect_every":
                    raise UsageError(f"{name} must be >= 0, got {v}")
                if f.name not in _ZERO_OK and not v > 0:
                    raise UsageError(f"{name} must be > 0, got {v}")
            if isinstance(default, tuple) and f.name != "max_abs_pose_deg" and value[0] > value[1]:
                raise UsageError(f"{name} must be (low, high), got {value!r}")
        for f in fields(self):
            if isinstance(f.default, bool) and not isinstance(getattr(self, f.name), (bool, np.bool_)):
                raise UsageError(f"track {f.name} must be true or false, got {getattr(self, f.name)!r}")
        for name in ("confirm_iou", "confirm_take_iou", "contain_share", "match_iou"):
            if getattr(self, name) > 1:
                raise UsageError(f"track {name} must be at most 1 (an overlap), got {getattr(self, name)}")
        for name in ("size_drift", "reid_size_ratio"):
            if getattr(self, name) < 1:
                raise UsageError(f"track {name} must be >= 1 (a ratio of sizes), got {getattr(self, name)}")
        if self.redetect_every < 0:
            raise UsageError(f"{{redetect_every}} must be >= 0 (0 = never), got {self.redetect_every}")
        if self.flow_face_px < 32:
            raise UsageError(f"track flow_face_px must be >= 32 (the face's width in pixels where flow follows it), got {self.flow_face_px}")
        if self.flow_margin > 1:
            raise UsageError(f"track flow_margin must be at most 1 (a share of the face's side), got {self.flow_margin}")
        if not 1.0 <= self.expand <= 2.0:
            raise UsageError(f"track expand must be in 1..2, got {self.expand}")


# TrackOptions fields a front end sets from an option of its own (named so in messages).
_FLAGGED = ("redetect_every", "lost_detect_every")
# TrackOptions fields that may be 0 (never, off); every other number must be above 0.
_ZERO_OK = (
    "redetect_every", "cut_threshold", "velocity_gain", "reacquire_gap", "refine_shift", "confirm_take_iou", "confirm_shift"
)


def roi_from_landmarks(landmarks: np.ndarray, expand: float = 1.0) -> BBox:
    """The square box on the long side of the box around (68, 2) landmarks, scaled by
    ``expand`` about its centre (square, as the detectors' boxes and MediaPipe's ROI: a
    model that under-reaches on one axis cannot shrink the box along it frame after frame)."""
    b = BBox.from_points(landmarks)
    side = max(b.width, b.height) * expand
    return _about(b.center, side, side)


def _about(centre: tuple[float, float], width: float, height: float) -> BBox:
    """The box of ``width`` x ``height`` (inclusive bounds) centred on ``centre``."""
    (cx, cy), hw, hh = centre, width / 2.0, height / 2.0
    return BBox(cx - hw + 0.5, cy - hh + 0.5, cx + hw - 0.5, cy + hh - 0.5)


def next_roi(landmarks: np.ndarray, expand: float = 1.0, landmarker: Landmarker | None = None) -> BBox:
    """The box to follow a face into the next frame from its (68, 2) ``landmarks``: the
    landmarker's own ``next_roi`` where it has one and it gives a box (dlib: the box its
    detector would have given those points), else ``roi_from_landmarks``; scaled by ``expand``
    about its centre."""
    own = getattr(landmarker, "next_roi", None)
    b = own(landmarks) if own is not None else None
    if b is None:
        return roi_from_landmarks(landmarks, expand)
    return _about(b.center, b.width * expand, b.height * expand)


def sanity(
    result: Face,
    roi: BBox,
    expand: float = 1.0,
    image_hw: tuple[int, int] | None = None,
    opts: TrackOptions = TrackOptions(),
) -> str:
    """'' when ``result`` (from ``roi``) still holds a face, else why not. With ``image_hw``
    the face must also lie mostly inside the image and be no larger than it."""
    if result.status is Status.UNSTABLE or not result.has_face:
        return "non_finite_output"
    lm = result.landmarks
    if not np.isfinite(lm).all():
        return "non_finite_output"
    b = BBox.from_points(lm)
    if max(b.width, b.height) < opts.min_face_px:
        return "face_too_small"
    if image_hw is not None:
        h, w = image_hw
        cx, cy = b.center
        if not (0 <= cx < w and 0 <= cy < h) or max(b.width, b.height) > opts.off_image_size * max(h, w):
            return "landmarks_off_image"
    side = np.sqrt(b.area / roi.area) * expand
    lo, hi = opts.sane_size_ratio
    if not lo <= side <= hi:
        return "landmarks_off_box"
    cx, cy = b.center
    rx, ry = roi.center
    shift = opts.sane_centre_shift
    if abs(cx - rx) > shift * roi.width or abs(cy - ry) > shift * roi.height:
        return "landmarks_off_box"
    if result.pose is not None:
        pose = np.abs(np.array(result.pose.as_tuple()))
        if not np.isfinite(pose).all() or (pose > np.array(opts.max_abs_pose_deg)).any():
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


def _near(a: BBox, b: BBox, opts: TrackOptions) -> bool:
    """True when box ``a`` can be the face last seen in box ``b``: similar size, centre close."""
    ax, ay = a.center
    bx, by = b.center
    lo, hi = opts.near_size_ratio
    ratio = np.sqrt(a.area / b.area)
    return lo <= ratio <= hi and np.hypot(ax - bx, ay - by) < opts.near_distance * _side(b)


# the rigid points that optical flow follows: brows, nose, the eyes' corners (iBUG 68)
_RIGID = np.r_[17:36, 36, 39, 42, 45]
_FLOW = dict(winSize=(15, 15), maxLevel=2)
_FLOW_BACK_PX = 1.0  # a point followed there and back lands this close (crop pixels)
_FLOW_CHECK_PX = 1.0  # a median shift this long (crop pixels) or more is checked back


@dataclass(frozen=True)
class _FlowView:
    """A face as ``Track.lead`` follows it: the frame's (height, width), the region (x0, y0,
    x1, y1, scale), its grey crop, the next box its points called for, the points."""

    hw: tuple[int, int]
    region: tuple[int, int, int, int, float]
    crop: np.ndarray
    base: BBox
    points: np.ndarray

    @property
    def scales(self) -> np.ndarray:
        """The crop's pixels per image pixel along x and y (its size is rounded)."""
        x0, y0, x1, y1, _ = self.region
        h, w = self.crop.shape[:2]
        return np.array([w / (x1 - x0), h / (y1 - y0)])


def _pixels(x0: float, y0: float, x1: float, y1: float, hw: tuple[int, int], min_side: int) -> tuple[int, int, int, int] | None:
    """The image pixels (x0, y0, x1, y1; x1 and y1 past the end) of a region, within the image;
    None when either side is under ``min_side``."""
    h, w = hw
    px0, py0 = max(0, int(x0)), max(0, int(y0))
    px1, py1 = min(w, int(x1) + 1), min(h, int(y1) + 1)
    if px1 - px0 < min_side or py1 - py0 < min_side:
        return None
    return px0, py0, px1, py1


def _shrunk(crop: np.ndarray, scale: float, interpolation: int) -> np.ndarray:
    """``crop`` scaled by ``scale`` (< 1; each side at least 8 pixels), or as it is (>= 1)."""
    if scale >= 1.0:
        return crop
    h, w = crop.shape[:2]
    return cv2.resize(crop, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=interpolation)


def _flow_region(box: BBox, hw: tuple[int, int], opts: TrackOptions) -> tuple[int, int, int, int, float] | None:
    """The region around a face's landmark ``box`` that flow looks in (the box and
    ``flow_margin`` of its side around it, within the image: the face's own surroundings,
    whatever else the frame holds), and the scale that makes the face ``flow_face_px`` wide
    there (at most 1)."""
    side = _side(box)
    m = opts.flow_margin * side
    px = _pixels(box.x0 - m, box.y0 - m, box.x1 + m, box.y1 + m, hw, 16)
    return None if px is None else (*px, min(1.0, opts.flow_face_px / max(side, 1.0)))


def _flow_crop(image: np.ndarray, region: tuple[int, int, int, int, float]) -> np.ndarray:
    """The green channel (brightness enough for flow) of ``region`` of ``image``, scaled (the
    colour crop first: its rows are contiguous, a channel's are not); an array of its own."""
    x0, y0, x1, y1, scale = region
    crop = _shrunk(image[y0:y1, x0:x1], scale, cv2.INTER_LINEAR)
    if crop.ndim == 3:
        crop = crop[:, :, 1 if crop.shape[2] >= 3 else 0]
    return np.array(crop, order="C")


@dataclass(eq=False)
class Track:
    """One followed face: its id, where its next box is, how it moves, its guard and smoother."""

    id: int
    guard: JumpGuard
    smoother: LandmarkSmoother | None
    next_roi: BBox | None = None  # the next frame's box from its landmarks, while it is followed
    lm_box: BBox | None = None  # the box around its last landmarks that fit
    held_frame: int = -1  # the frame those landmarks are from
    det_side: float | None = None  # its size when the detector last boxed it
    unconfirmed: int = 0  # re-detections in a row that did not see it (one face)
    box: BBox | None = None  # the box it was last landmarked in
    shift: tuple[float, float] = (0.0, 0.0)  # that box's last frame-to-frame shift
    last_ms: float = 0.0
    seen: bool = False  # found on the previous frame
    fast: bool = False  # its last frame took a second look (confirm_after_refine: confirm the next)
    view: _FlowView | None = None  # where its rigid points were, for ``lead``

    def hold(
        self,
        result: Face,
        tracked: bool,
        opts: TrackOptions,
        landmarker: Landmarker | None = None,
        image: np.ndarray | None = None,
    ) -> None:
        """Follow the face into the next frame from ``result``'s landmarks (which fit their box):
        ``next_roi`` of them, led by ``velocity_gain`` of the last shift when it was followed on
        the frame before (``lead`` replaces that lead with the face's measured motion); with
        ``image`` (this frame) and ``flow_lead``, the view of the face that ``lead`` follows."""
        box = BBox.from_points(result.landmarks)
        base = next_roi(result.landmarks, opts.expand, landmarker)
        roi = base
        if tracked and self.lm_box is not None and self.held_frame == result.frame - 1:
            (cx, cy), (px, py) = box.center, self.lm_box.center
            dx, dy = opts.velocity_gain * (cx - px), opts.velocity_gain * (cy - py)
            roi = BBox(roi.x0 + dx, roi.y0 + dy, roi.x1 + dx, roi.y1 + dy)
        self.next_roi, self.lm_box, self.held_frame = roi, box, result.frame
        self.view = None
        if opts.flow_lead and image is not None:
            region = _flow_region(box, image.shape[:2], opts)
            if region is not None:
                self.view = _FlowView(image.shape[:2], region, _flow_crop(image, region), base, result.landmarks[_RIGID])

    def lead(self, image: np.ndarray, opts: TrackOptions) -> float:
        """Move the next box with the face: its rigid points followed by optical flow from the
        view ``hold`` kept into ``image``, the median shift of those followed; a shift of a crop
        pixel or more counts only the points that flow back to where they were. Where under half
        of them are followed, or the frame's size changed, the box stays as ``hold`` placed it
        (led by ``velocity_gain`` of the last shift when the face was followed on the frame
        before, else where its points called for). Returns how far the face moved, a share of its
        side: inf where flow saw a move it could not follow back (a blurred or turning face, an
        occluder), 0 where there was nothing to follow."""
        view, self.view = self.view, None
        if view is None or self.next_roi is None or image.shape[:2] != view.hw:
            return 0.0  # nothing to follow, or a frame of another size (its region is elsewhere)
        x0, y0 = view.region[:2]
        scales = view.scales
        before = ((view.points - (x0, y0)) * scales).astype(np.float32).reshape(-1, 1, 2)
        crop = _flow_crop(image, view.region)
        try:
            after, ok, _ = cv2.calcOpticalFlowPyrLK(view.crop, crop, before, None, **_FLOW)
            if after is None:
                return 0.0
            ok = ok.ravel() == 1
            moved = (after - before).reshape(-1, 2)
            if ok.sum() * 2 < len(ok):
                return 0.0  # most points not followed at all: no texture to follow (a dark or blank face), or gone
            if np.hypot(*np.median(moved[ok], axis=0)) >= _FLOW_CHECK_PX:
                # a real move is checked forward-backward: a point counts when flow from where
                # it went leads back to it (an occluder's edge or another texture does not)
                back, ok_back, _ = cv2.calcOpticalFlowPyrLK(crop, view.crop, after, None, **_FLOW)
                if back is None:
                    return 0.0
                ok &= (ok_back.ravel() == 1) & (np.linalg.norm((back - before).reshape(-1, 2), axis=1) < _FLOW_BACK_PX)
                if ok.sum() * 2 < len(ok):
                    return np.inf  # it moved, and flow cannot tell where (a blurred or turning face)
        except cv2.error as exc:  # never a user's problem: the box stays as hold placed it
            log.debug("optical flow failed (%s); the face's box is not led", str(exc).strip().splitlines()[-1])
            return 0.0
        dx, dy = (float(v) for v in np.median(moved[ok], axis=0) / scales)
        b = view.base
        self.next_roi = BBox(b.x0 + dx, b.y0 + dy, b.x1 + dx, b.y1 + dy)
        return max(abs(dx), abs(dy)) / _side(b)

    def steady(self, image: np.ndarray, threshold: float) -> bool:
        """The face held on the frame before has surroundings in ``image`` (the region ``lead``
        follows it in) that changed by a mean of at most ``threshold`` grey levels (0-255)."""
        view = self.view
        if view is None or self.next_roi is None or image.shape[:2] != view.hw:
            return False
        now = _flow_crop(image, view.region)
        return float(np.abs(now.astype(np.float32) - view.crop).mean()) <= threshold

    def shrunk(self, than: float | None, opts: TrackOptions) -> bool:
        """The followed box is ``size_drift`` smaller than ``than`` (the detector's view of it)."""
        roi = self.next_roi
        return bool(roi is not None and than and _side(roi) * opts.size_drift < than)

    def predicted(self) -> BBox:
        """The last box moved on by its last shift."""
        dx, dy = self.shift
        b = self.box
        return BBox(b.x0 + dx, b.y0 + dy, b.x1 + dx, b.y1 + dy)

    def restart(self) -> None:
        """No jump or smoothing across a gap: the next face starts both afresh."""
        self.guard.reset()
        if self.smoother is not None:
            self.smoother.reset()

    def finish(self, face: Face) -> Face:
        """The face with this track's id, guarded and (an ok face) smoothed."""
        face = replace(face, id=self.id)
        if face.has_face:
            face = self.guard(face)
            if self.smoother is not None and face.status is Status.OK:
                face = self.smoother(face)  # Face.smoothed beside; landmarks stay raw
        return face


class FaceTracker:
    """The faces of a video (up to ``max_faces``; 0 = all). Build once per video; call per frame.

    ``__call__(image, frame, timestamp_ms)`` returns the frame's faces sorted by id; ``reason``
    then says why there is none, ``last_detections`` what the detector found on the frame.
    """

    def __init__(
        self,
        detector: Detector,
        landmarker: Landmarker,
        options: TrackOptions = TrackOptions(),
        max_faces: int = 1,
        guard: GuardOptions = GuardOptions(),
        smooth: SmoothOptions = SmoothOptions(),
    ) -> None:
        self.detector, self.landmarker, self.options = detector, landmarker, options
        self.max_faces = max_faces
        self.guard_options = guard
        self.smooth_params = smooth.params()
        self._ok_reason = getattr(landmarker, "ok_reason", "")
        self.next_id = 0
        self.cuts = 0
        self.reason = ""  # why the last frame has no face
        self._thumb: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        """Forget every face (the next frame is detected afresh); ids go on from the last one."""
        self.tracks: list[Track] = []
        self._since_detect = 0
        self._lost: tuple[int, BBox | None] | None = None  # one face: (frame, last box) of its loss
        self._unseen = 0  # one face: frames in a row searched for a face without finding one
        self._pending = True  # one face: the next face found is a new one (a new id)
        self._crowd = False  # one face: the detector has seen several faces in this shot
        self.last_detections: list[BBox] = []

    def __call__(self, image: np.ndarray, frame: int, timestamp_ms: float) -> tuple[Face, ...]:
        """Find or follow the faces in this frame and run the landmarker on them."""
        self.last_detections = []
        self.reason = "detector_failed"
        thumb = _thumb(image)
        if self._thumb is not None and float(np.abs(thumb - self._thumb).mean()) > self.options.cut_threshold:
            steady = [t for t in self.tracks if t.steady(image, self.options.cut_threshold)]
            if steady:  # part of the frame changed: the faces there end (a new id when seen again)
                log.debug("frame %d: the frame changed but not around %d face(s): they go on", frame, len(steady))
                if len(steady) < len(self.tracks) and self.options.redetect_every:
                    self._since_detect = self.options.redetect_every  # and whoever is there now is looked for
                self.tracks = steady
            else:
                log.debug("frame %d: scene cut", frame)
                self.cuts += 1
                self.reset()  # ids are not carried across a cut
        self._thumb = thumb
        if self.max_faces == 1:
            return self._one(image, frame, timestamp_ms)
        return self._every(image, frame, timestamp_ms)

    def _new_track(self, box: BBox | None = None) -> Track:
        p = self.smooth_params
        g = self.guard_options
        track = Track(self.next_id, JumpGuard(options=g), LandmarkSmoother(p) if p else None, box=box)
        self.next_id += 1
        return track

    def _landmark(self, image: np.ndarray, rois: list[BBox], frame: int, ts: float) -> list[Face]:
        return self.landmarker.landmark(image, rois, frame, ts) if rois else []

    def _landmark_one(self, image: np.ndarray, roi: BBox, frame: int, ts: float) -> Face:
        results = self._landmark(image, [roi], frame, ts)
        return results[0] if results else Face.empty(frame, ts, reason="detector_failed")

    def _followed(
        self, image: np.ndarray, tracks: list[Track], frame: int, ts: float, hw: tuple[int, int]
    ) -> tuple[list[BBox], list[Face]]:
        """The landmarks of faces followed into their next boxes; with a landmarker that places
        its own next box, a face still held whose points call for a box ``refine_shift`` of the
        side away (it moved fast) is landmarked once more in that box (and, with
        ``confirm_after_refine``, confirmed by the detector on the next frame), and that look is
        kept when it holds the face in that box. The boxes the results came from, and the results."""
        rois = [t.next_roi for t in tracks]
        results = self._landmark(image, rois, frame, ts)
        limit, own = self.options.refine_shift, getattr(self.landmarker, "next_roi", None)
        if not (limit > 0 and own is not None and len(results) == len(rois)):
            return rois, results
        again = []
        for i, (roi, r) in enumerate(zip(rois, results, strict=True)):
            if not self._why_lost(r, roi, False, hw):
                box = next_roi(r.landmarks, self.options.expand, self.landmarker)
                (bx, by), (rx, ry) = box.center, roi.center
                if max(abs(bx - rx), abs(by - ry), abs(box.width - roi.width)) > limit * roi.width:
                    again.append((i, box))
        if not again:
            return rois, results
        for i, _ in again:
            tracks[i].fast = self.options.confirm_after_refine
        results = list(results)
        second = self._landmark(image, [b for _, b in again], frame, ts)
        for (i, box), r in zip(again, second, strict=len(second) == len(again)):
            if not self._why_lost(r, box, False, hw):
                rois[i], results[i] = box, r
        return rois, results

    def _fast(self, image: np.ndarray, track: Track) -> bool:
        """Lead the held face's box with its motion (``Track.lead``); whether the detector should
        confirm it on this frame: flow saw it move more than ``confirm_shift`` of its side (or
        could not follow a move back), or its last frame took a second look."""
        moved = track.lead(image, self.options)
        fast = track.fast or (bool(self.options.confirm_shift) and moved > self.options.confirm_shift)
        track.fast = False
        return fast

    def _why_lost(self, result: Face, roi: BBox, detected: bool, hw: tuple[int, int]) -> str:
        """'' when ``result`` still holds the face of ``roi``; landmarks from a detector's box
        must fit that box itself (expand 1)."""
        return sanity(result, roi, 1.0 if detected else self.options.expand, hw, self.options)

    # -- one face
    def _one(self, image: np.ndarray, frame: int, ts: float) -> tuple[Face, ...]:
        opts, hw = self.options, image.shape[:2]
        track = self.tracks[0] if self.tracks else None
        if track is not None and track.next_roi is not None:
            fast = self._fast(image, track)
            self._since_detect += 1
            if opts.redetect_every and self._since_detect >= opts.redetect_every:
                self._confirm(image, frame, track)
            elif fast and opts.redetect_every:
                self._confirm(image, frame, track, periodic=False)
            if track.shrunk(track.det_side, opts):
                self._recheck(image, frame, track)
        if track is not None and track.next_roi is not None:
            rois, results = self._followed(image, [track], frame, ts, hw)
            roi = rois[0]
            result = results[0] if results else Face.empty(frame, ts, reason="detector_failed")
            why = self._why_lost(result, roi, False, hw)
            if not why:
                track.hold(result, True, opts, self.landmarker, image)
                return (track.finish(_with_reason(result, "tracked", self._ok_reason)),)
            log.debug("frame %d: face lost (%s)", frame, why)
            self._lose(frame, track)
            self._unseen = 0  # searched at once
        if self._unseen % opts.lost_detect_every and not opts.fallback_center:
            self._unseen += 1
            self.reason = "not_searched"
            return ()
        boxes = self._detect_one(image, frame)
        self._unseen = 0 if boxes else self._unseen + 1
        if boxes:
            roi = boxes[0]
            result = self._landmark_one(image, roi, frame, ts)
            if self._pending and result.has_face and np.isfinite(result.landmarks).all():
                track = self._new_track()  # the first face after a reset, a cut or a loss
                self.tracks = [track]
                self._pending = False
            if track is not None and not self._why_lost(result, roi, True, hw):
                # held (followed into the next frame) only when the landmarks fit the detector's
                # box; else the next frame is detected again (one model run a frame, not two)
                track.hold(result, False, opts, self.landmarker, image)
                track.unconfirmed, track.det_side = 0, _side(roi)
                self._since_detect = 0
                self._lost = None
            return self._one_result(_with_reason(result, "detected", self._ok_reason), track)
        if not opts.fallback_center:
            return ()
        h, w = hw
        side = min(h, w) * opts.fallback_side
        box = BBox((w - side) / 2, (h - side) / 2, (w + side) / 2 - 1, (h + side) / 2 - 1)
        result = self._landmark_one(image, box, frame, ts)
        status = Status.UNSTABLE if result.status is Status.UNSTABLE else Status.WARN
        return self._one_result(replace(result, status=status, reason="no_bbox"), track)

    def _one_result(self, face: Face, track: Track | None) -> tuple[Face, ...]:
        if face.status is Status.NO_FACE:
            self.reason = face.reason
            return ()
        # a face that starts no track: the last face's id
        return (track.finish(face) if track is not None else replace(face, id=max(self.next_id - 1, 0)),)

    def _lose(self, frame: int, track: Track) -> None:
        track.next_roi = None
        self._lost = (frame, track.lm_box)
        self._pending = True

    def _detect_one(self, image: np.ndarray, frame: int) -> list[BBox]:
        """The detector's boxes, the likeliest to be the face lost lately first; none while a
        crowded shot's other faces must not be taken for it."""
        faces = list(self.detector.detect(image))
        self.last_detections = faces
        if not faces:
            return []
        self._crowd = self._crowd or len(faces) > 1
        if self._lost:
            lost_at, last = self._lost
            if last is not None:
                near = [f for f in faces if _near(f, last, self.options)]
                if near:
                    return sorted(near, key=lambda f: -f.iou(last))
                if self._crowd and frame - lost_at < self.options.reacquire_gap:
                    return []  # other faces are in this shot: do not jump to one of them at once
        return faces

    def _unconfirmed(self, frame: int, track: Track) -> None:
        """One more re-detection that did not see the held face; dropped after max_unconfirmed."""
        track.unconfirmed += 1
        if track.unconfirmed >= self.options.max_unconfirmed:
            log.debug("frame %d: held face not confirmed by %d re-detections; dropped", frame, track.unconfirmed)
            track.unconfirmed = 0
            self._lose(frame, track)  # in a crowded shot, a face elsewhere waits reacquire_gap frames

    def _confirm(self, image: np.ndarray, frame: int, track: Track, periodic: bool = True) -> None:
        """Re-detection around the held face (one face): confirm it, or (``periodic``) count a
        miss; after a fast move (not ``periodic``) a miss counts for nothing (the detector misses
        turned faces that the landmarker holds)."""
        if self._seen_near(image, track):
            self._since_detect = 0
        elif periodic:
            self._since_detect = 0
            self._unconfirmed(frame, track)

    def _seen_near(self, image: np.ndarray, track: Track, rivals: Sequence[BBox] = ()) -> bool:
        """Whether the detector sees the held face (a detection around it at ``confirm_iou``);
        with a landmarker that places its own next box, a detection that confirms the face but
        overlaps the held box by less than ``confirm_take_iou`` becomes the box (not in a shot
        where one face is followed among several the detector saw). A detection overlapping
        one of ``rivals`` (the other faces' held boxes) more than this one's is theirs."""
        opts = self.options
        held = track.next_roi
        ious = [(f.iou(held), f) for f in self._detect_near(image, held)
                if all(f.iou(held) >= f.iou(r) for r in rivals)]
        overlap, best = max(ious, key=lambda p: p[0], default=(0.0, None))
        if overlap < opts.confirm_iou:
            return False
        track.unconfirmed = 0
        track.det_side = _side(held)  # the detector sees the face at this size
        same_kind = getattr(self.landmarker, "next_roi_detector", None) == getattr(self.detector, "name", "")
        cx, cy = track.lm_box.center if track.lm_box is not None else (np.nan, np.nan)
        over_points = best.x0 <= cx <= best.x1 and best.y0 <= cy <= best.y1
        if overlap < opts.confirm_take_iou and same_kind and over_points and not self._crowd:
            log.debug("held box drifted from the detector's (IoU %.2f); the detector's box taken", overlap)
            track.next_roi, track.det_side = best, _side(best)
            track.lm_box = None  # no velocity across the correction
        return True

    def _recheck(self, image: np.ndarray, frame: int, track: Track) -> None:
        """The held box has shrunk since the detector's last view of the face: ask the detector
        now. A detection over the held box, of about the size the detector last saw the face
        at, becomes the ROI. With none (a face the detector misses, or one that really moved
        away), the held box stays and its size is the new reference; as with the periodic
        re-detection, a face unconfirmed max_unconfirmed times in a row is dropped."""
        opts = self.options
        held, seen = track.next_roi, track.det_side
        self._since_detect = 0
        over = [
            f
            for f in self._detect_near(image, held)
            if _covers(f, held) >= opts.contain_share and 1.0 / opts.size_drift <= _side(f) / seen <= opts.size_drift
        ]
        if not over:
            track.det_side = _side(held)
            self._unconfirmed(frame, track)
            return
        best = max(over, key=lambda f: f.iou(held))
        log.debug("frame %d: held box drifted in size; the detector's box taken", frame)
        track.next_roi, track.det_side = best, _side(best)
        track.lm_box = None  # no velocity across the correction
        track.unconfirmed = 0

    def _detect_near(self, image: np.ndarray, box: BBox) -> list[BBox]:
        """Detect in the region around ``box`` only (confirm_region x its size): confirming
        the held face costs a fraction of a full-frame detection."""
        opts = self.options
        cx, cy = box.center
        half = _side(box) * opts.confirm_region / 2.0
        px = _pixels(cx - half, cy - half, cx + half, cy + half, image.shape[:2], 8)
        if px is None:
            return []
        x0, y0, x1, y1 = px
        # shrink so the held face is about confirm_face_px wide: the detector then searches
        # few scales (faces from about a third of the held size up)
        region = _shrunk(image[y0:y1, x0:x1], min(1.0, opts.confirm_face_px / max(1.0, box.width)), cv2.INTER_AREA)
        fx, fy = (x1 - x0) / region.shape[1], (y1 - y0) / region.shape[0]
        found = self.detector.detect(region)
        return [BBox(f.x0 * fx + x0, f.y0 * fy + y0, f.x1 * fx + x0, f.y1 * fy + y0) for f in found]

    # -- several faces
    def _every(self, image: np.ndarray, frame: int, ts: float) -> tuple[Face, ...]:
        opts, hw = self.options, image.shape[:2]
        self.tracks = [t for t in self.tracks if ts - t.last_ms <= opts.reid_ms]
        held = [t for t in self.tracks if t.seen and t.next_roi is not None]
        for t in held:
            if self._fast(image, t) and opts.redetect_every:  # a fast face: its box from the detector if it drifted
                self._seen_near(image, t, [o.next_roi for o in held if o is not t and o.next_roi is not None])
        due = (
            not held
            or (opts.redetect_every > 0 and self._since_detect >= opts.redetect_every)
            or any(t.seen and t.next_roi is None for t in self.tracks)  # found, but not to follow
            or any(not t.seen for t in self.tracks)  # one lost lately: look for it on every frame
            or any(t.shrunk(t.det_side, opts) for t in held)  # a followed box collapsing
        )
        if not due:  # follow every held face from its landmarks
            rois, results = self._followed(image, held, frame, ts, hw)
            sane = [not self._why_lost(r, roi, False, hw) for r, roi in zip(results, rois, strict=True)]
            if all(sane):
                self._since_detect += 1
                return self._finish(image, rois, held, results, ["tracked"] * len(held))
            for t, ok in zip(held, sane, strict=True):
                if not ok:  # no longer fits its box: found again by the detector, on this frame
                    t.next_roi = None
        boxes = list(self.detector.detect(image))  # largest first
        self.last_detections = boxes
        self._since_detect = 0
        owners = match(self.tracks, boxes, opts.match_iou, opts.reid_distance, opts.reid_size_ratio)
        # boxes that continue a face come first, so detector jitter among similar sizes does not
        # swap which faces are followed; the free places go to new faces, largest first
        order = sorted(range(len(boxes)), key=lambda i: (owners[i] is None, -boxes[i].area))
        keep = sorted(order[: self.max_faces or None])  # back in the detector's order
        chosen = [boxes[i] for i in keep]
        tracks = [owners[i] or self._new_track(boxes[i]) for i in keep]
        known = {id(t) for t in self.tracks}
        self.tracks += [t for t in tracks if id(t) not in known]
        # a face still followed goes on from its landmarks (the detection confirms it, as with
        # one face); a new or lost one starts from the detector's box
        hows = [
            "tracked" if t.seen and t.next_roi is not None and not t.shrunk(_side(box), opts) else "detected"
            for box, t in zip(chosen, tracks, strict=True)
        ]
        rois = [t.next_roi if how == "tracked" else box for box, t, how in zip(chosen, tracks, hows, strict=True)]
        for box, t in zip(chosen, tracks, strict=True):
            t.det_side = _side(box)  # the detector's view of its size, now
        return self._finish(image, rois, tracks, self._landmark(image, rois, frame, ts), hows)

    def _finish(
        self, image: np.ndarray, boxes: list[BBox], tracks: list[Track], results: list[Face], hows: list[str]
    ) -> tuple[Face, ...]:
        """Follow, guard, smooth and record each face; the faces, sorted by id."""
        faces, hw = [], image.shape[:2]
        for box, track, result, how in zip(boxes, tracks, results, hows, strict=True):
            if not self._why_lost(result, box, how == "detected", hw):
                track.hold(result, how == "tracked", self.options, self.landmarker, image)
            else:
                track.next_roi = None  # the detector looks for it
            if not track.seen:  # new, or taken back after a gap: no jump or smoothing across it
                track.restart()
            faces.append(track.finish(_with_reason(result, how, self._ok_reason)))
            # the last frame-to-frame shift; none after a gap (its displacement is not motion)
            if track.seen:
                track.shift = (box.center[0] - track.box.center[0], box.center[1] - track.box.center[1])
            else:
                track.shift = (0.0, 0.0)
            track.seen = True
            track.box, track.last_ms = box, result.timestamp_ms
        followed = {id(t) for t in tracks}
        for track in self.tracks:
            if id(track) not in followed:
                track.seen = False
        return tuple(sorted(faces, key=lambda f: f.id))
