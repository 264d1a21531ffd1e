"""The 3DMM fit's accuracy and cost on the shared clips' dlib logs (one core).

For every ../shared/data/ref/<clip>_dlib_landmarks.csv (34 clips, all frames with a face) the
clip's frames are fitted three ways:

* batch: the clip as one track (``Fitter.fit``);
* stage: as ``infer.py --video X --landmarker dlib --dump-csv --basis-dir B`` runs it, frame by
  frame through ``FitStage.push`` / ``finish`` (a video file: the track's first 32 frames held
  until its identity settles, then every frame fitted with that one identity);
* live: as a camera runs it (``FitStage(faces)``: nothing held, the identity refitted at frames
  1, 2, 4, ... 32 and fixed after).

Each frame's NME (mean point error over the outer-eye-corner distance) is measured by decoding
its parameters through the crop. Printed per clip: frames, median NME of each way, the stage's
95th percentile; then pooled, with milliseconds a frame (CPU) and the spread of the clips'
medians, and whether every stage row of a track carries the same identity.

Usage: OMP_NUM_THREADS=1 python bench/bench_fit.py [--step K] [--no-live]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemap.threedmm import Basis, Fitter  # noqa: E402
from facemap.threedmm.decode import model_to_image  # noqa: E402
from facemap.threedmm.fit import crop_boxes  # noqa: E402
from facemap.threedmm.stage import FitStage  # noqa: E402
from facemap.types import BBox, Face, Status  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def clip_logs(stem: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 68, 2) dlib points and (N, 4) dlib boxes of a clip's frames with a face."""
    lm = pd.read_csv(DATA / "ref" / f"{stem}_dlib_landmarks.csv")
    meta = pd.read_csv(DATA / "ref" / f"{stem}_dlib_meta.csv").set_index("frame")
    lm = lm[lm.frame.isin(meta.index[meta.status == "ok"])]
    points = lm.iloc[:, 1:137].to_numpy(float).reshape(-1, 68, 2)
    return points, meta.loc[lm.frame, ["x0", "y0", "x1", "y1"]].to_numpy(float)


def nme(fitter: Fitter, params: np.ndarray, points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) NME of (N, 265) parameters against (N, 68, 2) points, decoded through the crop."""
    dec = fitter._decoder.decode(params)
    back = model_to_image(dec.landmarks_model, crop_boxes(boxes, fitter.options.margin))
    iod = np.linalg.norm(points[:, 36] - points[:, 45], axis=-1)
    return np.linalg.norm(back - points, axis=-1).mean(axis=1) / iod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=1, help="every K-th frame (default 1: all)")
    ap.add_argument("--no-live", action="store_true", help="skip the camera's way (saves a third)")
    args = ap.parse_args()
    basis = Basis(*(np.load(DATA / "basis" / f"{n}.npy") for n in ("meanFace", "shapeBasis", "blendShape")))
    fitter = Fitter(basis)
    clips = sorted(p.name[: -len("_mediapipe_blendshapes.csv")] for p in (DATA / "ref").glob("*_mediapipe_blendshapes.csv"))
    ways = ("batch", "stage") if args.no_live else ("batch", "stage", "live")
    errors = {w: [] for w in ways}
    cpu = dict.fromkeys(ways, 0.0)
    rows, frames, one_identity = [], 0, True
    for stem in clips:
        points, boxes = clip_logs(stem)
        points, boxes = points[:: args.step], boxes[:: args.step]
        n = len(points)
        frames += n
        faces = [Face(frame=i + 1, status=Status.OK, box=BBox(*boxes[i]), landmarks=points[i]) for i in range(n)]
        params = {}
        t0 = time.process_time()
        params["batch"] = fitter.fit(points, boxes).params
        cpu["batch"] += time.process_time() - t0
        stage = FitStage(fitter)
        t0 = time.process_time()
        out = [f for face in faces for f in stage.push((face,))] + stage.finish()
        cpu["stage"] += time.process_time() - t0
        assert [f[0].frame for f in out] == list(range(1, n + 1)), stem  # every frame, in order
        params["stage"] = np.array([f[0].params for f in out])
        one_identity &= bool(np.ptp(params["stage"][:, :219], axis=0).max() == 0.0)
        if "live" in ways:
            live = FitStage(fitter)
            t0 = time.process_time()
            params["live"] = np.array([live((face,))[0].params for face in faces])
            cpu["live"] += time.process_time() - t0
        row = [stem, n]
        for w in ways:
            err = nme(fitter, params[w], points, boxes)
            errors[w].append(err)
            row.append(np.median(err))
        row.append(np.percentile(errors["stage"][-1], 95))
        rows.append(row)
    df = pd.DataFrame(rows, columns=["clip", "frames", *(f"{w}_med" for w in ways), "stage_p95"])
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        print(df.to_string(index=False))
    print(f"\n{len(clips)} clips, {frames} frames; goal: median NME <= 0.02, 95th percentile <= 0.04")
    for w, what in (("batch", "a clip as one track"), ("stage", "a video file, as infer.py runs it"),
                    ("live", "a camera: nothing held")):
        if w not in ways:
            continue
        pooled = np.concatenate(errors[w])
        meds = df[f"{w}_med"]
        print(f"{w:5s} ({what}): median NME {np.median(pooled):.4f}, 95th percentile "
              f"{np.percentile(pooled, 95):.4f}, {1000 * cpu[w] / frames:.2f} ms a frame CPU; clips' "
              f"medians {meds.min():.4f} / {meds.quantile(0.25):.4f} / {meds.median():.4f} / "
              f"{meds.quantile(0.75):.4f} / {meds.max():.4f} (min / q25 / median / q75 / max)")
    print(f"stage: one identity per track in every clip: {one_identity}")


if __name__ == "__main__":
    main()
