#!/usr/bin/env python3
"""How the whole path's labels and scores hold when the same clips are smaller or compressed.

Every shared clip (../shared/data/videos with a MediaPipe file in ../shared/data/ref) is
re-encoded with its picture scaled by ``--scale`` (area resampling down, cubic up) and H.264 at
``--crf``, frame for frame, at its frame rate; the originals and the copies then go through the
user's whole path (``infer.py --landmarker dlib --dump-landmarks-csv``, then the analyzer with
its defaults), and both are compared with MediaPipe's answers on the ORIGINAL clips (what the
face did does not change with the encoding).

Usage: OMP_NUM_THREADS=1 python bench/bench_robust.py [--scale 0.5] [--crf 20] [--logs DIR] [--keep DIR]

--logs: the originals' infer.py logs (a folder of <stem>_landmarks.csv and <stem>_meta.csv), not
run again. --keep: write the copies and their outputs there (default: a temporary folder, removed).
Prints, per label, the pooled F1 (first 22 / new 12 / all 34) of both runs, the clips whose blink
count is within one of MediaPipe's, and the four scores' median and largest change per clip.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

import bench_labels as bl  # noqa: E402

from facemap.analysis import AnalysisConfig, analyze  # noqa: E402

SCORES = ("overall_score", "positivity", "expressiveness", "attention")


def reencode(src: Path, dst: Path, scale: float, crf: int) -> None:
    """``src`` scaled by ``scale`` (even sizes), H.264 yuv420p at ``crf``, every frame, no audio."""
    import av
    import cv2

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vs = inp.streams.video[0]
        w = int(round(vs.codec_context.width * scale / 2) * 2)
        h = int(round(vs.codec_context.height * scale / 2) * 2)
        stream = out.add_stream("libx264", rate=vs.average_rate or 25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf)}
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        for frame in inp.decode(vs):
            img = cv2.resize(frame.to_ndarray(format="bgr24"), (w, h), interpolation=interp)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
        out.mux(stream.encode())


def whole_path(videos: Path, out: Path) -> Path:
    """``infer.py`` on a folder of clips, as a user runs it; its logs folder."""
    import infer

    code = infer.main(["--video", str(videos), "--landmarker", "dlib", "--dump-landmarks-csv", "-o", str(out), "-q"])
    if code:
        raise SystemExit(f"infer.py exited {code} on {videos}")
    return out / "logs"


def run(ref: Path, logs: Path, stems: list[str]) -> tuple[list[dict], dict[str, dict[str, float]]]:
    """bench_labels' rows of ``logs`` and each clip's four scores."""
    cfg = AnalysisConfig()
    rows, scores = [], {}
    for stem in stems:
        inputs, truth = bl.load_clip(stem, ref, logs)
        rows.append(bl.compare(stem, inputs, truth, cfg))
        scores[stem] = analyze(inputs, cfg).scores.as_dict()
    return rows, scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=bl.DATA)
    ap.add_argument("--scale", type=float, default=0.5, help="the copies' picture size, a share of the original's")
    ap.add_argument("--crf", type=int, default=20, help="the copies' H.264 quality (x264 CRF: 0 lossless, 51 worst)")
    ap.add_argument("--logs", type=Path, help="the originals' infer.py logs (not run again)")
    ap.add_argument("--keep", type=Path, help="write the copies and their outputs here")
    args = ap.parse_args(argv)
    ref, videos = args.data / "ref", args.data / "videos"
    stems = [s for s in bl.clip_stems(ref) if (videos / f"{s}.mp4").is_file()]
    if not stems:
        print(f"no clip with a MediaPipe file in {ref} and a video in {videos}", file=sys.stderr)
        return 3
    with contextlib.ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_robust_")))
        copies = work / "videos"
        copies.mkdir(parents=True, exist_ok=True)
        for stem in stems:
            reencode(videos / f"{stem}.mp4", copies / f"{stem}.mp4", args.scale, args.crf)
        original = args.logs or whole_path(videos, work / "original")
        changed = whole_path(copies, work / "copies")
        a_rows, a_scores = run(ref, original, stems)
        b_rows, b_scores = run(ref, changed, stems)
    print(f"the clips scaled by {args.scale:g}, H.264 CRF {args.crf}, against the originals (whole path, dlib):")
    for name in bl.TARGETS:
        a, b = bl.pooled_by_group(a_rows, name), bl.pooled_by_group(b_rows, name)
        print(f"  {name:12s} pooled F1 " + ", ".join(f"{g} {a[g]:.3f} -> {b[g]:.3f}" for g in a))
    ok = [sum(abs(r["blinks"] - r["blinks_mp"]) <= 1 for r in rows) for rows in (a_rows, b_rows)]
    print(f"  blinks within one of MediaPipe's: {ok[0]} -> {ok[1]} of {len(stems)} clips")
    diff = np.array([[abs(b_scores[s][k] - a_scores[s][k]) for k in SCORES] for s in stems])
    for i, k in enumerate(SCORES):
        worst = stems[int(np.argmax(diff[:, i]))]
        print(f"  {k:15s} change per clip: median {np.median(diff[:, i]):.1f}, "
              f"over 5 on {int(np.sum(diff[:, i] > 5))}, largest {diff[:, i].max():.1f} ({worst})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
