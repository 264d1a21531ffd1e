"""OpenCV's frontal-face Haar cascade as a facemap detector, its boxes calibrated to the box
around the 68 landmarks with constants fitted on real faces (see ``HAAR_DX`` ... below and
``bench/calibrate_detector.py --detector haar``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelError, UsageError
from ..types import BBox
from .base import calibrate_box, largest_first, to_gray

log = logging.getLogger(__name__)

__all__ = ["HAAR_CASCADE_FILE", "HaarDetector", "calibrate_haar_box"]

# Haar box -> box around dlib's 68 landmarks. With the Haar box's centre (cx, cy) and width w
# (Haar boxes are square): landmark-box centre = (cx + HAAR_DX * w, cy + HAAR_DY * w),
# width = HAAR_SCALE_W * w, height = HAAR_SCALE_H * w.
# Fitted once with bench/calibrate_detector.py on 469 real faces of ../shared/data (13 photos and
# 456 frames, every 5th, of 9 clips): each raw Haar box (this detector's default options) matched
# to the box around dlib's 68 landmarks of the same frame (centre inside, best IoU), constants
# = medians of the per-face ratios. Mean IoU with the landmark box: 0.582 raw -> 0.860 calibrated
# (photos alone: 0.588 -> 0.825). The Haar box is ~1.2x wider than the landmark box and centred
# ~0.16 w too high (it covers the forehead and ends near the lower lip).
HAAR_DX = 0.003
HAAR_DY = 0.163
HAAR_SCALE_W = 0.819
HAAR_SCALE_H = 0.827

HAAR_CASCADE_FILE = "haarcascade_frontalface_default.xml"
HAAR_MAX_SIDE_PX = 640
OPENCV_FIX = 'pip install "opencv-python>=4.8,<5"'
OPENCV_REINSTALL = 'pip install --force-reinstall "opencv-python>=4.8,<5"'


def calibrate_haar_box(
    box: BBox,
    dx: float = HAAR_DX,
    dy: float = HAAR_DY,
    scale_w: float = HAAR_SCALE_W,
    scale_h: float = HAAR_SCALE_H,
) -> BBox:
    """Map a raw Haar box to the box around the 68 landmarks (same pixels, not clipped)."""
    return calibrate_box(box, dx, dy, scale_w, scale_h)


def _haar_cascade_dir() -> Path:
    """Where this OpenCV keeps its cascades (``cv2.data.haarcascades``); may not exist."""
    data = getattr(cv2, "data", None)
    return Path(getattr(data, "haarcascades", "") or "cv2-data-missing")


# ----------------------------------------------------------------------------- backends


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, boxes calibrated to the 68-landmark box.

    The cascade is loaded once here; ``detect`` runs on a grayscale copy whose long side is at
    most ``max_side_px`` (INTER_AREA), histogram-equalised, and scales the boxes back.
    ``min_face_px`` is the smallest face side searched, in pixels of that downscaled copy.
    ``calibrate=False`` returns the raw cascade boxes (for fitting the calibration).
    """

    name = "haar"

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face_px: int = 32,
        max_side_px: int = HAAR_MAX_SIDE_PX,
        calibrate: bool = True,
    ) -> None:
        if not scale_factor > 1.0:
            raise UsageError(f"haar scale_factor must be > 1, got {scale_factor}")
        if min_neighbors < 0 or min_face_px < 1 or max_side_px < 24:
            raise UsageError(
                f"haar needs min_neighbors >= 0, min_face_px >= 1, max_side_px >= 24; got "
                f"{min_neighbors}, {min_face_px}, {max_side_px}"
            )
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_face_px = int(min_face_px)
        self.max_side_px = int(max_side_px)
        self.calibrate = bool(calibrate)
        self.cascade_path = _haar_cascade_dir() / HAAR_CASCADE_FILE
        self._cascade = self._load(self.cascade_path)

    @staticmethod
    def _load(path: Path) -> cv2.CascadeClassifier:
        if not path.is_file():
            raise ModelError(
                f"{path}: OpenCV's Haar face cascade is missing (opencv-python 5.x ships none); "
                f"run: {OPENCV_FIX}"
            )
        try:
            cascade = cv2.CascadeClassifier(str(path))
        except (cv2.error, SystemError):  # a corrupt file raises SystemError wrapping cv2.error
            cascade = None
        if cascade is None or cascade.empty():
            raise ModelError(
                f"{path}: OpenCV cannot load this Haar face cascade (corrupt file?); "
                f"run: {OPENCV_REINSTALL}"
            )
        log.debug("loaded Haar cascade %s", path)
        return cascade

    def detect(self, image_bgr: np.ndarray) -> list[BBox]:
        """Faces in a uint8 BGR or grayscale image: landmark-style boxes, largest first."""
        gray = to_gray(image_bgr)
        h, w = gray.shape
        scale = min(1.0, self.max_side_px / max(h, w))
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
            fx, fy = w / size[0], h / size[1]
        else:
            fx = fy = 1.0
        gray = cv2.equalizeHist(gray)
        rects = self._cascade.detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_face_px, self.min_face_px),
        )
        boxes = []
        for x, y, bw, bh in np.asarray(rects, dtype=np.float64).reshape(-1, 4):
            box = BBox(
                float(x * fx), float(y * fy), float((x + bw) * fx - 1.0), float((y + bh) * fy - 1.0)
            )
            boxes.append(calibrate_haar_box(box) if self.calibrate else box)
        return largest_first(boxes)
