"""``JumpGuard`` compares each face with the last accepted one on pose, translation and
expression, each normalised (the 219 identity parameters would swamp a raw L2), and marks
outliers ``unstable`` / ``jump_threshold``. An outlier never becomes the reference; after
``accept_after`` outliers in a row the new state is accepted (the face really changed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import UsageError, number
from ..types import Face, Status


@dataclass(frozen=True)
class GuardOptions:
    """Jump guard settings: a face whose normalised change from the last accepted one exceeds
    ``jump_threshold`` (0 = off) is marked unstable; ``accept_after`` outliers in a row are
    taken as the face's new state."""

    jump_threshold: float = 1.0
    accept_after: int = 3
    # the normalisers: a change of this much in one step scores 1.0
    pose_deg: float = 25.0
    translation: float = 0.5  # face widths
    expression_rms: float = 0.25

    def __post_init__(self) -> None:
        number(self.jump_threshold, "{jump_threshold}")
        number(self.accept_after, "guard accept_after", whole=True)
        for name in ("pose_deg", "translation", "expression_rms"):
            if not number(getattr(self, name), f"guard {name}") > 0:
                raise UsageError(f"guard {name} must be > 0, got {getattr(self, name)}")
        if not self.jump_threshold >= 0:
            raise UsageError(f"{{jump_threshold}} must be >= 0 (0 = off), got {self.jump_threshold}")
        if self.accept_after < 1:
            raise UsageError(f"guard accept_after must be >= 1, got {self.accept_after}")


class JumpGuard:
    """Marks results that jump too far from the last accepted one as unstable/jump_threshold.

    Score = max of |Δpose| / ``pose_deg``, |Δcentre| / face width / ``translation`` and
    RMS(Δexpression) / ``expression_rms`` (parts missing in a result are skipped; see
    ``GuardOptions``). A threshold of 0 turns the guard off.
    """

    def __init__(
        self, threshold: float | None = None, accept_after: int | None = None, options: GuardOptions = GuardOptions()
    ) -> None:
        given = {"jump_threshold": threshold, "accept_after": accept_after}
        self.options = replace(options, **{k: v for k, v in given.items() if v is not None})  # checked
        self.threshold = float(self.options.jump_threshold)
        self.accept_after = int(self.options.accept_after)
        self.reset()

    def reset(self) -> None:
        """Forget the reference (next face result is accepted)."""
        self.reference: Face | None = None
        self._outliers = 0

    def score(self, result: Face, ref: Face) -> float:
        """The normalised change from ``ref`` to ``result`` (0 = identical)."""
        parts = [0.0]
        if result.pose is not None and ref.pose is not None:
            d = np.subtract(result.pose.as_tuple(), ref.pose.as_tuple())
            parts.append(float(np.abs(d).max()) / self.options.pose_deg)
        if result.has_face and ref.has_face:
            width = max(1.0, float(np.ptp(ref.landmarks[:, 0])))
            shift = np.linalg.norm(result.landmarks.mean(axis=0) - ref.landmarks.mean(axis=0))
            parts.append(float(shift) / width / self.options.translation)
        if result.expression.size and ref.expression.size == result.expression.size:
            rms = float(np.sqrt(np.mean((result.expression - ref.expression) ** 2)))
            parts.append(rms / self.options.expression_rms)
        return max(parts)

    def __call__(self, result: Face) -> Face:
        """``result``, or its unstable/jump_threshold copy when it is an outlier."""
        if not result.has_face or result.status is not Status.OK:
            return result
        if self.threshold <= 0 or self.reference is None:
            self.reference = result
            self._outliers = 0
            return result
        if self.score(result, self.reference) <= self.threshold:
            self.reference = result
            self._outliers = 0
            return result
        self._outliers += 1
        if self._outliers >= self.accept_after:
            self.reference = result
            self._outliers = 0
            return result
        return replace(result, status=Status.UNSTABLE, reason="jump_threshold")
