"""What ``infer.py`` does once its arguments are parsed: build the parts once, run, report.

The library never prints: ``run_infer`` hands every line meant for the user to ``emit``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .draw import DrawStyle
from .errors import UsageError
from .types import BBox, FrameResult

if TYPE_CHECKING:
    from .pipeline import ImageReport

log = logging.getLogger(__name__)

Emit = Callable[[str], None]


@dataclass
class InferConfig:
    """Every option of infer.py, typed. Defaults are the CLI's defaults."""

    image: list[str] | None = None
    video: list[str] | None = None
    camera: int | None = None
    model: str | None = None
    fetch_model: bool = False
    inspect: bool = False
    force: bool = False
    input_name: str | None = None
    output_name: str | None = None
    provider: str = "auto"
    basis_dir: str | None = None
    face_margin: float = 0.1
    bgr: bool = False
    normalize: str = "0_1"
    face_detect: bool = True
    detector: str = "haar"
    landmarker: str = "facemap"
    bbox: str | None = None
    output: str = "out"
    clean: bool = False
    point_size: int = 0
    contours: bool = True
    mesh: bool = False
    hud: bool = False
    dump_csv: bool = False
    dump_landmarks_csv: bool = False
    dump_npy: bool = False
    quiet: bool = False
    script_dir: str = "."
    # video / camera (facemap.stream)
    save_video: bool = False
    every: int = 1
    max_frames: int | None = None
    start: float | None = None
    end: float | None = None
    redetect_every: int = 30
    jump_threshold: float = 1.0
    skip_if_no_face: bool = False
    smooth: str = "medium"
    smooth_mincutoff: float | None = None
    smooth_beta: float | None = None
    no_preview: bool = False
    jobs: int = 1
    # evaluation (facemap.eval)
    compare: str | None = None
    gt: str | None = None

    @classmethod
    def from_namespace(cls, ns: object) -> InferConfig:
        """Build from an argparse Namespace, ignoring unknown attributes."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in vars(ns).items() if k in names})

    def style(self) -> DrawStyle:
        """The overlay style these options ask for."""
        return DrawStyle(
            point_size=self.point_size, contours=self.contours, mesh=self.mesh, hud=self.hud
        )


def _fmt_pose(result: object) -> str:
    pose = getattr(result, "pose", None)
    if pose is None:
        return ""
    return f"pitch {pose.pitch_deg:+6.1f}  yaw {pose.yaw_deg:+6.1f}  roll {pose.roll_deg:+6.1f} deg"


def build_detector(cfg: InferConfig, image_shape: tuple[int, int] | None = None):
    """The face detector the options ask for (--bbox, --no-face-detect, or --detector)."""
    from .detect import FixedBoxDetector, make_detector

    if cfg.bbox is not None:
        try:
            box = BBox.parse(cfg.bbox)
        except ValueError as exc:
            raise UsageError(f"--bbox: {exc}") from None
        return FixedBoxDetector(box)
    if not cfg.face_detect:
        return WholeImageDetector()
    return make_detector(cfg.detector)


class WholeImageDetector:
    """For images that are already face crops (--no-face-detect): the whole image is the face."""

    name = "whole-image"

    def detect(self, image_bgr):  # noqa: D401 - Protocol method
        """The full image as one box."""
        h, w = image_bgr.shape[:2]
        return [BBox(0.0, 0.0, w - 1.0, h - 1.0)]


LANDMARKERS = ("facemap", "dlib")


def build_landmarker(cfg: InferConfig, emit: Emit, name: str | None = None):
    """Build landmark backend ``name`` (default ``cfg.landmarker``) once: (landmarker, description).

    ``facemap`` loads the model and basis; ``dlib`` loads dlib's 68-point predictor (no model or
    basis needed; the optional dlib extra must be installed).
    """
    name = cfg.landmarker if name is None else name
    if name == "dlib":
        from .dlib_backend import DlibLandmarker

        # Images: the meta reason says the pose is a 2D estimate; video: the tracker's reason.
        dlib_lmk = DlibLandmarker(ok_reason="pose_2d" if cfg.image else "")
        if not cfg.quiet:
            emit(f"landmarker dlib: {dlib_lmk.predictor.path} (pose estimated from 2D points)")
        return dlib_lmk, {"landmarker": "dlib", "predictor": str(dlib_lmk.predictor.path)}
    if name != "facemap":
        raise UsageError(f"unknown landmarker {name!r}; choose one of: {', '.join(LANDMARKERS)}")
    from .assets import find_model, load_basis
    from .decode import Decoder
    from .model import FaceMapModel
    from .pipeline import FaceMapLandmarker
    from .preprocess import Preprocessor

    model_path = find_model(Path(cfg.model) if cfg.model else None, Path(cfg.script_dir))
    video = bool(cfg.video) or cfg.camera is not None
    model = FaceMapModel(model_path, cfg.provider, cfg.input_name, cfg.output_name, spin=not video)
    basis = load_basis(Path(cfg.basis_dir) if cfg.basis_dir else None, progress=not cfg.quiet)
    pre = Preprocessor(model.input_hw, model.io.layout, cfg.face_margin, cfg.bgr, cfg.normalize)
    if not cfg.quiet:
        emit(f"model {model_path} on {model.provider} ({model.io.layout} {model.input_hw[1]}x{model.input_hw[0]})")
    desc = {"model": str(model_path), "provider": model.provider, "landmarker": "facemap"}
    return FaceMapLandmarker(model, Decoder(basis), pre), desc


def run_infer(cfg: InferConfig, emit: Emit) -> int:
    """Run infer.py's job; returns the exit code (errors are raised as FacemapError)."""
    from .assets import fetch_model, find_model

    if cfg.fetch_model:
        target = Path(cfg.script_dir)
        if cfg.model:  # --model names a folder (where model.onnx goes) or the model file itself
            given = Path(cfg.model)
            target = given if given.is_dir() or given.suffix.lower() != ".onnx" else given.parent
        path = fetch_model(target, progress=not cfg.quiet, force=cfg.force)
        emit(f"model ready: {path}")
        return 0
    if cfg.inspect:
        from .model import describe

        info = describe(find_model(Path(cfg.model) if cfg.model else None, Path(cfg.script_dir)))
        for line in format_inspect(info):
            emit(line)
        return 0
    if not str(cfg.output).strip():
        raise UsageError("--output is empty; give a folder (default out)")
    sources = [s for s in (cfg.image, cfg.video) if s] + ([cfg.camera] if cfg.camera is not None else [])
    if len(sources) != 1:
        raise UsageError("give exactly one of --image, --video or --camera (see --help)")
    if cfg.image:
        return _run_images(cfg, emit)
    if cfg.compare or cfg.gt:
        raise UsageError("--compare and --gt work with --image only (for a video, compare landmarks logs with python -m facemap.eval)")
    from .stream import run_camera, run_videos

    return run_videos(cfg, emit) if cfg.video else run_camera(cfg, emit)


def _run_images(cfg: InferConfig, emit: Emit) -> int:
    from .images import collect_images
    from .outputs import OutputDir
    from .pipeline import ImageOptions, process_images

    paths = collect_images(cfg.image or [])
    detector = build_detector(cfg)
    landmarker, desc = build_landmarker(cfg, emit)
    check = _image_checks(cfg, paths, landmarker, emit)
    if check is not None:
        landmarker = check.landmarker
    desc.update({"detector": detector.name, "face_margin": cfg.face_margin, "facemap_version": __version__})
    options = ImageOptions(
        dump_landmarks_csv=cfg.dump_landmarks_csv,
        dump_csv=cfg.dump_csv,
        dump_npy=cfg.dump_npy,
        style=cfg.style(),
    )
    n_face = 0
    with OutputDir(Path(cfg.output), clean=cfg.clean) as out:
        for rep in process_images(paths, detector, landmarker, out, options, desc):
            r = rep.result
            if r.has_face:
                n_face += 1
                b = r.box
                where = f"face {b.x0:.0f},{b.y0:.0f}-{b.x1:.0f},{b.y1:.0f}"
                if rep.faces_found > 1:
                    where += f" (largest of {rep.faces_found})"
                line = f"{rep.path.name}: {where}  {_fmt_pose(r)}  {rep.elapsed_ms:.0f} ms  [{r.status.value}]"
                if check is None:
                    emit(line)
                elif cfg.quiet:  # one line per input: the comparison joins it
                    emit(f"{line}  |{check.line(rep)}")
                else:
                    emit(line)
                    emit(check.line(rep))
            elif r.status.value == "unstable":
                emit(f"{rep.path.name}: model output unusable ({r.reason})  {rep.elapsed_ms:.0f} ms  [unstable]")
            else:
                emit(f"{rep.path.name}: no face ({r.reason})  {rep.elapsed_ms:.0f} ms")
    if not cfg.quiet:
        emit(f"{len(paths)} image(s), {n_face} with a face; outputs in {cfg.output}/")
    return 0


@dataclass
class _ImageChecks:
    """``--compare`` / ``--gt`` for images: the landmarker to run and each image's report line."""

    landmarker: object
    names: tuple[str, str | None]
    gt_paths: dict[Path, Path | None]

    def line(self, rep: ImageReport) -> str:
        """The NME line for one processed image."""
        from .eval import TeeLandmarker, image_line, load_ground_truth

        other = None
        if isinstance(self.landmarker, TeeLandmarker):
            o = self.landmarker.last_other
            other = (self.names[1], o[0] if o else FrameResult.empty(rep.result.frame))
        gt_path = self.gt_paths.get(rep.path)
        gt = load_ground_truth(gt_path) if gt_path is not None else None
        text = image_line(self.names[0], rep.result, other, gt)
        if self.gt_paths and gt_path is None:
            text += ("; " if text else "") + "no ground truth for this image"
        return f"  {text}"


def _image_checks(cfg: InferConfig, paths: list[Path], landmarker, emit: Emit) -> _ImageChecks | None:
    """Set up --compare NAME (a second backend on the same boxes) and --gt FILE|DIR."""
    if not (cfg.compare or cfg.gt):
        return None
    from .eval import TeeLandmarker, ground_truth_paths

    if cfg.compare == cfg.landmarker:
        raise UsageError(f"--compare {cfg.compare} is the --landmarker already; compare with another one of: {', '.join(LANDMARKERS)}")
    if cfg.compare:
        other, _ = build_landmarker(cfg, emit, cfg.compare)
        landmarker = TeeLandmarker(landmarker, other)
    gts = dict(zip(paths, ground_truth_paths(cfg.gt, paths), strict=True)) if cfg.gt else {}
    return _ImageChecks(landmarker, (cfg.landmarker, cfg.compare), gts)


def format_inspect(info: dict) -> list[str]:
    """Lines for ``--inspect``."""
    lines = [f"model:     {info['model']}", f"producer:  {info['producer'] or '?'}"]
    lines.append("opset:     " + ", ".join(f"{k} {v}" for k, v in info["opset"].items()))
    for kind in ("inputs", "outputs"):
        for t in info[kind]:
            lines.append(f"{kind[:-1]:<10} {t['name']}  shape {t['shape']}  {t['dtype']}")
    lines.append(f"layout:    {info['layout']} {info['input_hw'][1]}x{info['input_hw'][0]}")
    if info["external_data"]:
        for e in info["external_data"]:
            lines.append(f"weights:   {e['path']}  {e['size_bytes']:,} bytes")
    else:
        lines.append("weights:   inside the .onnx (no external data)")
    lines.append("providers: " + ", ".join(info["providers_available"]))
    return lines
