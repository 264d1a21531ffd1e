#!/usr/bin/env python3
"""infer.py: run FaceMap 3DMM on images, videos, folders or a webcam. Parses arguments only."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from facemap.cli.config import DEFAULTS, InferConfig, bug_line, cli_message, safe_console
from facemap.cli.infer import run_infer
from facemap.errors import EXIT_BUG, EXIT_INTERRUPTED, FacemapError
from facemap.model import PROVIDERS
from facemap.preprocess import NORMALIZATIONS
from facemap.track.smooth import SMOOTH_PRESETS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (flag names kept from the original tool)."""
    p = argparse.ArgumentParser(
        prog="infer.py",
        description="Run Qualcomm's FaceMap 3DMM model locally: 68 landmarks, head pose, expression.",
        epilog="Exit codes: 0 ok, 1 bug, 2 usage, 3 bad input file, 4 model problem, "
        "5 cannot write output, 130 interrupted.",
    )
    src = p.add_argument_group("input")
    src.add_argument("--image", nargs="+", metavar="PATH", help="image file(s), folder(s) or glob(s)")
    src.add_argument("--video", nargs="+", metavar="PATH", help="video file(s), folder(s) or glob(s)")
    src.add_argument("--camera", type=int, metavar="INDEX", help="live webcam by index")

    m = p.add_argument_group("model")
    m.add_argument("--model", metavar="PATH", help="model.onnx (model.data beside it); default: beside infer.py, else ./model.onnx")
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
    m.add_argument("--landmarker", default=DEFAULTS.landmarker, help="landmark backend: facemap or dlib (default facemap; dlib needs: pip install -r requirements-dlib.txt)")
    m.add_argument("--compare", metavar="NAME", help="images: also run landmark backend NAME (e.g. dlib) on the same face boxes and print the NME between the two")
    m.add_argument("--gt", metavar="FILE|DIR", help="images: print NME against ground truth (CSV x0,y0,...,x67,y67; a folder of <stem>.csv for several images)")

    pre = p.add_argument_group("face box and preprocessing")
    pre.add_argument("--face-detect", dest="face_detect", action="store_true", default=True, help="detect the face first (default)")
    pre.add_argument("--no-face-detect", dest="face_detect", action="store_false", help="the images are already face crops")
    pre.add_argument("--detector", help=f"face detector: yunet, haar, dlib-hog (default {DEFAULTS.detector}; dlib-hog with --landmarker dlib; yunet's model is downloaded once)")
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
    v.add_argument("--jump-threshold", type=float, default=DEFAULTS.jump_threshold, metavar="X", help="mark a frame unstable when pose/translation/expression change more than X (normalised; default %(default)s, 0 = off)")
    v.add_argument("--skip-if-no-face", action="store_true", help="no inference on frames without a face box (no_face row): the default; kept for the original tool's commands")
    v.add_argument("--fallback-center", action="store_true", help="on frames without a face box, run the model on the centre of the frame anyway (status warn, reason no_bbox; the original tool's default)")
    v.add_argument("--smooth", default=DEFAULTS.smooth, choices=list(SMOOTH_PRESETS), help="One Euro smoothing of the drawn landmarks and pose; the logs keep the landmarker's (default %(default)s)")
    v.add_argument("--smooth-mincutoff", type=float, metavar="HZ", help="One Euro minimum cutoff in Hz (overrides the preset)")
    v.add_argument("--smooth-beta", type=float, metavar="B", help="One Euro speed coefficient (overrides the preset)")
    v.add_argument("--no-preview", action="store_true", help="--camera without a preview window (headless)")
    v.add_argument("--jobs", type=int, default=DEFAULTS.jobs, metavar="N", help="process N videos in parallel processes (default %(default)s)")
    r = p.add_argument_group("a corpus on a Ray cluster (pip install -r requirements-ray.txt)")
    r.add_argument("--ray", nargs="?", const="", metavar="ADDRESS", help="spread the --video files over Ray workers and write corpus.csv; ADDRESS as Ray takes it (auto, 127.0.0.1:6379, ray://host:10001), none starts a local Ray; a rerun skips the videos already done")
    r.add_argument("--ray-workers", type=int, metavar="N", help="Ray workers, each loading the landmarker once (default: as many as the cluster's CPUs hold)")
    r.add_argument("--ray-cpus", type=float, default=DEFAULTS.ray_cpus, metavar="N", help="CPUs each Ray worker reserves (default %(default)s)")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run; returns the exit code."""
    safe_console()
    parser = build_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(level=logging.WARNING, format="facemap: %(message)s")
    cfg = InferConfig.from_namespace(ns)
    cfg.script_dir = str(Path(__file__).resolve().parent)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt) if in_main else None
    try:
        return run_infer(cfg, print)
    except FacemapError as exc:
        print(f"infer.py: error: {cli_message(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # a corpus run says what it finished
        said = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
        print(f"infer.py: {said or 'interrupted: logs are complete up to the last processed frame'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line, with what to report
        print(f"infer.py: error: a bug in facemap ({bug_line(exc)}); please report it with the command", file=sys.stderr)
        return EXIT_BUG
    finally:
        if in_main and previous is not None:  # None: not installed from Python, cannot be put back
            signal.signal(signal.SIGTERM, previous)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends the run like Ctrl-C: outputs are closed cleanly, exit 130."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
