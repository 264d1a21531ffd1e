#!/usr/bin/env python3
"""Analyse facial expressions in facemap (or original-layout) logs: labels, events and scores.

Parses arguments and calls facemap.analysis; no logic here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from facemap import __version__
from facemap.cli.config import ANALYZE_FLAGS, bug_line, cli_message, safe_console
from facemap.errors import EXIT_BUG, EXIT_INTERRUPTED, FacemapError

if TYPE_CHECKING:
    from facemap.analysis import AnalysisConfig


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
        from facemap.analysis import (
            analyze_logs,
            load_config,
            logs_have_face_ids,
            parse_frame_range,
        )
        from facemap.analysis.report import write_outputs

        if args.logs is not None and (args.landmarks or args.meta or args.raw):
            raise_usage("--logs finds each clip's logs itself; give either --logs or --landmarks/--meta/--raw")
        if args.logs is None and args.landmarks is None and args.raw is None:
            raise_usage("give --landmarks (a landmarks log), or --raw with --basis-dir, or --logs (several clips)")
        if not str(args.out).strip():
            raise_usage("--out is empty; give a folder")
        if args.logs is None and (args.ray is not None or args.ray_workers is not None):
            raise_usage("--ray spreads the clips of --logs over Ray workers; give --logs (several clips)")
        cfg = load_config(args.config)
        frame_range = parse_frame_range(args.baseline_frames) if args.baseline_frames else None
        if args.logs is not None:
            return run_many(args, cfg, frame_range)
        if logs_have_face_ids(args.landmarks, args.meta, args.raw):
            return run_faces(args, cfg, frame_range)
        result = analyze_logs(
            args.landmarks, args.meta, args.raw, None, args.fps, cfg, frame_range, args.basis_dir
        )
        paths = write_outputs(result, args.out, plots=not args.no_plots)
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
    s = result.scores
    if args.quiet:
        print(f"{s.overall_score:.1f}")
        return 0
    ev = result.event_summary
    print(
        f"overall_score {s.overall_score:.1f}  (positivity {s.positivity:.1f}, expressiveness "
        f"{s.expressiveness:.1f}, attention {s.attention:.1f})"
    )
    print(
        f"frames {result.inputs.frames.size}, with a face {int(result.inputs.face.sum())}; "
        f"blinks {ev['blink']['count']} ({ev['blink']['rate_per_min']:.1f}/min), smiles "
        f"{ev['smile']['count']}, yawns {ev['yawn']['count']}, looking away {ev['looking_away']['count']}, "
        f"winks {ev['wink']['count']}; speaking {ev['talking']['total_ms'] / 1000.0:.1f} s"
    )
    print(f"wrote {', '.join(p.name for p in paths.values())} to {Path(args.out)}")
    return 0


def run_many(args: argparse.Namespace, cfg: AnalysisConfig, frame_range: tuple[int, int] | None) -> int:
    """--logs: every clip into OUT/<stem>/, one line per clip, then summary.csv, index.html and a
    final line. Exit 0 when every clip was analysed, else the first failed clip's exit code."""
    from facemap.analysis.batch import Batch, analyze_on_ray, find_clips

    clips = find_clips(args.logs)
    options = dict(fps=args.fps, config=cfg, baseline_frames=frame_range, basis_dir=args.basis_dir)

    def said(o) -> None:
        if not o.ok:
            print(f"analyze_expressions.py: error: {o.clip.stem}: {o.row['error']}", file=sys.stderr)
            return
        for r in o.rows:
            print_row(r, args.quiet)

    with Batch(Path(args.out), plots=not args.no_plots, names=ANALYZE_FLAGS) as batch:
        if args.ray is not None:
            try:
                analyze_on_ray(batch, clips, address=args.ray, workers=args.ray_workers, cpus=args.ray_cpus,
                               on_outcome=said, progress=not args.quiet, **options,
                               on_retry=lambda stem, error: print(f"{stem}: failed, trying it once more ({error})"))
            except KeyboardInterrupt:
                raise KeyboardInterrupt(
                    f"interrupted: the clips finished are in {Path(args.out)}/<stem>/; summary.csv and index.html "
                    "were not written: run again to analyse every clip"
                ) from None
        else:
            for clip in clips:
                said(batch.analyze(clip, **options))
    failed = [o for o in batch.outcomes if not o.ok]
    multi = sum(o.by_face for o in batch.outcomes)
    if not args.quiet or failed:
        which = f", {len(failed)} failed ({', '.join(o.clip.stem for o in failed)})" if failed else ""
        per = f"; one row per face for the {multi} with face_id" if multi else ""
        print(
            f"{len(clips)} clip{'s' if len(clips) != 1 else ''}: {len(clips) - len(failed)} "
            f"analysed{which}; summary.csv, summary.parquet and index.html (one row per clip{per}) in {Path(args.out)}",
            file=sys.stderr if failed else sys.stdout,
        )
    return failed[0].error.exit_code if failed else 0


def run_faces(args: argparse.Namespace, cfg: AnalysisConfig, frame_range: tuple[int, int] | None) -> int:
    """Logs with a face_id column: each face into OUT/face_<id>/, one line per face, then
    report.json, summary.csv, index.html and a final line."""
    from facemap.analysis import analyze_faces
    from facemap.analysis.batch import write_faces

    faces = analyze_faces(
        args.landmarks, args.meta, args.raw, None, args.fps, cfg, frame_range, args.basis_dir
    )
    paths = {k: str(p) for k, p in (("landmarks", args.landmarks), ("meta", args.meta), ("raw", args.raw)) if p}
    rows = write_faces(faces, Path(args.out), plots=not args.no_plots, paths=paths)
    for r in rows:
        print_row(r, args.quiet)
    folders = ", ".join(f"{r['stem']}/" for r in rows)
    if not args.quiet:
        print(
            f"{len(rows)} face{'s' if len(rows) != 1 else ''}: "
            f"{folders or 'no face in any frame'}; "
            f"report.json, summary.csv and index.html (one row per face) in {Path(args.out)}"
        )
    return 0


def print_row(r: dict[str, object], quiet: bool) -> None:
    """One analysed clip's (or face's) line, from its summary row."""
    if quiet:
        print(f"{r['stem']} {r['overall_score']:.1f}")
        return
    print(
        f"{r['stem']}: overall_score {r['overall_score']:.1f} (positivity {r['positivity']:.1f}, "
        f"expressiveness {r['expressiveness']:.1f}, attention {r['attention']:.1f}); frames "
        f"{r['frames']}, with a face {r['frames_with_face']}; blinks {r['blinks']}, smiles "
        f"{r['smiles']}, yawns {r['yawns']}, looking away {r['looking_away']}, winks "
        f"{r.get('wink', 0)}; speaking {float(r.get('speaking_s') or 0.0):.1f} s"
    )


def raise_usage(message: str) -> None:
    """Raise a UsageError (exit 2) with ``message``."""
    from facemap.errors import UsageError

    raise UsageError(message)


if __name__ == "__main__":
    sys.exit(main())
