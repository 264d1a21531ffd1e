"""Synthetic landmark logs with known expressions, for tests and benchmarks.

A procedural 68-point face (iBUG order) in inter-ocular units, deformed per frame by smile,
mouth opening, eye closure and brow raise amounts, rotated in 3D by a head pose and projected
orthographically to pixels. No real face data is involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.logwriter import FrameLogs
from ..io.schema import log_path
from ..types import BBox, Face, Pose, Status


def _template() -> np.ndarray:
    """(68, 3) neutral frontal face, IOD units, x right, y down, z away from the camera."""
    p = np.zeros((68, 3))
    th = np.linspace(0.0, np.pi, 17)
    p[0:17, 0], p[0:17, 1] = -0.82 * np.cos(th), 1.25 * np.sin(th) - 0.05
    p[0:17, 2] = 0.5 * np.cos(th) ** 2
    bx = np.linspace(-0.75, -0.15, 5)
    p[17:22, 0], p[17:22, 1] = bx, -0.25 - 0.07 * np.sin(np.linspace(0.3, 2.8, 5))
    p[22:27, 0], p[22:27, 1] = -bx[::-1], p[17:22, 1][::-1]
    p[27:31, 1] = np.linspace(-0.02, 0.38, 4)
    p[27:31, 2] = -np.linspace(0.08, 0.33, 4)
    p[31:36, 0], p[31:36, 1] = np.linspace(-0.15, 0.15, 5), [0.46, 0.48, 0.5, 0.48, 0.46]
    p[31:36, 2] = -0.18
    for start, cx in ((36, -0.33), (42, 0.33)):
        p[start : start + 6, 0] = cx + np.array([-0.15, -0.05, 0.05, 0.15, 0.05, -0.05])
        p[start : start + 6, 1] = np.array([0.0, -0.05, -0.05, 0.0, 0.05, 0.05])
    ang = np.linspace(np.pi, -np.pi, 13)[:12]  # outer lip 48..59, from the right corner clockwise
    p[48:60, 0], p[48:60, 1] = 0.28 * np.cos(ang), 0.86 - 0.1 * np.sin(ang)
    p[60:68, 0] = [-0.22, -0.08, 0.0, 0.08, 0.22, 0.08, 0.0, -0.08]
    p[60:68, 1] = 0.86
    p[48:68, 2] = -0.1
    return p


TEMPLATE = _template()
_UPPER_INNER, _LOWER_INNER = [61, 62, 63], [65, 66, 67]
_LOWER = [5, 6, 7, 8, 9, 10, 11, 55, 56, 57, 58, 59] + _LOWER_INNER


@dataclass(frozen=True)
class Expression:
    """Per-frame (N,) amounts in [0, 1] (pose in degrees)."""

    smile: np.ndarray
    mouth_open: np.ndarray
    eyes_closed: np.ndarray
    brow_raise: np.ndarray
    pitch_deg: np.ndarray
    yaw_deg: np.ndarray
    roll_deg: np.ndarray


def faces_3d(expr: Expression) -> np.ndarray:
    """(N, 68, 3) deformed, un-rotated faces."""
    n = expr.smile.size
    f = np.repeat(TEMPLATE[None], n, axis=0)
    s, m, e, b = (
        np.asarray(v, dtype=np.float64)[:, None]
        for v in (expr.smile, expr.mouth_open, expr.eyes_closed, expr.brow_raise)
    )
    # smile: corners out by 0.07 IOD each and up by 0.06
    for idx, sign in ((48, -1), (60, -1), (54, 1), (64, 1)):
        f[:, idx, 0] += sign * 0.07 * s[:, 0]
        f[:, idx, 1] -= 0.06 * s[:, 0]
    # mouth open: the lower lip and jaw drop by 0.3 IOD, the upper inner lip rises slightly and
    # the corners, hinged between the lips, follow the middle
    f[:, _LOWER, 1] += 0.3 * m
    f[:, _UPPER_INNER, 1] -= 0.03 * m
    f[:, [48, 54, 60, 64], 1] += 0.135 * m
    # eyes: the lids meet
    for lid in ([37, 38, 43, 44], [40, 41, 46, 47]):
        f[:, lid, 1] = f[:, lid, 1] * (1.0 - 0.92 * e)
    f[:, 17:27, 1] -= 0.08 * b
    return f


def project(
    faces: np.ndarray, pose_deg: np.ndarray, scale_px: float, centre_px: tuple[float, float]
) -> np.ndarray:
    """(N, 68, 2) pixels: rotate by pose (pitch, yaw, roll degrees, FaceMap's signs) and project
    orthographically."""
    p, y, r = (np.radians(pose_deg[:, i]) for i in range(3))
    p, y = -p, -y  # FaceMap's signs -> the Rz Rx Ry convention of this projection
    c, s = np.cos, np.sin
    n = faces.shape[0]
    one, zero = np.ones(n), np.zeros(n)
    ry = np.stack([c(y), zero, s(y), zero, one, zero, -s(y), zero, c(y)], -1).reshape(n, 3, 3)
    rx = np.stack([one, zero, zero, zero, c(p), -s(p), zero, s(p), c(p)], -1).reshape(n, 3, 3)
    rz = np.stack([c(r), -s(r), zero, s(r), c(r), zero, zero, zero, one], -1).reshape(n, 3, 3)
    rot = rz @ rx @ ry
    xyz = faces @ rot.transpose(0, 2, 1)
    return xyz[..., :2] * scale_px + np.asarray(centre_px)


def scripted_expression(n: int, fps: float, seed: int = 0) -> Expression:
    """A clip with known events at fixed TIMES (so any frame rate gives the same story):
    every 4 s a 150 ms blink; smiles 2-5 s and 20-24 s; mouth open (talking) 8-10 s;
    a yawn 12-15 s; looking away (yaw 50 deg) 16-18 s; brows up with mouth open 26-27 s."""
    t = np.arange(n) / fps
    cyc = t % 30.0

    def box(a: float, b: float) -> np.ndarray:
        return ((cyc >= a) & (cyc < b)).astype(float)

    rng = np.random.default_rng(seed)
    blink = ((t % 4.0) >= 3.0) & ((t % 4.0) < 3.15)
    smile = box(2, 5) + box(20, 24)
    mouth = 0.6 * box(8, 10) + 1.0 * box(12, 15) + 0.6 * box(26, 27)
    return Expression(
        smile=smile,
        mouth_open=mouth,
        eyes_closed=blink.astype(float),
        brow_raise=box(26, 27),
        pitch_deg=2.0 * np.sin(t / 3.0) + rng.normal(0, 0.3, n),
        yaw_deg=50.0 * box(16, 18) + 3.0 * np.sin(t / 5.0),
        roll_deg=4.0 * np.sin(t / 7.0),
    )


def synthetic_logs(
    folder: Path,
    n_frames: int = 900,
    fps: float = 30.0,
    scale_px: float = 150.0,
    noise_px: float = 0.3,
    no_face: tuple[float, float] | None = (18.5, 19.5),
    seed: int = 0,
    stem: str = "synth",
) -> tuple[Path, Path]:
    """Write ``folder/logs/<stem>_landmarks.csv`` and ``_meta.csv`` through facemap.io.logwriter, exactly
    as infer.py does; frames whose time falls in ``no_face`` (seconds) have no face.

    Returns (landmarks path, meta path).
    """
    expr = scripted_expression(n_frames, fps, seed)
    pose = np.stack([expr.pitch_deg, expr.yaw_deg, expr.roll_deg], -1)
    pts = project(faces_3d(expr), pose, scale_px, (2.2 * scale_px, 1.8 * scale_px))
    pts = pts + np.random.default_rng(seed + 1).normal(0.0, noise_px, pts.shape)
    t_ms = np.arange(n_frames) * (1000.0 / fps)
    face = np.ones(n_frames, dtype=bool)
    if no_face is not None:
        face &= ~((t_ms >= no_face[0] * 1000) & (t_ms < no_face[1] * 1000))
    with FrameLogs(Path(folder), stem, landmarks=True) as logs:
        for i in range(n_frames):  # a writer is per frame by nature, as in infer.py
            if not face[i]:
                logs.write(Face.empty(i + 1, float(t_ms[i]), "no face found"))
                continue
            logs.write(
                Face(
                    frame=i + 1,
                    timestamp_ms=float(t_ms[i]),
                    status=Status.OK,
                    box=BBox.from_points(pts[i]),
                    landmarks=pts[i],
                    pose=Pose(*pose[i].tolist()),
                )
            )
    return log_path(folder, stem, "landmarks"), log_path(folder, stem, "meta")
