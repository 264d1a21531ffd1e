"""Head pose from 2D landmarks, vectorised over frames, in FaceMap's sign convention.

Used wherever there are landmarks but no 3DMM parameters: the dlib backend and the analyzer's
landmarks-only path. Signs follow FaceMap's pose parameters (checked against facemap.threedmm.decode in the
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
    pts = np.asarray(points)
    n = pts.shape[0]
    out = np.full((n, 3), np.nan)
    # Work point-major with frames last, (K, 2, N), so every step below runs over contiguous
    # rows. Landmark logs are read frames-fastest, where that layout is a free transpose.
    if pts.ndim == 3 and pts.strides[0] < pts.strides[2]:
        sub = pts.transpose(1, 2, 0)[_GENERIC_IDX]
    else:
        sub = np.ascontiguousarray(pts[:, _GENERIC_IDX].transpose(1, 2, 0))
    ok = np.isfinite(sub).all(axis=(0, 1))
    if not ok.any():
        return out
    model = _GENERIC_3D - _GENERIC_3D.mean(axis=0)
    obs = sub if ok.all() else sub[:, :, ok]
    obs = obs - obs.mean(axis=0)
    pinv_t = (model @ np.linalg.inv(model.T @ model)).T  # (3, K)
    # Least-squares affine camera rows a0, a1 (3, M): obs ~ model @ [a0 a1]; two big products.
    a0, a1 = pinv_t @ obs[:, 0], pinv_t @ obs[:, 1]
    # Nearest pair of orthonormal rows, (A A^T)^(-1/2) A, in closed form for the 2x2 Gram matrix.
    g00, g01, g11 = (a0 * a0).sum(0), (a0 * a1).sum(0), (a1 * a1).sum(0)
    det = np.sqrt(np.maximum(g00 * g11 - g01**2, 1e-300))
    norm = np.sqrt(g00 + g11 + 2.0 * det)
    s00, s01, s11 = (g00 + det) / norm, g01 / norm, (g11 + det) / norm  # sqrt of the Gram
    inv_det = 1.0 / (s00 * s11 - s01**2)
    r0 = (s11 * inv_det) * a0 - (s01 * inv_det) * a1
    r1 = (s00 * inv_det) * a1 - (s01 * inv_det) * a0
    # third row r2 = r0 x r1; rot = Rz(roll) @ Rx(pitch) @ Ry(yaw), whose last row has no roll
    r2x = r0[1] * r1[2] - r0[2] * r1[1]
    r2y = r0[2] * r1[0] - r0[0] * r1[2]
    r2z = r0[0] * r1[1] - r0[1] * r1[0]
    yaw = np.arctan2(-r2x, r2z)
    pitch = np.arcsin(np.clip(r2y, -1.0, 1.0))
    roll = np.arctan2(-r0[1], r1[1])
    # Signs as FaceMap's pose parameters (checked against facemap.threedmm.decode in the tests).
    out[ok] = np.degrees(np.stack([-pitch, -yaw, roll], -1))
    return out
