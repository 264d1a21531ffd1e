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
from ..errors import UsageError, render_options
from ..pipeline import Options
from ..threedmm import fitter_for
from ..track.guard import ORIGINAL_RANGE, GuardOptions
from ..track.smooth import SmoothOptions
from ..track.tracker import TrackOptions
from .config import DEFAULTS, FLAGS, InferConfig

Emit = Callable[[str], None]
log = logging.getLogger(__name__)


def note_no_params(cfg: InferConfig, landmarker: object, fitter: object = None, why: str | None = None) -> None:
    """Say once that --dump-csv / --dump-npy have nothing to write for a landmarker without 3DMM
    parameters (dlib's) that is not fitted (``why``: no basis): the raw log is written with its
    header only, no .npy at all."""
    if fitter is not None or getattr(landmarker, "gives_params", True) or not (cfg.dump_csv or cfg.dump_npy):
        if why:
            log.info("%s", render_options(why, FLAGS))
        return
    name = getattr(landmarker, "name", cfg.landmarker)
    what = " and ".join(f for f, on in (("--dump-csv", cfg.dump_csv), ("--dump-npy", cfg.dump_npy)) if on)
    log.warning("%s: the %s landmarker gives no 3DMM parameters%s: the raw log holds its header only%s; "
                "the points go to the landmarks log (--dump-landmarks-csv)", what, name,
                f" and there is {render_options(why, FLAGS)}" if why else "",
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


def resolve_landmarker(cfg: InferConfig) -> None:
    """No --landmarker, --model or --assume-points: FaceMap when a model.onnx is found, else the
    model-free dlib landmarker when installed, said in one notice line (and dlib's paired
    detector, when no --detector was given). Sets ``cfg`` once; looks at files only."""
    if not cfg.auto_landmarker:
        return
    cfg.auto_landmarker = False
    if cfg.model or cfg.assume_points is not None:
        return
    from ..choose import choose_landmarker

    choice = choose_landmarker(cfg.script_dir or None)
    if choice.notice:
        log.warning("%s", render_options(choice.notice, FLAGS))
    cfg.landmarker = choice.name
    if cfg.auto_detector:
        cfg.take_default_detector()  # as when --landmarker dlib is given


def resolve_detector(cfg: InferConfig) -> None:
    """No --detector: the landmarker's default; YuNet's file is found (or fetched, with its
    checksum) here, once, and kept in ``cfg.detector_model`` for every worker; when it cannot be
    had, the offline detector, said in one notice line. An explicit --detector is left alone."""
    if not cfg.auto_detector:
        return
    cfg.auto_detector = False
    if cfg.bbox is not None or not cfg.face_detect or cfg.detector_model:
        return
    from ..choose import choose_detector

    choice = choose_detector(cfg.detector, progress=not cfg.quiet)
    if choice.notice:
        log.warning("%s", render_options(choice.notice, FLAGS))
    cfg.detector = choice.name
    if "model" in choice.settings:
        cfg.detector_model = str(choice.settings["model"])


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


def guard_options(cfg: InferConfig, landmarker: object = None) -> tuple[GuardOptions, str | None]:
    """The jump guard --jump-threshold asks for, and the note to say about it (None: nothing).

    Below ``ORIGINAL_RANGE`` it is facemap's normalised score. From there up it is the original
    tool's unit (its default was 25.0): the L2 distance of the raw 3DMM parameters of consecutive
    frames, kept as that measure (it has no fixed ratio to ours); a landmarker without
    parameters (dlib) keeps facemap's guard at its default instead, and the note says so.
    """
    x = cfg.jump_threshold
    if not x >= ORIGINAL_RANGE:  # (NaN and negatives: GuardOptions' own one-line refusal)
        return GuardOptions(jump_threshold=x), None
    if getattr(landmarker, "gives_params", cfg.landmarker == "facemap" and cfg.assume_points is None):
        return GuardOptions(jump_threshold=0.0, params_l2=x), (
            f"note: --jump-threshold {x:g} is read in the original tool's unit: a frame whose 265 raw "
            f"3DMM parameters are more than {x:g} (L2) from the previous frame's is unstable (facemap's "
            f"own scale is below {ORIGINAL_RANGE:g}; its default 1.0 is a 25-degree turn, half a face "
            "width or a clear change of expression)")
    name = getattr(landmarker, "name", cfg.landmarker)
    default = GuardOptions()
    return default, (
        f"note: --jump-threshold {x:g} is in the original tool's unit (L2 distance of the raw 3DMM "
        f"parameters), which the {name} landmarker does not give: the jump guard keeps facemap's own "
        f"measure at its default {default.jump_threshold} (pose, position, landmarks' expression)")


def note_guard(cfg: InferConfig, landmarker: object, emit: Emit) -> None:
    """Say once how --jump-threshold is read, when it is in the original tool's unit (videos)."""
    _, note = guard_options(cfg, landmarker)
    if note and not cfg.quiet and (cfg.video or cfg.camera is not None):
        emit(note)


def chain_options(cfg: InferConfig, landmarker: object = None) -> Options:
    """The chain's options from the flags (the guard's measure depends on the landmarker)."""
    return Options(
        track=TrackOptions(redetect_every=cfg.redetect_every, lost_detect_every=cfg.lost_every,
                           fallback_center=cfg.fallback_center),
        guard=guard_options(cfg, landmarker)[0],
        smooth=SmoothOptions(cfg.smooth, cfg.smooth_mincutoff, cfg.smooth_beta),
        max_faces=cfg.max_faces,
        analyze=_analysis_config() if cfg.analyze and labels_shown(cfg) else None,
    )


def labels_shown(cfg: InferConfig) -> bool:
    """Whether anything shows the labels frame by frame (a picture's JSON, the overlay video, a
    preview window, the camera's): only then does --analyze run the analyzer while the frames
    come; the files of --analyze come from the offline analyzer at the end either way."""
    return bool(cfg.image or cfg.save_video or cfg.preview or (cfg.camera is not None and not cfg.no_preview))


def _analysis_config():
    """The analyzer's settings for --analyze (imported only then)."""
    from ..analysis.config import AnalysisConfig

    return AnalysisConfig()


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
        fitter, why = fitter_for(landmarker, cfg.basis_dir)
        note_no_params(cfg, landmarker, fitter, why)
        note_inert_flags(cfg, landmarker)
        note_guard(cfg, landmarker, emit)
    else:
        desc, fitter = {}, None
    options = chain_options(cfg, landmarker)
    resolve_detector(cfg)
    detector = build_detector(cfg)
    return FaceMap(detector, landmarker, options, fitter), desc
