"""Which detection continues which followed face: box overlap, an optimal assignment
(``scipy.optimize.linear_sum_assignment``), and taking back a face lost a moment ago."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..types import BBox

if TYPE_CHECKING:
    from .tracker import Track, TrackOptions


def iou_matrix(a: list[BBox], b: list[BBox]) -> np.ndarray:
    """(len(a), len(b)) IoU of every pair."""
    return np.array([[x.iou(y) for y in b] for x in a], dtype=np.float64).reshape(len(a), len(b))


def assign(score: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """Pairs (row, col) of the assignment maximising the total score, each pair at least ``minimum``."""
    if score.size == 0:
        return []
    from scipy.optimize import linear_sum_assignment

    score = np.where(score >= minimum, score, 0.0)  # a pair below the minimum must not steal a valid one
    rows, cols = linear_sum_assignment(-score)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if score[r, c] >= minimum]


def match(tracks: list[Track], boxes: list[BBox], opts: TrackOptions) -> list[Track | None]:
    """The track each box continues, or None for a new face, in the order of ``boxes``: first by
    overlap with the faces seen on the previous frame (each moved on by its last shift), then,
    for the boxes left, a face lost earlier, or one that moved too far for the overlap (fast
    motion, --every N), found near where it was last seen at a similar size."""
    owners: list[Track | None] = [None] * len(boxes)
    active = [t for t in tracks if t.seen]
    for r, c in assign(iou_matrix([t.predicted() for t in active], boxes), opts.match_iou):
        owners[c] = active[r]
    taken = {id(o) for o in owners if o is not None}
    candidates = [t for t in tracks if id(t) not in taken]
    free = [i for i, o in enumerate(owners) if o is None]
    if candidates and free:
        score = np.zeros((len(candidates), len(free)))
        for r, t in enumerate(candidates):
            for c, i in enumerate(free):
                b = boxes[i]
                dist = np.hypot(b.center[0] - t.box.center[0], b.center[1] - t.box.center[1]) / max(t.box.width, 1.0)
                ratio = max(b.width, 1.0) / max(t.box.width, 1.0)
                if dist <= opts.reid_distance and 1 / opts.reid_size_ratio <= ratio <= opts.reid_size_ratio:
                    score[r, c] = 1.0 + (1.0 - dist / opts.reid_distance)
        for r, c in assign(score, 1.0):
            owners[free[c]] = candidates[r]
    return owners
