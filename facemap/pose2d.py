"""Head pose from 2D landmarks, vectorised over frames, in FaceMap's sign convention.

Used wherever there are landmarks but no 3DMM parameters: the dlib backend and the analyzer's
landmarks-only path. Signs follow FaceMap's pose parameters (checked against facemap.decode in the
tests): pitch positive when the face tilts up, yaw positive when the nose turns towards the image's
right, roll positive clockwise in the image (y down).
"""

from __future__ import annotations

import numpy as np

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
    m = obs.shape[0]
    # Least-squares affine camera rows a0, a1 (M, 3): obs ~ model @ [a0 a1]; one big product.
    affine = (obs.transpose(0, 2, 1).reshape(2 * m, -1) @ pinv).reshape(m, 2, 3)
    a0, a1 = affine[:, 0], affine[:, 1]
    # Nearest pair of orthonormal rows, (A A^T)^(-1/2) A, in closed form for the 2x2 Gram matrix.
    g00, g01, g11 = (a0 * a0).sum(1), (a0 * a1).sum(1), (a1 * a1).sum(1)
    det = np.sqrt(np.maximum(g00 * g11 - g01**2, 1e-300))
    norm = np.sqrt(g00 + g11 + 2.0 * det)
    s00, s01, s11 = (g00 + det) / norm, g01 / norm, (g11 + det) / norm  # sqrt of the Gram
    inv_det = 1.0 / (s00 * s11 - s01**2)
    r0 = (s11 * inv_det)[:, None] * a0 - (s01 * inv_det)[:, None] * a1
    r1 = (s00 * inv_det)[:, None] * a1 - (s01 * inv_det)[:, None] * a0
    # third row r2 = r0 x r1; rot = Rz(roll) @ Rx(pitch) @ Ry(yaw), whose last row has no roll
    r2x = r0[:, 1] * r1[:, 2] - r0[:, 2] * r1[:, 1]
    r2y = r0[:, 2] * r1[:, 0] - r0[:, 0] * r1[:, 2]
    r2z = r0[:, 0] * r1[:, 1] - r0[:, 1] * r1[:, 0]
    yaw = np.arctan2(-r2x, r2z)
    pitch = np.arcsin(np.clip(r2y, -1.0, 1.0))
    roll = np.arctan2(-r0[:, 1], r1[:, 1])
    # Signs as FaceMap's pose parameters (checked against facemap.decode in the tests).
    out[ok] = np.degrees(np.stack([-pitch, -yaw, roll], -1))
    return out
