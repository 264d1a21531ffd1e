"""Per-frame face features, vectorised over N frames (no per-frame Python loop).

Two sources, one set of feature definitions:

- ``landmark_features(landmarks)``: (N, 68, 2) image pixels (iBUG-68 order). Roll is removed
  with the eye line, lengths are divided by the inter-ocular distance (outer eye corners 36-45),
  and yaw/pitch come from a weak-perspective fit of a generic 3D face (vectorised POS). These
  features drift with head pose (labels.py undoes the first-order foreshortening).
- ``canonical_features(vertices, pose_deg)``: the 3DMM's canonical landmarks (N, 68, 3), i.e. the
  face BEFORE rotation, so the shape features do not move with head pose; pose comes from params.

Shape features are dimensionless: ratios (EAR, MAR) or lengths in inter-ocular distances (IOD).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..pose2d import estimate_pose_2d

# Shape features that are a height over a width (foreshortened by cos(pitch) / cos(yaw)).
HEIGHT_OVER_WIDTH = [
    "ear_left",
    "ear_right",
    "ear",
    "mar",
    "lip_corner_lift",
    "brow_raise",
    "jaw_open",
]
SHAPE_FEATURES = [
    "ear_left",  # eye aspect ratio, subject's left eye (points 42-47)
    "ear_right",  # eye aspect ratio, subject's right eye (points 36-41)
    "ear",  # mean of the two
    "mar",  # inner-lip mouth aspect ratio (points 60-67)
    "mouth_width",  # lip corners 48-54, IOD units
    "lip_corner_lift",  # how far the corners sit above the inner-lip centre line, IOD units
    "brow_raise",  # mean brow height above the eye centres, IOD units
    "jaw_open",  # nose base (33) to chin (8), IOD units
]
POSE_FEATURES = ["pitch_deg", "yaw_deg", "roll_deg"]
FEATURE_COLUMNS = SHAPE_FEATURES + POSE_FEATURES

_HEIGHT_POINTS = np.array([8, 33, 48, 54, 62, 66, *range(17, 27), *range(36, 48)])


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)


def eye_aspect_ratio(eye: np.ndarray) -> np.ndarray:
    """EAR (Soukupova & Cech 2016) of (N, 6, 2+) eye points p1..p6: (|p2-p6|+|p3-p5|) / 2|p1-p4|."""
    vertical = _dist(eye[:, 1], eye[:, 5]) + _dist(eye[:, 2], eye[:, 4])
    with np.errstate(divide="ignore", invalid="ignore"):
        return vertical / (2.0 * _dist(eye[:, 0], eye[:, 3]))


def shape_features(points: np.ndarray) -> dict[str, np.ndarray]:
    """The shape features of (N, 68, 2) points (y down); dict of (N,) arrays.

    Lengths are divided by the inter-ocular distance; heights are measured across the eye line
    (roll removed).
    """
    eye_vec = points[:, 45] - points[:, 36]
    iod = np.linalg.norm(eye_vec, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c, s = (eye_vec / iod[:, None]).T
        # height across the eye line, in IOD (the de-rolled y), of the points that need one
        idx = _HEIGHT_POINTS
        h_sub = (c[:, None] * points[:, idx, 1] - s[:, None] * points[:, idx, 0]) / iod[:, None]
        h = dict(zip(idx.tolist(), h_sub.T, strict=True))
        ear_r = eye_aspect_ratio(points[:, 36:42])
        ear_l = eye_aspect_ratio(points[:, 42:48])
        gap = (
            _dist(points[:, 61], points[:, 67])
            + _dist(points[:, 62], points[:, 66])
            + _dist(points[:, 63], points[:, 65])
        ) / 3.0
        mar = gap / _dist(points[:, 60], points[:, 64])
        width = _dist(points[:, 48], points[:, 54]) / iod
    lip_mid = (h[62] + h[66]) / 2.0
    eyes = np.mean([h[i] for i in range(36, 48)], axis=0)
    brows = np.mean([h[i] for i in range(17, 27)], axis=0)
    return {
        "ear_left": ear_l,
        "ear_right": ear_r,
        "ear": (ear_l + ear_r) / 2.0,
        "mar": mar,
        "mouth_width": width,
        "lip_corner_lift": lip_mid - (h[48] + h[54]) / 2.0,
        "brow_raise": eyes - brows,
        "jaw_open": h[8] - h[33],
    }


def landmark_features(landmarks: np.ndarray) -> pd.DataFrame:
    """Features of (N, 68, 2) image-pixel landmarks: shape features plus 2D-estimated pose."""
    pts = np.asarray(landmarks, dtype=np.float64)
    feats = shape_features(pts)
    pose = estimate_pose_2d(pts)
    eye_vec = pts[:, 45] - pts[:, 36]
    feats["pitch_deg"] = pose[:, 0]
    feats["yaw_deg"] = pose[:, 1]
    feats["roll_deg"] = np.degrees(np.arctan2(eye_vec[:, 1], eye_vec[:, 0]))
    return pd.DataFrame(feats, columns=FEATURE_COLUMNS)


def canonical_features(vertices_canonical: np.ndarray, pose_deg: np.ndarray) -> pd.DataFrame:
    """Pose-free features: shape from the (N, 68, 3) canonical 3DMM landmarks (y up), pose from
    the (N, 3) params pose (pitch, yaw, roll degrees)."""
    v = np.asarray(vertices_canonical, dtype=np.float64)
    frontal = np.stack([v[..., 0], -v[..., 1]], axis=-1)  # orthographic front view, y down
    feats = shape_features(frontal)
    pose = np.asarray(pose_deg, dtype=np.float64).reshape(-1, 3)
    feats["pitch_deg"], feats["yaw_deg"], feats["roll_deg"] = pose[:, 0], pose[:, 1], pose[:, 2]
    return pd.DataFrame(feats, columns=FEATURE_COLUMNS)
