"""Fit the dlib-detector-box <-> 68-landmark-box calibration of facemap.dlib_backend.

Usage: python bench/calibrate_dlib.py [--data ../shared/data] [--step 5] [--no-predict]

dlib's reference run (<data>/ref/<stem>_dlib_meta.csv: dlib's HOG detector box per frame, and
<stem>_dlib_landmarks.csv: the 68 points its predictor placed from that box) gives pairs of
(detector box, landmark box) for every photo and every --step-th clip frame. The constants are
medians over those faces, in units of the detector box width w (dlib boxes are square):

    dx = (landmark cx - box cx) / w      dy = (landmark cy - box cy) / w
    scale_w = landmark w / w             scale_h = landmark h / w

Then, unless --no-predict, it feeds dlib's predictor three boxes per face and prints the NME
(outer-eye-corner normalised) against the reference landmarks and, where there is one, against
the human ground truth (<data>/gt): dlib's own box, the box around the reference landmarks fed
straight in ("tight"), and that box mapped back to dlib style with the fitted constants
("calibrated", what DlibLandmarker does with a box from another detector or the tracker).
It writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibrate_detector import read_every  # noqa: E402

from facemap.backends import dlib_backend  # noqa: E402
from facemap.errors import InputFileError  # noqa: E402
from facemap.eval import nme, read_ground_truth  # noqa: E402
from facemap.io.records import read_landmarks, read_meta  # noqa: E402
from facemap.types import BBox  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pairs(data: Path, step: int) -> list[tuple[str, int, BBox, np.ndarray]]:
    """(stem, frame, dlib box, reference landmarks (68, 2)) for photos and every step-th frame."""
    out = []
    for ref in sorted((data / "ref").glob("*_dlib_landmarks.csv")):
        stem = ref.name[: -len("_dlib_landmarks.csv")]
        try:
            lms = read_landmarks(ref)
            meta = read_meta(data / "ref" / f"{stem}_dlib_meta.csv")
        except InputFileError:  # e.g. dlib_dogs: a header, no face
            continue
        boxes = {int(f): b for f, b, s in zip(meta.frames, meta.boxes, meta.status, strict=True) if s == "ok"}
        for f, pts in zip(lms.frames, lms.landmarks, strict=True):
            if int(f) in boxes and (int(f) - 1) % step == 0:
                out.append((stem, int(f), BBox(*boxes[int(f)]), pts))
    return out


def fit(rows: list[tuple[str, int, BBox, np.ndarray]]) -> tuple[float, float, float, float]:
    """Median dx, dy, scale_w, scale_h (units of the dlib box width)."""
    vals = []
    for _, _, box, pts in rows:
        lm = BBox.from_points(pts)
        (bx, by), w = box.center, box.width
        (lx, ly) = lm.center
        vals.append(((lx - bx) / w, (ly - by) / w, lm.width / w, lm.height / w))
    return tuple(float(v) for v in np.median(np.array(vals), axis=0))


def frames_of(data: Path, stem: str, wanted: set[int]):
    """Yield (frame, BGR image) for the wanted frames of a photo or clip."""
    images = sorted((data / "images").glob(stem + ".*"))
    if images:
        yield 1, cv2.imread(str(images[0]), cv2.IMREAD_COLOR)
        return
    yield from read_every(data / "videos" / f"{stem}.mp4", 1, wanted)


def predict_check(data: Path, rows, consts) -> None:
    """Print the predictor's NME with own, tight and calibrated boxes."""
    lmk = dlib_backend.DlibLandmarker(box_calibration=consts)
    by_stem: dict[str, dict[int, tuple[BBox, np.ndarray]]] = {}
    for stem, f, box, pts in rows:
        by_stem.setdefault(stem, {})[f] = (box, pts)
    errs = {"own": [], "tight": [], "calibrated": []}
    print("per source: n, mean NME vs dlib reference (own / tight / calibrated); vs human GT")
    for stem, frames in by_stem.items():
        gt_path = data / "gt" / f"{stem}.csv"
        gt = read_ground_truth(gt_path)[0] if gt_path.exists() else None
        e_src = {k: [] for k in errs}
        for f, image in frames_of(data, stem, set(frames)):
            box, ref = frames[f]
            tight = BBox.from_points(ref)
            got = {
                "own": lmk.predict(image, box),
                "tight": lmk.predict(image, tight),
                "calibrated": lmk.predict(image, lmk.to_dlib_box(tight)),
            }
            for k, pts in got.items():
                e_src[k].append(float(nme(pts[None], ref[None])[0]))
            if gt is not None:
                gt_tight = BBox.from_points(gt)
                vs_gt = {
                    "own": got["own"],
                    "tight GT box": lmk.predict(image, gt_tight),
                    "calibrated GT box": lmk.predict(image, lmk.to_dlib_box(gt_tight)),
                }
                print(
                    f"  {stem} vs human GT: "
                    + "  ".join(f"{k} {nme(v[None], gt[None])[0]:.4f}" for k, v in vs_gt.items())
                )
        for k in errs:
            errs[k].extend(e_src[k])
        print(f"  {stem:32s} {len(e_src['own']):4d}  " + " / ".join(f"{np.mean(v):.4f}" for v in e_src.values()))
    print("all: " + "  ".join(f"{k} mean {np.mean(v):.4f} median {np.median(v):.4f}" for k, v in errs.items()))


def main(argv: list[str] | None = None) -> int:
    """Fit and print the calibration (and the predictor check)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    ap.add_argument("--step", type=int, default=5, help="use every STEP-th video frame")
    ap.add_argument("--no-predict", action="store_true", help="only fit, do not run the predictor")
    args = ap.parse_args(argv)
    if not (args.data / "ref").is_dir():
        print(f"{args.data}: no ref/ folder; pass --data path/to/shared/data", file=sys.stderr)
        return 2
    rows = pairs(args.data, args.step)
    if not rows:
        print("no dlib reference faces found", file=sys.stderr)
        return 1
    consts = fit(rows)
    names = ("dx", "dy", "scale_w", "scale_h")
    print(f"faces: {len(rows)} ({len({r[0] for r in rows})} sources, video every {args.step}th frame)")
    print("fitted:    " + "  ".join(f"{n}={v:.3f}" for n, v in zip(names, consts, strict=True)))
    module = dlib_backend.DLIB_BOX_CALIBRATION
    print("in module: " + "  ".join(f"{n}={v:.3f}" for n, v in zip(names, module, strict=True)))
    ious = [
        dlib_backend.calibrate_dlib_box(box, consts).iou(BBox.from_points(pts)) for _, _, box, pts in rows
    ]
    raw = [box.iou(BBox.from_points(pts)) for _, _, box, pts in rows]
    print(f"mean IoU with the landmark box: raw dlib box {np.mean(raw):.3f} -> calibrated {np.mean(ious):.3f}")
    if not args.no_predict:
        predict_check(args.data, rows, consts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
