#!/usr/bin/env python3
"""Corpus throughput: the same videos through infer.py serially, with ``--jobs 2``, and over Ray
with 1 and 2 workers, all in one run on this machine.

Usage: python bench/bench_corpus.py [--clips lp_d0,dpe_s,dagan_driving,fye_temple_video] [--repeat 1] [--cpus 2]

1. A corpus folder of shared clips (../shared/data/videos, symlinks) in a temp folder; with
   ``--repeat N`` each clip N times (under N names), so start-up weighs less.
2. A Ray head node on 127.0.0.1 with ``--cpus`` CPUs, its own temp dir and ports
   (tests/raycluster.py), stopped by pid at the end.
3. ``infer.py --video CORPUS --landmarker dlib --dump-landmarks-csv -q`` into a fresh output
   folder each time: serially, with ``--jobs 2``, with ``--ray ADDRESS --ray-workers 1`` and
   ``--ray-workers 2``. Wall time of the whole call (Ray's connect and each worker's landmarker
   load included: what a user waits for), frames from the meta logs.
4. Prints videos/s and frames/s of each, then the ratios: 2 Ray workers / 1, 2 Ray workers /
   ``--jobs 2``, each / serial.

It writes only in a temp folder, removed at the end. No timed assertions: it prints numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.raycluster import RAY_ENV, head_node  # noqa: E402

os.environ.update(RAY_ENV)  # before Ray is imported (by infer.py's --ray)

import infer  # noqa: E402

SHARED = REPO.parent / "shared"
VIDEOS = SHARED / "data" / "videos"
ARGS = ["--landmarker", "dlib", "--dump-landmarks-csv", "-q"]


def frames_in(out: Path) -> int:
    """Frames logged in ``out/logs`` (meta rows)."""
    return sum(max(0, len(p.read_text().splitlines()) - 1) for p in (out / "logs").glob("*_meta.csv"))


def timed(argv: list[str], out: Path) -> tuple[float, int]:
    """(wall seconds, frames) of one infer.py call into ``out``; its output is kept quiet."""
    sink = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        code = infer.main([*argv, "-o", str(out)])
    secs = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"bench_corpus: {' '.join(argv)} exited {code}: {sink.getvalue()[-800:]}")
    return secs, frames_in(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", default="lp_d0,dpe_s,dagan_driving,fye_temple_video",
                   help="stems of ../shared/data/videos/*.mp4 (default %(default)s)")
    p.add_argument("--repeat", type=int, default=1, help="each clip this many times (default %(default)s)")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the Ray head (default %(default)s)")
    args = p.parse_args()
    if not sys.platform.startswith("linux"):
        raise SystemExit("bench_corpus: the local Ray head is started and stopped through /proc: Linux only")
    clips = [VIDEOS / f"{s}.mp4" for s in args.clips.split(",")]
    missing = [str(c) for c in clips if not c.is_file()]
    if missing:
        raise SystemExit(f"bench_corpus: needs ../shared: {missing[0]} is absent")
    yunet = SHARED / "models" / "face_detection_yunet.onnx"
    if yunet.is_file():
        os.environ.setdefault("FACEMAP_YUNET_MODEL", str(yunet))
    with tempfile.TemporaryDirectory(prefix="bench_corpus") as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus"
        corpus.mkdir()
        for c in clips:
            for i in range(max(1, args.repeat)):
                (corpus / (c.name if i == 0 else f"{c.stem}_{i}{c.suffix}")).symlink_to(c)
        n_videos = len(clips) * max(1, args.repeat)
        print(f"{n_videos} videos ({', '.join(c.name for c in clips)}{f' x {args.repeat}' if args.repeat > 1 else ''}), "
              f"{os.cpu_count()} cores, "
              f"a Ray head with {args.cpus} CPUs on 127.0.0.1")
        results: dict[str, tuple[float, int]] = {}
        with head_node(args.cpus, tmp) as head:
            runs = {
                "serial": ["--video", str(corpus)],
                "--jobs 2": ["--video", str(corpus), "--jobs", "2"],
                "ray, 1 worker": ["--video", str(corpus), "--ray", head.address, "--ray-workers", "1"],
                "ray, 2 workers": ["--video", str(corpus), "--ray", head.address, "--ray-workers", "2"],
            }
            for name, argv in runs.items():
                results[name] = timed([*argv, *ARGS], tmp / name.replace(" ", "_").replace(",", ""))
                secs, frames = results[name]
                print(f"{name:<15} {secs:6.1f} s  {n_videos / secs:5.2f} videos/s  {frames / secs:6.1f} frames/s"
                      f"  ({frames} frames)")
        if head.left:
            print(f"note: processes of the bench's Ray head were still running and were killed: {head.left}")
    rate = {k: frames / secs for k, (secs, frames) in results.items()}
    print(f"ray 2 workers / ray 1 worker:  {rate['ray, 2 workers'] / rate['ray, 1 worker']:.2f}x")
    print(f"ray 2 workers / --jobs 2:      {rate['ray, 2 workers'] / rate['--jobs 2']:.2f}x")
    print(f"--jobs 2 / serial:             {rate['--jobs 2'] / rate['serial']:.2f}x")
    print(f"ray 1 worker / serial:         {rate['ray, 1 worker'] / rate['serial']:.2f}x")
    print(f"ray 2 workers / serial:        {rate['ray, 2 workers'] / rate['serial']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
