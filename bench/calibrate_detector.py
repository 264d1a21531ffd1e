"""Fit a detector's box -> 68-landmark-box calibration (Haar, YuNet) on the shared real faces.

Usage: python bench/calibrate_detector.py [--detector haar|yunet] [--data ../shared/data] [--step 5]

For every image in <data>/images and every --step-th frame of every clip in <data>/videos that
dlib's reference run annotated (<data>/ref/<stem>_dlib_landmarks.csv, frame 1-based), it runs the
raw detector (calibrate=False), keeps the box that best overlaps the box around dlib's 68
landmarks (its centre inside that box, best IoU), and fits, as medians over the matched faces:

    dx = (landmark cx - box cx) / box w      dy = (landmark cy - box cy) / box w
    scale_w = landmark w / box w             scale_h = landmark h / box w

It prints the number of faces, the fitted constants, the constants in the detector's module
(facemap/backends/haar.py, yunet.py), and the mean IoU with the landmark box before (raw) and
after calibration. It writes nothing. YuNet's model: ``--yunet-model`` (default
../shared/models/face_detection_yunet.onnx).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemap.backends import haar, yunet  # noqa: E402
from facemap.errors import InputFileError  # noqa: E402
from facemap.io.records import read_landmarks  # noqa: E402
from facemap.types import BBox  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_YUNET = DEFAULT_DATA.parent / "models" / "face_detection_yunet.onnx"


def raw_detector(name: str, yunet_model: Path):
    """The detector without calibration, its calibration function and its module's constants."""
    if name == "haar":
        consts = (haar.HAAR_DX, haar.HAAR_DY, haar.HAAR_SCALE_W, haar.HAAR_SCALE_H)
        return haar.HaarDetector(calibrate=False), lambda b, c: haar.calibrate_haar_box(b, *c), consts
    det = yunet.YuNetDetector(yunet_model, calibrate=False)
    return det, yunet.calibrate_yunet_box, yunet.YUNET_CALIBRATION


@dataclass(frozen=True)
class Sample:
    """One matched face: where it came from, the raw detector box and dlib's landmark box."""

    source: str
    is_video: bool
    frame: int
    box: BBox
    target: BBox


def match(boxes: list[BBox], target: BBox) -> BBox | None:
    """The box whose centre lies inside ``target`` with the best IoU, or None."""
    best, best_iou = None, 0.0
    for box in boxes:
        cx, cy = box.center
        if not (target.x0 <= cx <= target.x1 and target.y0 <= cy <= target.y1):
            continue
        iou = box.iou(target)
        if iou > best_iou:
            best, best_iou = box, iou
    return best


def annotated(data: Path, step: int):
    """(stem, is_video, frame, image, landmark box) for every photo and every ``step``-th clip
    frame that dlib's reference run annotated."""
    for ref in sorted((data / "ref").glob("*_dlib_landmarks.csv")):
        stem = ref.name[: -len("_dlib_landmarks.csv")]
        try:
            log = read_landmarks(ref)
        except InputFileError:  # e.g. dlib_dogs: a header, no face
            continue
        targets = {
            int(f): BBox.from_points(p) for f, p in zip(log.frames, log.landmarks, strict=True)
        }
        images = sorted((data / "images").glob(stem + ".*"))
        video = data / "videos" / f"{stem}.mp4"
        if images:
            frames = [(1, cv2.imread(str(images[0]), cv2.IMREAD_COLOR))]
        elif video.exists():
            frames = read_every(video, step, set(targets))
        else:
            continue
        for frame, image in frames:
            if frame in targets:
                yield stem, not images, frame, image, targets[frame]


def collect(det, data: Path, step: int) -> tuple[list[Sample], int]:
    """Matched samples from the shared images and clips, and the number of annotated faces."""
    samples: list[Sample] = []
    n = 0
    for stem, is_video, frame, image, target in annotated(data, step):
        n += 1
        found = match(det.detect(image), target)
        if found is not None:
            samples.append(Sample(stem, is_video, frame, found, target))
    return samples, n


def read_every(video: Path, step: int, wanted: set[int]):
    """Yield (frame 1-based, BGR image) for frames 1, 1+step, ... that are in ``wanted``."""
    cap = cv2.VideoCapture(str(video))
    try:
        frame = 0
        while True:
            ok, image = cap.read()
            if not ok:
                break
            frame += 1
            if (frame - 1) % step == 0 and frame in wanted:
                yield frame, image
    finally:
        cap.release()


def fit(samples: list[Sample]) -> tuple[float, float, float, float]:
    """Median dx, dy, scale_w, scale_h (units of the detector box's width)."""
    rows = []
    for s in samples:
        (hx, hy), w = s.box.center, s.box.width
        (tx, ty) = s.target.center
        rows.append(((tx - hx) / w, (ty - hy) / w, s.target.width / w, s.target.height / w))
    med = np.median(np.array(rows), axis=0)
    return tuple(float(v) for v in med)


def mean_iou(samples: list[Sample], consts, calibrate) -> float:
    """Mean IoU with the landmark box of the raw (consts None) or calibrated boxes."""
    ious = [(s.box if consts is None else calibrate(s.box, consts)).iou(s.target) for s in samples]
    return float(np.mean(ious))


def main(argv: list[str] | None = None) -> int:
    """Fit and print the calibration."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    ap.add_argument("--step", type=int, default=5, help="use every STEP-th video frame")
    ap.add_argument("--detector", choices=["haar", "yunet"], default="haar")
    ap.add_argument("--yunet-model", type=Path, default=DEFAULT_YUNET)
    args = ap.parse_args(argv)
    if not (args.data / "ref").is_dir():
        print(f"{args.data}: no ref/ folder; pass --data path/to/shared/data", file=sys.stderr)
        return 2

    det, calibrate, in_module = raw_detector(args.detector, args.yunet_model)
    samples, annotated = collect(det, args.data, args.step)
    if not samples:
        print(f"no {args.detector} box matched a dlib landmark box", file=sys.stderr)
        return 1
    consts = fit(samples)
    sources = sorted({s.source for s in samples})
    images = [s for s in samples if not s.is_video]
    videos = [s for s in samples if s.is_video]
    n_clips = len({s.source for s in videos})
    print(
        f"faces: {len(samples)} matched of {annotated} dlib-annotated "
        f"({len(images)} photos, {len(videos)} frames of {n_clips} clips, every {args.step}th)"
    )
    names = ("dx", "dy", "scale_w", "scale_h")
    print("fitted:    " + "  ".join(f"{n}={v:.3f}" for n, v in zip(names, consts, strict=True)))
    print("in module: " + "  ".join(f"{n}={v:.3f}" for n, v in zip(names, in_module, strict=True)))
    for label, subset in (("all", samples), ("photos", images), ("video frames", videos)):
        if not subset:
            continue
        print(
            f"mean IoU with the landmark box, {label} ({len(subset)}): "
            f"before (raw {args.detector}) {mean_iou(subset, None, calibrate):.3f}  "
            f"after (fitted) {mean_iou(subset, consts, calibrate):.3f}  "
            f"after (module) {mean_iou(subset, in_module, calibrate):.3f}"
        )
    if videos and images:
        held_out = fit(videos)
        print(
            f"held-out check: fitted on clip frames only -> photos IoU "
            f"{mean_iou(images, held_out, calibrate):.3f}"
        )
    print("per source (n, median dx, dy, scale_w, scale_h):")
    for src in sources:
        sub = [s for s in samples if s.source == src]
        print(f"  {src:32s} {len(sub):4d}  " + "  ".join(f"{v:6.3f}" for v in fit(sub)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
