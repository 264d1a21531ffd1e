"""Core types that flow through every stage: BBox, Pose, Status, Face, Frame.

Boxes are always x0, y0, x1, y1 in image pixels and INCLUSIVE, as in Qualcomm's reference
decode: width = x1 - x0 + 1. Arrays held by a Face are validated and read-only.

A ``Frame`` is what the chain yields for each picture or video frame: its index, time, image
and a tuple of ``Face`` (empty when no face was found, never None).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

N_LANDMARKS = 68
N_PARAMS = 265
N_ID = 219
N_EXP = 39


@dataclass(frozen=True)
class BBox:
    """Face box in image pixels, inclusive bounds (width = x1 - x0 + 1)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        vals = (self.x0, self.y0, self.x1, self.y1)
        if not all(np.isfinite(v) for v in vals):
            raise ValueError(f"BBox needs finite coordinates, got {vals}")
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise ValueError(f"BBox needs x0 <= x1 and y0 <= y1, got {vals}")

    @property
    def width(self) -> float:
        """Inclusive width in pixels: x1 - x0 + 1."""
        return self.x1 - self.x0 + 1.0

    @property
    def height(self) -> float:
        """Inclusive height in pixels: y1 - y0 + 1."""
        return self.y1 - self.y0 + 1.0

    @property
    def area(self) -> float:
        """Area in square pixels."""
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        """Centre (cx, cy) in pixels."""
        return ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)

    def __str__(self) -> str:
        return f"BBox({self.x0:.1f}, {self.y0:.1f}, {self.x1:.1f}, {self.y1:.1f})"

    def as_tuple(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1)."""
        return (self.x0, self.y0, self.x1, self.y1)

    def as_array(self) -> np.ndarray:
        """(4,) float64 array x0, y0, x1, y1."""
        return np.array(self.as_tuple(), dtype=np.float64)

    def expand(self, margin: float) -> BBox:
        """Grow by ``margin`` x width (height) on each side, as Qualcomm's dataset crop does."""
        w, h = self.width, self.height
        x0 = self.x0 - margin * w
        y0 = self.y0 - margin * h
        return BBox(x0, y0, x0 + w * (1 + 2 * margin) - 1.0, y0 + h * (1 + 2 * margin) - 1.0)

    def scale(self, factor: float) -> BBox:
        """Coordinates multiplied by ``factor`` (e.g. back from a downscaled copy)."""
        return BBox(self.x0 * factor, self.y0 * factor, self.x1 * factor, self.y1 * factor)

    def iou(self, other: BBox) -> float:
        """Intersection over union of two boxes (inclusive pixel areas)."""
        ix = min(self.x1, other.x1) - max(self.x0, other.x0) + 1.0
        iy = min(self.y1, other.y1) - max(self.y0, other.y0) + 1.0
        if ix <= 0 or iy <= 0:
            return 0.0
        inter = ix * iy
        return inter / (self.area + other.area - inter)

    @classmethod
    def from_points(cls, points: np.ndarray) -> BBox:
        """Tight box around (K, 2) points."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return cls(float(x0), float(y0), float(x1), float(y1))

    @classmethod
    def parse(cls, text: str) -> BBox:
        """Parse ``"x0,y0,x1,y1"``; raises ValueError with what was expected."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 4:
            raise ValueError(f"expected 4 numbers x0,y0,x1,y1, got {text!r}")
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"expected 4 numbers x0,y0,x1,y1, got {text!r}") from None
        return cls(*vals)


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees, as the model's parameters define it (param x 90)."""

    pitch_deg: float
    yaw_deg: float
    roll_deg: float

    def __str__(self) -> str:
        return f"Pose(pitch {self.pitch_deg:+.1f}, yaw {self.yaw_deg:+.1f}, roll {self.roll_deg:+.1f} deg)"

    def as_tuple(self) -> tuple[float, float, float]:
        """(pitch_deg, yaw_deg, roll_deg)."""
        return (self.pitch_deg, self.yaw_deg, self.roll_deg)


class Status(str, enum.Enum):
    """Per-frame status, with the original tool's values."""

    OK = "ok"
    WARN = "warn"
    UNSTABLE = "unstable"
    NO_FACE = "no_face"


def _frozen_array(arr: np.ndarray | None, shape: tuple[int, ...], name: str) -> np.ndarray:
    if arr is None:
        arr = np.zeros((0,) + shape[1:], dtype=np.float64)
    out = np.array(arr, dtype=np.float64, copy=True)
    if out.shape != shape and not (out.shape[:1] == (0,) and out.shape[1:] == shape[1:]):
        raise ValueError(f"{name} must have shape {shape} (or empty), got {out.shape}")
    out.setflags(write=False)
    return out


def _frozen_points(arr: np.ndarray | None, name: str = "landmarks") -> np.ndarray:
    """(N, 2) points (68 for the iBUG-68 models), or (0, 2); read-only float64."""
    if arr is None:
        arr = np.zeros((0, 2), dtype=np.float64)
    out = np.array(arr, dtype=np.float64, copy=True)
    if out.ndim != 2 or out.shape[1] != 2:
        raise ValueError(f"{name} must have shape ({N_LANDMARKS}, 2), (N, 2) or be empty, got {out.shape}")
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class Face:
    """One face in one frame (or image).

    id:         which face this is; stays the same while a video tracks it (0 for the first).
    box:        the face box the crop was built from (inclusive pixels), None when there is none.
    landmarks:  (68, 2) image pixels, iBUG-68 order, or (0, 2) when the model output was unusable
                ((N, 2) from another landmark model, ``--assume-points N``): what the landmarker
                returned, never smoothed; every log holds these.
    pose:       head pose in degrees as the landmarker returned it, or None.
    smoothed:   (N, 2) image pixels, the same points after video mode's smoothing (for drawing),
                or (0, 2) when the face was not smoothed (image mode, ``--smooth off``, a frame
                that is not ok).
    smoothed_pose: the smoothed head pose in degrees, or None (not smoothed, or no pose).
    status:     ok, warn (a guess or a doubtful output), unstable (unusable or a jump), or
                no_face (the empty record: no box at all).
    reason:     why the status (``detected``/``tracked`` in video; ``no_bbox``, ``jump_threshold``...).
    params:     (265,) raw model outputs, or (0,) when the backend has none (dlib).
    expression: (39,) de-normalised expression coefficients, or (0,).
    frame, timestamp_ms: the frame it belongs to (1-based) and its time in milliseconds.
    labels:     with ``facemap.open(..., analyze=True)``: the expression labels set on this face
                in this frame, analyzer names (``facemap.analysis.LABELS``), the dominant one
                first (``neutral`` when none is set); () when not analysed.
    measures:   with ``analyze=True``: continuous expression measures, name -> value, each 1.0 at
                its label's threshold (``facemap.analysis.online.MEASURES``), every one of them,
                NaN where it cannot be measured yet (``talking`` on a face's first frame, as it
                needs the lips' motion); empty when not analysed or without a face.
    expression_measures: with 3DMM parameters (FaceMap's, or fitted to 68 points with the basis):
                the named measures of the pose-free face (``facemap.threedmm.measures.MEASURES``:
                smile, jaw_open, eye_closure_left, eye_closure_right), 0 on the basis mean face,
                1 as far as the basis's own component moves it; empty without parameters.
    provisional: True while the face's own baseline is not yet trusted (its first
                ``online_trust_ms`` of face time): labels judged against the typical face.

    ``drawn`` and ``drawn_pose`` are what an overlay shows: the smoothed ones when there are,
    else the landmarker's.
    """

    frame: int
    timestamp_ms: float = 0.0
    status: Status = Status.NO_FACE
    reason: str = ""
    box: BBox | None = None
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    pose: Pose | None = None
    params: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    expression: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    id: int = 0
    smoothed: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    smoothed_pose: Pose | None = None
    labels: tuple[str, ...] = ()
    measures: Mapping[str, float] = field(default_factory=dict)
    provisional: bool = False
    expression_measures: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "labels", tuple(str(n) for n in self.labels))
        object.__setattr__(self, "measures", {str(k): float(v) for k, v in dict(self.measures).items()})
        object.__setattr__(
            self, "expression_measures", {str(k): float(v) for k, v in dict(self.expression_measures).items()}
        )
        object.__setattr__(self, "landmarks", _frozen_points(self.landmarks))
        smoothed = _frozen_points(self.smoothed, "smoothed")
        if smoothed.shape[0] and smoothed.shape != self.landmarks.shape:
            raise ValueError(
                f"smoothed must have the landmarks' shape {self.landmarks.shape} (or be empty), got {smoothed.shape}"
            )
        if self.smoothed_pose is not None and not smoothed.shape[0]:
            raise ValueError("smoothed_pose needs smoothed landmarks beside it")
        object.__setattr__(self, "smoothed", smoothed)
        object.__setattr__(self, "params", _frozen_array(self.params, (N_PARAMS,), "params"))
        object.__setattr__(
            self, "expression", _frozen_array(self.expression, (N_EXP,), "expression")
        )

    @property
    def has_face(self) -> bool:
        """True when landmarks are present."""
        return self.landmarks.shape[0] > 0

    @property
    def drawn(self) -> np.ndarray:
        """(N, 2) pixels an overlay draws: the smoothed landmarks when there are, else the
        landmarker's."""
        return self.smoothed if self.smoothed.shape[0] else self.landmarks

    @property
    def drawn_pose(self) -> Pose | None:
        """The pose an overlay shows: the smoothed one when the face was smoothed, else ``pose``."""
        return self.smoothed_pose if self.smoothed.shape[0] else self.pose

    @classmethod
    def empty(cls, frame: int, timestamp_ms: float = 0.0, reason: str = "") -> Face:
        """The "no face" record: status no_face, no box, no landmarks."""
        return cls(frame=frame, timestamp_ms=timestamp_ms, status=Status.NO_FACE, reason=reason)


@dataclass(frozen=True)
class Event:
    """An expression event of one face: ``kind`` (blink, wink, smile, talking, yawn,
    looking_away), its first and last frame (1-based, inclusive), its start and end time in
    milliseconds (``end_ms``: the end of its last frame) and ``duration_ms``, as the analyzer's
    event list has them (``facemap.analysis.events.label_events``)."""

    kind: str
    face_id: int
    start_frame: int
    end_frame: int
    start_ms: float
    end_ms: float

    @property
    def duration_ms(self) -> float:
        """end_ms - start_ms."""
        return self.end_ms - self.start_ms


class Mode(str, enum.Enum):
    """How the chain treats successive pictures.

    IMAGE: each picture on its own (detect, landmark, no tracking, guard or smoothing).
    VIDEO: frames of one sequence: the face is tracked from frame to frame (the next box comes
    from the previous landmarks), outliers are flagged, and smoothed landmarks and pose are
    added beside the landmarker's for drawing (``Face.smoothed``; timestamps drive the
    smoothing). The logs hold the landmarker's.
    """

    IMAGE = "image"
    VIDEO = "video"


def _frozen_image(image: np.ndarray | None) -> np.ndarray | None:
    if image is None:
        return None
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ValueError(f"Frame.image must be an (H, W, 3) BGR array, got {type(image).__name__}")
    view = image.view()
    view.setflags(write=False)
    return view


@dataclass(frozen=True)
class Frame:
    """What the chain yields for one picture or video frame.

    index:        1-based frame number in its source (1 for an image), as the logs' ``frame``
    timestamp_ms: presentation time from the start of the source, milliseconds (0 for an image)
    faces:        the faces in this frame, a tuple of Face; empty when there is no face (their
                  ``landmarks`` are the landmarker's; video mode's smoothed ones are beside)
    image:        the (H, W, 3) uint8 BGR picture (read-only view), for drawing
    source:       the file it came from (None for arrays and cameras' unnamed frames)
    stem:         the name its outputs take (``clip`` for clip.mp4; unique within a run)
    detections:   the boxes the detector found in this frame (empty when it did not run)
    time_s:       presentation time on the source file's clock, seconds (for an overlay video)
    reason:       why there is no face (``detector_failed``); "" when there are faces
    elapsed_ms:   time this frame took in the chain (detection, landmarks, guard, smoothing)
    events:       with ``facemap.open(..., analyze=True)``: the expression events (``Event``)
                  known on this frame to have ended; an event is final once its label stayed
                  off longer than the gap the analyzer bridges, so its ``end_frame`` may be a
                  few frames back
    """

    index: int
    timestamp_ms: float
    faces: tuple[Face, ...] = ()
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    source: Path | None = None
    stem: str = ""
    detections: tuple[BBox, ...] = ()
    time_s: float = 0.0
    reason: str = "detector_failed"
    elapsed_ms: float = 0.0
    events: tuple[Event, ...] = ()

    def __post_init__(self) -> None:
        faces = tuple(self.faces)
        for f in faces:
            if not isinstance(f, Face):
                raise TypeError(f"Frame.faces holds Face objects, got {type(f).__name__}")
        object.__setattr__(self, "faces", faces)
        object.__setattr__(self, "detections", tuple(self.detections))
        object.__setattr__(self, "events", tuple(self.events))
        object.__setattr__(self, "image", _frozen_image(self.image))

    @property
    def result(self) -> Face:
        """The first face, or the empty "no face" record (frame-level ``reason``): the row a
        one-face log holds for this frame."""
        if self.faces:
            return self.faces[0]
        return Face.empty(self.index, self.timestamp_ms, reason=self.reason)
