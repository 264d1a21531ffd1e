#!/usr/bin/env python3
"""Video speed and memory: how close the streaming pipeline runs to its serial floor.

Usage: python bench/bench_video.py [--seconds 10] [--long-minutes 10] [--skip-rss]

1. Builds a 720p and a 1080p H.264 test video (30 fps, ``--seconds`` long) from a real face
   photo of ../shared/data (fr_obama-720p.jpg), moving and zooming, in a temp folder.
2. Builds a stand-in ONNX model of the real one's size with onnx.helper: a ResNet-18 body at
   0.69 width (44-88-176-352 channels, BN folded, about 5.4M parameters), input ``image``
   [1,3,128,128], output ``parameters_3dmm`` [1,265], weights in an external ``model.data``.
   Its weights are random, so in the end-to-end run its landmarks (after the full crop, model
   and decode work) are replaced by where the face really is (``FollowingLandmarker``), and
   tracking behaves as with the real model (mostly "tracked" frames).
3. For each video, measures in the same run: decode-only fps (read_frames, BGR out),
   model-only fps (one face per call), encode-only fps (VideoSink, H.264 yuv420p), and the
   end-to-end fps of ``facemap.open(...).process()`` with the log and overlay sinks: the Haar
   detector + ROI tracking, crop, model, 3DMM decode, jump guard, One Euro smoothing, H.264
   overlay and all four CSV logs.
   Prints end-to-end / serial floor, where floor fps = 1 / (t_decode + t_model + t_encode).
   Goal >= 0.75. Then, for YuNet and Haar: the detector on every frame (``Mode.IMAGE``, no
   tracking) next to the original tool's 9.1 fps, and the lost-face path (landmarks that do
   not fit their box fail the tracker's checks, so every frame is detected again) against
   1 / (t_decode + t_detect + t_model + t_encode).
4. Several faces (``--max-faces 0``): 720p videos with 1, 2 and 4 copies of the moving face,
   each a quarter of the frame (YuNet, each face followed from its landmarks between detections,
   every face cropped and run through the model in one batch, one id each, logs and overlay as
   above): fps for each, and the cost of each face
   beyond the first in ms per frame.
5. Peak RSS of a whole run (separate processes) on a ``--long-minutes`` video against a
   10-second one, same pipeline, at 256x144 and with the tiny stand-in model of the tests
   (``--rss-full-model`` for the ResNet), so 18,000 frames run in minutes: memory growth per
   frame, if any, does not depend on the frame size or the model. Goal <= 1.1x.

It writes only in a temp folder, removed at the end. No timed assertions: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import facemap  # noqa: E402
from facemap.api import DEFAULT_DETECTOR  # noqa: E402
from facemap.backends import FaceMapLandmarker, make_detector  # noqa: E402
from facemap.io.schema import overlay_name  # noqa: E402
from facemap.io.video import VideoSink, read_frames  # noqa: E402
from facemap.model import FaceMapModel  # noqa: E402
from facemap.preprocess import Preprocessor  # noqa: E402
from facemap.sinks import CsvLogSink, VideoOverlaySink  # noqa: E402
from facemap.threedmm.decode import Basis, Decoder  # noqa: E402
from facemap.track.tracker import TrackOptions  # noqa: E402
from facemap.types import Mode  # noqa: E402
from tests.standins import DATA, synthetic_basis_arrays, write_basis  # noqa: E402

FACE_PHOTO = DATA / "images" / "fr_obama-720p.jpg"
YUNET_COPY = DATA.parent / "models" / "face_detection_yunet.onnx"
# The original tool with the detector on every frame, 720p, same stand-in, this machine kind
# (issue 12's side-by-side measurement).
ORIGINAL_EVERY_FRAME_FPS = 9.1
WIDTHS = (44, 88, 176, 352)  # ResNet-18 body at ~0.69 width -> ~5.4M parameters
FPS = 30


# ----------------------------------------------------------------------------- test videos


def motion(i: int, width: int, height: int) -> np.ndarray:
    """(2, 3) affine of frame ``i`` (0-based): the photo, resized to the frame, moved (x, y),
    zoomed (0.78x-1.22x) and tilted (+-3 degrees), smoothly."""
    t = i / FPS
    s = 1.0 + 0.22 * np.sin(2 * np.pi * t / 4.0)
    m = cv2.getRotationMatrix2D((width / 2, height / 2), 3.0 * np.sin(2 * np.pi * t / 3.0), s)
    m[:, 2] += (0.10 * width * np.sin(2 * np.pi * t / 6.0), 0.05 * height * np.sin(2 * np.pi * t / 5.0))
    return m


def face_frames(width: int, height: int, n: int, photo: Path = FACE_PHOTO):
    """n BGR frames of a real face photo under ``motion``."""
    src = cv2.imread(str(photo))
    if src is None:
        raise SystemExit(f"{photo}: cannot read the face photo (is ../shared/data present?)")
    base = cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA)
    for i in range(n):
        yield cv2.warpAffine(base, motion(i, width, height), (width, height), borderMode=cv2.BORDER_REFLECT)


class FollowingLandmarker:
    """The stand-in model at full cost (crop, ONNX run, 3DMM decode), with its landmarks replaced
    by where the face really is in the frame (dlib's 68 points of the photo under ``motion``),
    as a trained model would place them. So tracking follows the face as with the real model;
    a random-weight stand-in alone cannot."""

    name = "facemap"

    def __init__(self, inner: FaceMapLandmarker, width: int, height: int, photo: Path = FACE_PHOTO):
        from facemap.io.records import read_landmarks

        src = cv2.imread(str(photo))
        ref = read_landmarks(DATA / "ref" / f"{photo.stem}_dlib_landmarks.csv").landmarks[0]
        self.points = ref * (width / src.shape[1], height / src.shape[0])
        self.inner, self.width, self.height = inner, width, height

    def landmark(self, image_bgr, faces, frame=1, timestamp_ms=0.0):
        """Landmarker protocol: the model's results, landmarks set to the true ones."""
        from dataclasses import replace

        results = self.inner.landmark(image_bgr, faces, frame, timestamp_ms)
        m = motion(frame - 1, self.width, self.height)
        truth = self.points @ m[:, :2].T + m[:, 2]
        return [replace(r, landmarks=truth) if r.has_face else r for r in results]


class LosingLandmarker(FollowingLandmarker):
    """As FollowingLandmarker, with the true landmarks shrunk to 40 % about their centre: an
    output that does not fit its box, so the tracker's checks fail on every frame and every
    frame is detected again (the lost-face path: cuts, crowds, fast turns, a weak model)."""

    def landmark(self, image_bgr, faces, frame=1, timestamp_ms=0.0):
        """Landmarker protocol: the true landmarks, shrunk."""
        from dataclasses import replace

        out = []
        for r in super().landmark(image_bgr, faces, frame, timestamp_ms):
            c = r.landmarks.mean(axis=0)
            out.append(replace(r, landmarks=c + 0.4 * (r.landmarks - c)))
        return out


def make_video(path: Path, width: int, height: int, seconds: float) -> Path:
    """Encode the moving face as H.264 (crf 23) at 30 fps."""
    import av

    n = int(round(seconds * FPS))
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "23", "preset": "veryfast"}
        for i, img in enumerate(face_frames(width, height, n)):
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts = i
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
    return path


# ----------------------------------------------------------------------------- stand-in model


def _conv_bn(nodes, inits, rng, name, x, cin, cout, k, stride, relu=True):
    w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
    b = np.zeros(cout, np.float32)
    from onnx import helper, numpy_helper

    inits += [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(b, f"{name}_b")]
    out = f"{name}_out"
    nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [out], kernel_shape=[k, k],
                                  strides=[stride, stride], pads=[k // 2] * 4))
    if relu:
        nodes.append(helper.make_node("Relu", [out], [f"{name}_relu"]))
        return f"{name}_relu", w.size + b.size
    return out, w.size + b.size


def make_resnet18_standin(folder: Path, bias: np.ndarray, seed: int = 0) -> tuple[Path, int]:
    """ResNet-18 body (BN folded) at WIDTHS channels, 128x128 RGB in, 265 out; returns
    (model.onnx path, parameter count)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x, n_params = _conv_bn(nodes, inits, rng, "stem", "image", 3, WIDTHS[0], 7, 2)
    nodes.append(helper.make_node("MaxPool", [x], ["pool0"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4))
    x, cin = "pool0", WIDTHS[0]
    for stage, cout in enumerate(WIDTHS):
        for block in range(2):
            stride = 2 if (stage > 0 and block == 0) else 1
            nm = f"s{stage}b{block}"
            y, n1 = _conv_bn(nodes, inits, rng, f"{nm}c1", x, cin, cout, 3, stride)
            y, n2 = _conv_bn(nodes, inits, rng, f"{nm}c2", y, cout, cout, 3, 1, relu=False)
            n_params += n1 + n2
            if stride != 1 or cin != cout:
                x, n3 = _conv_bn(nodes, inits, rng, f"{nm}down", x, cin, cout, 1, stride, relu=False)
                n_params += n3
            nodes.append(helper.make_node("Add", [y, x], [f"{nm}_sum"]))
            nodes.append(helper.make_node("Relu", [f"{nm}_sum"], [f"{nm}_out"]))
            x, cin = f"{nm}_out", cout
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["feat"], axis=1))
    fc_w = (rng.standard_normal((cin, 265)) * 1e-4).astype(np.float32)
    inits += [numpy_helper.from_array(fc_w, "fc_w"),
              numpy_helper.from_array(np.asarray(bias, np.float32), "fc_b")]
    nodes.append(helper.make_node("MatMul", ["feat", "fc_w"], ["fc"]))
    nodes.append(helper.make_node("Add", ["fc", "fc_b"], ["parameters_3dmm"]))
    n_params += fc_w.size + 265
    graph = helper.make_graph(
        nodes, "resnet18_standin",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 128, 128])],
        [helper.make_tensor_value_info("parameters_3dmm", TensorProto.FLOAT, [1, 265])],
        inits,
    )
    model = helper.make_model(graph, producer_name="facemap-bench", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.data", size_threshold=1024)
    return path, n_params


def fixed_point_bias(decoder: Decoder, input_px: int = 128, margin: float = 0.1, expand: float = TrackOptions.expand) -> np.ndarray:
    """Params of a frontal mean face whose landmark box, mapped back through the crop, is the
    tracker's own ROI again (so a still ROI stays still, as with a real model)."""
    p = np.zeros(265, np.float32)
    lm = decoder.decode(p[None]).landmarks_model[0]  # centred model-input pixels
    w = np.ptp(lm[:, 0])
    target = input_px / ((1 + 2 * margin) * expand)
    f = (450.0 * target / w)  # landmarks scale with the focal length
    p[263] = (f - 450.0) / 150.0
    lm = decoder.decode(p[None]).landmarks_model[0]
    centre = (lm.min(0) + lm.max(0)) / 2
    # translation moves points by t * f / 500 model pixels
    p[261] = -centre[0] / (f / 500.0) / 60.0
    p[262] = -centre[1] / (f / 500.0) / 60.0
    return p


# ----------------------------------------------------------------------------- measurements


def measure_decode(path: Path) -> tuple[float, list[np.ndarray]]:
    """fps of read_frames (threaded decode + BGR conversion); keeps 60 frames for encoding."""
    keep, n = [], 0
    t0 = time.perf_counter()
    for f in read_frames(path):
        n += 1
        if len(keep) < 60:
            keep.append(f.image)
    return n / (time.perf_counter() - t0), keep


def measure_model(model: FaceMapModel, n: int = 200) -> float:
    """fps of the ONNX model alone on one 128x128 face."""
    x = np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32)
    for _ in range(10):
        model.run(x)
    t0 = time.perf_counter()
    for _ in range(n):
        model.run(x)
    return n / (time.perf_counter() - t0)


def measure_detect(name: str, frames: list[np.ndarray]) -> float:
    """Detection calls per second on these frames."""
    det = detector(name)
    det.detect(frames[0])
    t0 = time.perf_counter()
    for f in frames:
        det.detect(f)
    return len(frames) / (time.perf_counter() - t0)


def measure_encode(frames: list[np.ndarray], n: int, out: Path) -> float:
    """fps of VideoSink (BGR -> yuv420p -> H.264 -> mp4) on already decoded frames."""
    h, w = frames[0].shape[:2]
    t0 = time.perf_counter()
    with VideoSink(out, w, h, FPS, Fraction(1, 15360)) as sink:
        for i in range(n):
            sink.write(frames[i % len(frames)], i / FPS)
    return n / (time.perf_counter() - t0)


def build_landmarker(model_path: Path, basis_dir: Path) -> FaceMapLandmarker:
    from facemap.assets import load_basis

    model = FaceMapModel(model_path, "cpu", spin=False)  # as infer.py builds it for video
    return FaceMapLandmarker(model, Decoder(load_basis(basis_dir)), Preprocessor(model.input_hw, model.io.layout))


@dataclass
class EndToEnd:
    """Frames processed, per-reason counts and the wall-clock rate of one end-to-end run."""

    frames: int
    by_reason: dict
    fps: float


def detector(name: str):
    """A detector by name; YuNet from $FACEMAP_YUNET_MODEL, else the shared test copy."""
    if name == "yunet" and not os.environ.get("FACEMAP_YUNET_MODEL"):
        return make_detector("yunet", model=YUNET_COPY)
    return make_detector(name)


def end_to_end(
    path: Path,
    landmarker: FaceMapLandmarker,
    out: Path,
    detector_name: str = DEFAULT_DETECTOR,
    mode: Mode = Mode.VIDEO,
    follow: bool = True,
) -> EndToEnd:
    """The whole user path on one video, as infer.py --video --save-video --dump-csv
    --dump-landmarks-csv runs it: facemap.open + process with the log and overlay sinks.
    ``follow``: landmarks where the face is (tracking holds); else landmarks that do not fit
    their box and fail the tracker's checks (the lost-face path). ``Mode.IMAGE``: the
    detector on every frame (no tracking)."""
    from facemap.io.video import probe

    info = probe(path)
    kind = FollowingLandmarker if follow else LosingLandmarker
    following = kind(landmarker, info.width, info.height)
    det = detector(detector_name)
    t0 = time.perf_counter()
    sinks = [
        CsvLogSink(out, path.stem, raw=True, landmarks=True),
        VideoOverlaySink(out / overlay_name(path.stem), fps=info.fps, time_base=info.time_base,
                         size=(info.width, info.height), audio_from=path if info.has_audio else None),
    ]
    reasons: Counter = Counter()
    with facemap.open(following, detector=det) as fm:
        for frame in fm.process(path, sinks=sinks, mode=mode):
            reasons[frame.result.reason] += 1
    frames = sum(reasons.values())
    return EndToEnd(frames, dict(reasons), frames / (time.perf_counter() - t0))


def make_faces_video(path: Path, faces: int, seconds: float, width: int = 1280, height: int = 720) -> Path:
    """``faces`` copies (1, 2 or 4) of the moving face photo tiled in a 720p frame, H.264."""
    import av

    cols, rows = {1: (1, 1), 2: (2, 1), 4: (2, 2)}[faces]
    tw, th = width // 2, height // 2  # one tile size for every count: only the number of faces varies
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"crf": "23", "preset": "veryfast"}
        top, left = (height - rows * th) // 2, (width - cols * tw) // 2
        for tile in face_frames(tw, th, int(round(seconds * FPS))):
            frame = np.full((height, width, 3), 60, np.uint8)
            frame[top : top + rows * th, left : left + cols * tw] = np.tile(tile, (rows, cols, 1))
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


class FittingLandmarker:
    """The stand-in model at full cost, its landmarks replaced by the photo's real 68 points
    fitted into each box: outputs that fit their box, as a trained model's do, so each face is
    followed between detections (a random-weight stand-in alone would lose them)."""

    name = "facemap"

    def __init__(self, inner: FaceMapLandmarker, photo: Path = FACE_PHOTO):
        from facemap.io.records import read_landmarks

        ref = read_landmarks(DATA / "ref" / f"{photo.stem}_dlib_landmarks.csv").landmarks[0]
        lo, hi = ref.min(axis=0), ref.max(axis=0)
        self.unit = (ref - lo) / (hi - lo)
        self.inner = inner

    def landmark(self, image_bgr, faces, frame=1, timestamp_ms=0.0):
        """Landmarker protocol: the model's results, landmarks fitted to each box."""
        from dataclasses import replace

        out = []
        for box, r in zip(faces, self.inner.landmark(image_bgr, faces, frame, timestamp_ms), strict=True):
            pts = (box.x0, box.y0) + self.unit * (box.width, box.height)
            out.append(replace(r, landmarks=pts) if r.has_face else r)
        return out


def faces_run(path: Path, landmarker: FaceMapLandmarker, out: Path) -> tuple[float, float]:
    """(fps, mean faces per frame) of ``--max-faces 0`` on ``path`` with YuNet, logs and overlay."""
    from facemap.io.video import probe

    info = probe(path)
    sinks = [
        CsvLogSink(out, path.stem, raw=True, landmarks=True, with_face_id=True),
        VideoOverlaySink(out / overlay_name(path.stem), fps=info.fps, time_base=info.time_base,
                         size=(info.width, info.height)),
    ]
    n = found = 0
    t0 = time.perf_counter()
    with facemap.open(FittingLandmarker(landmarker), detector=detector("yunet"), max_faces=0) as fm:
        for frame in fm.process(path, sinks=sinks):
            n += 1
            found += len(frame.faces)
    return n / (time.perf_counter() - t0), found / max(n, 1)


def rss_child(video: str, model: str, basis: str, out: str) -> None:
    """Run the whole pipeline once and print this process's peak RSS (KiB) as JSON."""
    rep = end_to_end(Path(video), build_landmarker(Path(model), Path(basis)), Path(out))
    peak_kib = peak_rss_kib()
    print(json.dumps({"peak_kib": peak_kib, "frames": rep.frames, "fps": rep.fps}))


def peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM; getrusage's maxrss would include the parent's
    peak before exec on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib // 1024 if sys.platform == "darwin" else kib


def run_rss(video: Path, model: Path, basis: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--rss-child", str(video), str(model), str(basis), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the 720p/1080p videos")
    ap.add_argument("--long-minutes", type=float, default=10.0, help="length of the long RSS video")
    ap.add_argument("--skip-rss", action="store_true", help="skip the memory comparison")
    ap.add_argument("--skip-detectors", action="store_true", help="skip the detector-on-every-frame and lost-face rows")
    ap.add_argument("--skip-faces", action="store_true", help="skip the 1/2/4-faces rows")
    ap.add_argument("--rss-full-model", action="store_true", help="use the ResNet stand-in for the memory runs too")
    ap.add_argument("--rss-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_child:
        rss_child(*args.rss_child)
        return 0

    with tempfile.TemporaryDirectory(prefix="facemap-bench-video-") as tmp:
        tmp = Path(tmp)
        basis_dir = write_basis(tmp / "basis")
        decoder = Decoder(Basis(*synthetic_basis_arrays()))
        model_path, n_params = make_resnet18_standin(tmp / "model", fixed_point_bias(decoder))
        print(f"stand-in model: ResNet-18 body, channels {WIDTHS}, {n_params / 1e6:.2f}M parameters, "
              f"{(tmp / 'model' / 'model.data').stat().st_size / 1e6:.1f} MB external weights")
        landmarker = build_landmarker(model_path, basis_dir)
        model_fps = measure_model(landmarker.model)
        print(f"model only: {model_fps:.1f} fps ({1000 / model_fps:.2f} ms per face)")
        for name, (w, h) in {"720p": (1280, 720), "1080p": (1920, 1080)}.items():
            t0 = time.perf_counter()
            video = make_video(tmp / f"face_{name}.mp4", w, h, args.seconds)
            made = time.perf_counter() - t0
            dec_fps, frames = measure_decode(video)
            n = int(round(args.seconds * FPS))
            enc_fps = measure_encode(frames, n, tmp / f"enc_{name}.mp4")
            floor = 1.0 / (1.0 / dec_fps + 1.0 / model_fps + 1.0 / enc_fps)
            rep = end_to_end(video, landmarker, tmp / f"out_{name}")
            other = {k: v for k, v in rep.by_reason.items() if k not in ("tracked", "detected")}
            print(f"{name} ({w}x{h}, {n} frames, built in {made:.1f} s): decode {dec_fps:.1f} fps, "
                  f"model {model_fps:.1f} fps, encode {enc_fps:.1f} fps -> serial floor {floor:.1f} fps")
            print(f"{name} end-to-end: {rep.fps:.1f} fps ({rep.by_reason.get('tracked', 0)} tracked, "
                  f"{rep.by_reason.get('detected', 0)} detected, {sum(other.values())} other: {other}); "
                  f"end-to-end / floor = {rep.fps / floor:.2f} (goal >= 0.75)")
            if args.skip_detectors:
                continue
            for det_name in ("yunet", "haar"):
                det_fps = measure_detect(det_name, frames[:60])
                lost_floor = 1.0 / (1.0 / dec_fps + 1.0 / det_fps + 1.0 / model_fps + 1.0 / enc_fps)
                every = end_to_end(video, landmarker, tmp / f"every_{name}_{det_name}", det_name, Mode.IMAGE)
                lost = end_to_end(video, landmarker, tmp / f"lost_{name}_{det_name}", det_name, follow=False)
                print(f"{name} {det_name}: detect {det_fps:.1f} fps -> floor with a detection every frame "
                      f"{lost_floor:.1f} fps; detector on every frame (tracking off) {every.fps:.1f} fps "
                      f"(original tool: {ORIGINAL_EVERY_FRAME_FPS} fps at 720p); lost-face path "
                      f"({lost.by_reason}) {lost.fps:.1f} fps, "
                      f"{lost.fps / lost_floor:.2f} of that floor")
        if not args.skip_faces:
            rates = {}
            for k in (1, 2, 4):
                video = make_faces_video(tmp / f"faces{k}.mp4", k, args.seconds)
                rates[k], mean = faces_run(video, landmarker, tmp / f"out_faces{k}")
                extra = "" if k == 1 else (
                    f"; {(1000 / rates[k] - 1000 / rates[1]) / (k - 1):.1f} ms per face beyond the first")
                print(f"720p, {k} face(s) in the frame, --max-faces 0: {rates[k]:.1f} fps "
                      f"({mean:.2f} faces found per frame){extra}")
        if not args.skip_rss:
            short = make_video(tmp / "short.mp4", 256, 144, 10.0)
            t0 = time.perf_counter()
            long = make_video(tmp / "long.mp4", 256, 144, args.long_minutes * 60.0)
            print(f"memory: 256x144 videos of 10 s and {args.long_minutes:g} min "
                  f"(long one built in {time.perf_counter() - t0:.0f} s)")
            rss_model = model_path
            if not args.rss_full_model:
                from tests.standins import make_standin_model

                rss_model = make_standin_model(tmp / "tiny", bias=fixed_point_bias(decoder))
            a = run_rss(short, rss_model, basis_dir, tmp / "rss_short")
            b = run_rss(long, rss_model, basis_dir, tmp / "rss_long")
            print(f"peak RSS 10 s: {a['peak_kib'] / 1024:.1f} MiB ({a['frames']} frames, {a['fps']:.0f} fps); "
                  f"{args.long_minutes:g} min: {b['peak_kib'] / 1024:.1f} MiB ({b['frames']} frames, "
                  f"{b['fps']:.0f} fps); ratio {b['peak_kib'] / a['peak_kib']:.3f} (goal <= 1.1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
