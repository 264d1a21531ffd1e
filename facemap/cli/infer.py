"""What ``infer.py`` does once its arguments are parsed: build the parts once, run, report.

The library never prints: ``run_infer`` hands every line meant for the user to ``emit``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._version import __version__
from ..api import FaceMap
from ..backends import (
    available_landmarkers,
)
from ..errors import FacemapError, InputFileError, UsageError
from ..io.outputs import OutputDir
from ..io.schema import face_id_column
from ..provenance import run_info
from ..sinks import ImageFilesSink
from ..types import N_LANDMARKS, Face, Frame
from .build import build_landmarker, open_facemap, resolve_landmarker
from .config import FLAGS, InferConfig
from .videos import for_each

log = logging.getLogger(__name__)

Emit = Callable[[str], None]


def _fmt_pose(result: Face) -> str:
    pose = result.pose
    if pose is None:
        return ""
    return f"pitch {pose.pitch_deg:+6.1f}  yaw {pose.yaw_deg:+6.1f}  roll {pose.roll_deg:+6.1f} deg"


def run_infer(cfg: InferConfig, emit: Emit) -> int:
    """Run infer.py's job; returns the exit code (errors are raised as FacemapError)."""
    from ..assets import fetch_model, find_model

    if cfg.fetch_model:
        target = Path(cfg.script_dir)
        if cfg.model:  # --model names a folder (where model.onnx goes) or the model file itself
            given = Path(cfg.model)
            target = given if given.is_dir() or given.suffix.lower() != ".onnx" else given.parent
        try:
            path = fetch_model(target, progress=not cfg.quiet, force=cfg.force)
        except KeyboardInterrupt:  # not a run's logs: the download's temp folder is gone
            raise KeyboardInterrupt("interrupted: nothing partial is left; run again to download the model") from None
        emit(f"model ready: {path}")
        return 0
    sources = [s for s in (cfg.image, cfg.video) if s] + ([cfg.camera] if cfg.camera is not None else [])
    if len(sources) != 1 and not cfg.inspect:  # before the model is looked for (its notice)
        raise UsageError("give exactly one of --image, --video or --camera (see --help)")
    resolve_landmarker(cfg)  # no model.onnx and no --landmarker: dlib, when installed
    if cfg.inspect:
        if cfg.landmarker != "facemap":
            for line in inspect_landmarker(cfg.landmarker, cfg.detector):
                emit(line)
            return 0
        from ..model import N_PARAMS, describe

        n_out = None if cfg.assume_points else N_PARAMS  # another landmark model: any output
        info = describe(find_model(Path(cfg.model) if cfg.model else None, Path(cfg.script_dir)), n_out)
        for line in format_inspect(info):
            emit(line)
        return 0
    if not str(cfg.output).strip():
        raise UsageError("{output} is empty; give a folder (default out)")
    if cfg.decode_3dmm and not cfg.quiet:
        emit("note: --decode-3dmm is not needed: " + (
            "the 68 landmarks are always decoded from the 3DMM parameters" if cfg.landmarker == "facemap"
            else f"the {cfg.landmarker} landmarker gives its points directly (it has no 3DMM parameters)"))
    if (cfg.compare or cfg.gt) and cfg.points() != N_LANDMARKS:
        raise UsageError(
            f"{{compare}} and {{gt}} measure the 68 iBUG points; {{assume_points}} {cfg.points()} gives another set"
        )
    if cfg.image:
        if cfg.ray is not None:
            raise UsageError("{ray} spreads --video files over Ray workers; for images run without it")
        return _run_images(cfg, emit)
    if cfg.compare or cfg.gt:
        raise UsageError("--compare and --gt work with --image only (for a video, compare landmarks logs with python -m facemap.eval)")
    if cfg.ray is not None:
        if cfg.analyze:
            raise UsageError("{analyze} runs with --video or --camera on this machine; for a corpus on Ray, "
                             "run analyze_expressions.py --logs OUTPUT/logs --ray afterwards")
        if not cfg.video:
            raise UsageError("{ray} spreads --video files over Ray workers; it does not apply to --camera")
        from .corpus import run_corpus

        return run_corpus(cfg, emit)
    from .videos import run_camera, run_videos

    return run_videos(cfg, emit) if cfg.video else run_camera(cfg, emit)


def image_line(frame: Frame, with_face_id: bool = False, given_box: bool = False) -> str:
    """The one line printed for a processed picture (``with_face_id``: every face, by id;
    ``given_box``: the face's box is the user's, --bbox, not a detection)."""
    r = frame.result
    took = f"{frame.elapsed_ms:.0f} ms"
    if with_face_id and frame.faces:
        each = "; ".join(
            f"{f.id}: {f.box.x0:.0f},{f.box.y0:.0f}-{f.box.x1:.0f},{f.box.y1:.0f} [{f.status.value}]" for f in frame.faces
        )
        found = "the given box" if given_box else f"{len(frame.faces)} of {len(frame.detections)} detected face(s)"
        return f"{frame.source.name}: {found}: {each}  {took}"
    if r.has_face:
        b = r.box
        where = f"face {b.x0:.0f},{b.y0:.0f}-{b.x1:.0f},{b.y1:.0f}"
        if len(frame.detections) > 1:
            where += f" (largest of {len(frame.detections)})"
        return f"{frame.source.name}: {where}  {_fmt_pose(r)}  {took}  [{r.status.value}]"
    if r.status.value == "unstable":
        return f"{frame.source.name}: model output unusable ({r.reason})  {took}  [unstable]"
    return f"{frame.source.name}: no face ({r.reason})  {took}"


def _run_images(cfg: InferConfig, emit: Emit) -> int:
    from ..io.images import check_image_file, collect_images, unique_stems
    from ..io.sources import Source
    from ..types import Mode
    from .videos import own_outputs_left_out

    given = own_outputs_left_out(collect_images(cfg.image or []), cfg, emit, "images")
    # every input and the output folder are checked before any model is loaded: one picture
    # that cannot be read is refused; of several, each bad one is a line and the others are done
    bad: dict[Path, FacemapError] = {}
    for path in given:
        try:
            check_image_file(path)
        except InputFileError as exc:
            if len(given) == 1:
                raise
            bad[path] = exc
    paths = [p for p in given if p not in bad]
    if not paths:
        first = next(iter(bad.values()))
        raise InputFileError(f"none of the {len(given)} images can be read; the first: {first.template}")
    OutputDir(Path(cfg.output), clean=cfg.clean).check()
    for path, exc in bad.items():
        emit(f"{path.name}: failed: {exc.render(FLAGS)}")
    fm, desc = open_facemap(cfg, emit)
    check = _image_checks(cfg, paths, fm.landmarker, emit)
    if check is not None:
        fm = FaceMap(fm.detector, check.landmarker, fm.options, fm.fitter)
    desc.update({"detector": fm.detector.name, "face_margin": cfg.face_margin, "facemap_version": __version__})
    made_by = run_info(fm.landmarker, fm.detector, cfg.changed(), fm.fitter)  # model and basis SHA-256, settings
    if "predictor" in desc:  # dlib's JSON names its model file "predictor", as ever
        made_by.pop("model", None)
    desc.update(made_by)
    inputs = [Source("image", stem, path=p) for p, stem in zip(paths, unique_stems(paths), strict=True)]
    n_face = 0
    with_face_id = face_id_column(cfg.max_faces)
    with OutputDir(Path(cfg.output), clean=cfg.clean) as out:
        sink = ImageFilesSink(
            out,
            raw=cfg.dump_csv,
            landmarks=cfg.dump_landmarks_csv,
            npy=cfg.dump_npy,
            style=cfg.style(),
            meta=desc,
            points=cfg.points(),
            with_face_id=with_face_id,
        )
        def report(frame: Frame) -> None:
            nonlocal n_face
            line = image_line(frame, with_face_id, given_box=cfg.bbox is not None)
            if frame.result.has_face:
                n_face += 1
                if check is not None:
                    extra = check.line(frame)
                    if cfg.quiet:  # one line per input: the comparison joins it
                        line = f"{line}  |{extra}"
                    else:
                        emit(line)
                        line = extra
            emit(line)

        for_each(fm.process(inputs, mode=Mode.IMAGE, sinks=[sink]), report)
    if not cfg.quiet:
        emit(f"{len(paths)} image(s), {n_face} with a face; outputs in {cfg.output}/")
    if bad:
        raise InputFileError(
            f"{len(bad)} of {len(given)} image(s) could not be read: {', '.join(p.name for p in bad)}; "
            "the others are done"
        )
    return 0


@dataclass
class _ImageChecks:
    """``--compare`` / ``--gt`` for images: the landmarker to run and each image's report line."""

    landmarker: object
    names: tuple[str, str | None]
    gt_paths: dict[Path, Path | None]

    def line(self, frame: Frame) -> str:
        """The NME line for one processed image."""
        from ..eval import TeeLandmarker, image_line, load_ground_truth

        other = None
        if isinstance(self.landmarker, TeeLandmarker):
            o = self.landmarker.last_other
            other = (self.names[1], o[0] if o else Face.empty(frame.index))
        gt_path = self.gt_paths.get(frame.source)
        gt = load_ground_truth(gt_path) if gt_path is not None else None
        text = image_line(self.names[0], frame.result, other, gt)
        if self.gt_paths and gt_path is None:
            text += ("; " if text else "") + "no ground truth for this image"
        return f"  {text}"


def _image_checks(cfg: InferConfig, paths: list[Path], landmarker, emit: Emit) -> _ImageChecks | None:
    """Set up --compare NAME (a second backend on the same boxes) and --gt FILE|DIR."""
    if not (cfg.compare or cfg.gt):
        return None
    from ..eval import TeeLandmarker, ground_truth_paths

    if cfg.compare == cfg.landmarker:
        raise UsageError(f"--compare {cfg.compare} is the --landmarker already; compare with another one of: {', '.join(available_landmarkers())}")
    if cfg.compare:
        other, _ = build_landmarker(cfg, emit, cfg.compare)
        landmarker = TeeLandmarker(landmarker, other)
    gts = dict(zip(paths, ground_truth_paths(cfg.gt, paths), strict=True)) if cfg.gt else {}
    return _ImageChecks(landmarker, (cfg.landmarker, cfg.compare), gts)


def inspect_landmarker(name: str, detector: str) -> list[str]:
    """Lines for ``--inspect`` with a landmarker other than FaceMap (no model file needed)."""
    from ..backends import make_landmarker

    lmk = make_landmarker(name)
    desc = lmk.describe() if hasattr(lmk, "describe") else {"landmarker": name}
    lines = [f"landmarker: {desc.get('landmarker', name)}"]
    predictor = getattr(lmk, "predictor", None)
    if predictor is not None:
        path = Path(predictor.path)
        size = path.stat().st_size if path.exists() else 0
        lines.append(f"predictor:  {path}  {size:,} bytes")
    lines.append(f"points:     {getattr(lmk, 'n_points', 68)} (iBUG-68 order), pixels")
    lines.append("pose:       " + ("estimated from the 2D points" if name == "dlib" else "from the model"))
    lines.append(f"detector:   {detector}")
    lines.append("3DMM:       none of its own; fitted to its 68 points when the basis is at hand "
                 "(--basis-dir or the cache), else --dump-csv writes the raw log's header only")
    return [ln for ln in lines if ln]


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
