"""Fake landmark backends for the video tests: they follow a real face, behind the Landmarker
protocol, without a model.

``RefLandmarker`` answers with dlib's 68 points for the frame being processed
(../shared/data/ref/<clip>_dlib_landmarks.csv) when the given box is on that face; on any other
box it does what a landmark model does on a non-face: it fits a face-shaped template into the
box. So a tracker that drifts off the face is fed plausible garbage, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facemap.io.records import read_landmarks
from facemap.types import BBox, Face, Pose, Status
from tests.standins import DATA

REF = DATA / "ref"


def ref_landmarks(stem: str) -> dict[int, np.ndarray]:
    """dlib's landmarks of clip ``stem``: frame (1-based) -> (68, 2) pixels."""
    lg = read_landmarks(REF / f"{stem}_dlib_landmarks.csv")
    return {int(f): lm for f, lm in zip(lg.frames, lg.landmarks, strict=True)}


def template(refs: dict[int, np.ndarray]) -> np.ndarray:
    """A (68, 2) face shape in the unit box [0, 1]^2 (median of the reference shapes)."""
    shapes = []
    for lm in list(refs.values())[:50]:
        b = BBox.from_points(lm)
        shapes.append((lm - [b.x0, b.y0]) / [b.width, b.height])
    return np.median(np.stack(shapes), axis=0)


@dataclass
class RefLandmarker:
    """Landmarker that returns the reference landmarks of the current frame (plus optional
    Gaussian noise, pixels) when the box is on the reference face."""

    stem: str
    noise_px: float = 0.0
    seed: int = 0
    name: str = "ref"
    calls: int = 0
    refs: dict[int, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.refs = ref_landmarks(self.stem)
        self.shape = template(self.refs)
        self.rng = np.random.default_rng(self.seed)

    def landmark(self, image_bgr, faces, frame=1, timestamp_ms=0.0):
        """One Face per box (Landmarker protocol)."""
        out = []
        for box in faces:
            self.calls += 1
            ref = self.refs.get(frame)
            if ref is not None and _on_face(box, ref):
                lm = ref.copy()
            else:  # not the face: a face-shaped answer filling the box
                inner = box.expand(-0.05)
                lm = self.shape * [inner.width, inner.height] + [inner.x0, inner.y0]
            if self.noise_px:
                lm = lm + self.rng.normal(0.0, self.noise_px, lm.shape)
            out.append(
                Face(frame, timestamp_ms, Status.OK, "", box, lm, Pose(0.0, 0.0, 0.0))
            )
        return out


def _on_face(box: BBox, ref: np.ndarray) -> bool:
    """True when the crop around ``box`` holds the reference face (centre inside, similar size),
    so a landmark model would find that face in it."""
    rb = BBox.from_points(ref)
    cx, cy = rb.center
    crop = box.expand(0.1)
    ratio = np.sqrt(rb.area / box.area)
    return 0.5 <= ratio <= 2.0 and crop.x0 <= cx <= crop.x1 and crop.y0 <= cy <= crop.y1


@dataclass
class PatternLandmarker:
    """Synthetic face that moves on a known path: landmarks = template * size + centre(t).

    ``path(frame) -> (cx, cy, size)``; the box argument only gates it: a box that does not
    contain the centre gets a template fitted into the box (as RefLandmarker), or with
    ``miss="nan"`` a non-finite, unstable answer.
    """

    path: object
    shape: np.ndarray
    noise_px: float = 0.0
    seed: int = 0
    miss: str = "fill"
    name: str = "pattern"

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def truth(self, frame: int) -> np.ndarray:
        """The noiseless landmarks of ``frame``."""
        cx, cy, size = self.path(frame)
        return (self.shape - 0.5) * size + [cx, cy]

    def landmark(self, image_bgr, faces, frame=1, timestamp_ms=0.0):
        """One Face per box (Landmarker protocol)."""
        out = []
        for box in faces:
            cx, cy, _ = self.path(frame)
            if box.x0 <= cx <= box.x1 and box.y0 <= cy <= box.y1:
                lm = self.truth(frame)
            elif self.miss == "nan":
                out.append(Face(frame, timestamp_ms, Status.UNSTABLE, "non_finite_output", box))
                continue
            else:
                lm = self.shape * [box.width, box.height] + [box.x0, box.y0]
            if self.noise_px:
                lm = lm + self.rng.normal(0.0, self.noise_px, lm.shape)
            out.append(Face(frame, timestamp_ms, Status.OK, "", box, lm, Pose(0.0, 0.0, 0.0)))
        return out


def lag_behind_reading(run, clip: str, frames: int) -> list[int]:
    """How many frames had been read from ``../shared/data/videos/<clip>`` when each frame
    ``run(frames_iterable)`` yields came out, minus that frame's number: 0 for a frame given as
    soon as it is read, k for one held behind k newer frames."""
    from facemap.io.video import read_frames

    read: list[int] = []

    def counted():
        for vf in read_frames(DATA / "videos" / clip, max_frames=frames):
            read.append(vf.index)
            yield vf

    return [len(read) - f.index for f in run(counted())]


def encode_clip(src, dst, frames: int, codec: str = "libx264", fmt: str | None = None, size: int = 128,
                options: dict | None = None, first: int = 0, container_options: dict | None = None):
    """The first ``frames`` frames of ``src`` as a ``size`` x ``size`` clip at 25 fps in ``dst``
    (``codec``, container ``fmt``, encoder ``options``), its frame n at pts ``n + first``
    (a negative ``first``: frames before the start, an MP4's edit list). Returns ``dst``."""
    from fractions import Fraction

    import av

    with av.open(str(src)) as i, av.open(str(dst), "w", format=fmt, options=container_options or {}) as o:
        vs = o.add_stream(codec, rate=25, options=options or {})
        vs.width, vs.height, vs.pix_fmt = size, size, "yuv420p"
        for n, frame in enumerate(i.decode(video=0)):
            if n == frames:
                break
            frame = frame.reformat(width=size, height=size, format="yuv420p")
            frame.pts, frame.time_base = n + first, Fraction(1, 25)
            for pkt in vs.encode(frame):
                o.mux(pkt)
        for pkt in vs.encode(None):
            o.mux(pkt)
    return dst
