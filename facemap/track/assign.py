"""Which detection continues which followed face: box overlap, an optimal assignment
(``scipy.optimize.linear_sum_assignment``), and taking back a face lost a moment ago."""

from __future__ import annotations

from typing import Protocol, TypeVar

import numpy as np

from ..types import BBox


class Followed(Protocol):
    """A face being followed, as the matching sees it (``tracker.Track``)."""

    seen: bool  # found on the previous frame
    box: BBox  # the box it was last landmarked in

    def predicted(self) -> BBox:
        """Where its box is expected on this frame."""
        ...


T = TypeVar("T", bound=Followed)


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


def match(
    tracks: list[T], boxes: list[BBox], min_iou: float, reid_distance: float, reid_size_ratio: float
) -> list[T | None]:
    """The track each box continues, or None for a new face, in the order of ``boxes``: first by
    overlap with the faces seen on the previous frame (each moved on by its last shift), then,
    for the boxes left, a face lost earlier, or one that moved too far for the overlap (fast
    motion, --every N), found within ``reid_distance`` of its widths of where it was last seen,
    at a size within ``reid_size_ratio`` of its size then."""
    owners: list[T | None] = [None] * len(boxes)
    active = [t for t in tracks if t.seen]
    for r, c in assign(iou_matrix([t.predicted() for t in active], boxes), min_iou):
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
                if dist <= reid_distance and 1 / reid_size_ratio <= ratio <= reid_size_ratio:
                    score[r, c] = 1.0 + (1.0 - dist / reid_distance)
        for r, c in assign(score, 1.0):
            owners[free[c]] = candidates[r]
    return owners
