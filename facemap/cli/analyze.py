"""What ``analyze_expressions.py`` does once its arguments are parsed: one clip's logs (one face
or several) or several clips (``--logs``) analysed and written, and the lines it prints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import analysis
from ..analysis import Analysis, AnalysisConfig, load_config, parse_frame_range
from ..analysis.clips import Batch, ClipLogs, ClipOutcome, clip_paths, find_clips
from ..analysis.inputs import check_fps
from ..analysis.report import OUTPUT_NAMES, write_outputs
from ..errors import EXIT_INPUT, FacemapError, OutputError, UsageError
from .config import ANALYZE_FLAGS


def run_analyze(args: argparse.Namespace) -> int:
    """Check the options, analyse, write and print; returns the exit code (0, or a failed clip's
    with ``--logs``). Raises FacemapError, and KeyboardInterrupt saying what was finished."""
    if args.logs is not None and (args.landmarks or args.meta or args.raw):
        raise UsageError("--logs finds each clip's logs itself; give either --logs or --landmarks/--meta/--raw")
    if args.logs is None and args.landmarks is None and args.raw is None:
        raise UsageError("give --landmarks (a landmarks log), or --raw with --basis-dir, or --logs (several clips)")
    if not str(args.out).strip():
        raise UsageError("--out is empty; give a folder")
    if args.logs is None and (args.ray is not None or args.ray_workers is not None):
        raise UsageError("--ray spreads the clips of --logs over Ray workers; give --logs (several clips)")
    if args.fps is not None:
        check_fps(args.fps)  # before any clip is read or any folder made
    cfg = load_config(args.config)
    frame_range = parse_frame_range(args.baseline_frames) if args.baseline_frames else None
    if args.logs is not None:
        return run_many(args, cfg, frame_range)
    return run_clip(args, cfg, frame_range)


def run_clip(args: argparse.Namespace, cfg: AnalysisConfig, frame_range: tuple[int, int] | None) -> int:
    """One clip's logs into OUT: its files, or with face_id each face into OUT/face_<id>/ with
    report.json, summary.csv and index.html; then its lines (one per face and a final one)."""
    analyses = analysis.analyze_logs(
        args.landmarks, args.meta, args.raw, None, args.fps, cfg, frame_range, args.basis_dir
    )
    paths = clip_paths(ClipLogs("", args.meta, args.landmarks, args.raw))
    rows = write_outputs(analyses, Path(args.out), plots=not args.no_plots, paths=paths)
    single = analysis.one_face(analyses)
    if single is not None:
        print_clip(single, args)
        return 0
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


def print_clip(result: Analysis, args: argparse.Namespace) -> None:
    """The lines of one clip analysed from logs without face_id: its scores, its counts, its files."""
    s = result.scores
    if args.quiet:
        print(f"{s.overall_score:.1f}")
        return
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
    names = [n for n in OUTPUT_NAMES if n != "timeline.png" or not args.no_plots]
    print(f"wrote {', '.join(names)} to {Path(args.out)}")


def run_many(args: argparse.Namespace, cfg: AnalysisConfig, frame_range: tuple[int, int] | None) -> int:
    """--logs: every clip into OUT/<stem>/, one line per clip, then summary.csv, index.html and a
    final line. Exit 0 when every clip was analysed or skipped (a picture's logs without its
    landmarks); 5 when a clip's output could not be written; else 3 when some clips were
    analysed, or the first failed clip's own code when none was."""
    clips = find_clips(args.logs)
    options = dict(fps=args.fps, config=cfg, baseline_frames=frame_range, basis_dir=args.basis_dir)

    def said(o: ClipOutcome) -> None:
        if o.skipped:
            print(f"{o.clip.stem}: {FacemapError(o.note).render(ANALYZE_FLAGS)}")
            return
        if not o.ok:
            print(f"analyze_expressions.py: error: {o.clip.stem}: {o.row['error']}", file=sys.stderr)
            return
        for r in o.rows:
            print_row(r, args.quiet)

    if args.ray is not None:
        from ..raypool import check_pool_options, check_reachable, import_ray

        import_ray()
        check_pool_options(args.ray_workers, args.ray_cpus)
        if args.ray:
            check_reachable(args.ray)  # before the output folder is made: no answer is one line in seconds
    with Batch(Path(args.out), plots=not args.no_plots, names=ANALYZE_FLAGS) as batch:
        if args.ray is not None:
            from ..analysis.distributed import analyze_on_ray

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
    failed = [o for o in batch.outcomes if o.error is not None]
    skipped = [o for o in batch.outcomes if o.skipped]
    multi = sum(o.by_face for o in batch.outcomes)
    if not args.quiet or failed:
        which = f", {len(failed)} failed ({', '.join(o.clip.stem for o in failed)})" if failed else ""
        which += f", {len(skipped)} skipped ({', '.join(o.clip.stem for o in skipped)})" if skipped else ""
        per = f"; one row per face for the {multi} with face_id" if multi else ""
        n = len(batch.earlier)
        per += f"; {n} more clip{'s' if n != 1 else ''} from an earlier run in that folder" if n else ""
        tables = (f"summary.csv, summary.parquet and index.html (one row per clip{per}) in {Path(args.out)}"
                  if batch.wrote_tables else "nothing written")
        print(
            f"{len(clips)} clip{'s' if len(clips) != 1 else ''}: {len(clips) - len(failed) - len(skipped)} "
            f"analysed{which}; {tables}",
            file=sys.stderr if failed else sys.stdout,
        )
    if not failed:
        return 0
    # an output that could not be written: 5; else some failed for their logs and others are
    # done: 3, as infer.py's several videos; every one failed: the first failure's own code
    codes = [o.error.exit_code for o in failed]
    if OutputError.exit_code in codes:
        return OutputError.exit_code
    some_done = len(failed) + len(skipped) < len(batch.outcomes)
    return EXIT_INPUT if some_done else codes[0]


def print_row(r: dict[str, object], quiet: bool) -> None:
    """One analysed clip's (or face's) line, from its summary row."""
    print(row_line(r, quiet))


def row_line(r: dict[str, object], quiet: bool = False) -> str:
    """The line of one analysed clip (or face), from its summary row."""
    if quiet:
        return f"{r['stem']} {r['overall_score']:.1f}"
    return (
        f"{r['stem']}: overall_score {r['overall_score']:.1f} (positivity {r['positivity']:.1f}, "
        f"expressiveness {r['expressiveness']:.1f}, attention {r['attention']:.1f}); frames "
        f"{r['frames']}, with a face {r['frames_with_face']}; blinks {r['blinks']}, smiles "
        f"{r['smiles']}, yawns {r['yawns']}, looking away {r['looking_away']}, winks "
        f"{r.get('wink', 0)}; speaking {float(r.get('speaking_s') or 0.0):.1f} s"
    )
