"""Detectors that find nothing: the "precomputed boxes" backend and the whole-image box."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..types import BBox
from .base import check_image


class FixedBoxDetector:
    """The "precomputed boxes" backend: always returns the given landmark-style box, unclipped."""

    name = "bbox"

    def __init__(self, box: BBox | str | tuple[float, float, float, float]) -> None:
        if isinstance(box, BBox):
            self.box = box
        else:
            try:
                self.box = BBox.parse(box) if isinstance(box, str) else BBox(*box)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"{{bbox}}: {exc}") from None

    def detect(self, image_bgr: np.ndarray) -> list[BBox]:
        """The fixed box, whatever the image holds (the image is only checked)."""
        check_image(image_bgr)
        return [self.box]


class WholeImageDetector:
    """For images that are already face crops: the whole image is the face."""

    name = "whole-image"

    def detect(self, image_bgr: np.ndarray) -> list[BBox]:
        """The full image as one box."""
        check_image(image_bgr)
        h, w = image_bgr.shape[:2]
        return [BBox(0.0, 0.0, w - 1.0, h - 1.0)]
