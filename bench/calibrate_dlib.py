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
("calibrated", what DlibLandmarker does with a box from another detector).

The box model (``--box``, facemap.backends.dlib_backend.DlibBoxModel): a ridge regression from
the 68 reference points of every frame (--box-step) to dlib's own detector box, which the tracker
uses to follow a face into the next frame. It is checked leave-one-source-out: each clip's
frames are predicted by the model fitted on the other sources, and dlib's predictor is run
(a) on the box from the clip's own reference points ("fixed point": does the predictor give the
points back?) and (b) following the clip from its first detector box, each frame's box from the
frame before's points ("followed", the tracker without its velocity lead or re-detections);
both with today's box-only mapping (square landmark box, ``to_dlib_box``) and with the model.
``--write`` writes the model fitted on every source to facemap/backends/dlib_box.json.
Otherwise it writes nothing.
"""

from __future__ import annotations

import argparse
import json
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
from facemap.io.outputs import atomic_write_text  # noqa: E402
from facemap.io.records import read_landmarks, read_meta  # noqa: E402
from facemap.track.tracker import roi_from_landmarks  # noqa: E402
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


BOX_L2 = 1e-2  # the box model's ridge, per frame (see box_check: chosen for the followed NME and the noise it passes on)
BOX_L2_TRIED = (1e-5, 1e-4, 1e-3, 1e-2)


def fit_box_model(rows, l2: float = BOX_L2) -> dlib_backend.DlibBoxModel:
    """The ridge regression from reference points to dlib's detector box (DlibBoxModel's layout)."""
    pts = np.stack([r[3] for r in rows])
    boxes = np.array([[b.x0, b.y0, b.x1, b.y1] for _, _, b, _ in rows])
    x, c, s = dlib_backend.DlibBoxModel.inputs(pts)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    side = ((boxes[:, 2] - boxes[:, 0]) + (boxes[:, 3] - boxes[:, 1])) / 2.0
    y = np.column_stack([(centre - c) / s[:, None], np.log(side / s)])
    mean, ybar = x.mean(axis=0), y.mean(axis=0)
    xc = x - mean
    w = np.linalg.solve(xc.T @ xc + l2 * len(x) * np.eye(x.shape[1]), xc.T @ (y - ybar))
    return dlib_backend.DlibBoxModel(mean, w, ybar)


def box_errors(model: dlib_backend.DlibBoxModel, rows) -> np.ndarray:
    """(N, 3) |error| of the model's box centre x, y and side, in units of dlib's box side."""
    got = model.boxes(np.stack([r[3] for r in rows]))
    want = np.array([[b.x0, b.y0, b.x1, b.y1] for _, _, b, _ in rows])
    side = (want[:, 2] - want[:, 0] + want[:, 3] - want[:, 1]) / 2.0
    gc, wc = (got[:, :2] + got[:, 2:]) / 2.0, (want[:, :2] + want[:, 2:]) / 2.0
    gs = (got[:, 2] - got[:, 0] + got[:, 3] - got[:, 1]) / 2.0
    return np.column_stack([np.abs(gc - wc) / side[:, None], np.abs(gs - side) / side])


def box_check(data: Path, rows, l2: float = BOX_L2) -> None:
    """Leave-one-source-out: the ridge chosen on box error, then dlib's predictor on each box."""
    by_stem: dict[str, list] = {}
    for r in rows:
        by_stem.setdefault(r[0], []).append(r)
    print(f"box model (ridge {l2:g}), leave-one-source-out box error (units of dlib's side), median / p90 of x, y, side:")
    for l2 in BOX_L2_TRIED:
        err = np.vstack(
            [box_errors(fit_box_model([r for r in rows if r[0] != st], l2), rs) for st, rs in by_stem.items()]
        )
        print(f"  l2 {l2:g}{' (the default)' if l2 == BOX_L2 else ''}: median "
              + " ".join(f"{v:.3f}" for v in np.median(err, axis=0))
              + "  p90 " + " ".join(f"{v:.3f}" for v in np.percentile(err, 90, axis=0)))
    lmk = dlib_backend.DlibLandmarker()
    old = lambda pts: lmk.to_dlib_box(roi_from_landmarks(pts))  # noqa: E731
    # dlib's points are whole pixels: how far does a pixel of noise on every point move the box
    # (a map that amplifies it would feed the points' jitter back into the next frame's box)
    rng = np.random.default_rng(0)
    model_all = fit_box_model(rows, l2)
    sample = [r[3] for r in rows[:: max(1, len(rows) // 400)]]
    for name, mapping in (("box-only mapping", old), ("box model", model_all.box)):
        moved = []
        for pts in sample:
            b0 = mapping(pts)
            for _ in range(4):
                b1 = mapping(pts + rng.integers(-1, 2, pts.shape))
                moved.append([abs(b1.center[0] - b0.center[0]), abs(b1.center[1] - b0.center[1]), abs(b1.width - b0.width)])
        print(f"  +-1 px on every point moves the {name}'s centre x, y and side by "
              + " ".join(f"{v:.2f}" for v in np.mean(moved, axis=0)) + " px on average")
    res = {k: [] for k in ("fixed old", "fixed model", "followed old", "followed model")}
    print("dlib's predictor vs the reference points, NME median / p90 (clips; the model held out):")
    for st, rs in by_stem.items():
        if len(rs) < 2:
            continue
        model = fit_box_model([r for r in rows if r[0] != st], l2)
        frames = {f: (b, pts) for _, f, b, pts in rs}
        e = {k: [] for k in res}
        follow: dict[str, BBox | None] = {"old": None, "model": None}
        last = None
        for f, image in frames_of(data, st, set(frames)):
            box, ref = frames[f]
            if last is None or f != last + 1:
                follow = {"old": box, "model": box}  # a gap: start again from the detector's box
            last = f
            for name, mapping in (("old", old), ("model", lambda p, m=model: m.box(p))):
                e[f"fixed {name}"].append(float(nme(lmk.predict(image, mapping(ref))[None], ref[None])[0]))
                got = lmk.predict(image, follow[name])
                e[f"followed {name}"].append(float(nme(got[None], ref[None])[0]))
                follow[name] = mapping(got)
        for k in res:
            res[k].extend(e[k])
        print(f"  {st:30s} " + "  ".join(f"{k} {np.median(v):.3f}/{np.percentile(v, 90):.3f}" for k, v in e.items()))
    print("all clips: " + "  ".join(
        f"{k} {np.median(v):.4f}/{np.percentile(v, 90):.4f}/p99 {np.percentile(v, 99):.4f}" for k, v in res.items()))


def main(argv: list[str] | None = None) -> int:
    """Fit and print the calibration (and the predictor check)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    ap.add_argument("--step", type=int, default=5, help="use every STEP-th video frame")
    ap.add_argument("--no-predict", action="store_true", help="only fit, do not run the predictor")
    ap.add_argument("--box", action="store_true", help="fit and check the box model (every --box-step frame)")
    ap.add_argument("--box-step", type=int, default=1, help="the box model uses every BOX_STEP-th video frame")
    ap.add_argument("--write", action="store_true", help="with --box: write facemap/backends/dlib_box.json")
    ap.add_argument("--box-l2", type=float, default=BOX_L2, help="the box model's ridge")
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
    if args.box:
        box_rows = pairs(args.data, args.box_step)
        if not args.no_predict:
            box_check(args.data, box_rows, args.box_l2)
        if args.write:
            model = fit_box_model(box_rows, args.box_l2)
            out = Path(__file__).resolve().parents[1] / "facemap" / "backends" / dlib_backend.BOX_MODEL_FILE
            doc = {
                "about": "dlib's detector box from the 68 points its predictor placed (facemap.backends."
                f"dlib_backend.DlibBoxModel), written by bench/calibrate_dlib.py --box --write: ridge {args.box_l2:g} "
                f"over {len(box_rows)} faces of dlib's reference runs ({len({r[0] for r in box_rows})} sources).",
                **model.as_dict(),
            }
            atomic_write_text(out, json.dumps(doc) + "\n")
            print(f"wrote {out}")
        return 0
    if not args.no_predict:
        predict_check(args.data, rows, consts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
