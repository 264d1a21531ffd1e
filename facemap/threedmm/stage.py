"""The fit as a stage of the chain: faces with 68 points and no parameters get FaceMap's 265.

A face track's identity is fitted on its first ``settle_frames`` frames and fixed after that, so
every later frame costs one pose-and-expression fit (from scratch: with the earlier solver a
start from the previous frame converged worse on the 34 shared clips, 0.026 against 0.022). How the first frames get theirs depends on the source:

* a video file (``push`` / ``finish``): the frames are held until every track in them is fitted.
  A track's first frames wait until it has ``settle_frames`` of them (or the oldest frame held
  has waited ``settle_frames`` frames, or the frames end) and are fitted together: they settle
  the track's identity, so **every frame of a track carries the same identity**. After that
  its frames wait in batches of ``BATCH_FRAMES`` (8), fitted in one call with that identity
  (a frame of settled tracks waits at most 8 frames, the track lost or not),
  each frame's pose and expression its own: the same numbers as a frame at a time up to
  rounding (the 34 shared clips' logs byte-identical but for one raw-log cell of two clips,
  1e-8 apart) for a quarter of the CPU. At most ``settle_frames`` frames are held; they come
  out in order.
* a live camera (``stage(faces)``): no frame waits; the identity is refitted on the track's
  frames so far at frames 1, 2, 4, ... up to ``settle_frames`` and fixed after that, so the
  first frames of a track carry provisional identities.

A picture stands alone: its faces are fitted whole, identity included.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from ..types import N_ID, N_LANDMARKS, Face
from .decode import expression_coefficients
from .fit import Fit, Fitter

MIN_SETTLE = 4  # the fewest frames a video file's track settles on (size_hold)
SETTLE_FRAMES = 32  # frames of a track its identity is fitted on, then fixed
FRAME_ROUNDS = 12  # rounds of a frame's pose-and-expression fit once the identity is fixed
# a live frame's fit starts from its face's last expression, and takes this many rounds (the
# point error of FRAME_ROUNDS from no expression, in about half the time: bench/bench_fit.py)
WARM_ROUNDS = 6
SETTLE_ROUNDS = 96  # rounds of the fit that settles a track's identity (once per track)
# A settled track's frames of a video file are fitted this many at a time: 2.2 ms a frame of CPU
# against 8.7 one at a time (1.2 at 32), while frames come out at most 7 behind the reading
BATCH_FRAMES = 8


@dataclass
class _Held:
    """One frame's faces waiting for their tracks' identities; ``pending`` of them still wait."""

    faces: list[Face]
    pending: int = 0


@dataclass
class _Track:
    points: list[np.ndarray] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    waiting: list[tuple[_Held, int]] = field(default_factory=list)  # held frames' faces, in order
    identity: np.ndarray | None = None
    expression: np.ndarray | None = None  # (39,) in [0, 1], its last live frame's (a warm start)


def fittable(face: Face) -> bool:
    """A face the fit gives parameters to: 68 finite points, a box with an area (the fit's crop
    needs one), no parameters of its own."""
    return (
        face.params.size == 0
        and face.box is not None
        and face.box.x1 > face.box.x0
        and face.box.y1 > face.box.y0
        and face.landmarks.shape == (N_LANDMARKS, 2)
        and bool(np.isfinite(face.landmarks).all())
    )


class FitStage:
    """Per run: ``stage(faces, video)`` (a picture, a live camera) or ``push(faces)`` /
    ``finish()`` (a video file) -> the faces with ``params`` and ``expression`` filled."""

    def __init__(self, fitter: Fitter, settle_frames: int = SETTLE_FRAMES) -> None:
        if not isinstance(settle_frames, int) or settle_frames < 1:
            raise ValueError(f"settle_frames must be a whole number >= 1, got {settle_frames!r}")
        self.fitter = fitter  # built once per FaceMap (its decoder and measurer with it)
        self.settle_frames = settle_frames
        self._tracks: dict[int, _Track] = {}
        self._held: deque[_Held] = deque()

    # ---- a video file: frames held until their tracks' identities settle ---------------------
    def size_hold(self, frame_bytes: int, budget: int) -> None:
        """Before the first frame is pushed: hold at most ``budget`` bytes of frames of
        ``frame_bytes`` each (``settle_frames`` lowered to fit, never under ``MIN_SETTLE``);
        later calls change nothing."""
        if not self._held and not self._tracks and frame_bytes > 0:
            self.settle_frames = max(MIN_SETTLE, min(self.settle_frames, budget // frame_bytes))

    def _limit(self, track: _Track) -> int:
        """How many of a track's frames wait to be fitted together: ``settle_frames`` until its
        identity settles, then ``BATCH_FRAMES`` (never more than ``settle_frames``)."""
        return self.settle_frames if track.identity is None else min(BATCH_FRAMES, self.settle_frames)

    def push(self, faces: tuple[Face, ...]) -> list[tuple[Face, ...]]:
        """Take one frame's faces; give back the faces of the oldest frames now fitted, in order
        (none while a track in them still waits; at most ``settle_frames`` frames wait)."""
        held = _Held(list(faces))
        self._held.append(held)
        for i, face in enumerate(faces):
            if not fittable(face):
                continue
            track = self._tracks.setdefault(face.id, _Track())
            track.points.append(np.asarray(face.landmarks, dtype=np.float64))
            track.boxes.append(np.array(face.box.as_tuple(), dtype=np.float64))
            track.waiting.append((held, i))
            held.pending += 1
            if len(track.points) == self._limit(track):
                self._fit_waiting(track)
        while self._held and self._waited_enough(self._held[0]):
            oldest = self._held[0]  # its tracks are fitted on what they have
            for face in oldest.faces:
                track = self._tracks.get(face.id)
                if track is not None and track.waiting and fittable(face):
                    self._fit_waiting(track)
        return self._release()

    def _waited_enough(self, oldest: _Held) -> bool:
        """The oldest frame held still waits, and has waited as long as its tracks may (their
        ``_limit``: a track lost before its batch filled, or seen every other frame, does not
        hold the frames after it for long)."""
        if not oldest.pending:
            return False
        limit = max(self._limit(self._tracks[f.id]) for f in oldest.faces if fittable(f))
        return len(self._held) >= limit

    def finish(self) -> list[tuple[Face, ...]]:
        """The end of the frames: every track's waiting frames are fitted on what it has, and
        all held frames come out, in order."""
        for track in self._tracks.values():
            if track.waiting:
                self._fit_waiting(track)
        return self._release()

    def _fit_waiting(self, track: _Track) -> None:
        """Fit the track's waiting frames in one batched call, and give their held faces their
        rows. The first time, they are fitted as one track and its identity is theirs from now
        on; after that, with that identity fixed, each frame's pose and expression are its own
        (the same as a frame at a time up to rounding, at a quarter of the cost: the batch
        shares numpy's per-call work)."""
        pts, boxes = np.stack(track.points), np.stack(track.boxes)
        if track.identity is None:
            fit = self.fitter.fit(pts, boxes, rounds=SETTLE_ROUNDS)
            track.identity = fit.params[0, :N_ID].copy()
        else:
            fit = self.fitter.fit(pts, boxes, identity=track.identity, rounds=FRAME_ROUNDS)
        for k, (held, i) in enumerate(track.waiting):
            held.faces[i] = self._with_params(held.faces[i], fit, k)
            held.pending -= 1
        track.points, track.boxes, track.waiting = [], [], []

    def _release(self) -> list[tuple[Face, ...]]:
        out = []
        while self._held and not self._held[0].pending:
            out.append(tuple(self._held.popleft().faces))
        return out

    # ---- a picture or a live camera: nothing waits ------------------------------------------
    def __call__(self, faces: tuple[Face, ...], video: bool = True) -> tuple[Face, ...]:
        """Fit the frame's fittable faces now; the others pass unchanged."""
        todo = [i for i, f in enumerate(faces) if fittable(f)]
        if not todo:
            return faces
        out = list(faces)
        if not video:
            pts = np.stack([faces[i].landmarks for i in todo])
            boxes = np.array([faces[i].box.as_tuple() for i in todo], dtype=np.float64)
            fit = self.fitter.fit(pts, boxes, tracks=np.arange(len(todo)))
            for k, i in enumerate(todo):
                out[i] = self._with_params(faces[i], fit, k)
            return tuple(out)
        for i in todo:
            face = faces[i]
            track = self._tracks.setdefault(face.id, _Track())
            if track.identity is None or len(track.points) < self.settle_frames:
                track.points.append(np.asarray(face.landmarks, dtype=np.float64))
                track.boxes.append(np.array(face.box.as_tuple(), dtype=np.float64))
                n = len(track.points)
                if n & (n - 1) == 0 or n == self.settle_frames:  # 1, 2, 4, ... and the last
                    whole = self.fitter.fit(np.stack(track.points), np.stack(track.boxes))
                    track.identity = whole.params[-1, :N_ID].copy()
                    track.expression = self._expression_of(whole.params[-1])
                    out[i] = self._with_params(face, whole, -1)
                    continue
            out[i] = self._frame_fit(face, track)
        return tuple(out)

    def _frame_fit(self, face: Face, track: _Track) -> Face:
        """A live frame of a settled track: pose and expression, from the track's last expression."""
        box = np.array(face.box.as_tuple(), dtype=np.float64)
        warm = track.expression is not None
        fit = self.fitter.fit(
            face.landmarks[None],
            box[None],
            identity=track.identity,
            rounds=WARM_ROUNDS if warm else FRAME_ROUNDS,
            expression=track.expression[None] if warm else None,
        )
        track.expression = self._expression_of(fit.params[0])
        return self._with_params(face, fit, 0)

    @staticmethod
    def _expression_of(params: np.ndarray) -> np.ndarray | None:
        """The fit's expression coefficients in [0, 1] (its warm start), None for a failed fit."""
        return expression_coefficients(params[None])[0] if np.isfinite(params).all() else None

    @staticmethod
    def _with_params(face: Face, fit: Fit, row: int) -> Face:
        """The face with row ``row`` of ``fit``: its parameters, the 39 coefficients and the
        named measures."""
        params = fit.params[row]
        if not np.isfinite(params).all():
            return face
        named = {k: float(v[row]) for k, v in fit.measures.items()}
        return replace(
            face,
            params=params,
            expression=expression_coefficients(params[None])[0],
            expression_measures=named,
        )
