"""Crop, resize and normalise a face for the model: (image, BBox) -> tensor, as one affine warp.

Qualcomm's evaluation (FaceMap3DMMDataset) enlarges the face box by 10 % of its width and height on
each side, crops it (inclusive bounds) and resizes the crop to 128x128 with bilinear sampling.
Here the crop and the resize are one ``cv2.warpAffine``; where the enlarged box runs off the image
the input is padded with black instead of clamping or shifting the box.

Two maps are kept per crop (:class:`CropTransform`):

- the *sampling* map used to build the input, which follows ``cv2.resize`` pixel-centre alignment
  (``x = x0 + (u + 0.5) * s - 0.5``), so the model sees what it saw in training;
- the *landmark* map, Qualcomm's ``transform_landmark_coordinates``: ``x = x0 + u * s`` with
  ``s = width / 128`` and width = x1 - x0 + 1 (inclusive), so landmarks match the reference exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import UsageError
from .types import BBox

NORMALIZATIONS = ("none", "0_1", "-1_1", "imagenet")
DEFAULT_NORMALIZE = "0_1"
DEFAULT_FACE_MARGIN = 0.1  # crop margin per side, fraction of the box, as Qualcomm's evaluation
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class CropTransform:
    """The crop box (inclusive, image pixels) and the model input size (H, W)."""

    box: BBox
    input_hw: tuple[int, int]

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Image pixels per model-input pixel, (sx, sy)."""
        h, w = self.input_hw
        return (self.box.width / w, self.box.height / h)

    def sampling_matrix(self) -> np.ndarray:
        """(2, 3) affine image -> input pixels for cv2.warpAffine (cv2.resize alignment)."""
        sx, sy = self.scale_xy
        return np.array(
            [
                [1.0 / sx, 0.0, (0.5 - self.box.x0) / sx - 0.5],
                [0.0, 1.0 / sy, (0.5 - self.box.y0) / sy - 0.5],
            ]
        )

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) input-pixel coordinates (0..W) -> image pixels, Qualcomm's landmark map."""
        sx, sy = self.scale_xy
        pts = np.asarray(points, dtype=np.float64)
        return np.stack([self.box.x0 + pts[..., 0] * sx, self.box.y0 + pts[..., 1] * sy], axis=-1)

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) image pixels -> input-pixel coordinates; the exact inverse of ``to_image``."""
        sx, sy = self.scale_xy
        pts = np.asarray(points, dtype=np.float64)
        return np.stack([(pts[..., 0] - self.box.x0) / sx, (pts[..., 1] - self.box.y0) / sy], axis=-1)


class Preprocessor:
    """Turns (image, face box) into one model input. Build once per model; call per face."""

    def __init__(
        self,
        input_hw: tuple[int, int] = (128, 128),
        layout: str = "NCHW",
        margin: float = DEFAULT_FACE_MARGIN,
        bgr: bool = False,
        normalize: str = DEFAULT_NORMALIZE,
    ) -> None:
        if normalize not in NORMALIZATIONS:
            raise UsageError(
                f"{{normalize}} {normalize!r} is unknown; choose one of {', '.join(NORMALIZATIONS)}"
            )
        if not (0.0 <= margin <= 2.0):
            raise UsageError(f"{{face_margin}} {margin} is out of range; expected 0 to 2 (default {DEFAULT_FACE_MARGIN})")
        if layout not in ("NCHW", "NHWC"):
            raise UsageError(f"layout {layout!r} is unknown; expected NCHW or NHWC")
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.layout = layout
        self.margin = margin
        self.bgr = bgr
        self.normalize = normalize

    def crop_box(self, face: BBox) -> BBox:
        """The face box enlarged by the margin on each side (may run off the image)."""
        return face.expand(self.margin)

    def crop(self, image_bgr: np.ndarray, face: BBox) -> tuple[np.ndarray, CropTransform]:
        """(H, W, 3) uint8 BGR image + face box -> ((3, h, w) or (h, w, 3) float32, transform)."""
        transform = CropTransform(self.crop_box(face), self.input_hw)
        h, w = self.input_hw
        m = transform.sampling_matrix()
        # Replicate at the border so in-image crops equal cv2.resize (which clamps), then black
        # out the input pixels whose source lies off the image: padding, never shifting.
        patch = cv2.warpAffine(
            image_bgr, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        img_h, img_w = image_bgr.shape[:2]
        sx, sy = transform.scale_xy
        src_x = transform.box.x0 + (np.arange(w) + 0.5) * sx - 0.5
        src_y = transform.box.y0 + (np.arange(h) + 0.5) * sy - 0.5
        cols = (src_x >= -0.5) & (src_x <= img_w - 0.5)
        rows = (src_y >= -0.5) & (src_y <= img_h - 0.5)
        if not (cols.all() and rows.all()):
            patch[~rows] = 0
            patch[:, ~cols] = 0
        if patch.ndim == 2:
            patch = cv2.cvtColor(patch, cv2.COLOR_GRAY2BGR)
        if not self.bgr:
            patch = patch[:, :, ::-1]
        x = patch.astype(np.float32)
        if self.normalize == "0_1":
            x *= 1.0 / 255.0
        elif self.normalize == "-1_1":
            x = x * (2.0 / 255.0) - 1.0
        elif self.normalize == "imagenet":
            mean, std = (_IMAGENET_MEAN, _IMAGENET_STD)
            if self.bgr:
                mean, std = mean[::-1], std[::-1]
            x = (x / 255.0 - mean) / std
        if self.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x), transform

    def batch(
        self, image_bgr: np.ndarray, faces: list[BBox]
    ) -> tuple[np.ndarray, list[CropTransform]]:
        """Stack crops of several faces into one (N, ...) batch."""
        crops = [self.crop(image_bgr, f) for f in faces]
        h, w = self.input_hw
        empty_shape = (0, 3, h, w) if self.layout == "NCHW" else (0, h, w, 3)
        if not crops:
            return np.zeros(empty_shape, dtype=np.float32), []
        return np.stack([c[0] for c in crops]), [c[1] for c in crops]
