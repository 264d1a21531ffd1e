"""The FaceMap 3DMM landmarker: crop each box, run the ONNX model as one batch, decode, map back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model import DEFAULT_PROVIDER, FaceMapModel
from ..preprocess import DEFAULT_FACE_MARGIN, DEFAULT_NORMALIZE, Preprocessor
from ..threedmm.decode import Decoder, model_to_image
from ..threedmm.measures import Measurer, measurer_or_none
from ..types import BBox, Face, Pose, Status
from .base import check_landmarks

log = logging.getLogger(__name__)


@dataclass
class FaceMapLandmarker:
    """The FaceMap 3DMM model: crop, run as one batch, decode, map back, check."""

    model: FaceMapModel
    decoder: Decoder
    preprocessor: Preprocessor
    name: str = "facemap"
    ok_reason: str = ""
    measurer: Measurer | None = None  # None: the basis is not FaceMap's (no named measures)

    def __post_init__(self) -> None:
        if self.measurer is None:
            self.measurer = measurer_or_none(self.decoder.basis)

    @classmethod
    def create(
        cls,
        model: Path | str | None = None,
        basis_dir: Path | str | None = None,
        provider: str = DEFAULT_PROVIDER,
        face_margin: float = DEFAULT_FACE_MARGIN,
        bgr: bool = False,
        normalize: str = DEFAULT_NORMALIZE,
        input_name: str | None = None,
        output_name: str | None = None,
        model_dir: Path | str | None = None,
        spin: bool = False,
        download: bool = True,
        progress: bool = False,
    ) -> FaceMapLandmarker:
        """Load the model and the 3DMM basis once.

        ``model``: model.onnx (its model.data beside it) or a folder holding it; default: in
        ``model_dir`` (default the working folder). ``basis_dir``: the folder with the three
        basis files; default: qai-hub-models' cache, downloaded into it when missing
        (``download``). ``spin=False`` lets onnxruntime's idle threads yield the cores (best
        for video, where decoding and encoding run on their own threads).
        """
        from ..assets import find_model, load_basis

        path = find_model(Path(model) if model else None, Path(model_dir or Path.cwd()))
        onnx = FaceMapModel(path, provider, input_name, output_name, spin=spin)
        basis = load_basis(Path(basis_dir) if basis_dir else None, download=download, progress=progress)
        pre = Preprocessor(onnx.input_hw, onnx.io.layout, face_margin, bgr, normalize)
        return cls(onnx, Decoder(basis), pre)

    def describe(self) -> dict:
        """What was loaded, for logs and JSON: landmarker, model path and provider."""
        return {"landmarker": self.name, "model": str(self.model.path), "provider": self.model.provider}

    def landmark(
        self, image_bgr: np.ndarray, faces: list[BBox], frame: int = 1, timestamp_ms: float = 0.0
    ) -> list[Face]:
        """Run the model on every face box at once and decode the batch."""
        if not faces:
            return []
        batch, transforms = self.preprocessor.batch(image_bgr, faces)
        params = self.model.run(batch)
        return self.results_from_params(params, faces, [t.box for t in transforms], frame, timestamp_ms)

    def results_from_params(
        self,
        params: np.ndarray,
        faces: list[BBox],
        crop_boxes: list[BBox],
        frame: int,
        timestamp_ms: float,
    ) -> list[Face]:
        """Decode (N, 265) params for N faces into checked Faces."""
        decoded = self.decoder.decode(params)
        named = self.measurer(decoded) if self.measurer is not None else {}
        boxes = np.array([b.as_tuple() for b in crop_boxes], dtype=np.float64)
        landmarks = model_to_image(decoded.landmarks_model, boxes, self.preprocessor.input_hw)
        results = []
        for i, face in enumerate(faces):
            status, reason = check_landmarks(landmarks[i], face, params[i])
            finite = status is not Status.UNSTABLE
            results.append(
                Face(
                    frame=frame,
                    timestamp_ms=timestamp_ms,
                    status=status,
                    reason=reason,
                    box=face,
                    landmarks=landmarks[i] if finite else None,
                    pose=Pose(*map(float, decoded.pose_deg[i])) if finite else None,
                    params=params[i],
                    expression=decoded.expression[i] if finite else None,
                    expression_measures={k: v[i] for k, v in named.items()} if finite else {},
                )
            )
        return results
