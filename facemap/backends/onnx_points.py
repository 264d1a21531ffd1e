"""Another ONNX landmark model: its output read as N points (``--assume-points N``).

The original tool's way to try other face-landmark models (98-point WFLW, 468-point mesh, ...):
the crop is the FaceMap model's (face box plus margin, resized to the model's input), and the
output, N x 2 or N x 3 values per face, is taken as points in model-input pixels, or in [0, 1]
of the input with ``normalized``; they are mapped back to image pixels. No pose, no 3DMM
parameters. With N = 68 the points are drawn with the iBUG-68 contours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError, UsageError
from ..model import DEFAULT_PROVIDER, FaceMapModel
from ..preprocess import DEFAULT_FACE_MARGIN, DEFAULT_NORMALIZE, Preprocessor
from ..types import BBox, Face, Status
from .base import check_landmarks

MAX_POINTS = 10_000


@dataclass
class OnnxPointsLandmarker:
    """An ONNX model whose output is N landmark points per face."""

    model: FaceMapModel
    preprocessor: Preprocessor
    n_points: int
    normalized: bool = False
    name: str = "onnx-points"
    gives_params = False  # no 3DMM parameters: the raw log holds its header only

    @classmethod
    def create(
        cls,
        points: int,
        model: Path | str | None = None,
        normalized: bool = False,
        provider: str = DEFAULT_PROVIDER,
        face_margin: float = DEFAULT_FACE_MARGIN,
        bgr: bool = False,
        normalize: str = DEFAULT_NORMALIZE,
        input_name: str | None = None,
        output_name: str | None = None,
        model_dir: Path | str | None = None,
        spin: bool = False,
    ) -> OnnxPointsLandmarker:
        """Load the model once; ``points`` is N (its output must hold N x 2 or N x 3 values)."""
        from ..assets import find_model

        if not 1 <= int(points) <= MAX_POINTS:
            raise UsageError(f"{{assume_points}} must be 1 to {MAX_POINTS}, got {points}")
        path = find_model(Path(model) if model else None, Path(model_dir or Path.cwd()))
        onnx = FaceMapModel(path, provider, input_name, output_name, spin=spin, n_out=None)
        width = onnx.io.output_shape[-1] if onnx.io.output_shape else None
        total = int(np.prod([d for d in onnx.io.output_shape[1:] if isinstance(d, int)] or [0]))
        if isinstance(width, int) and total and total not in (2 * points, 3 * points):
            raise ModelError(
                f"{path}: output {onnx.io.output_name!r} has shape {list(onnx.io.output_shape)}, "
                f"not {points} x 2 or {points} x 3 values; check {{assume_points}} (or {{output_name}})"
            )
        pre = Preprocessor(onnx.input_hw, onnx.io.layout, face_margin, bgr, normalize)
        return cls(onnx, pre, int(points), bool(normalized))

    def describe(self) -> dict:
        """What was loaded, for logs and JSON."""
        return {
            "landmarker": self.name,
            "model": str(self.model.path),
            "provider": self.model.provider,
            "points": self.n_points,
            "normalized": self.normalized,
        }

    def landmark(
        self, image_bgr: np.ndarray, faces: list[BBox], frame: int = 1, timestamp_ms: float = 0.0
    ) -> list[Face]:
        """Run the model on every face box at once; one Face per box, in the same order."""
        if not faces:
            return []
        batch, transforms = self.preprocessor.batch(image_bgr, faces)
        out = self.model.run(batch)
        n = self.n_points
        if out.shape[1] not in (2 * n, 3 * n):
            raise ModelError(
                f"{self.model.path}: the model gave {out.shape[1]} values per face, not {n} x 2 or "
                f"{n} x 3; check {{assume_points}}"
            )
        pts = out.reshape(len(faces), n, -1)[..., :2].astype(np.float64)
        h, w = self.preprocessor.input_hw
        if self.normalized:
            pts = pts * np.array([w, h], dtype=np.float64)
        results = []
        for i, (face, t) in enumerate(zip(faces, transforms, strict=True)):
            landmarks = t.to_image(pts[i])
            status, reason = check_landmarks(landmarks, face, np.zeros(0))
            finite = status is not Status.UNSTABLE
            results.append(
                Face(
                    frame=frame,
                    timestamp_ms=timestamp_ms,
                    status=status,
                    reason=reason,
                    box=face,
                    landmarks=landmarks if finite else None,
                )
            )
        return results
