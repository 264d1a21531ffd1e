"""Video mode's stages after the landmarker: the ROI tracker, the jump guard, the smoother."""

from __future__ import annotations

from .guard import JumpGuard
from .smooth import SMOOTH_PRESETS, LandmarkSmoother, OneEuroFilter, SmoothParams, smooth_params
from .tracker import FaceTracker, TrackOptions, roi_from_landmarks, sanity

__all__ = [
    "SMOOTH_PRESETS",
    "FaceTracker",
    "JumpGuard",
    "LandmarkSmoother",
    "OneEuroFilter",
    "SmoothParams",
    "TrackOptions",
    "roi_from_landmarks",
    "sanity",
    "smooth_params",
]
