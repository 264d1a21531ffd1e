#!/usr/bin/env python3
"""dlib runs where the face leaves the frame: frames per second with the search every frame
while no face is followed (--lost-detect-every 1, the behaviour before issue 23) and every 5th
(the default of --landmarker dlib with its dlib-hog detector), and Haar for reference.

Usage: python bench/bench_lost_face.py [--data ../shared/data] [--clips a.mp4 b.mp4 ...]

Each run is ``infer.py --video CLIP --landmarker dlib -q`` into a temporary folder; the line
printed per run is infer.py's own (frames, face %, no_face frames, fps). It writes nothing else.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
CLIPS = ["pyfeat_WolfgangLanger_Pexels.mp4", "fr_short_hamilton_clip.mp4"]
RUNS = {
    "hog, search every frame (before)": ["--lost-detect-every", "1"],
    "hog, every 5th while lost (now)": [],
    "haar (reference)": ["--detector", "haar"],
}


def run(clip: Path, extra: list[str]) -> tuple[str, float]:
    """infer.py's line for one run and its fps."""
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "infer.py"), "--video", str(clip), "--landmarker", "dlib", "-q",
             "-o", out, *extra],
            capture_output=True, text=True, check=True,
        )
    line = proc.stdout.strip().splitlines()[-1]
    fps = float(re.search(r"([\d.]+) fps", line).group(1))
    return line, fps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--clips", nargs="+", default=CLIPS)
    args = ap.parse_args(argv)
    for name in args.clips:
        clip = args.data / "videos" / name
        if not clip.is_file():
            print(f"{clip}: not found; pass --data path/to/shared/data", file=sys.stderr)
            return 2
        fps = {}
        for label, extra in RUNS.items():
            line, fps[label] = run(clip, extra)
            print(f"{label:<34} {line}")
        before, now = fps["hog, search every frame (before)"], fps["hog, every 5th while lost (now)"]
        print(f"{name}: {before:.1f} -> {now:.1f} fps ({now / before:.2f}x)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
