"""The two commands: ``infer`` (images, videos, folders, a webcam -> overlays and logs) and
``analyze`` (logs -> labels, events, scores). Each is an argument parser and a ``main`` that
parses and calls the library; ``infer.py`` / ``analyze_expressions.py``, ``python -m facemap``
and the installed ``facemap-infer`` / ``facemap-analyze`` all run these."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from ..errors import DEFAULT_WORDING, EXIT_BUG, EXIT_INTERRUPTED, FacemapError
from ..model import PROVIDERS
from ..preprocess import NORMALIZATIONS
from ..track.smooth import SMOOTH_PRESETS
from .config import ANALYZE_FLAGS, DEFAULTS, FLAGS, InferConfig, bug_line, cli_message, safe_console
from .infer import run_infer

# How python -m facemap fetch spells the options its errors name.
FETCH_FLAGS = {**FLAGS, "fetch_model": "`python -m facemap fetch --model`"}


def infer_parser(prog: str = "infer.py") -> argparse.ArgumentParser:
    """infer.py's argument parser (flag names kept from the original tool)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Run Qualcomm's FaceMap 3DMM model locally: 68 landmarks, head pose, expression.",
        epilog="Exit codes: 0 ok, 1 bug, 2 usage, 3 bad input file, 4 model problem, "
        "5 cannot write output, 130 interrupted.",
    )
    src = p.add_argument_group("input")
    src.add_argument("--image", nargs="+", metavar="PATH", help="image file(s), folder(s) or glob(s)")
    src.add_argument("--video", nargs="+", metavar="PATH", help="video file(s), folder(s) or glob(s)")
    src.add_argument("--camera", type=int, metavar="INDEX", help="live webcam by index")

    m = p.add_argument_group("model")
    m.add_argument("--model", metavar="PATH", help="model.onnx (model.data beside it), or its folder; default: beside infer.py, else ./model.onnx, else facemap's cache")
    m.add_argument("--fetch-model", action="store_true", help="download Qualcomm's FaceMap ONNX (float) to where --model looks, then exit")
    m.add_argument("--force", action="store_true", help="with --fetch-model: replace an existing model.onnx")
    m.add_argument("--inspect", action="store_true", help="print the model's inputs, outputs, opset, weights and providers, then exit")
    m.add_argument("--input-name", help="model input name (default: read from the model)")
    m.add_argument("--output-name", help="model output name (default: read from the model)")
    m.add_argument("--assume-points", type=int, metavar="N", help="another ONNX landmark model: read its output as N points (N x 2 or N x 3 values, in model-input pixels); logs and overlays hold N points")
    m.add_argument("--assume-norm", action="store_true", help="with --assume-points: the points are in [0, 1] of the model input")
    m.add_argument("--decode-3dmm", action="store_true", help="the original tool's flag: the 68 landmarks are always decoded from the 3DMM parameters (accepted, nothing to switch on)")
    m.add_argument("--provider", default=DEFAULTS.provider, choices=["auto", *PROVIDERS], help="onnxruntime execution provider (default %(default)s)")
    m.add_argument("--basis-dir", metavar="DIR", help="folder with meanFace.npy, shapeBasis.npy, blendShape.npy (default: qai-hub-models cache, else download)")
    m.add_argument("--landmarker", help="landmark backend: facemap or dlib (default facemap; without a model.onnx and with dlib installed (pip install -r requirements-dlib.txt): dlib, with a notice)")
    m.add_argument("--compare", metavar="NAME", help="images: also run landmark backend NAME (e.g. dlib) on the same face boxes and print the NME between the two")
    m.add_argument("--gt", metavar="FILE|DIR", help="images: print NME against ground truth (CSV x0,y0,...,x67,y67; a folder of <stem>.csv for several images)")

    pre = p.add_argument_group("face box and preprocessing")
    pre.add_argument("--face-detect", dest="face_detect", action="store_true", default=True, help="detect the face first (default)")
    pre.add_argument("--no-face-detect", dest="face_detect", action="store_false", help="the images are already face crops")
    pre.add_argument("--detector", help=f"face detector: yunet, haar, dlib-hog (default {DEFAULTS.detector}; dlib-hog with --landmarker dlib; yunet's model is downloaded once: when it cannot be, haar, with a notice)")
    pre.add_argument("--detector-model", metavar="PATH", help="--detector yunet: a local face_detection_yunet_2023mar.onnx (default: downloaded once into the cache)")
    pre.add_argument("--max-faces", type=int, default=DEFAULTS.max_faces, metavar="N", help="faces per picture or frame, largest first (default 1; 0 = every face); with N != 1 every log gains a face_id column, the JSON a faces list, and in a video each face keeps its id")
    pre.add_argument("--bbox", metavar="x0,y0,x1,y1", help="use this face box (inclusive pixels) and skip detection")
    pre.add_argument("--face-margin", type=float, default=DEFAULTS.face_margin, help="crop margin per side, fraction of the box (default %(default)s, as Qualcomm's evaluation)")
    pre.add_argument("--bgr", action="store_true", help="feed BGR instead of RGB (other models)")
    pre.add_argument("--normalize", default=DEFAULTS.normalize, choices=list(NORMALIZATIONS), help="input scaling (default %(default)s)")

    out = p.add_argument_group("output")
    out.add_argument("--output", "-o", default=DEFAULTS.output, metavar="DIR", help="output folder (default %(default)s)")
    out.add_argument("--clean", action="store_true", help="empty the output folder first (only one facemap made)")
    out.add_argument("--point-size", type=int, default=DEFAULTS.point_size, help="landmark radius in pixels (default: scaled to the face)")
    out.add_argument("--line-width", type=int, default=DEFAULTS.line_width, metavar="N", help="width of the contour and mesh lines in pixels (default: scaled to the face)")
    out.add_argument("--no-contours", dest="contours", action="store_false", help="do not draw the iBUG-68 contours")
    out.add_argument("--mesh", action="store_true", help="draw a Delaunay wireframe")
    out.add_argument("--hud", action="store_true", help="print status and pose on the overlay")
    out.add_argument("--dump-csv", action="store_true", help="write logs/<stem>_raw.csv (frame,p0..p264)")
    out.add_argument("--dump-landmarks-csv", action="store_true", help="write logs/<stem>_landmarks.csv")
    out.add_argument("--dump-npy", action="store_true", help="write logs/<stem>_raw.npy")
    out.add_argument("--quiet", "-q", action="store_true", help="print only one line per input")
    add_video_arguments(p)
    return p


def add_video_arguments(p: argparse.ArgumentParser) -> None:
    """Flags for --video and --camera."""
    v = p.add_argument_group("video and camera")
    v.add_argument("--save-video", action="store_true", help="write <stem>_overlay.mp4 (H.264, source timing, audio copied)")
    v.add_argument("--every", type=int, default=DEFAULTS.every, metavar="N", help="process every N-th frame (overlay frame rate divided by N)")
    v.add_argument("--max-frames", type=int, metavar="N", help="stop after N processed frames")
    v.add_argument("--start", type=float, metavar="SEC", help="start at this time (seconds)")
    v.add_argument("--end", type=float, metavar="SEC", help="stop at this time (seconds)")
    v.add_argument("--redetect-every", type=int, default=DEFAULTS.redetect_every, metavar="N", help="run the face detector every N frames while tracking (default %(default)s, 0 = only when lost)")
    v.add_argument("--lost-detect-every", type=int, metavar="N", help="while no face is followed, search the frame every N frames (default 1; 5 with --landmarker dlib and its default dlib-hog detector, whose search is slow)")
    v.add_argument("--jump-threshold", type=float, default=DEFAULTS.jump_threshold, metavar="X", help="mark a frame unstable when pose/translation/expression change more than X (normalised; default %(default)s, 0 = off)")
    v.add_argument("--skip-if-no-face", action="store_true", help="no inference on frames without a face box (no_face row): the default; kept for the original tool's commands")
    v.add_argument("--fallback-center", action="store_true", help="on frames without a face box, run the model on the centre of the frame anyway (status warn, reason no_bbox; the original tool's default)")
    v.add_argument("--smooth", default=DEFAULTS.smooth, choices=list(SMOOTH_PRESETS), help="One Euro smoothing of the drawn landmarks and pose; the logs keep the landmarker's (default %(default)s)")
    v.add_argument("--smooth-mincutoff", type=float, metavar="HZ", help="One Euro minimum cutoff in Hz (overrides the preset)")
    v.add_argument("--smooth-beta", type=float, metavar="B", help="One Euro speed coefficient (overrides the preset)")
    v.add_argument("--no-preview", action="store_true", help="--camera without a preview window (headless)")
    v.add_argument("--preview", action="store_true", help="--video: show the overlay in a window while it runs (q or Esc stops)")
    v.add_argument("--analyze", action="store_true", help="run the expression analyzer live: each face's labels and a bar per measure beside its box (preview and --save-video), and at the end the analyzer's files in OUTPUT/analysis/<stem>/ (implies --dump-landmarks-csv)")
    v.add_argument("--jobs", type=int, default=DEFAULTS.jobs, metavar="N", help="process N videos in parallel processes (default %(default)s)")
    r = p.add_argument_group("a corpus on a Ray cluster (pip install -r requirements-ray.txt)")
    r.add_argument("--ray", nargs="?", const="", metavar="ADDRESS", help="spread the --video files over Ray workers and write corpus.csv; ADDRESS as Ray takes it (auto, 127.0.0.1:6379, ray://host:10001), none starts a local Ray; a rerun skips the videos already done")
    r.add_argument("--ray-workers", type=int, metavar="N", help="Ray workers, each loading the landmarker once (default: as many as the cluster's CPUs hold)")
    r.add_argument("--ray-cpus", type=float, default=DEFAULTS.ray_cpus, metavar="N", help="CPUs each Ray worker reserves (default %(default)s)")


def infer_main(argv: list[str] | None = None, script_dir: Path | None = None, prog: str = "infer.py") -> int:
    """Parse ``argv`` and run; returns the exit code."""
    safe_console()
    parser = infer_parser(prog)
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(level=logging.WARNING, format="facemap: %(message)s")
    cfg = InferConfig.from_namespace(ns)
    cfg.script_dir = str(script_dir) if script_dir is not None else ""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt) if in_main else None
    try:
        # installed (facemap-infer, python -m facemap infer): no infer.py, no requirements files
        flags = FLAGS if prog == "infer.py" else {**FLAGS, "fetch_model": f"`{prog} --fetch-model`",
                                                  "install_dlib": DEFAULT_WORDING["install_dlib"]}
        return _one_line(prog, lambda: run_infer(cfg, print), flags,
                         "interrupted: logs are complete up to the last processed frame")
    finally:
        if in_main and previous is not None:  # None: not installed from Python, cannot be put back
            signal.signal(signal.SIGTERM, previous)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends the run like Ctrl-C: outputs are closed cleanly, exit 130."""
    raise KeyboardInterrupt


def analyze_parser(prog: str = "analyze_expressions.py") -> argparse.ArgumentParser:
    """analyze_expressions.py's argument parser."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Per-frame expression labels, events (blinks, smiles, yawns, looking away) and "
        "a 0-100 engagement score from facemap's logs.",
    )
    p.add_argument("--landmarks", type=Path, help="landmarks log (<stem>_landmarks.csv)")
    p.add_argument(
        "--meta",
        type=Path,
        help="meta log (<stem>_meta.csv): frames without a face, boxes, timestamps",
    )
    p.add_argument(
        "--raw",
        type=Path,
        help="raw params log (<stem>_raw.csv): pose-free features with the 3DMM basis (a raw log "
        "without params, as a dlib run writes, is noted and the landmarks are used)",
    )
    p.add_argument(
        "--logs",
        metavar="DIR_OR_GLOB",
        help="several clips at once: a logs folder (out/logs) holding <stem>_meta.csv, "
        "<stem>_landmarks.csv (and <stem>_raw.csv), or a glob of such files; each clip's "
        "outputs go to OUT/<stem>/, with OUT/summary.csv and OUT/index.html",
    )
    p.add_argument(
        "--out",
        required=True,
        help="output folder (one clip: its files; --logs: one folder per clip); never one that "
        "holds another clip's analysis",
    )
    p.add_argument(
        "--basis-dir",
        type=Path,
        help="folder with meanFace.npy, shapeBasis.npy, blendShape.npy (for --raw)",
    )
    p.add_argument("--fps", type=float, help="frame rate, when the logs have no timestamp_ms")
    p.add_argument(
        "--baseline-frames",
        metavar="A:B",
        help="frames (1-based, inclusive) showing the person at rest",
    )
    p.add_argument("--config", type=Path, help="JSON object overriding thresholds (see docs)")
    p.add_argument("--no-plots", action="store_true", help="skip timeline.png")
    r = p.add_argument_group("--logs over a Ray cluster (pip install -r requirements-ray.txt)")
    r.add_argument("--ray", nargs="?", const="", metavar="ADDRESS", help="with --logs: analyse the clips on Ray "
                   "workers; ADDRESS as Ray takes it (auto, 127.0.0.1:6379, ray://host:10001), none starts a local "
                   "Ray; the logs and --out must be at the same paths on every node")
    r.add_argument("--ray-workers", type=int, metavar="N", help="Ray workers (default: as many as the cluster's CPUs hold)")
    r.add_argument("--ray-cpus", type=float, default=1.0, metavar="N", help="CPUs each Ray worker reserves (default %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the score")
    p.add_argument("--version", action="version", version=f"facemap {__version__}")
    return p


def analyze_main(argv: list[str] | None = None, prog: str = "analyze_expressions.py") -> int:
    """Run the analyzer; returns the exit code."""
    safe_console()
    try:
        args = analyze_parser(prog).parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse already printed
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.WARNING, format="analyze_expressions: %(levelname)s: %(message)s"
    )
    from .analyze import run_analyze

    return _one_line(prog, lambda: run_analyze(args), ANALYZE_FLAGS, "interrupted")


def fetch_parser(prog: str = "python -m facemap fetch") -> argparse.ArgumentParser:
    """``python -m facemap fetch``'s argument parser."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="Download every asset a run needs into the caches it reads, once, for machines "
        "that then run offline (FACEMAP_OFFLINE=1) or cluster nodes sharing a cache "
        "(FACEMAP_CACHE_DIR, QAIHM_STORE_ROOT). No flag: all three.",
        epilog="Exit codes: 0 ok, 4 an asset could not be downloaded, 5 cannot write the cache.",
    )
    p.add_argument("--model", action="store_true", help="Qualcomm's FaceMap ONNX model (model.onnx + model.data) into facemap's cache")
    p.add_argument("--basis", action="store_true", help="the 3DMM basis (three .npy files) into qai-hub-models' cache")
    p.add_argument("--detector", action="store_true", help="the YuNet face detector into facemap's cache (SHA-256 checked)")
    p.add_argument("--force", action="store_true", help="download the model again even if it is cached")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    return p


def fetch_main(argv: list[str] | None = None, prog: str = "python -m facemap fetch") -> int:
    """Fetch the assets; one line per asset; returns the exit code."""
    from ..assets import ASSETS, fetch_assets

    safe_console()
    try:
        args = fetch_parser(prog).parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(level=logging.WARNING, format="facemap: %(message)s")
    which = tuple(a for a in ASSETS if getattr(args, a)) or ASSETS

    def run() -> int:
        for asset, path, fetched in fetch_assets(which, progress=not args.quiet, force=args.force):
            print(f"{asset}: {path} ({'downloaded' if fetched else 'already there'})")
        return 0

    return _one_line(prog, run, FETCH_FLAGS, "interrupted: nothing partial is left in the caches")


def _one_line(prog: str, run: Callable[[], int], flags: dict[str, str], interrupted: str) -> int:
    """``run()``'s exit code; an error, a stop or a bug is one line on stderr and its exit code."""
    try:
        return run()
    except FacemapError as exc:
        print(f"{prog}: error: {cli_message(exc, flags)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # a corpus or --ray run says what it finished
        said = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
        print(f"{prog}: {said or interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line, with what to report
        print(f"{prog}: error: a bug in facemap ({bug_line(exc)}); please report it with the command", file=sys.stderr)
        return EXIT_BUG


def infer_command() -> int:
    """The installed ``facemap-infer`` (``--model`` defaults to ./model.onnx)."""
    return infer_main(prog="facemap-infer")


def analyze_command() -> int:
    """The installed ``facemap-analyze``."""
    return analyze_main(prog="facemap-analyze")
