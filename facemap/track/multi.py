"""Video mode with several faces: every face the detector boxes, each with an id that persists.

``MultiFaceTracker`` follows the faces as the one-face tracker does: between detections each
face's next box comes from its previous landmarks, and the detector runs on the first frame,
every ``redetect_every`` frames (where new faces join), whenever a followed face's landmarks
no longer fit their box, and on every frame while a face lost in the last ``REID_MS`` may come
back. A detection takes the ``max_faces`` largest boxes, and gives each the
id of the face it continues: detections are assigned to the faces of the previous frame by box
overlap (an optimal assignment, ``scipy.optimize.linear_sum_assignment``,
on each face's box moved on by its last shift), so two faces passing side by side keep theirs.
A face that is not found for a while (turned away, hidden, out of frame) keeps its id for
``REID_MS`` milliseconds: a face found again near where it was lost, at a similar size, gets
it back; later, or elsewhere, it is a new face with a new id. A scene cut ends every face: ids
are not carried across a cut (the people after it get new ids). The crops of all faces of a
frame go through the landmarker as one batch. Each face has its own jump guard and smoother;
the smoothed points ride beside the landmarker's (``Face.smoothed``), never replacing them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..backends.base import Detector, Landmarker
from ..types import BBox, Face, Status
from .guard import GuardOptions, JumpGuard
from .smooth import LandmarkSmoother, SmoothOptions
from .tracker import (
    CUT_THRESHOLD,
    DEFAULT_REDETECT_EVERY,
    SIZE_DRIFT,
    TRACK_EXPAND,
    VELOCITY_GAIN,
    _thumb,
    _with_reason,
    roi_from_landmarks,
    sanity,
)

# A detection continues a face when its box overlaps the face's predicted box this much.
MATCH_IOU = 0.2
# A lost face is taken back within this time, when found within this many of its widths of
# where it was lost and at a size within this ratio of its size then.
REID_MS = 2000.0
REID_DISTANCE = 1.0
REID_SIZE_RATIO = 1.6


@dataclass
class _Track:
    id: int
    box: BBox
    shift: tuple[float, float]
    last_ms: float
    guard: JumpGuard
    smoother: LandmarkSmoother | None
    seen: bool = True  # found on the previous frame
    next_roi: BBox | None = None  # the next frame's box from its landmarks, while it is followed
    lm_box: BBox | None = None  # the box around its last landmarks that fit
    held_frame: int = -1  # the frame those landmarks are from
    det_side: float | None = None  # its size when the detector last boxed it

    def shrunk(self) -> bool:
        """The followed box has shrunk by SIZE_DRIFT since the detector last boxed this face
        (the one-face tracker's collapse check): the detector must look again."""
        roi = self.next_roi
        return bool(roi is not None and self.det_side and max(roi.width, roi.height) * SIZE_DRIFT < self.det_side)

    def predicted(self) -> BBox:
        dx, dy = self.shift
        b = self.box
        return BBox(b.x0 + dx, b.y0 + dy, b.x1 + dx, b.y1 + dy)


def _shrunk_from(roi: BBox, detected: BBox) -> bool:
    """``roi`` (a followed face's box) is SIZE_DRIFT smaller than the detector's box for it."""
    return max(roi.width, roi.height) * SIZE_DRIFT < max(detected.width, detected.height)


def _iou_matrix(a: list[BBox], b: list[BBox]) -> np.ndarray:
    return np.array([[x.iou(y) for y in b] for x in a], dtype=np.float64).reshape(len(a), len(b))


def _assign(iou: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """Pairs (row, col) of the assignment maximising total IoU, each pair at least ``minimum``."""
    if iou.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    iou = np.where(iou >= minimum, iou, 0.0)  # a pair below the minimum must not steal a valid one
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= minimum]


class MultiFaceTracker:
    """Every face of a video (up to ``max_faces``; 0 = all), ids persisting from frame to frame.

    ``__call__(image, frame, timestamp_ms)`` returns (faces sorted by id, the detector's boxes).
    """

    def __init__(
        self,
        detector: Detector,
        landmarker: Landmarker,
        max_faces: int = 0,
        guard: GuardOptions = GuardOptions(),
        smooth: SmoothOptions = SmoothOptions(),
        cut_threshold: float = CUT_THRESHOLD,
        redetect_every: int = DEFAULT_REDETECT_EVERY,
        expand: float = TRACK_EXPAND,
    ) -> None:
        self.detector, self.landmarker = detector, landmarker
        self.limit = max_faces or None
        self.guard_options = guard
        self.smooth_params = smooth.params()
        self.cut_threshold = cut_threshold
        self.redetect_every, self.expand = redetect_every, expand
        self._since_detect = 0
        self.tracks: list[_Track] = []
        self.next_id = 0
        self._thumb: np.ndarray | None = None
        self.last_detections: list[BBox] = []
        self._ok_reason = getattr(landmarker, "ok_reason", "")

    def reset(self) -> None:
        """Forget every face (a scene cut, a new video); ids go on from the last one given."""
        self.tracks = []

    def __call__(self, image: np.ndarray, frame: int, timestamp_ms: float) -> tuple[Face, ...]:
        thumb = _thumb(image)
        if self._thumb is not None and float(np.abs(thumb - self._thumb).mean()) > self.cut_threshold:
            self.reset()  # a scene cut: ids are not carried across it
        self._thumb = thumb
        self.tracks = [t for t in self.tracks if timestamp_ms - t.last_ms <= REID_MS]
        hw = image.shape[:2]
        held = [t for t in self.tracks if t.seen and t.next_roi is not None]
        due = (
            not held
            or (self.redetect_every > 0 and self._since_detect >= self.redetect_every)
            or any(t.seen and t.next_roi is None for t in self.tracks)  # found, but not to follow
            or any(not t.seen for t in self.tracks)  # one lost lately: look for it on every frame
            or any(t.shrunk() for t in held)  # a followed box collapsing: the detector's box again
        )
        if not due:  # follow every held face from its landmarks
            rois = [t.next_roi for t in held]
            results = self.landmarker.landmark(image, rois, frame, timestamp_ms)
            failed = [t for t, r, roi in zip(held, results, rois, strict=True) if sanity(r, roi, self.expand, hw)]
            if not failed:
                self._since_detect += 1
                self.last_detections = []
                return self._finish(rois, held, results, ["tracked"] * len(held), hw)
            for t in failed:  # no longer fits its box: found again by the detector, on this frame
                t.next_roi = None
        boxes = list(self.detector.detect(image))  # largest first
        self.last_detections = boxes
        self._since_detect = 0
        chosen, owners = self._choose(boxes)
        # a face still followed goes on from its landmarks (the detection confirms it, as with
        # one face); a new or lost one starts from the detector's box
        hows = [
            "tracked" if t.seen and t.next_roi is not None and not _shrunk_from(t.next_roi, box) else "detected"
            for box, t in zip(chosen, owners, strict=True)
        ]
        rois = [t.next_roi if how == "tracked" else box for box, t, how in zip(chosen, owners, hows, strict=True)]
        for box, t in zip(chosen, owners, strict=True):
            t.det_side = max(box.width, box.height)  # the detector's view of its size, now
        results = self.landmarker.landmark(image, rois, frame, timestamp_ms) if rois else []
        return self._finish(rois, owners, results, hows, hw)

    def _finish(self, boxes: list[BBox], owners: list[_Track], results: list[Face], hows: list[str], hw) -> tuple[Face, ...]:
        """Guard, smooth and record each face; the faces, sorted by id."""
        faces = []
        for box, track, result, how in zip(boxes, owners, results, hows, strict=True):
            self._follow(track, result, box, how, hw)
            face = _with_reason(replace(result, id=track.id), how, self._ok_reason)
            if not track.seen:  # new, or taken back after a gap: no jump or smoothing across it
                track.guard.reset()
                if track.smoother is not None:
                    track.smoother.reset()
            if face.has_face:
                face = track.guard(face)
                if track.smoother is not None and face.status is Status.OK:
                    face = track.smoother(face)  # Face.smoothed beside; landmarks stay raw
            # the last frame-to-frame shift; none after a gap (its displacement is not motion)
            moved = (box.center[0] - track.box.center[0], box.center[1] - track.box.center[1])
            track.shift = moved if track.seen else (0.0, 0.0)
            track.seen = True
            track.box, track.last_ms = box, result.timestamp_ms
            faces.append(face)
        owned = {id(t) for t in owners}
        for track in self.tracks:
            if id(track) not in owned:
                track.seen = False
        return tuple(sorted(faces, key=lambda f: f.id))

    # -- internals
    def _follow(self, track: _Track, result: Face, box: BBox, how: str, hw) -> None:
        """The next frame's box for ``track`` from ``result`` when its landmarks fit ``box`` (the
        one-face tracker's rule: the landmark box, squared, led by half the last shift), else
        none (the detector looks for it)."""
        if sanity(result, box, 1.0 if how == "detected" else self.expand, hw):
            track.next_roi = None
            return
        lm_box = BBox.from_points(result.landmarks)
        roi = roi_from_landmarks(result.landmarks, self.expand)
        if how == "tracked" and track.lm_box is not None and track.held_frame == result.frame - 1:
            (cx, cy), (px, py) = lm_box.center, track.lm_box.center
            dx, dy = VELOCITY_GAIN * (cx - px), VELOCITY_GAIN * (cy - py)
            roi = BBox(roi.x0 + dx, roi.y0 + dy, roi.x1 + dx, roi.y1 + dy)
        track.next_roi, track.lm_box, track.held_frame = roi, lm_box, result.frame

    def _choose(self, boxes: list[BBox]) -> tuple[list[BBox], list[_Track]]:
        """The boxes to landmark (at most ``max_faces``) and the track each continues. Boxes that
        continue a face come first, so detector jitter among similar sizes does not swap which
        faces are followed; the free places go to new faces, largest first."""
        owners = self._owners(boxes)
        order = sorted(range(len(boxes)), key=lambda i: (owners[i] is None, -boxes[i].area))
        keep = sorted(order[: self.limit])  # back in the detector's order (largest first)
        chosen = [boxes[i] for i in keep]
        tracks = [owners[i] or self._new_track(boxes[i]) for i in keep]
        return chosen, tracks

    def _owners(self, boxes: list[BBox]) -> list[_Track | None]:
        """The track each box continues, or None for a new face, in the order of ``boxes``."""
        owners: list[_Track | None] = [None] * len(boxes)
        active = [t for t in self.tracks if t.seen]
        for r, c in _assign(_iou_matrix([t.predicted() for t in active], boxes), MATCH_IOU):
            owners[c] = active[r]
        taken = {id(o) for o in owners if o is not None}
        # taken back: a face lost earlier, or one that moved too far for the overlap (fast motion,
        # --every N), found near where it was last seen at a similar size
        candidates = [t for t in self.tracks if id(t) not in taken]
        free = [i for i, o in enumerate(owners) if o is None]
        if candidates and free:
            score = np.zeros((len(candidates), len(free)))
            for r, t in enumerate(candidates):
                for c, i in enumerate(free):
                    b = boxes[i]
                    dist = np.hypot(b.center[0] - t.box.center[0], b.center[1] - t.box.center[1]) / max(t.box.width, 1.0)
                    ratio = max(b.width, 1.0) / max(t.box.width, 1.0)
                    if dist <= REID_DISTANCE and 1 / REID_SIZE_RATIO <= ratio <= REID_SIZE_RATIO:
                        score[r, c] = 1.0 + (1.0 - dist / REID_DISTANCE)
            for r, c in _assign(score, 1.0):
                owners[free[c]] = candidates[r]
        return owners

    def _new_track(self, box: BBox) -> _Track:
        g = self.guard_options
        track = _Track(
            id=self.next_id,
            box=box,
            shift=(0.0, 0.0),
            last_ms=0.0,
            guard=JumpGuard(g.jump_threshold, g.accept_after),
            smoother=LandmarkSmoother(self.smooth_params) if self.smooth_params is not None else None,
            seen=False,
        )
        self.next_id += 1
        self.tracks.append(track)
        return track
