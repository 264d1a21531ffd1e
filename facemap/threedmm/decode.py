"""3DMM parameters -> landmarks, pose and expression. Pure numpy, vectorised over N frames.

A re-implementation of Qualcomm's ``project_landmark`` and ``transform_landmark_coordinates``
(qai_hub_models/models/facemap_3dmm/utils.py). Parameter layout of the (265,) output:

==========  =========  ==========================================
index       name       de-normalisation
==========  =========  ==========================================
0..218      alpha_id   x 3
219..257    alpha_exp  x 0.5 + 0.5
258         pitch      x pi/2 (radians)
259         yaw        x pi/2
260         roll       x pi/2
261, 262    tX, tY     x 60
263         f          x 150 + 450
264         unused
==========  =========  ==========================================

The face is posed as ``V @ R.T + (tX, tY, 500)`` with ``R = Ryaw @ Rpitch @ P @ Rroll`` (P flips
y and z) and projected with a weak perspective ``xy * f / 500``, centred on the model input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import N_EXP, N_ID, N_LANDMARKS, N_PARAMS

T_Z = 500.0
ID_SCALE = 3.0
TRANSLATION_SCALE = 60.0
FOCAL_SCALE, FOCAL_OFFSET = 150.0, 450.0


@dataclass(frozen=True)
class Basis:
    """The 3DMM basis: mean face (204,), identity basis (204, 219), expression basis (204, 39).

    Rows are vertex-major: x0, y0, z0, x1, y1, z1, ...
    """

    mean_face: np.ndarray
    shape_basis: np.ndarray
    blend_shape: np.ndarray

    def __post_init__(self) -> None:
        expected = {
            "mean_face": (3 * N_LANDMARKS,),
            "shape_basis": (3 * N_LANDMARKS, N_ID),
            "blend_shape": (3 * N_LANDMARKS, N_EXP),
        }
        for name, shape in expected.items():
            arr = np.asarray(getattr(self, name))
            # flat (Qualcomm's files) or the mean face as 68 x 3 are read in order; another shape
            # of that size (a transposed basis) is refused below, not reshaped
            if arr.size == int(np.prod(shape)) and (arr.ndim == 1 or (name == "mean_face" and arr.shape == (N_LANDMARKS, 3))):
                arr = arr.reshape(shape)
            if arr.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
            arr = np.array(arr, dtype=np.float64, copy=True)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)


@dataclass(frozen=True)
class Decoded:
    """Decoded parameters for N frames.

    landmarks_model: (N, 68, 2) model-input pixels, centred on the crop (reference's lm_model)
    pose_deg:        (N, 3) pitch, yaw, roll in degrees
    expression:      (N, 39) de-normalised expression coefficients, in [0, 1] for params in [-1, 1]
    translation:     (N, 2) tX, tY (model units)
    focal:           (N,) focal length (model units)
    vertices_canonical: (N, 68, 3) face before rotation (pose-free), model units (about mm)
    vertices_posed:  (N, 68, 3) after rotation and translation (tZ = 500)
    """

    landmarks_model: np.ndarray
    pose_deg: np.ndarray
    expression: np.ndarray
    translation: np.ndarray
    focal: np.ndarray
    vertices_canonical: np.ndarray
    vertices_posed: np.ndarray


def rotation_matrices(pitch_rad: np.ndarray, yaw_rad: np.ndarray, roll_rad: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation ``Ryaw(-yaw) @ Rpitch(-pitch) @ P @ Rroll(-roll)``, as the reference."""
    n = pitch_rad.shape[0]
    cr, sr = np.cos(-roll_rad), np.sin(-roll_rad)
    cy, sy = np.cos(-yaw_rad), np.sin(-yaw_rad)
    cp, sp = np.cos(-pitch_rad), np.sin(-pitch_rad)
    zeros, ones = np.zeros(n), np.ones(n)
    roll_m = np.stack([cr, -sr, zeros, sr, cr, zeros, zeros, zeros, ones], -1).reshape(n, 3, 3)
    yaw_m = np.stack([cy, zeros, sy, zeros, ones, zeros, -sy, zeros, cy], -1).reshape(n, 3, 3)
    pitch_m = np.stack([ones, zeros, zeros, zeros, cp, -sp, zeros, sp, cp], -1).reshape(n, 3, 3)
    # P: rotation by -pi about x, i.e. diag(1, -1, -1) up to float rounding, as the reference.
    c, s = np.cos(-np.pi), np.sin(-np.pi)
    p_m = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return yaw_m @ pitch_m @ (p_m @ roll_m)


def expression_coefficients(params: np.ndarray) -> np.ndarray:
    """(N, 39) de-normalised expression coefficients of (N, 265) params (no basis needed)."""
    p = np.asarray(params, dtype=np.float64)
    return p[:, N_ID : N_ID + N_EXP] * 0.5 + 0.5


class Decoder:
    """Holds one basis and decodes batches of parameters. Build once, call per batch."""

    def __init__(self, basis: Basis) -> None:
        self.basis = basis
        # Transposed once so the per-batch work is two matrix products.
        self._id_t = np.ascontiguousarray(basis.shape_basis.T)  # (219, 204)
        self._exp_t = np.ascontiguousarray(basis.blend_shape.T)  # (39, 204)
        self._mean = basis.mean_face  # (204,)

    def decode(self, params: np.ndarray) -> Decoded:
        """Decode (N, 265) or (265,) params. Frames with non-finite params give NaN rows."""
        p = np.asarray(params, dtype=np.float64)
        if p.ndim == 1:
            p = p[None]
        if p.ndim != 2 or p.shape[1] < N_PARAMS - 1:
            raise ValueError(f"params must have shape (N, {N_PARAMS}), got {p.shape}")
        n = p.shape[0]
        alpha_id = p[:, :N_ID] * ID_SCALE
        alpha_exp = expression_coefficients(p)
        angles = p[:, 258:261] * (np.pi / 2)
        pitch, yaw, roll = angles[:, 0], angles[:, 1], angles[:, 2]
        translation = p[:, 261:263] * TRANSLATION_SCALE
        focal = p[:, 263] * FOCAL_SCALE + FOCAL_OFFSET

        canonical = (self._mean + alpha_id @ self._id_t + alpha_exp @ self._exp_t).reshape(
            n, N_LANDMARKS, 3
        )
        rot = rotation_matrices(pitch, yaw, roll)
        posed = canonical @ rot.transpose(0, 2, 1)
        posed[:, :, 0] += translation[:, None, 0]
        posed[:, :, 1] += translation[:, None, 1]
        posed[:, :, 2] += T_Z
        landmarks = posed[:, :, :2] * (focal[:, None, None] / T_Z)
        return Decoded(
            landmarks_model=landmarks,
            pose_deg=np.degrees(angles),
            expression=alpha_exp,
            translation=translation,
            focal=focal,
            vertices_canonical=canonical,
            vertices_posed=posed,
        )


def model_to_image(
    landmarks_model: np.ndarray, boxes: np.ndarray, input_hw: tuple[int, int] = (128, 128)
) -> np.ndarray:
    """Map (N, 68, 2) centred model-input landmarks to image pixels through (N, 4) crop boxes.

    ``boxes`` are the INCLUSIVE boxes that were resized to the model input (width = x1 - x0 + 1),
    exactly as the reference ``transform_landmark_coordinates``.
    """
    lm = np.asarray(landmarks_model, dtype=np.float64)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    h_in, w_in = input_hw
    width = b[:, 2] - b[:, 0] + 1.0
    height = b[:, 3] - b[:, 1] + 1.0
    out = np.empty_like(lm)
    out[..., 0] = (lm[..., 0] + w_in / 2.0) * (width / w_in)[:, None] + b[:, None, 0]
    out[..., 1] = (lm[..., 1] + h_in / 2.0) * (height / h_in)[:, None] + b[:, None, 1]
    return out
