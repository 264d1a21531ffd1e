"""``JumpGuard`` compares each face with the last accepted one on pose, translation and
expression, each normalised (the 219 identity parameters would swamp a raw L2), and marks
outliers ``unstable`` / ``jump_threshold``. An outlier never becomes the reference; after
``accept_after`` outliers in a row the new state is accepted (the face really changed).

``params_l2`` is the original tool's test instead (its ``--jump-threshold``, default 25.0 there):
the L2 distance between the raw 265-parameter vectors of consecutive frames. Its unit has no
fixed ratio to the normalised score (the identity parameters dominate it), so it is kept as its
own measure, not converted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import UsageError, number
from ..types import Face, Status

# jump_threshold values from here up are the original tool's unit (raw-parameter L2), not ours:
# on our scale they would never fire (10 = a 250-degree turn or 5 face widths in one step).
ORIGINAL_RANGE = 10.0


@dataclass(frozen=True)
class GuardOptions:
    """Jump guard settings: a face whose normalised change from the last accepted one exceeds
    ``jump_threshold`` (0 = off; below ``ORIGINAL_RANGE``) is marked unstable; ``accept_after``
    outliers in a row are taken as the face's new state. ``params_l2`` > 0 adds the original
    tool's test: raw parameters more than that (L2) from the previous frame's."""

    jump_threshold: float = 1.0
    accept_after: int = 3
    # the original tool's measure (0 = not used): L2 of the raw parameter vectors of consecutive
    # frames, for a landmarker that gives them (FaceMap)
    params_l2: float = 0.0
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
        if not number(self.params_l2, "guard params_l2") >= 0:
            raise UsageError(f"guard params_l2 must be >= 0 (0 = not used), got {self.params_l2}")
        if self.jump_threshold >= ORIGINAL_RANGE:
            raise UsageError(
                f"{{jump_threshold}} {self.jump_threshold:g} would never fire (1.0 is a {self.pose_deg:g}-degree "
                f"turn, half a face width or an expression change of RMS {self.expression_rms:g}); below "
                f"{ORIGINAL_RANGE:g}, or 0 for off; the original tool's unit (L2 distance of the raw 3DMM "
                f"parameters) is GuardOptions(params_l2={self.jump_threshold:g})"
            )


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
        self._previous_params: np.ndarray | None = None

    def params_jump(self, result: Face) -> bool:
        """The original tool's test: the raw parameters moved more than ``params_l2`` (L2) from
        the previous frame's, whatever that frame's status (as the original did)."""
        previous, self._previous_params = self._previous_params, result.params
        if self.options.params_l2 <= 0 or previous is None or previous.size != result.params.size:
            return False
        return bool(result.params.size) and float(np.linalg.norm(result.params - previous)) > self.options.params_l2

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
        if not result.has_face:
            return result
        jumped = self.params_jump(result)
        if result.status is not Status.OK:
            return result
        if jumped:
            return replace(result, status=Status.UNSTABLE, reason="jump_threshold")
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
