"""Fit the Haar-box -> 68-landmark-box calibration of facemap.backends.haar on the shared real faces.

Usage: python bench/calibrate_haar.py [--data ../shared/data] [--step 5]

For every image in <data>/images and every --step-th frame of every clip in <data>/videos that
dlib's reference run annotated (<data>/ref/<stem>_dlib_landmarks.csv, frame 1-based), it runs the
raw Haar detector (calibrate=False), keeps the Haar box that best overlaps the box around dlib's
68 landmarks (its centre inside that box, best IoU), and fits, as medians over the matched faces:

    dx = (landmark cx - haar cx) / haar w      dy = (landmark cy - haar cy) / haar w
    scale_w = landmark w / haar w              scale_h = landmark h / haar w

It prints the number of faces, the fitted constants, the constants in facemap/backends/haar.py, and the
mean IoU with the landmark box before (raw Haar) and after calibration. It writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemap.backends import haar as detect  # noqa: E402
from facemap.errors import InputFileError  # noqa: E402
from facemap.io.records import read_landmarks  # noqa: E402
from facemap.types import BBox  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Sample:
    """One matched face: where it came from, the raw Haar box and dlib's landmark box."""

    source: str
    is_video: bool
    frame: int
    haar: BBox
    target: BBox


def match(haar_boxes: list[BBox], target: BBox) -> BBox | None:
    """The Haar box whose centre lies inside ``target`` with the best IoU, or None."""
    best, best_iou = None, 0.0
    for box in haar_boxes:
        cx, cy = box.center
        if not (target.x0 <= cx <= target.x1 and target.y0 <= cy <= target.y1):
            continue
        iou = box.iou(target)
        if iou > best_iou:
            best, best_iou = box, iou
    return best


def collect(data: Path, step: int) -> tuple[list[Sample], int]:
    """Matched samples from the shared images and clips, and the number of annotated faces."""
    det = detect.HaarDetector(calibrate=False)
    samples: list[Sample] = []
    annotated = 0
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
            if frame not in targets:
                continue
            annotated += 1
            found = match(det.detect(image), targets[frame])
            if found is not None:
                samples.append(Sample(stem, not images, frame, found, targets[frame]))
    return samples, annotated


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
    """Median dx, dy, scale_w, scale_h (units of the Haar width)."""
    rows = []
    for s in samples:
        (hx, hy), w = s.haar.center, s.haar.width
        (tx, ty) = s.target.center
        rows.append(((tx - hx) / w, (ty - hy) / w, s.target.width / w, s.target.height / w))
    med = np.median(np.array(rows), axis=0)
    return tuple(float(v) for v in med)


def mean_iou(samples: list[Sample], consts: tuple[float, float, float, float] | None) -> float:
    """Mean IoU with the landmark box of the raw (consts None) or calibrated Haar boxes."""
    ious = [
        (s.haar if consts is None else detect.calibrate_haar_box(s.haar, *consts)).iou(s.target)
        for s in samples
    ]
    return float(np.mean(ious))


def main(argv: list[str] | None = None) -> int:
    """Fit and print the calibration."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    ap.add_argument("--step", type=int, default=5, help="use every STEP-th video frame")
    args = ap.parse_args(argv)
    if not (args.data / "ref").is_dir():
        print(f"{args.data}: no ref/ folder; pass --data path/to/shared/data", file=sys.stderr)
        return 2

    samples, annotated = collect(args.data, args.step)
    if not samples:
        print("no Haar box matched a dlib landmark box", file=sys.stderr)
        return 1
    consts = fit(samples)
    in_module = (detect.HAAR_DX, detect.HAAR_DY, detect.HAAR_SCALE_W, detect.HAAR_SCALE_H)
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
            f"before (raw Haar) {mean_iou(subset, None):.3f}  "
            f"after (fitted) {mean_iou(subset, consts):.3f}  "
            f"after (module) {mean_iou(subset, in_module):.3f}"
        )
    if videos and images:
        held_out = fit(videos)
        print(
            f"held-out check: fitted on clip frames only -> photos IoU "
            f"{mean_iou(images, held_out):.3f}"
        )
    print("per source (n, median dx, dy, scale_w, scale_h):")
    for src in sources:
        sub = [s for s in samples if s.source == src]
        print(f"  {src:32s} {len(sub):4d}  " + "  ".join(f"{v:6.3f}" for v in fit(sub)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
