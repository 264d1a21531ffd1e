"""The library parts infer.py's flags ask for: detector, landmarker, chain options, FaceMap."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..api import FaceMap
from ..backends import (
    FixedBoxDetector,
    WholeImageDetector,
    available_detectors,
    make_detector,
    make_landmarker,
)
from ..errors import UsageError
from ..pipeline import Options
from ..track.guard import GuardOptions
from ..track.smooth import SmoothOptions
from ..track.tracker import TrackOptions
from .config import DEFAULTS, InferConfig

Emit = Callable[[str], None]
log = logging.getLogger(__name__)


def note_no_params(cfg: InferConfig, landmarker: object) -> None:
    """Say once that --dump-csv / --dump-npy have nothing to write for a landmarker without 3DMM
    parameters (dlib's): the raw log is written with its header only, no .npy at all."""
    if getattr(landmarker, "gives_params", True) or not (cfg.dump_csv or cfg.dump_npy):
        return
    name = getattr(landmarker, "name", cfg.landmarker)
    what = " and ".join(f for f, on in (("--dump-csv", cfg.dump_csv), ("--dump-npy", cfg.dump_npy)) if on)
    log.warning("%s: the %s landmarker gives no 3DMM parameters: the raw log holds its header only%s; "
                "the points go to the landmarks log (--dump-landmarks-csv)", what, name,
                ", and no .npy is written" if cfg.dump_npy else "")


def note_inert_flags(cfg: InferConfig, landmarker: object) -> None:
    """Say once which crop flags a landmarker that crops nothing itself (dlib's) ignores."""
    if hasattr(landmarker, "preprocessor"):
        return
    name = getattr(landmarker, "name", cfg.landmarker)
    inert = [flag for flag, on in (
        ("--face-margin", cfg.face_margin != DEFAULTS.face_margin),
        ("--bgr", cfg.bgr),
        ("--normalize", cfg.normalize != DEFAULTS.normalize),
    ) if on]
    if inert:
        log.warning("%s: no effect with the %s landmarker (it finds its points in the detector's box "
                    "itself, from the image as it is)", ", ".join(inert), name)


def check_detector(cfg: InferConfig) -> None:
    """Refuse a bad detector choice (a usage error) before any model is loaded or fetched."""
    if cfg.bbox is not None:
        FixedBoxDetector(cfg.bbox)  # parses the box
    elif cfg.face_detect and cfg.detector not in available_detectors():
        raise UsageError(f"unknown detector {cfg.detector!r}; choose one of: {', '.join(available_detectors())}")
    if cfg.detector_model and cfg.detector != "yunet":
        raise UsageError(f"{{detector_model}} goes with {{detector}} yunet, not {cfg.detector}")


def build_detector(cfg: InferConfig):
    """The face detector the options ask for (--bbox, --no-face-detect, or --detector)."""
    if cfg.bbox is not None:
        return FixedBoxDetector(cfg.bbox)
    if not cfg.face_detect:
        return WholeImageDetector()
    if cfg.detector == "yunet":
        return make_detector("yunet", model=cfg.detector_model, progress=not cfg.quiet)
    if cfg.detector_model:
        raise UsageError(f"{{detector_model}} goes with {{detector}} yunet, not {cfg.detector}")
    return make_detector(cfg.detector)


def build_landmarker(cfg: InferConfig, emit: Emit, name: str | None = None):
    """Build landmark backend ``name`` (default ``cfg.landmarker``) once: (landmarker, description).

    ``facemap`` loads the model and basis; ``dlib`` loads dlib's 68-point predictor (no model or
    basis needed; the optional dlib extra must be installed).
    """
    name = cfg.landmarker if name is None else name
    if cfg.assume_norm and cfg.assume_points is None:
        raise UsageError("{assume_norm} goes with {assume_points} N (another landmark model's output)")
    # the ONNX model's options, shared by FaceMap and another landmark model (--assume-points)
    onnx = {
        "model": cfg.model,
        "provider": cfg.provider,
        "face_margin": cfg.face_margin,
        "bgr": cfg.bgr,
        "normalize": cfg.normalize,
        "input_name": cfg.input_name,
        "output_name": cfg.output_name,
        "model_dir": cfg.script_dir,
        "spin": not (bool(cfg.video) or cfg.camera is not None),  # video: idle threads yield the cores
    }
    if cfg.assume_points is not None and name == cfg.landmarker == "facemap":
        lmk = make_landmarker("onnx-points", points=cfg.assume_points, normalized=cfg.assume_norm, **onnx)
        if not cfg.quiet:
            m = lmk.model
            emit(f"model {m.path} on {m.provider}: {lmk.n_points} points per face ({m.io.layout} {m.input_hw[1]}x{m.input_hw[0]})")
        return lmk, lmk.describe()
    if cfg.assume_points is not None and name == cfg.landmarker:
        raise UsageError(f"{{assume_points}} reads another ONNX model's output; it does not go with {{landmarker}} {name}")
    if name == "facemap":
        lmk = make_landmarker("facemap", basis_dir=cfg.basis_dir, progress=not cfg.quiet, **onnx)
        if not cfg.quiet:
            m = lmk.model
            emit(f"model {m.path} on {m.provider} ({m.io.layout} {m.input_hw[1]}x{m.input_hw[0]})")
        return lmk, lmk.describe()
    lmk = make_landmarker(name)
    if name == "dlib" and not cfg.quiet:
        emit(f"landmarker dlib: {lmk.predictor.path} (pose estimated from 2D points)")
    describe = getattr(lmk, "describe", None)
    return lmk, (describe() if describe else {"landmarker": name})


def chain_options(cfg: InferConfig) -> Options:
    """The chain's options from the flags."""
    return Options(
        track=TrackOptions(redetect_every=cfg.redetect_every, lost_detect_every=cfg.lost_every,
                           fallback_center=cfg.fallback_center),
        guard=GuardOptions(jump_threshold=cfg.jump_threshold),
        smooth=SmoothOptions(cfg.smooth, cfg.smooth_mincutoff, cfg.smooth_beta),
        max_faces=cfg.max_faces,
    )


def open_facemap(cfg: InferConfig, emit: Emit, landmarker=None) -> tuple[FaceMap, dict]:
    """The FaceMap the flags ask for, and its description for the JSON documents."""
    if cfg.skip_if_no_face and cfg.fallback_center:
        raise UsageError("{skip_if_no_face} and {fallback_center} contradict each other; give one "
                         "(without either, a frame with no face box gets no landmarks)")
    options = chain_options(cfg)  # bad values are refused before any model is loaded
    cfg.style()
    check_detector(cfg)
    if landmarker is None:  # the model first: its absence is the first thing a new user must hear
        landmarker, desc = build_landmarker(cfg, emit)
        note_no_params(cfg, landmarker)
        note_inert_flags(cfg, landmarker)
    else:
        desc = {}
    detector = build_detector(cfg)
    return FaceMap(detector, landmarker, options), desc
