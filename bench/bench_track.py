#!/usr/bin/env python3
"""How well a followed face's box keeps up with it: dlib's points on the shared clips, followed
as ``infer.py --landmarker dlib`` follows them, against dlib's own run on every frame (its
detector's box each frame: the ref logs), with the face's motion leading the next box
(optical flow, ``TrackOptions.flow_lead``, the default) and without it, in one run.

Usage: OMP_NUM_THREADS=1 python bench/bench_track.py [--data ../shared/data] [--clips a b ...] [--max-faces N]

``--max-faces 0`` follows every face (the several-faces path): each frame's face nearest dlib's is
compared, so an extra face found (or ids swapped) does not count against it.

Per clip: frames compared, frames more than 0.05 and 0.1 NME from dlib's per-frame run (mean
point error over the outer-eye-corner distance), and the CPU time a frame of the whole
``facemap.open("dlib").process`` loop (decoding, detection and landmarks included; the two
runs of a clip in turns, which goes first alternating from clip to clip). Pooled:
the same counts, the NME's 99th and 99.9th percentiles, and the CPU ratio with / without.
It writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import facemap  # noqa: E402
from facemap import eval as fe  # noqa: E402
from facemap.io.records import read_landmarks  # noqa: E402
from facemap.track.tracker import TrackOptions  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
RUNS = {"flow lead (default)": True, "last shift only": False}


def followed(fm, video: Path) -> tuple[dict[int, np.ndarray], float, int]:
    """frame -> its faces' (K, 68, 2) points, CPU seconds of the loop, frames read."""
    t = time.process_time()
    n = 0
    points = {}
    for f in fm.process(video):
        n += 1
        if f.faces:
            points[f.index] = np.stack([face.landmarks for face in f.faces])
    return points, time.process_time() - t, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--clips", nargs="+", metavar="STEM", help="clip stems (default: every clip with a ref log)")
    ap.add_argument("--max-faces", type=int, default=1, metavar="N", help="faces followed (0: every face; default 1)")
    args = ap.parse_args(argv)
    ref = args.data / "ref"
    stems = args.clips or sorted(p.name[: -len("_dlib_landmarks.csv")] for p in ref.glob("*_dlib_landmarks.csv")
                                 if (args.data / "videos" / p.name.replace("_dlib_landmarks.csv", ".mp4")).is_file())
    if not stems:
        print(f"no clip with a ref log under {args.data}", file=sys.stderr)
        return 3
    opened = {name: facemap.open("dlib", track=TrackOptions(flow_lead=flow), max_faces=args.max_faces)
              for name, flow in RUNS.items()}
    errs = {name: [] for name in RUNS}
    cpu = dict.fromkeys(RUNS, 0.0)
    frames = 0
    print(f"{'clip':32s}" + "".join(f"  {name:>28s}" for name in RUNS) + "   (frames >0.05 / >0.1 NME, CPU ms a frame)")
    for stem in stems:
        truth = read_landmarks(ref / f"{stem}_dlib_landmarks.csv")
        cells = {}
        # the two in turns, each clip's first run alternating (the first pays the file's reading)
        for name in (list(RUNS) if len(errs[next(iter(RUNS))]) % 2 == 0 else list(RUNS)[::-1]):
            points, seconds, n = followed(opened[name], args.data / "videos" / f"{stem}.mp4")
            e = np.array([min(fe.nme(q, p)[0] for q in points[k]) for k, p in zip(truth.frames, truth.landmarks, strict=True)
                          if k in points])
            errs[name].append(e)
            cpu[name] += seconds
            cells[name] = f"{int(np.sum(e > 0.05)):4d} / {int(np.sum(e > 0.1)):3d}, {1000 * seconds / n:5.2f} ms"
        frames += n
        print(f"{stem:32s}" + "".join(f"  {cells[name]:>28s}" for name in RUNS), flush=True)
    for fm in opened.values():
        fm.close()
    print()
    for name in RUNS:
        e = np.concatenate(errs[name])
        p99, p999 = np.quantile(e, [0.99, 0.999])
        print(f"{name:22s} {e.size} frames: >0.05 {int(np.sum(e > 0.05))}, >0.1 {int(np.sum(e > 0.1))}; "
              f"NME median {np.median(e):.4f}, p99 {p99:.4f}, p99.9 {p999:.3f}; "
              f"CPU {1000 * cpu[name] / frames:.2f} ms a frame")
    a, b = RUNS
    print(f"CPU with / without the flow lead: {cpu[a] / cpu[b]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
