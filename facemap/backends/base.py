"""What every backend implements: the Detector and Landmarker protocols, and their shared checks.

A detector answers ``detect(image_bgr) -> list[BBox]``: inclusive boxes in image pixels,
calibrated to the box around the 68 landmarks (jaw to brows), largest first, ``[]`` when there
is no face. A landmarker answers ``landmark(image_bgr, boxes, frame, timestamp_ms) -> list[Face]``,
one Face per box in the same order. An ok Face's ``reason`` is the landmarker's ``ok_reason``
("" for FaceMap; "pose_2d" for dlib, whose pose is estimated from the 2D points); in video mode
the tracker replaces it with how the box was found (``detected`` or ``tracked``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..types import BBox, Face, Status

# A landmark box this much smaller or larger than the crop's face box marks a face "warn".
GUARD_MIN_SIZE_RATIO = 0.3
GUARD_MAX_SIZE_RATIO = 3.0


@runtime_checkable
class Detector(Protocol):
    """A face detector: ``detect(image_bgr)`` -> landmark-style boxes, largest first."""

    name: str

    def detect(self, image_bgr: np.ndarray) -> list[BBox]:
        """Inclusive boxes in image pixels around each face's 68 landmarks; [] when no face."""
        ...


@runtime_checkable
class Landmarker(Protocol):
    """A landmark backend: 68 iBUG points for each given face box."""

    name: str

    def landmark(
        self, image_bgr: np.ndarray, faces: list[BBox], frame: int = 1, timestamp_ms: float = 0.0
    ) -> list[Face]:
        """One Face per box, in the same order."""
        ...


def check_image(image: np.ndarray) -> None:
    """Raise ValueError/TypeError unless ``image`` is uint8 BGR (H, W, 3) or grayscale (H, W)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise ValueError(f"expected a BGR (H, W, 3) or grayscale (H, W) image, got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected a non-empty image, got shape {image.shape}")


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) grayscale of a uint8 BGR (H, W, 3) or grayscale (H, W) image."""
    check_image(image)
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def largest_first(boxes: list[BBox]) -> list[BBox]:
    """``boxes`` sorted by area, largest first."""
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def calibrate_box(box: BBox, dx: float, dy: float, scale_w: float, scale_h: float) -> BBox:
    """Map a detector's box to the box around the 68 landmarks: with the box's centre (cx, cy)
    and width w, the landmark box has centre (cx + dx * w, cy + dy * w), width scale_w * w and
    height scale_h * w (same pixels, not clipped)."""
    cx, cy = box.center
    w = box.width
    ncx, ncy = cx + dx * w, cy + dy * w
    nw, nh = scale_w * w, scale_h * w
    return BBox(ncx - (nw - 1.0) / 2.0, ncy - (nh - 1.0) / 2.0, ncx + (nw - 1.0) / 2.0, ncy + (nh - 1.0) / 2.0)


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
