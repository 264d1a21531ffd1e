"""68 image points -> FaceMap's 265 parameters: a 3DMM fit, vectorised over frames.

The model is the decode's own (:mod:`facemap.threedmm.decode`): in the centred model-input frame
(128 x 128 crop of the face box enlarged by the crop margin, origin at the crop's centre)

    points ~= s * ((mean + B_id a + B_exp e) @ R.T)[:, :2] + s * t,    s = f / 500,

with ``a = 3 p_id`` (219 identity coefficients, shared by every frame of one face track), ``e = 0.5
p_exp + 0.5`` (39 expression coefficients, per frame), ``R`` from pitch, yaw, roll and ``t``, ``f`` per
frame. Every raw parameter stays in the network's own output range [-1, 1], as FaceMap's do.

The fit alternates three steps that each lower the same cost (point error plus priors):

1. pose per frame (three angles, translation, scale): a few Gauss-Newton steps on six numbers;
2. expression per frame: a box-constrained least squares (projected Newton, 39 unknowns),
   with a small ridge that pulls towards the neutral face (``e = 0``);
3. identity per track: one box-constrained least squares over all its frames (projected
   Newton, 219 unknowns) with a ridge that keeps the coefficients small.

Each block is solved (nearly) exactly: with the earlier projected-gradient block solves, 16
rounds gave a worse point error (median NME 0.0203) than 8 rounds of these (0.0199).

The crop is the product's (:class:`facemap.preprocess.CropTransform`): the box enlarged by the margin,
inclusive width, ``u = (x - x0) * 128 / width``; the fitted parameters decode through
:func:`facemap.threedmm.decode.model_to_image` with the same crop box back onto the points.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from ..types import N_EXP, N_ID, N_LANDMARKS, N_PARAMS
from .decode import (
    FOCAL_OFFSET,
    FOCAL_SCALE,
    ID_SCALE,
    T_Z,
    TRANSLATION_SCALE,
    Basis,
    Decoder,
    model_to_image,
    rotation_matrices,
)
from .measures import MEASURES, measurer_or_none

INPUT_SIZE = 128
_S_MIN = (FOCAL_OFFSET - FOCAL_SCALE) / T_Z  # 0.6: raw focal -1
_S_MAX = (FOCAL_OFFSET + FOCAL_SCALE) / T_Z  # 1.2: raw focal +1
_ANGLE_MAX = np.pi / 2

# Outer eye corners (iBUG 36 and 45): the NME's normaliser.
EYE_CORNERS = (36, 45)
# The identity moves 1.5 times its block solve's step each round (over-relaxation): identity,
# expression and pose pull on one another, and the plain alternation creeps (measured on the 34
# clips: a track's 32-frame settling fit reaches in 24 rounds the error the plain alternation
# reaches in 48; the batch fit gains less, 0.0199 -> 0.0198 at 12 rounds).
_IDENTITY_RELAX = 1.5


@dataclass(frozen=True)
class FitOptions:
    """Settings of the fit. The defaults are measured (bench/bench_fit.py); see docs/analysis.md."""

    rounds: int = 16  # pose -> expression -> identity alternations
    pose_steps: int = 1  # Gauss-Newton steps on the pose per round
    expression_steps: int = 1  # projected-Newton steps on the expression per round
    identity_steps: int = 3  # projected-Newton steps on the identity per round
    identity_prior: float = 2.0  # ridge on identity coefficients a (a = 3 * raw), per track
    expression_prior: float = 0.05  # ridge on expression coefficients e (e = 0.5 * raw + 0.5), per frame
    margin: float = 0.1  # crop margin per side, as preprocess.DEFAULT_FACE_MARGIN
    reweight: bool = True  # the second half of the rounds weighs points by 1 / their error

    def __post_init__(self) -> None:
        for name in ("rounds", "pose_steps", "expression_steps", "identity_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"FitOptions.{name} must be a whole number >= 1, got {value!r}")
        for name in ("identity_prior", "expression_prior", "margin"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"FitOptions.{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class Fit:
    """The fit of N frames.

    params:      (N, 265) FaceMap-format raw parameters in [-1, 1]; NaN rows where no points
    crop_boxes:  (N, 4) the inclusive crop boxes (face box enlarged by the margin), image pixels
    residual_px: (N,) RMS point error in image pixels
    nme:         (N,) mean point error over the outer-eye-corner distance
    measures:    name -> (N,) the named expression measures (``measures.MEASURES``), from the
                 same decode; empty when the basis is not FaceMap's
    """

    params: np.ndarray
    crop_boxes: np.ndarray
    residual_px: np.ndarray
    nme: np.ndarray
    measures: dict[str, np.ndarray]


def crop_boxes(face_boxes: np.ndarray, margin: float) -> np.ndarray:
    """(N, 4) inclusive face boxes -> the crop boxes the model input is made from, vectorised
    ``BBox.expand``: each side grows by ``margin`` x the inclusive width (height)."""
    b = np.asarray(face_boxes, dtype=np.float64).reshape(-1, 4)
    w = b[:, 2] - b[:, 0] + 1.0
    h = b[:, 3] - b[:, 1] + 1.0
    return np.stack(
        [b[:, 0] - margin * w, b[:, 1] - margin * h, b[:, 2] + margin * w, b[:, 3] + margin * h], 1
    )


def to_model(points_px: np.ndarray, crops: np.ndarray) -> np.ndarray:
    """(N, 68, 2) image pixels -> centred model-input units; inverse of ``model_to_image``."""
    p = np.asarray(points_px, dtype=np.float64)
    width = crops[:, 2] - crops[:, 0] + 1.0
    height = crops[:, 3] - crops[:, 1] + 1.0
    out = np.empty_like(p)
    out[..., 0] = (p[..., 0] - crops[:, None, 0]) * (INPUT_SIZE / width)[:, None] - INPUT_SIZE / 2
    out[..., 1] = (p[..., 1] - crops[:, None, 1]) * (INPUT_SIZE / height)[:, None] - INPUT_SIZE / 2
    return out


def angles_from_rotation(rot: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations in the decode's convention -> (N, 3) pitch, yaw, roll in radians.

    The decode builds ``R = Ry(-yaw) Rx(-pitch) P Rz(-roll)`` with ``P = diag(1, -1, -1)``, so
    ``R P = Ry(-yaw) Rx(-pitch) Rz(roll)``: a Y-X-Z Euler decomposition.
    """
    m = rot * np.array([1.0, -1.0, -1.0])  # R @ P: P flips the sign of columns 1 and 2
    beta = np.arcsin(np.clip(-m[:, 1, 2], -1.0, 1.0))
    alpha = np.arctan2(m[:, 0, 2], m[:, 2, 2])
    gamma = np.arctan2(m[:, 1, 0], m[:, 1, 1])
    return np.stack([-beta, -alpha, gamma], 1)


def _blocks(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(68, 3, K) x (68, 3, K) -> (9, K * K): ``left[:, d]^T right[:, e]`` for d, e in x, y, z."""
    k = left.shape[2]
    return np.stack([left[:, d].T @ right[:, e] for d in range(3) for e in range(3)]).reshape(9, k * k)


class _Grams:
    """The normal-equation blocks of one set of per-point weights (68,): built once per reweighting.

    ``G[d, d']`` = sum_v w_v B[v, d]^T B[v, d'] for the identity and the expression bases, so a
    frame's curvature is ``sum_dd' s^2 (R2^T R2)[d, d'] G[d, d']`` without building its Jacobian.
    """

    def __init__(self, ident: np.ndarray, expr: np.ndarray, weights: np.ndarray) -> None:
        wid = ident * weights[:, None, None]
        wexp = expr * weights[:, None, None]
        self.ident = _blocks(wid, ident)
        self.expr = _blocks(wexp, expr)
        self.ident_flat = wid.reshape(3 * N_LANDMARKS, N_ID)
        self.expr_flat = wexp.reshape(3 * N_LANDMARKS, N_EXP)


class _OneBlasThread:
    """A context: numpy's BLAS on one thread while any fit runs. The fit's products and solves
    are small, and threaded (OpenBLAS's threads spin between calls) ``infer.py --landmarker
    dlib`` with the basis took 8.2 s of CPU for 6.0 s on a 352-frame clip, against 6.1 s for
    5.6 s on one thread (2 cores). The setting is the process's, so fits that overlap in
    threads share one limit: the first in sets it, the last out gives the caller's back
    (threadpoolctl's limit alone, entered and left by each, could leave it at 1)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._limiter = None

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._limiter = _blas().limit(limits=1, user_api="blas")
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                self._limiter.restore_original_limits()
                self._limiter = None


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries, listed once."""
    return ThreadpoolController()


_ONE_BLAS_THREAD = _OneBlasThread()


class Fitter:
    """Holds one basis and fits batches of frames. Build once, call per track or clip."""

    def __init__(self, basis: Basis, options: FitOptions | None = None) -> None:
        self.options = options or FitOptions()
        self._mean = basis.mean_face.reshape(N_LANDMARKS, 3)
        self._id = basis.shape_basis.reshape(N_LANDMARKS, 3, N_ID) * ID_SCALE  # per unit of raw
        self._exp = basis.blend_shape.reshape(N_LANDMARKS, 3, N_EXP)
        self._exp_t = self._exp.reshape(3 * N_LANDMARKS, N_EXP).T.copy()
        self._equal = _Grams(self._id, self._exp, np.ones(N_LANDMARKS))
        self._exp_flat = self._exp.reshape(3 * N_LANDMARKS, N_EXP)
        # Per-point blocks (68 * 9, 39 * 39) for per-frame weights: frame m's curvature is
        # sum_v w[m, v] sum_dd' (R2^T R2)[d, d'] B[v, d]^T B[v, d'].
        self._exp_points = np.einsum("vdj,vek->vdejk", self._exp, self._exp).reshape(
            N_LANDMARKS * 9, N_EXP * N_EXP
        )
        self._decoder = Decoder(basis)
        self.basis = basis
        self.measurer = measurer_or_none(basis)  # built once: None for a basis not FaceMap's

    # ---- the public call -------------------------------------------------------------------
    def fit(
        self,
        points_px: np.ndarray,
        face_boxes: np.ndarray,
        tracks: np.ndarray | None = None,
        identity: np.ndarray | None = None,
        rounds: int | None = None,
        expression: np.ndarray | None = None,
    ) -> Fit:
        """Fit (N, 68, 2) image points with their (N, 4) face boxes; ``tracks`` (N,) groups frames
        that share one identity (default: all frames one track). ``identity`` (219,) raw, when
        given, is every frame's and only pose and expression are fitted (in ``rounds``, default
        the options'). ``expression`` (N, 39) in [0, 1], when given, is where each frame's
        expression starts (a frame's last fit: fewer rounds reach the same point error). Rows
        with any non-finite point or an empty box get NaN parameters."""
        with _ONE_BLAS_THREAD:
            return self._fit(points_px, face_boxes, tracks, identity, rounds, expression)

    def _fit(
        self,
        points_px: np.ndarray,
        face_boxes: np.ndarray,
        tracks: np.ndarray | None,
        identity: np.ndarray | None,
        rounds: int | None,
        expression: np.ndarray | None = None,
    ) -> Fit:
        pts = np.asarray(points_px, dtype=np.float64).reshape(-1, N_LANDMARKS, 2)
        boxes = np.asarray(face_boxes, dtype=np.float64).reshape(-1, 4)
        n = pts.shape[0]
        if boxes.shape[0] != n:
            raise ValueError(f"{n} frames of points but {boxes.shape[0]} boxes")
        tracks = np.zeros(n, dtype=np.int64) if tracks is None else np.asarray(tracks).reshape(n)
        crops = crop_boxes(boxes, self.options.margin)
        params = np.full((n, N_PARAMS), np.nan)
        residual = np.full(n, np.nan)
        nme = np.full(n, np.nan)
        ok = np.isfinite(pts).all(axis=(1, 2)) & np.isfinite(boxes).all(axis=1)
        ok &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        y_all = to_model(pts, crops)
        starts = None if expression is None else np.asarray(expression, dtype=np.float64).reshape(n, N_EXP)
        for track in np.unique(tracks[ok]):
            rows = np.flatnonzero(ok & (tracks == track))
            start = None if starts is None else starts[rows]
            params[rows] = self._fit_track(y_all[rows], identity, rounds or self.options.rounds, start)
        if ok.any():
            decoded = self._decoder.decode(params[ok])
            back = model_to_image(decoded.landmarks_model, crops[ok])
            err = np.linalg.norm(back - pts[ok], axis=-1)  # (M, 68)
            residual[ok] = np.sqrt((err**2).mean(axis=1))
            iod = np.linalg.norm(pts[ok, EYE_CORNERS[0]] - pts[ok, EYE_CORNERS[1]], axis=-1)
            nme[ok] = err.mean(axis=1) / np.maximum(iod, 1e-9)
        named = {}
        if self.measurer is not None:
            named = {k: np.full(n, np.nan) for k in MEASURES}
            if ok.any():
                for k, v in self.measurer(decoded).items():
                    named[k][ok] = v
        return Fit(params=params, crop_boxes=crops, residual_px=residual, nme=nme, measures=named)

    # ---- one track ---------------------------------------------------------------------------
    def _fit_track(
        self, y: np.ndarray, identity: np.ndarray | None, rounds: int, start: np.ndarray | None = None
    ) -> np.ndarray:
        """(M, 68, 2) centred model-input points of one track -> (M, 265) raw parameters.

        The first half of the rounds weighs every point equally; the rest weigh each point by
        the inverse of its median error over the track (iteratively reweighted least squares:
        the cost tends to the sum of point distances, so a landmark the 3DMM places by another
        convention than the detector, the brows' ends, pulls less on the rest)."""
        opt = self.options
        m = y.shape[0]
        fixed = identity is not None
        a = np.zeros(N_ID) if identity is None else np.clip(np.asarray(identity, float), -1, 1)
        e = np.zeros((m, N_EXP)) if start is None else np.clip(np.nan_to_num(start), 0.0, 1.0)  # in [0, 1]
        base = self._mean + self._id @ a  # (68, 3) neutral face of this person (fixed: once)
        shape = base + (e @ self._exp_t).reshape(m, N_LANDMARKS, 3)
        grams = self._equal
        weights = np.ones((m, N_LANDMARKS))
        rot, s, t = self._pose_init(y, shape)
        for k in range(rounds):
            if opt.reweight and k >= rounds // 2:
                weights = self._reweighted(y, shape, rot, s, t)
                if not fixed and k == rounds // 2:
                    # the identity's blocks are reweighted once, by the track's mean weights
                    # (rebuilding its 219 x 219 blocks every round costs more than it gains)
                    grams = _Grams(self._id, self._exp, weights.mean(axis=0))
            for _ in range(opt.pose_steps):
                rot, s, t = self._pose_step(y, shape, rot, s, t, weights)
            e = self._expression_step(y, base, rot, s, t, e, weights)
            if not fixed:
                a_new = self._identity_step(y, e, rot, s, t, a, grams)
                a = np.clip(a + _IDENTITY_RELAX * (a_new - a), -1.0, 1.0)
                base = self._mean + self._id @ a
            shape = base + (e @ self._exp_t).reshape(m, N_LANDMARKS, 3)
        for _ in range(opt.pose_steps):
            rot, s, t = self._pose_step(y, shape, rot, s, t, weights)
        angles = angles_from_rotation(rot)
        out = np.zeros((m, N_PARAMS))
        out[:, :N_ID] = a
        out[:, N_ID : N_ID + N_EXP] = 2.0 * e - 1.0
        out[:, 258:261] = angles / (np.pi / 2)
        out[:, 261:263] = t / TRANSLATION_SCALE
        out[:, 263] = (s * T_Z - FOCAL_OFFSET) / FOCAL_SCALE
        return np.clip(out, -1.0, 1.0)

    @staticmethod
    def _reweighted(y, shape, rot, s, t) -> np.ndarray:
        """(M, 68) weights 1 / point error, floored at a quarter of the frame's median error,
        normalised to mean 1 per frame."""
        pred = s[:, None, None] * (shape @ rot[:, :2].transpose(0, 2, 1) + t[:, None, :])
        err = np.linalg.norm(pred - y, axis=-1)  # (M, 68) model-input px
        floor = np.maximum(np.median(err, axis=1, keepdims=True) * 0.25, 1e-6)
        w = 1.0 / np.maximum(err, floor)
        return w / w.mean(axis=1, keepdims=True)

    @staticmethod
    def _pose_init(y: np.ndarray, shape: np.ndarray):
        """Scaled-orthographic Procrustes per frame: (R, s, t) from points and a 3D shape."""
        yc = y - y.mean(axis=1, keepdims=True)
        vc = shape - shape.mean(axis=1, keepdims=True)
        # Affine camera M (2x3): min ||yc - vc M^T||, then the nearest scaled rotation rows.
        vtv = vc.transpose(0, 2, 1) @ vc
        vty = vc.transpose(0, 2, 1) @ yc
        aff = np.linalg.solve(vtv, vty).transpose(0, 2, 1)  # (m, 2, 3)
        u, sig, wt = np.linalg.svd(aff, full_matrices=False)
        r2 = u @ wt  # (m, 2, 3) orthonormal rows
        r3 = np.cross(r2[:, 0], r2[:, 1])
        rot = np.concatenate([r2, r3[:, None]], axis=1)
        s = np.clip(sig.mean(axis=1), _S_MIN, _S_MAX)
        # Keep within the decode's angle range by re-building from clipped angles.
        angles = np.clip(angles_from_rotation(rot), -_ANGLE_MAX, _ANGLE_MAX)
        rot = rotation_matrices(angles[:, 0], angles[:, 1], angles[:, 2])
        proj = shape @ rot[:, :2].transpose(0, 2, 1)
        t = (y - s[:, None, None] * proj).mean(axis=1) / s[:, None]
        t = np.clip(t, -TRANSLATION_SCALE, TRANSLATION_SCALE)
        return rot, s, t

    @staticmethod
    def _pose_step(y, shape, rot, s, t, weights):
        """One damped Gauss-Newton step on (a small rotation, tx, ty, s) per frame, bounded.

        The rotation moves by ``exp([w]x) R`` (w: three small angles about the camera axes),
        whose derivative is analytic: d(R v)/dw = -[R v]x; the result is brought back within
        the decode's angle range through its pitch, yaw and roll."""
        m = y.shape[0]
        sw = np.repeat(np.sqrt(weights), 2, axis=1)  # (m, 136) per residual
        q = shape @ rot.transpose(0, 2, 1)  # (m, 68, 3) posed
        proj = q[:, :, :2]
        res = (s[:, None, None] * (proj + t[:, None, :]) - y).reshape(m, -1) * sw
        jac = np.zeros((m, N_LANDMARKS, 2, 6))
        sq = s[:, None, None] * q
        # d(w x q)_x = w_y q_z - w_z q_y, d(w x q)_y = w_z q_x - w_x q_z
        jac[:, :, 0, 1] = sq[:, :, 2]
        jac[:, :, 0, 2] = -sq[:, :, 1]
        jac[:, :, 1, 0] = -sq[:, :, 2]
        jac[:, :, 1, 2] = sq[:, :, 0]
        jac[:, :, 0, 3] = s[:, None]
        jac[:, :, 1, 4] = s[:, None]
        jac[:, :, :, 5] = proj + t[:, None, :]
        jac = jac.reshape(m, 2 * N_LANDMARKS, 6) * sw[:, :, None]
        jtj = jac.transpose(0, 2, 1) @ jac
        jtr = (jac.transpose(0, 2, 1) @ res[:, :, None])[:, :, 0]
        damp = 1e-3 * np.trace(jtj, axis1=1, axis2=2)[:, None, None] / 6 * np.eye(6)
        delta = np.linalg.solve(jtj + damp, -jtr[:, :, None])[:, :, 0]
        rot = _rodrigues(delta[:, :3]) @ rot
        angles = np.clip(angles_from_rotation(rot), -_ANGLE_MAX, _ANGLE_MAX)
        t = np.clip(t + delta[:, 3:5], -TRANSLATION_SCALE, TRANSLATION_SCALE)
        s = np.clip(s + delta[:, 5], _S_MIN, _S_MAX)
        rot = rotation_matrices(angles[:, 0], angles[:, 1], angles[:, 2])
        return rot, s, t

    def _expression_step(self, y, base, rot, s, t, e, weights):
        """Box-constrained ridge least squares for e in [0, 1] per frame (projected Newton, warm start)."""
        opt = self.options
        m = y.shape[0]
        r2 = rot[:, :2]  # (m, 2, 3)
        target = y / s[:, None, None] - t[:, None, :] - base @ r2.transpose(0, 2, 1)
        # A_m = R2 B_exp (136 x 39); H = A^T W A = sum_dd' (R2^T R2)[d, d'] G[d, d'], weighted
        # by s^2 so the cost is in model-input pixels, as the pose step's.
        s2 = s**2
        proj = (r2.transpose(0, 2, 1) @ r2).reshape(m, 9) * s2[:, None]
        if np.all(weights == 1.0):
            hess = (proj @ self._equal.expr).reshape(m, N_EXP, N_EXP)
        else:
            per_point = (weights[:, :, None] * proj[:, None, :]).reshape(m, N_LANDMARKS * 9)
            hess = (per_point @ self._exp_points).reshape(m, N_EXP, N_EXP)
        hess += opt.expression_prior * np.eye(N_EXP)
        z = ((target @ r2) * weights[:, :, None]).reshape(m, 3 * N_LANDMARKS)  # (m, 68 * 3)
        grad0 = (z @ self._exp_flat) * s2[:, None]
        return _box_newton(hess, grad0, e, 0.0, 1.0, opt.expression_steps)

    def _identity_step(self, y, e, rot, s, t, a0, grams: _Grams):
        """Ridge least squares for the track's identity (raw units) within [-1, 1]."""
        opt = self.options
        m = y.shape[0]
        r2 = rot[:, :2]
        shape = self._mean + (e @ self._exp_t).reshape(m, N_LANDMARKS, 3)
        target = y / s[:, None, None] - t[:, None, :] - shape @ r2.transpose(0, 2, 1)
        s2 = s**2
        w = ((r2 * s2[:, None, None]).transpose(0, 2, 1) @ r2).sum(axis=0).reshape(9)
        hess = (w @ grams.ident).reshape(N_ID, N_ID) + opt.identity_prior * np.eye(N_ID)
        z = ((target * s2[:, None, None]) @ r2).sum(axis=0).reshape(3 * N_LANDMARKS)
        rhs = z @ grams.ident_flat
        return _box_newton(hess[None], rhs[None], a0[None], -1.0, 1.0, opt.identity_steps)[0]


def _rodrigues(w: np.ndarray) -> np.ndarray:
    """(N, 3) rotation vectors -> (N, 3, 3) rotation matrices."""
    theta = np.linalg.norm(w, axis=1)
    k = w / np.maximum(theta, 1e-12)[:, None]
    kx = np.zeros((w.shape[0], 3, 3))
    kx[:, 0, 1], kx[:, 0, 2], kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    kx = kx - kx.transpose(0, 2, 1)
    sin, cos = np.sin(theta)[:, None, None], np.cos(theta)[:, None, None]
    return np.eye(3) + sin * kx + (1.0 - cos) * (kx @ kx)


def _box_newton(hess, lin, x0, lo: float, hi: float, iters: int) -> np.ndarray:
    """min 0.5 x'Hx - lin'x over lo <= x <= hi, batched (B, K, K): projected Newton
    (Bertsekas): a Newton step on the coordinates not held at a bound, projected into the box,
    halved until the cost falls."""
    k = hess.shape[-1]
    eye = np.eye(k, dtype=bool)
    x = np.clip(x0, lo, hi)

    def cost(v):
        return 0.5 * np.einsum("bi,bij,bj->b", v, hess, v) - np.einsum("bi,bi->b", lin, v)

    fx = cost(x)
    for _ in range(iters):
        g = (hess @ x[:, :, None])[:, :, 0] - lin
        eps = 1e-6
        free = ~(((x <= lo + eps) & (g > 0)) | ((x >= hi - eps) & (g < 0)))
        both = free[:, :, None] & free[:, None, :]
        sub = np.where(both, hess, eye)
        d = np.linalg.solve(sub, np.where(free, -g, 0.0)[:, :, None])[:, :, 0]
        step = np.ones(x.shape[0])
        best = x
        done = np.zeros(x.shape[0], dtype=bool)
        for _ in range(8):
            cand = np.clip(x + step[:, None] * d, lo, hi)
            fc = cost(cand)
            ok = (fc < fx) & ~done
            best = np.where(ok[:, None], cand, best)
            fx = np.where(ok, fc, fx)
            done |= ok
            if done.all():
                break
            step = np.where(done, step, step * 0.5)
        x = best
    return x
