"""OpenCV's YuNet CNN face detector (``cv2.FaceDetectorYN``) as a facemap detector.

YuNet (opencv_zoo, MIT licence, ~230 KB) finds frontal and turned faces, small and large, and
few false ones. The model file is ``face_detection_yunet_2023mar.onnx``: given by path, or
``$FACEMAP_YUNET_MODEL``, or downloaded once into facemap's cache with its SHA-256 checked
(``facemap.assets.find_yunet_model``). Each picture is searched at a reduced size (long side
``max_side_px``), and the boxes are mapped to the box around the 68 landmarks with constants
fitted like Haar's (``bench/calibrate_detector.py --detector yunet``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelError, UsageError
from ..types import BBox
from .base import calibrate_box, check_image, largest_first

log = logging.getLogger(__name__)

# YuNet box -> box around dlib's 68 landmarks, as for Haar: with the YuNet box's centre (cx, cy)
# and width w: landmark-box centre = (cx + dx * w, cy + dy * w), width = scale_w * w,
# height = scale_h * w. Fitted with bench/calibrate_detector.py --detector yunet: medians over
# 1267 real faces of ../shared/data (14 photos and 1253 frames, every 5th, of 22 clips), each raw
# YuNet box (searched at the default 480 px) matched to the box around dlib's 68 landmarks. Mean
# IoU with the landmark box: 0.707 raw -> 0.904 calibrated (photos alone 0.697 -> 0.883). YuNet's
# box is about as wide as the landmark box and sits ~0.18 w too high (forehead to lips).
YUNET_CALIBRATION = (0.002, 0.179, 1.027, 1.040)
# Faces scoring below this are dropped (the shared dog photo scores 0.85 on its false face).
YUNET_SCORE = 0.9
YUNET_NMS = 0.3
# The long side of the copy searched (pixels), chosen with bench/bench_detect.py: at 480 it finds
# 0.998 of the shared faces, a face filling a 940-px photo (missed at 640) and 22 of 24 small faces
# in dlib_bald_guys (24 at 640), in 10 ms at 720p (640: 13 ms; Haar: 58 ms).
YUNET_MAX_SIDE_PX = 480


def calibrate_yunet_box(box: BBox, consts: tuple[float, float, float, float] = YUNET_CALIBRATION) -> BBox:
    """Map a raw YuNet box to the box around the 68 landmarks (same pixels, not clipped)."""
    return calibrate_box(box, *consts)


# Images smaller than this (pixels, either side) hold no findable face.
MIN_INPUT_PX = 16


class YuNetDetector:
    """YuNet on a copy whose long side is at most ``max_side_px``; boxes calibrated to the
    68-landmark box, largest first. ``model``: the ONNX file (default: see the module doc)."""

    name = "yunet"

    def __init__(
        self,
        model: Path | str | None = None,
        score_threshold: float = YUNET_SCORE,
        nms_threshold: float = YUNET_NMS,
        max_side_px: int = YUNET_MAX_SIDE_PX,
        calibrate: bool = True,
        download: bool = True,
        progress: bool = False,
    ) -> None:
        from ..assets import find_yunet_model

        if not 0.0 < score_threshold < 1.0 or not 0.0 < nms_threshold < 1.0:
            raise UsageError(
                f"yunet score_threshold and nms_threshold must be in (0, 1), got {score_threshold}, {nms_threshold}"
            )
        if max_side_px < 32:
            raise UsageError(f"yunet max_side_px must be >= 32, got {max_side_px}")
        self.model_path = find_yunet_model(model, download_missing=download, progress=progress)
        self.score_threshold = float(score_threshold)
        self.max_side_px = int(max_side_px)
        self.calibrate = bool(calibrate)
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its own [ERROR] line: ours is the one
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(self.model_path), "", (self.max_side_px, self.max_side_px),
                self.score_threshold, float(nms_threshold), 5000,
            )
        except cv2.error as exc:
            raise ModelError(
                f"{self.model_path}: OpenCV cannot load this YuNet model ({_cv_reason(exc)}); download it again"
            ) from None
        finally:
            cv2.utils.logging.setLogLevel(level)
        self._size: tuple[int, int] | None = None
        log.debug("loaded YuNet %s", self.model_path)

    def detect_raw(self, image_bgr: np.ndarray) -> list[tuple[BBox, float]]:
        """YuNet's own (box, score) pairs in image pixels, highest score first."""
        check_image(image_bgr)
        image = image_bgr
        if image.ndim == 2 or image.shape[2] == 1:
            image = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side_px / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        sh, sw = image.shape[:2]
        if min(sh, sw) < MIN_INPUT_PX:  # no face to find, and YuNet's output is unreliable there
            return []
        if self._size != (sw, sh):
            self._net.setInputSize((sw, sh))
            self._size = (sw, sh)
        try:
            _, faces = self._net.detect(image)
        except cv2.error as exc:
            raise ModelError(
                f"{self.model_path}: YuNet failed on a {sw}x{sh} image "
                f"({str(exc).strip().splitlines()[-1][:120]}); is it a YuNet face detector model?"
            ) from None
        if faces is None:
            return []
        fx, fy = w / sw, h / sh
        found = []
        for x, y, bw, bh, *_rest, score in np.asarray(faces, dtype=np.float64).reshape(-1, 15).tolist():
            # OpenCV can return garbage on a tiny image (seen: widths of 7e9 px, heights below 1)
            if not np.isfinite([x, y, bw, bh, score]).all() or not (1.0 <= bw <= 2 * sw and 1.0 <= bh <= 2 * sh):
                continue
            found.append((BBox(x * fx, y * fy, (x + bw) * fx - 1.0, (y + bh) * fy - 1.0), score))
        return sorted(found, key=lambda bs: bs[1], reverse=True)

    def detect(self, image_bgr: np.ndarray) -> list[BBox]:
        """Faces in a uint8 BGR or grayscale image: landmark-style boxes, largest first."""
        boxes = [calibrate_yunet_box(b) if self.calibrate else b for b, _ in self.detect_raw(image_bgr)]
        return largest_first(boxes)


def _cv_reason(exc: Exception) -> str:
    """OpenCV's reason in an error of its own, without its source file, line and function:
    "OpenCV(4.x) .../onnx_importer.cpp:288: error: (-210:...) Failed to parse ONNX model: X in
    function 'ONNXImporter'" -> "Failed to parse ONNX model: X"."""
    text = " ".join(str(exc).split())
    m = re.search(r"error: \(-?\d+:[^)]*\)\s*(.*?)(?:\s+in function '[^']*')?$", text)
    return (m.group(1) if m and m.group(1) else text)[:200]
