"""The processing chain: image -> face box -> crop -> model -> decode -> guard -> outputs.

``Landmarker`` is the one interface every landmark backend implements: (image, boxes) ->
FrameResults. ``FaceMapLandmarker`` is the ONNX model + 3DMM decode. ``process_images`` drives it
over still images and writes overlays, JSON and logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .decode import Decoder, model_to_image
from .detect import Detector
from .draw import DrawStyle, draw_overlay
from .errors import OutputError
from .images import read_image, unique_stems
from .model import FaceMapModel
from .outputs import OutputDir, atomic_write_bytes, atomic_write_json
from .preprocess import Preprocessor
from .records import FrameLogs, log_path
from .types import BBox, FrameResult, Pose, Status

log = logging.getLogger(__name__)

# A landmark box this much smaller or larger than the crop's face box marks a frame "warn".
GUARD_MIN_SIZE_RATIO = 0.3
GUARD_MAX_SIZE_RATIO = 3.0


class Landmarker(Protocol):
    """A landmark backend: 68 iBUG points for each given face box."""

    name: str

    def landmark(
        self, image_bgr: np.ndarray, faces: list[BBox], frame: int = 1, timestamp_ms: float = 0.0
    ) -> list[FrameResult]:
        """One FrameResult per box, in the same order."""
        ...


@dataclass
class FaceMapLandmarker:
    """The FaceMap 3DMM model: crop, run as one batch, decode, map back, check."""

    model: FaceMapModel
    decoder: Decoder
    preprocessor: Preprocessor
    name: str = "facemap"

    def landmark(
        self, image_bgr: np.ndarray, faces: list[BBox], frame: int = 1, timestamp_ms: float = 0.0
    ) -> list[FrameResult]:
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
    ) -> list[FrameResult]:
        """Decode (N, 265) params for N faces into checked FrameResults."""
        decoded = self.decoder.decode(params)
        boxes = np.array([b.as_tuple() for b in crop_boxes], dtype=np.float64)
        landmarks = model_to_image(decoded.landmarks_model, boxes, self.preprocessor.input_hw)
        results = []
        for i, face in enumerate(faces):
            status, reason = check_landmarks(landmarks[i], face, params[i])
            finite = status is not Status.UNSTABLE
            results.append(
                FrameResult(
                    frame=frame,
                    timestamp_ms=timestamp_ms,
                    status=status,
                    reason=reason,
                    box=face,
                    landmarks=landmarks[i] if finite else None,
                    pose=Pose(*map(float, decoded.pose_deg[i])) if finite else None,
                    params=params[i],
                    expression=decoded.expression[i] if finite else None,
                )
            )
        return results


def check_landmarks(landmarks: np.ndarray, face: BBox, params: np.ndarray) -> tuple[Status, str]:
    """Sanity of one face's output: (status, reason). Non-finite output -> unstable."""
    if not (np.isfinite(params).all() and np.isfinite(landmarks).all()):
        return Status.UNSTABLE, "non_finite_output"
    lm_box = BBox.from_points(landmarks)
    ratio = np.sqrt(lm_box.area / face.area)
    if not (GUARD_MIN_SIZE_RATIO <= ratio <= GUARD_MAX_SIZE_RATIO):
        return Status.WARN, "landmarks_off_box"
    cx, cy = lm_box.center
    if not (face.x0 - face.width <= cx <= face.x1 + face.width) or not (
        face.y0 - face.height <= cy <= face.y1 + face.height
    ):
        return Status.WARN, "landmarks_off_box"
    return Status.OK, ""


@dataclass(frozen=True)
class ImageReport:
    """What one processed image yields: its result, where outputs went, how long it took."""

    path: Path
    stem: str
    result: FrameResult
    faces_found: int
    elapsed_ms: float
    outputs: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class ImageOptions:
    """Which files to write per image."""

    dump_landmarks_csv: bool = False
    dump_csv: bool = False
    dump_npy: bool = False
    save_overlay: bool = True
    style: DrawStyle = DrawStyle()
    jpeg_quality: int = 95


def image_json(
    path: Path, image: np.ndarray, report_result: FrameResult, faces_found: int, extra: dict
) -> dict:
    """The per-image JSON document (units in the key names)."""
    r = report_result
    doc = {
        "image": str(path),
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "face_found": r.has_face,
        "faces_detected": faces_found,
        "status": r.status.value,
        "reason": r.reason,
        "box": list(r.box.as_tuple()) if r.box is not None else None,
        "landmarks": np.round(r.landmarks, 3).tolist() if r.has_face else [],
        "pose_deg": (
            dict(zip(("pitch", "yaw", "roll"), (round(v, 3) for v in r.pose.as_tuple()), strict=True))
            if r.pose is not None
            else None
        ),
        "expression": np.round(r.expression, 6).tolist(),
    }
    doc.update(extra)
    return doc


def process_images(
    paths: list[Path],
    detector: Detector,
    landmarker: Landmarker,
    out: OutputDir,
    options: ImageOptions,
    meta: dict | None = None,
) -> Iterator[ImageReport]:
    """Process each image in turn (largest face), write its outputs, yield a report per image."""
    for path, stem in zip(paths, unique_stems(paths), strict=True):
        image = read_image(path)
        t0 = time.perf_counter()
        faces = detector.detect(image)
        results = landmarker.landmark(image, faces[:1]) if faces else []
        result = results[0] if results else FrameResult.empty(1, reason="detector_failed")
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        written = _write_image_outputs(path, stem, image, result, len(faces), out, options, meta or {})
        yield ImageReport(path, stem, result, len(faces), elapsed_ms, written)


def _write_image_outputs(
    path: Path,
    stem: str,
    image: np.ndarray,
    result: FrameResult,
    faces_found: int,
    out: OutputDir,
    options: ImageOptions,
    meta: dict,
) -> list[Path]:
    written: list[Path] = []
    if options.save_overlay:
        overlay = draw_overlay(image, result, options.style)
        ok, buf = cv2.imencode(".jpg", overlay, [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality])
        if not ok:
            raise OutputError(f"{path}: cannot encode the overlay as JPEG")
        target = out.file(f"{stem}_overlay.jpg")
        atomic_write_bytes(target, buf.tobytes())
        written.append(target)
    rel_logs = [log_path(Path(""), stem, k).as_posix() for k in ("meta", "summary")]
    if options.dump_csv:
        rel_logs.append(log_path(Path(""), stem, "raw").as_posix())
    if options.dump_landmarks_csv:
        rel_logs.append(log_path(Path(""), stem, "landmarks").as_posix())
    for rel in rel_logs:
        out.file(rel)
    with FrameLogs(out.path, stem, raw=options.dump_csv, landmarks=options.dump_landmarks_csv) as logs:
        logs.write(result)
    written.extend(out.path / r for r in rel_logs)
    if options.dump_npy and result.params.size:
        import io

        buf = io.BytesIO()
        np.save(buf, result.params[None].astype(np.float32))
        target = out.file(f"logs/{stem}_raw.npy")
        atomic_write_bytes(target, buf.getvalue())
        written.append(target)
    target = out.file(f"{stem}.json")
    atomic_write_json(target, image_json(path, image, result, faces_found, meta))
    written.append(target)
    return written
