"""Face detectors and landmarkers behind one interface each, with a registry.

``make_detector("haar")`` and ``make_landmarker("dlib")`` build a backend by name;
``available_detectors()`` / ``available_landmarkers()`` list the names;
``register_detector`` / ``register_landmarker`` add your own. A backend with a heavy
dependency (dlib, onnxruntime) imports it when it is built, never when it is registered, so
choosing another backend never pays for it.

Detectors (``detect(image_bgr) -> list[BBox]``, landmark-style boxes, largest first):

- ``yunet``: OpenCV's YuNet CNN (``cv2.FaceDetectorYN``), calibrated to the 68-landmark box;
  its 230 KB model is downloaded once (or given with ``model=PATH``).
- ``haar``: OpenCV's frontal-face Haar cascade, calibrated to the 68-landmark box.
- ``dlib-hog``: dlib's HOG detector, calibrated likewise (needs the dlib extra).
- ``bbox``: a fixed, precomputed box (``box="x0,y0,x1,y1"``), returned as given.

``WholeImageDetector`` (not registered) takes the whole picture as the face, for face crops.

Landmarkers (``landmark(image_bgr, boxes, frame, timestamp_ms) -> list[Face]``):

- ``facemap``: Qualcomm's FaceMap 3DMM ONNX model + the numpy 3DMM decode.
- ``dlib``: dlib's 68-point shape predictor, pose estimated from the 2D points.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

from ..errors import UsageError
from .base import Detector, Landmarker, check_image, check_landmarks
from .boxes import FixedBoxDetector, WholeImageDetector
from .dlib_backend import DlibHogDetector, DlibLandmarker
from .facemap_onnx import FaceMapLandmarker
from .haar import HaarDetector, calibrate_haar_box
from .onnx_points import OnnxPointsLandmarker
from .yunet import YuNetDetector

__all__ = [
    "Detector",
    "DlibHogDetector",
    "DlibLandmarker",
    "FaceMapLandmarker",
    "FixedBoxDetector",
    "HaarDetector",
    "Landmarker",
    "WholeImageDetector",
    "YuNetDetector",
    "available_detectors",
    "available_landmarkers",
    "calibrate_haar_box",
    "check_image",
    "check_landmarks",
    "make_detector",
    "make_landmarker",
    "register_detector",
    "register_landmarker",
]

F = TypeVar("F", bound=Callable[..., object])
_REGISTRY: dict[str, Callable[..., Detector]] = {}
_LANDMARKERS: dict[str, Callable[..., Landmarker]] = {}


def _register(registry: dict, kind: str, name: str) -> Callable[[F], F]:
    def deco(factory: F) -> F:
        if name in registry and registry[name] is not factory:
            raise ValueError(f"{kind} {name!r} is already registered")
        registry[name] = factory
        return factory

    return deco


def _make(registry: dict, kind: str, names: list[str], name: str, options: dict) -> object:
    factory = registry.get(name)
    if factory is None:
        raise UsageError(f"unknown {kind} {name!r}; choose one of: {', '.join(names)}")
    try:
        inspect.signature(factory).bind(**options)
    except TypeError:
        params = [
            p.name
            for p in inspect.signature(factory).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        given = ", ".join(sorted(options)) or "none"
        valid = ", ".join(params) or "none"
        raise UsageError(f"{kind} {name!r} got option(s) {given}; it takes: {valid}") from None
    return factory(**options)


def register_detector(name: str) -> Callable[[F], F]:
    """Decorator: register a detector class or factory under ``name``."""
    return _register(_REGISTRY, "detector", name)


def register_landmarker(name: str) -> Callable[[F], F]:
    """Decorator: register a landmarker class or factory under ``name``."""
    return _register(_LANDMARKERS, "landmarker", name)


def available_detectors() -> list[str]:
    """Names of the registered detectors, sorted."""
    return sorted(_REGISTRY)


def available_landmarkers() -> list[str]:
    """Names of the registered landmarkers, the built-in FaceMap model first."""
    return list(_LANDMARKERS)


def make_detector(name: str, **options: object) -> Detector:
    """Build the detector registered as ``name``; raises UsageError for a bad name or option."""
    return _make(_REGISTRY, "detector", available_detectors(), name, options)


def make_landmarker(name: str, **options: object) -> Landmarker:
    """Build the landmarker registered as ``name`` (loads its model once); UsageError for a bad
    name or option."""
    return _make(_LANDMARKERS, "landmarker", available_landmarkers(), name, options)


register_detector("haar")(HaarDetector)
register_detector("bbox")(FixedBoxDetector)
register_detector("dlib-hog")(DlibHogDetector)
register_detector("yunet")(YuNetDetector)
register_landmarker("facemap")(FaceMapLandmarker.create)
register_landmarker("dlib")(DlibLandmarker)
register_landmarker("onnx-points")(OnnxPointsLandmarker.create)
