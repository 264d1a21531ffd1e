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

# A coarse generic face for the 2D pose fit, in IOD units: x right, y down, z away from the camera
# (so the nose, nearer the camera, has negative z). Rigid points only: eye corners, nose, upper
# jaw line; hand-made from typical adult proportions, accurate to a few degrees, which is all
# looking-away needs (it is judged against the person's own baseline pose).
_GENERIC_IDX = np.array([0, 2, 14, 16, 27, 30, 31, 33, 35, 36, 39, 42, 45])
_GENERIC_3D = np.array(
    [
        [-0.80, 0.05, 0.55],  # 0 jaw top right
        [-0.76, 0.45, 0.50],  # 2
        [0.76, 0.45, 0.50],  # 14
        [0.80, 0.05, 0.55],  # 16 jaw top left
        [0.00, -0.03, -0.08],  # 27 nose bridge
        [0.00, 0.38, -0.33],  # 30 nose tip
        [-0.13, 0.46, -0.16],  # 31 nostril
        [0.00, 0.48, -0.22],  # 33 nose base
        [0.13, 0.46, -0.16],  # 35 nostril
        [-0.50, 0.00, 0.00],  # 36 outer eye corner
        [-0.18, 0.01, -0.02],  # 39 inner eye corner
        [0.18, 0.01, -0.02],  # 42
        [0.50, 0.00, 0.00],  # 45
    ]
)


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


def estimate_pose_2d(points: np.ndarray) -> np.ndarray:
    """(N, 3) pitch, yaw, roll in degrees from (N, 68, 2) image points.

    A weak-perspective (scaled orthographic) fit of a generic 3D face, solved for all frames at
    once: least-squares affine camera, then the nearest rotation (closed-form polar decomposition). Signs follow
    FaceMap's pose parameters: yaw positive when the nose turns towards the image's right, pitch
    positive when the face tilts up, roll positive clockwise in the image (y down).
    """
    n = points.shape[0]
    out = np.full((n, 3), np.nan)
    sub = points[:, _GENERIC_IDX]  # (N, K, 2): index the few points first, then the frames
    ok = np.isfinite(sub).all(axis=(1, 2))
    if not ok.any():
        return out
    model = _GENERIC_3D - _GENERIC_3D.mean(axis=0)
    obs = sub if ok.all() else sub[ok]
    obs = obs - obs.mean(axis=1, keepdims=True)
    pinv = model @ np.linalg.inv(model.T @ model)  # (K, 3)
    affine = obs.transpose(0, 2, 1) @ pinv  # (M, 2, 3): obs ~ model @ affine.T
    # Nearest matrix with orthonormal rows, (A A^T)^(-1/2) A, in closed form for 2x2 blocks.
    gram = affine @ affine.transpose(0, 2, 1)  # (M, 2, 2) symmetric positive definite
    det = np.sqrt(np.maximum(gram[:, 0, 0] * gram[:, 1, 1] - gram[:, 0, 1] ** 2, 1e-300))
    root = gram + det[:, None, None] * np.eye(2)
    root /= np.sqrt(gram[:, 0, 0] + gram[:, 1, 1] + 2.0 * det)[:, None, None]  # sqrt(gram)
    inv_root = (
        np.stack(
            [
                np.stack([root[:, 1, 1], -root[:, 0, 1]], -1),
                np.stack([-root[:, 1, 0], root[:, 0, 0]], -1),
            ],
            axis=-2,
        )
        / (root[:, 0, 0] * root[:, 1, 1] - root[:, 0, 1] * root[:, 1, 0])[:, None, None]
    )
    r12 = inv_root @ affine  # (M, 2, 3) orthonormal rows
    r3 = np.cross(r12[:, 0], r12[:, 1])
    rot = np.concatenate([r12, r3[:, None]], axis=1)  # (M, 3, 3)
    # rot = Rz(roll) @ Rx(pitch) @ Ry(yaw); its last row does not depend on roll.
    yaw = np.arctan2(-rot[:, 2, 0], rot[:, 2, 2])
    pitch = np.arcsin(np.clip(rot[:, 2, 1], -1.0, 1.0))
    roll = np.arctan2(-rot[:, 0, 1], rot[:, 1, 1])
    # Signs as FaceMap's pose parameters (checked against facemap.decode in the tests).
    out[ok] = np.degrees(np.stack([-pitch, -yaw, roll], -1))
    return out


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
