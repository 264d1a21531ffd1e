"""Video mode's stages after the landmarker: the tracker (with each face's jump guard and
smoother), and the assignment of detections to faces."""

from __future__ import annotations

from .guard import GuardOptions, JumpGuard
from .smooth import (
    SMOOTH_PRESETS,
    LandmarkSmoother,
    OneEuroFilter,
    SmoothOptions,
    SmoothParams,
    smooth_params,
)
from .tracker import FaceTracker, Track, TrackOptions, next_roi, roi_from_landmarks, sanity

__all__ = [
    "SMOOTH_PRESETS",
    "FaceTracker",
    "GuardOptions",
    "JumpGuard",
    "LandmarkSmoother",
    "OneEuroFilter",
    "SmoothOptions",
    "SmoothParams",
    "Track",
    "TrackOptions",
    "next_roi",
    "roi_from_landmarks",
    "sanity",
    "smooth_params",
]
