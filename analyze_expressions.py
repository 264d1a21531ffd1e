#!/usr/bin/env python3
"""Analyse facial expressions in facemap (or original-layout) logs: labels, events and scores.

Parses arguments and calls facemap.analysis; no logic here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from facemap import __version__
from facemap.cli.config import ANALYZE_FLAGS, bug_line, cli_message, safe_console
from facemap.errors import EXIT_BUG, EXIT_INTERRUPTED, FacemapError


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="analyze_expressions.py",
        description="Per-frame expression labels, events (blinks, smiles, yawns, looking away) and "
        "a 0-100 engagement score from facemap's logs.",
    )
    p.add_argument("--landmarks", type=Path, help="landmarks log (<stem>_landmarks.csv)")
    p.add_argument(
        "--meta",
        type=Path,
        help="meta log (<stem>_meta.csv): frames without a face, boxes, timestamps",
    )
    p.add_argument(
        "--raw",
        type=Path,
        help="raw params log (<stem>_raw.csv): pose-free features with the 3DMM basis (a raw log "
        "without params, as a dlib run writes, is noted and the landmarks are used)",
    )
    p.add_argument(
        "--logs",
        metavar="DIR_OR_GLOB",
        help="several clips at once: a logs folder (out/logs) holding <stem>_meta.csv, "
        "<stem>_landmarks.csv (and <stem>_raw.csv), or a glob of such files; each clip's "
        "outputs go to OUT/<stem>/, with OUT/summary.csv and OUT/index.html",
    )
    p.add_argument(
        "--out",
        required=True,
        help="output folder (one clip: its files; --logs: one folder per clip); never one that "
        "holds another clip's analysis",
    )
    p.add_argument(
        "--basis-dir",
        type=Path,
        help="folder with meanFace.npy, shapeBasis.npy, blendShape.npy (for --raw)",
    )
    p.add_argument("--fps", type=float, help="frame rate, when the logs have no timestamp_ms")
    p.add_argument(
        "--baseline-frames",
        metavar="A:B",
        help="frames (1-based, inclusive) showing the person at rest",
    )
    p.add_argument("--config", type=Path, help="JSON object overriding thresholds (see docs)")
    p.add_argument("--no-plots", action="store_true", help="skip timeline.png")
    r = p.add_argument_group("--logs over a Ray cluster (pip install -r requirements-ray.txt)")
    r.add_argument("--ray", nargs="?", const="", metavar="ADDRESS", help="with --logs: analyse the clips on Ray "
                   "workers; ADDRESS as Ray takes it (auto, 127.0.0.1:6379, ray://host:10001), none starts a local "
                   "Ray; the logs and --out must be at the same paths on every node")
    r.add_argument("--ray-workers", type=int, metavar="N", help="Ray workers (default: as many as the cluster's CPUs hold)")
    r.add_argument("--ray-cpus", type=float, default=1.0, metavar="N", help="CPUs each Ray worker reserves (default %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the score")
    p.add_argument("--version", action="version", version=f"facemap {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the analyzer; returns the exit code."""
    safe_console()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse already printed
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.WARNING, format="analyze_expressions: %(levelname)s: %(message)s"
    )
    try:
        from facemap.cli.analyze import run_analyze

        return run_analyze(args)
    except FacemapError as exc:
        print(f"analyze_expressions.py: error: {cli_message(exc, ANALYZE_FLAGS)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # --ray says what it finished
        said = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
        print(f"analyze_expressions.py: {said or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: still one line, with what to report
        print(f"analyze_expressions.py: error: a bug in facemap ({bug_line(exc)}); please report it with the command", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
