"""infer.py's options, typed, with defaults taken from the library, and its flag names."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from ..api import DEFAULT_DETECTOR, DEFAULT_LANDMARKER, default_detector
from ..draw import DrawStyle
from ..errors import FacemapError
from ..io.sources import FrameRange
from ..model import DEFAULT_PROVIDER
from ..preprocess import DEFAULT_FACE_MARGIN, DEFAULT_NORMALIZE
from ..track.guard import GuardOptions
from ..track.smooth import DEFAULT_SMOOTH
from ..track.tracker import TrackOptions
from ..types import N_LANDMARKS

DEFAULT_OUTPUT = "out"
# --landmarker dlib with its default detector (dlib-hog, 100-450 ms a frame): while no face is
# followed, the frame is searched every this many frames (--lost-detect-every)
LOST_DETECT_EVERY_DLIB = 5

# How infer.py spells each option a library message names (``{name}`` in the message).
FLAGS = {
    "image": "--image",
    "video": "--video",
    "camera": "--camera",
    "output": "--output",
    "clean": "--clean",
    "model": "--model",
    "fetch_model": "`python infer.py --fetch-model`",
    "install_dlib": "pip install -r requirements-dlib.txt",
    "yunet_path": "--detector-model PATH",
    "force": "--force",
    "basis_dir": "--basis-dir",
    "provider": "--provider",
    "detector": "--detector",
    "detector_model": "--detector-model",
    "bbox": "--bbox",
    "landmarker": "--landmarker",
    "face_margin": "--face-margin",
    "normalize": "--normalize",
    "point_size": "--point-size",
    "line_width": "--line-width",
    "assume_points": "--assume-points",
    "assume_norm": "--assume-norm",
    "output_name": "--output-name",
    "every": "--every",
    "max_frames": "--max-frames",
    "max_faces": "--max-faces",
    "start_s": "--start",
    "end_s": "--end",
    "redetect_every": "--redetect-every",
    "lost_detect_every": "--lost-detect-every",
    "jump_threshold": "--jump-threshold",
    "smooth": "--smooth",
    "min_cutoff": "--smooth-mincutoff",
    "beta": "--smooth-beta",
    "jobs": "--jobs",
    "ray": "--ray",
    "ray_workers": "--ray-workers",
    "ray_cpus": "--ray-cpus",
    "skip_if_no_face": "--skip-if-no-face",
    "fallback_center": "--fallback-center",
    "no_preview": "--no-preview",
    "preview": "--preview",
    "analyze": "--analyze",
    "dump_npy": "--dump-npy",
    "dump_csv": "--dump-csv",
    "compare": "--compare",
    "gt": "--gt",
}

# How analyze_expressions.py spells them (the analysis options, and its --out).
ANALYZE_FLAGS = {
    **FLAGS,
    "output": "--out",
    "landmarks": "--landmarks",
    "meta": "--meta",
    "raw": "--raw",
    "fps": "--fps",
    "config": "--config",
    "baseline_frames": "--baseline-frames",
    "logs": "--logs",
    "dump_landmarks_csv": "`infer.py --dump-landmarks-csv`",
}


class QuietWhenClosed:
    """Standard output that goes quiet once its reader has gone (``infer.py ... | head``): the
    run goes on and writes its files, with nothing said about the closed pipe. The stream's own
    file descriptor is pointed at the null device, so what it still holds flushes there."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def _closed(self) -> None:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        except (OSError, ValueError, AttributeError):  # no file descriptor (a captured stream)
            self._stream = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._closed()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._closed()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def safe_console() -> None:
    """Make the terminal streams print a file name that is not valid UTF-8 (Latin-1 bytes) as
    escapes instead of failing on it, and standard output go quiet when its reader has gone."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if sys.stdout is not None and not isinstance(sys.stdout, QuietWhenClosed):
        sys.stdout = QuietWhenClosed(sys.stdout)


def bug_line(exc: BaseException) -> str:
    """An unexpected exception in one line: its type, message and where it was raised.
    (FACEMAP_DEBUG=1 shows the whole traceback as well.)"""
    import os
    import traceback

    if os.environ.get("FACEMAP_DEBUG") == "1":
        traceback.print_exc()
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


def cli_message(err: FacemapError, flags: dict[str, str] = FLAGS) -> str:
    """The error's one line, in the flag names of a script (infer.py's by default)."""
    return err.render(flags)


@dataclass
class InferConfig:
    """Every option of infer.py, typed. Defaults are the library's."""

    image: list[str] | None = None
    video: list[str] | None = None
    camera: int | None = None
    model: str | None = None
    fetch_model: bool = False
    inspect: bool = False
    force: bool = False
    input_name: str | None = None
    output_name: str | None = None
    provider: str = DEFAULT_PROVIDER
    basis_dir: str | None = None
    face_margin: float = DEFAULT_FACE_MARGIN
    bgr: bool = False
    normalize: str = DEFAULT_NORMALIZE
    face_detect: bool = True
    detector: str = DEFAULT_DETECTOR
    detector_model: str | None = None
    landmarker: str = DEFAULT_LANDMARKER
    # not named on the command line: the first choice unless it is out of reach (facemap.choose)
    auto_landmarker: bool = False
    auto_detector: bool = False
    max_faces: int = 1  # faces per picture (0 = every face); != 1: face_id columns
    assume_points: int | None = None  # another ONNX landmark model: its output is N points
    assume_norm: bool = False  # ... in [0, 1] of the model input (else input pixels)
    decode_3dmm: bool = False  # the original tool's flag: decoding is always on
    bbox: str | None = None
    output: str = DEFAULT_OUTPUT
    clean: bool = False
    point_size: int = DrawStyle.point_size
    line_width: int = DrawStyle.line_width
    contours: bool = DrawStyle.contours
    mesh: bool = DrawStyle.mesh
    hud: bool = DrawStyle.hud
    dump_csv: bool = False
    dump_landmarks_csv: bool = False
    dump_npy: bool = False
    quiet: bool = False
    script_dir: str = "."
    # video / camera
    save_video: bool = False
    every: int = FrameRange.every
    max_frames: int | None = None
    start: float | None = None
    end: float | None = None
    redetect_every: int = TrackOptions.redetect_every
    # None: 1, or LOST_DETECT_EVERY_DLIB with --landmarker dlib and its default detector
    lost_detect_every: int | None = None
    jump_threshold: float = GuardOptions.jump_threshold
    skip_if_no_face: bool = False  # the original tool's flag: the default now
    fallback_center: bool = False
    smooth: str = DEFAULT_SMOOTH
    smooth_mincutoff: float | None = None
    smooth_beta: float | None = None
    no_preview: bool = False
    preview: bool = False  # --video: a preview window
    analyze: bool = False  # the expression analyzer live, and its files at the end
    jobs: int = 1
    ray: str | None = None  # --ray [ADDRESS]: "" starts a local Ray, else the cluster's address
    ray_workers: int | None = None  # None: as many as the cluster's CPUs hold
    ray_cpus: float = 1.0  # CPUs each Ray worker reserves
    # evaluation (facemap.eval)
    compare: str | None = None
    gt: str | None = None

    @classmethod
    def from_namespace(cls, ns: object) -> InferConfig:
        """Build from an argparse Namespace, ignoring unknown attributes."""
        names = {f.name for f in fields(cls)}
        given = {k: v for k, v in vars(ns).items() if k in names}
        if given.get("landmarker") is None:
            given["landmarker"], given["auto_landmarker"] = DEFAULT_LANDMARKER, True
        cfg = cls(**given)
        if given.get("detector") is None:  # --landmarker dlib: dlib's own HOG detector
            cfg.auto_detector = True
            cfg.take_default_detector()
        return cfg

    def take_default_detector(self) -> None:
        """The landmarker's own detector (``default_detector``); with dlib's HOG detector, which
        costs 100-450 ms a frame, a search every 5th frame where no face is (unless
        --lost-detect-every was given)."""
        self.detector = default_detector(self.landmarker)
        if self.detector == "dlib-hog" and self.lost_detect_every is None:
            self.lost_detect_every = LOST_DETECT_EVERY_DLIB

    @property
    def lost_every(self) -> int:
        """Frames between searches while no face is followed (--lost-detect-every, resolved)."""
        return TrackOptions.lost_detect_every if self.lost_detect_every is None else self.lost_detect_every

    def changed(self) -> dict[str, object]:
        """The options that change a result and differ from their defaults (those of the
        landmarker chosen), by flag name: what a report lists as the settings of the run.
        Inputs, outputs, drawing and how the run is spread are left out."""
        base = InferConfig.from_namespace(_Given(landmarker=self.landmarker))
        out = {}
        for f in fields(self):
            if f.name in _NOT_SETTINGS:
                continue
            value = self.lost_every if f.name == "lost_detect_every" else getattr(self, f.name)
            default = base.lost_every if f.name == "lost_detect_every" else getattr(base, f.name)
            if value != default:
                out[FLAGS.get(f.name, "--" + f.name.replace("_", "-"))] = value
        return out

    def points(self) -> int:
        """Landmarks per face in the logs: 68, or N with --assume-points N."""
        return self.assume_points or N_LANDMARKS

    def style(self) -> DrawStyle:
        """The overlay style these options ask for."""
        return DrawStyle(
            point_size=self.point_size, line_width=self.line_width, contours=self.contours, mesh=self.mesh,
            hud=self.hud, ids=self.max_faces != 1,
        )


class _Given:
    """A stand-in for argparse's Namespace: the given attributes only."""

    def __init__(self, **given: object) -> None:
        self.__dict__.update(given)


# Options that say what is read, where outputs go, how they look or how the run is spread, not
# what the landmarks are (left out of ``InferConfig.changed``).
_NOT_SETTINGS = frozenset({
    "image", "video", "camera", "fetch_model", "inspect", "force", "output", "clean", "point_size",
    "line_width", "contours", "mesh", "hud", "dump_csv", "dump_landmarks_csv", "dump_npy", "quiet",
    "script_dir", "save_video", "smooth", "smooth_mincutoff", "smooth_beta", "no_preview", "jobs", "ray",
    "ray_workers", "ray_cpus", "compare", "gt", "model", "detector_model", "basis_dir", "decode_3dmm",
    "skip_if_no_face", "provider", "auto_landmarker", "auto_detector",
})

DEFAULTS = InferConfig()
