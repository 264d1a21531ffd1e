"""The 3DMM fit's accuracy and cost on the shared clips' dlib logs (one core).

For every ../shared/data/ref/<clip>_dlib_landmarks.csv (34 clips) the clip's frames are fitted as
one track (``Fitter.fit``, batched) and, as a video run does, frame by frame (``FitStage``: the
identity settles over the first 32 frames, then each frame starts from the last). Printed per
clip: frames, median and 95th-percentile NME (mean point error over the outer-eye-corner
distance) of the batch fit and of the stage, and milliseconds a frame of each; then pooled.

Usage: OMP_NUM_THREADS=1 python bench/bench_fit.py [--step K] [--stage-frames N]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=int, default=1, help="every K-th frame (default 1: all)")
    ap.add_argument("--stage-frames", type=int, default=120, help="frames per clip through the stage")
    args = ap.parse_args()
    basis = Basis(*(np.load(DATA / "basis" / f"{n}.npy") for n in ("meanFace", "shapeBasis", "blendShape")))
    fitter = Fitter(basis)
    clips = sorted(p.name[: -len("_mediapipe_blendshapes.csv")] for p in (DATA / "ref").glob("*_mediapipe_blendshapes.csv"))
    rows, batch_nme, stage_nme, batch_s, stage_s, batch_n, stage_n = [], [], [], 0.0, 0.0, 0, 0
    for stem in clips:
        points, boxes = clip_logs(stem)
        points, boxes = points[:: args.step], boxes[:: args.step]
        t0 = time.process_time()
        fit = fitter.fit(points, boxes)
        dt = time.process_time() - t0
        batch_s, batch_n = batch_s + dt, batch_n + len(points)
        batch_nme.append(fit.nme)
        k = min(args.stage_frames, len(points))
        stage = FitStage(fitter)
        faces = [Face(frame=i + 1, status=Status.OK, box=BBox(*boxes[i]), landmarks=points[i]) for i in range(k)]
        t0 = time.process_time()
        fitted = [stage((face,))[0] for face in faces]
        st = time.process_time() - t0
        errs = [_nme(fitter, out, points[i], boxes[i]) for i, out in enumerate(fitted)]
        stage_s, stage_n = stage_s + st, stage_n + k
        stage_nme.append(np.array(errs))
        rows.append((stem, len(points), np.median(fit.nme), np.percentile(fit.nme, 95), 1000 * dt / len(points),
                     np.median(errs), 1000 * st / k))
    df = pd.DataFrame(rows, columns=["clip", "frames", "nme_med", "nme_p95", "ms_frame", "stage_nme_med", "stage_ms_frame"])
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        print(df.to_string(index=False))
    b, s = np.concatenate(batch_nme), np.concatenate(stage_nme)
    print(f"\nbatch fit: median NME {np.median(b):.4f}, 95th percentile {np.percentile(b, 95):.4f} "
          f"(goal <= 0.02 / 0.04), {1000 * batch_s / batch_n:.2f} ms a frame CPU (goal <= 2)")
    print(f"stage (video, frame by frame): median NME {np.median(s):.4f}, 95th percentile "
          f"{np.percentile(s, 95):.4f}, {1000 * stage_s / stage_n:.2f} ms a frame CPU (first "
          f"{args.stage_frames} frames of each clip, the identity's settling included)")


def _nme(fitter: Fitter, face: Face, points: np.ndarray, box: np.ndarray) -> float:
    """The NME of a face's parameters against its points (decoded through the crop)."""
    from facemap.threedmm.decode import model_to_image
    from facemap.threedmm.fit import crop_boxes

    dec = fitter._decoder.decode(face.params[None])
    back = model_to_image(dec.landmarks_model, crop_boxes(box[None], fitter.options.margin))[0]
    iod = np.linalg.norm(points[36] - points[45])
    return float(np.linalg.norm(back - points, axis=-1).mean() / iod)


if __name__ == "__main__":
    main()
