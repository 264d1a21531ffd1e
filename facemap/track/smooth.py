"""Temporal smoothing: the One Euro filter (Casiez, Roussel, Vogel, CHI 2012), vectorised.

The filter is a first-order low-pass whose cutoff rises with speed: still faces get a low
cutoff (jitter removed), moving faces a high one (little lag). It is driven by the frames'
timestamps, so variable frame rates and ``--every`` are handled. ``LandmarkSmoother`` runs one
filter over a vector of the 136 landmark coordinates and the 3 pose angles of each frame,
with landmarks expressed in face widths and angles in units of ``POSE_UNIT_DEG`` so one pair
(min_cutoff, beta) fits faces of any size.

Smoothing is for drawing: it removes jitter and also damps fast real motion (blinks, lip
motion), so the smoothed points travel beside the landmarker's (``Face.smoothed``) and never
replace them; the logs and the analyzer see what the landmarker returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..errors import UsageError, number
from ..types import Face, Pose

POSE_UNIT_DEG = 30.0
DEFAULT_DT_S = 1.0 / 30.0


@dataclass(frozen=True)
class SmoothParams:
    """One Euro settings: min_cutoff (Hz), beta (per unit/s of speed), d_cutoff (Hz)."""

    min_cutoff: float
    beta: float
    d_cutoff: float = 1.0


# Presets, from light to strong. Units: landmarks in face widths, angles in 30-degree units.
# Chosen on dlib's landmarks of the lp_* clips (real detector jitter): frame-to-frame motion on
# still stretches of lp_d19 drops to 0.48 / 0.41 / 0.33 of the raw motion, and the 95th
# percentile lag on lp_d12's fast head turns is 0.04 / 0.06 / 0.09 face widths.
SMOOTH_PRESETS: dict[str, SmoothParams | None] = {
    "off": None,
    "low": SmoothParams(min_cutoff=1.5, beta=40.0),
    "medium": SmoothParams(min_cutoff=1.0, beta=20.0),
    "high": SmoothParams(min_cutoff=0.5, beta=10.0),
}


DEFAULT_SMOOTH = "medium"


@dataclass(frozen=True)
class SmoothOptions:
    """Smoothing of landmarks and pose in video mode: a preset (off, low, medium, high) with
    optional One Euro overrides (``min_cutoff`` in Hz, ``beta``)."""

    preset: str = DEFAULT_SMOOTH
    min_cutoff: float | None = None
    beta: float | None = None

    def __post_init__(self) -> None:
        self.params()  # the checks

    def params(self) -> SmoothParams | None:
        """The One Euro settings, or None when smoothing is off."""
        return smooth_params(self.preset, self.min_cutoff, self.beta)


def smooth_params(
    level: str, min_cutoff: float | None = None, beta: float | None = None
) -> SmoothParams | None:
    """The settings for smoothing preset ``level`` with optional overrides; None means off."""
    if level not in SMOOTH_PRESETS:
        raise UsageError(f"{{smooth}} {level!r} is unknown; choose one of {', '.join(SMOOTH_PRESETS)}")
    base = SMOOTH_PRESETS[level]
    if base is None:
        return None
    if min_cutoff is not None:
        if not number(min_cutoff, "{min_cutoff}", unit=" of Hz") > 0:
            raise UsageError(f"{{min_cutoff}} must be > 0 Hz, got {min_cutoff}")
        base = replace(base, min_cutoff=float(min_cutoff))
    if beta is not None:
        if not number(beta, "{beta}") >= 0:
            raise UsageError(f"{{beta}} must be >= 0, got {beta}")
        base = replace(base, beta=float(beta))
    return base


def _alpha(cutoff_hz: np.ndarray | float, dt_s: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """A One Euro filter over a vector of D values; ``__call__(x, t_s)`` -> filtered x."""

    def __init__(self, params: SmoothParams) -> None:
        self.params = params
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        """Forget the past: the next value passes through unchanged."""
        self._x = self._dx = self._t = None

    def __call__(self, x: np.ndarray, t_s: float) -> np.ndarray:
        """Filter one sample (D,) taken at time ``t_s`` seconds."""
        x = np.asarray(x, dtype=np.float64)
        if not np.isfinite(x).all():
            self.reset()  # a broken sample is passed on, never remembered
            return x.copy()
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t_s
            return x.copy()
        dt = t_s - self._t if self._t is not None else DEFAULT_DT_S
        if not dt > 0:
            dt = DEFAULT_DT_S
        p = self.params
        dx = (x - self._x) / dt
        a_d = _alpha(p.d_cutoff, dt)
        dx_hat = self._dx + a_d * (dx - self._dx)
        cutoff = p.min_cutoff + p.beta * np.abs(dx_hat)
        a = _alpha(cutoff, dt)
        x_hat = self._x + a * (x - self._x)
        self._x, self._dx, self._t = x_hat, dx_hat, t_s
        return x_hat.copy()


class LandmarkSmoother:
    """Smooths the landmarks (68, 2) and pose of successive Faces of one face, for drawing.

    ``__call__(result)`` returns a copy of ``result`` with the smoothed landmarks and pose set
    beside the landmarker's (``Face.smoothed``, ``Face.smoothed_pose``); ``landmarks``, ``pose``,
    params, box and status are unchanged, so the logs hold what the landmarker returned.
    Results without landmarks pass through and do not touch the state; call ``reset()`` when the
    face is re-acquired (new detection, scene cut).
    """

    def __init__(self, params: SmoothParams) -> None:
        self.filter = OneEuroFilter(params)
        self._scale: float | None = None

    def reset(self) -> None:
        """Start over at the next face."""
        self.filter.reset()
        self._scale = None

    def __call__(self, result: Face) -> Face:
        """``result`` with ``smoothed`` / ``smoothed_pose`` set (unchanged when it has no landmarks)."""
        if not result.has_face or not np.isfinite(result.landmarks).all():
            return result
        lm = result.landmarks
        if self._scale is None:
            w = float(np.ptp(lm[:, 0]))
            self._scale = w if w > 1.0 else 1.0
        has_pose = result.pose is not None
        pose = np.array(result.pose.as_tuple() if has_pose else (0.0, 0.0, 0.0))
        x = np.concatenate([lm.reshape(-1) / self._scale, pose / POSE_UNIT_DEG])
        y = self.filter(x, result.timestamp_ms / 1000.0)
        n = lm.size
        new_lm = (y[:n] * self._scale).reshape(lm.shape)
        new_pose = Pose(*map(float, y[n:] * POSE_UNIT_DEG)) if has_pose else None
        return replace(result, smoothed=new_lm, smoothed_pose=new_pose)
