"""infer.py --video and --camera: each input through ``FaceMap.process`` with its sinks, the
report lines, the progress bar and ``--jobs`` (several videos in parallel processes)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..api import FaceMap
from ..errors import FacemapError, InputFileError, UsageError
from ..io.outputs import OutputDir, atomic_write_text, written_here
from ..io.schema import (
    LOG_SUFFIXES,
    corpus_text,
    face_id_column,
    log_names,
    overlay_name,
    run_info_name,
)
from ..io.sources import FrameRange, Source, camera_source
from ..io.video import VideoInfo, collect_videos, probe
from ..provenance import run_info
from ..sinks import CsvLogSink, PreviewSink, VideoOverlaySink, have_display
from ..types import Face, Frame, Mode
from .build import open_facemap
from .config import FLAGS, InferConfig

log = logging.getLogger(__name__)

Emit = Callable[[str], None]


@dataclass
class FrameCounts:
    """Per-status and per-reason frame counts."""

    frames: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    most_detected: int = 0  # the most faces the detector boxed in one frame
    most_followed: int = 0  # the most faces logged in one frame

    def add(self, r: Face, detected: int = 0, followed: int = 0) -> None:
        """Count one result (and how many faces its frame had boxed and logged)."""
        self.most_detected = max(self.most_detected, detected)
        self.most_followed = max(self.most_followed, followed)
        self.frames += 1
        self.by_status[r.status.value] = self.by_status.get(r.status.value, 0) + 1
        self.by_reason[r.reason] = self.by_reason.get(r.reason, 0) + 1

    @property
    def with_face(self) -> int:
        """Frames whose face box was detected or tracked."""
        return self.by_reason.get("detected", 0) + self.by_reason.get("tracked", 0)


@dataclass(frozen=True)
class VideoReport:
    """What one processed video yields."""

    path: Path
    stem: str
    counts: FrameCounts
    elapsed_s: float
    outputs: list[Path]
    info: VideoInfo | None = None
    note: str = ""
    analysed: str = ""  # --analyze: the analyzer's line (its scores and counts, where its files are)

    @property
    def fps(self) -> float:
        """Processed frames per second of wall time."""
        return self.counts.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0


CORPUS_CSV = "corpus.csv"


def video_outputs(stem: str, cfg: InferConfig, optional: bool = True) -> list[str]:
    """The files (relative to --output) one video or camera run writes; ``optional``: with
    those written only when there is something to write (the expression log, see
    ``schema.OPTIONAL_LOG``), claimed all the same so that no file of another program is
    overwritten."""
    names = [*log_names(stem, cfg.dump_csv, landmarks_logged(cfg), optional), run_info_name(stem),
             *analysis_names(stem, cfg)]
    return names + ([overlay_name(stem)] if cfg.save_video else [])


def every_output(stem: str, cfg: InferConfig) -> list[str]:
    """Every file a video run of ``stem`` may write, whatever its options (every log, the run's
    record, the overlay, a one-face analysis), relative to --output."""
    from dataclasses import replace

    wide = replace(cfg, dump_csv=True, dump_landmarks_csv=True, save_video=True, analyze=True, max_faces=1)
    return video_outputs(stem, wide)


def drop_stale(out: OutputDir, rep: VideoReport, cfg: InferConfig) -> tuple[list[str], list[str]]:
    """The outputs of ``rep.stem`` an earlier run wrote here and this run did not: its logs are
    removed (the landmarks log of a run with --dump-landmarks-csv, run again without it; the
    expression log of a run with the basis), as the logs of a stem are read together, one
    run's; its overlay and analysis are left, as made by that run. Only files facemap wrote
    here (``OutputDir.forget``). Returns (removed, left)."""
    written = {Path(p).resolve() for p in rep.outputs}  # files, or a folder (the analysis) for its files
    gone, left = [], []
    for rel in every_output(rep.stem, cfg):
        target = (out.path / rel).resolve()
        if target in written or written & set(target.parents) or not target.is_file() or not out.wrote(rel):
            continue
        if rel.startswith("logs/"):
            out.forget(rel)
            gone.append(rel)
            continue
        name = f"{ANALYSIS_FOLDER}/{rep.stem}/" if rel.startswith(f"{ANALYSIS_FOLDER}/") else rel  # the folder, once
        if name not in left:
            left.append(name)
    return gone, left


def stale_line(stem: str, gone: list[str], left: list[str]) -> str | None:
    """The line saying what ``drop_stale`` removed and left, or None."""
    said = []
    if gone:
        said.append(f"removed the earlier run's {', '.join(gone)} (not this run's logs)")
    if left:
        said.append(f"{', '.join(left)} {'is' if len(left) == 1 else 'are'} still the earlier run's")
    return f"{stem}: {'; '.join(said)}" if said else None


def identity(path: Path) -> dict[str, object]:
    """The corpus.csv cells that tell one input from another of its name: its size and
    modification time (ns); {} when it cannot be read (then it is never skipped)."""
    try:
        st = os.stat(path)
    except OSError:
        return {}
    return {"video_bytes": st.st_size, "video_mtime_ns": st.st_mtime_ns}


def corpus_row(src: Source, status: str, **values: object) -> dict[str, object]:
    """A corpus.csv row of ``src`` with ``status`` and other cells."""
    return {"video": str(src.path), "stem": src.stem, "status": status, **values}


def ok_row(rep: VideoReport, node: str | None) -> dict[str, object]:
    """The corpus.csv row of a video done (``node``: the Ray node that did it; None locally)."""
    c = rep.counts
    pct = 100.0 * c.with_face / c.frames if c.frames else 0.0
    return {"video": str(rep.path), "stem": rep.stem, "status": "ok", "frames": c.frames, "face_pct": pct,
            "fps": rep.fps, "node": node, "seconds": rep.elapsed_s, "error": rep.note or None}


def progress(total: int | None, desc: str, enabled: bool, unit: str = "frame"):
    """A tqdm bar on stderr, only on a terminal (no carriage-return lines in redirected logs)."""
    from tqdm import tqdm

    return tqdm(
        total=total or None,
        desc=desc,
        unit=unit,
        disable=None if enabled else True,
        dynamic_ncols=True,
        leave=False,
        file=sys.stderr,
    )


def for_each(frames: Iterator[Frame], fn: Callable[[Frame], object]) -> None:
    """Call ``fn`` on every frame; an error (or Ctrl-C) in ``fn`` is thrown into the chain, so
    its sinks close knowing it (an interrupted overlay is finished, a failed one removed)
    before the error goes on."""
    try:
        try:
            for frame in frames:
                fn(frame)
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                frames.throw(exc)
            raise
    finally:  # a second Ctrl-C before the throw above: the chain still closes its sinks now
        with contextlib.suppress(BaseException):
            frames.close()


def _counted(frame: Frame) -> Face:
    """The face a frame is counted by in the report line: its first with landmarks (several
    faces: the frame has a face when any of them has), else its first or no-face record."""
    return next((f for f in frame.faces if f.has_face), frame.result)


def frame_range(cfg: InferConfig) -> FrameRange:
    """--every, --max-frames, --start, --end (image-only options refused)."""
    if cfg.dump_npy:
        raise UsageError(
            "{dump_npy} is for images; for videos use {dump_csv} (logs/<stem>_raw.csv holds the "
            "raw parameters of every frame)"
        )
    return FrameRange(cfg.every, cfg.max_frames, cfg.start, cfg.end)


def _expected(info: VideoInfo, span: FrameRange) -> int:
    n = info.frames_between(span.start_s, span.end_s)
    n = -(-n // span.every) if n else 0
    if span.max_frames:
        n = min(n, span.max_frames) if n else span.max_frames
    return n


def process_video(
    fm: FaceMap, src: Source, info: VideoInfo, out_dir: Path, cfg: InferConfig, span: FrameRange
) -> VideoReport:
    """One video through the chain into its logs and (--save-video) its overlay."""
    t0 = time.perf_counter()
    expected = _expected(info, span)
    # no frame in the range is refused below: such a run leaves no file (no header-only logs)
    made_by = run_info(fm.landmarker, fm.detector, cfg.changed(), fm.fitter)
    # a rerun stopped part way keeps the earlier run's outputs of this video as they were, not
    # this run's first frames in their place
    ours = set(OutputDir(Path(out_dir)).listed())  # facemap's files there (a user's of such a name are not a run's)
    earlier = [rel for rel in every_output(src.stem, cfg) if rel in ours and (Path(out_dir) / rel).is_file()]
    sinks: list = [CsvLogSink(out_dir, src.stem, raw=cfg.dump_csv, landmarks=landmarks_logged(cfg), points=cfg.points(),
                              with_face_id=face_id_column(cfg.max_faces), keep_empty=False, info=made_by,
                              discard_on_interrupt=bool(earlier), claim=False)]  # the run's OutputDir claimed them
    outputs = []
    if cfg.save_video:
        sinks.append(
            VideoOverlaySink(
                Path(out_dir) / overlay_name(src.stem),
                fps=info.fps / span.every,
                time_base=info.time_base,
                size=(info.width, info.height),
                audio_from=src.path if info.has_audio else None,
                style=cfg.style(),
                discard_on_interrupt=bool(earlier),
                claim=False,
            )
        )
        outputs.append(sinks[-1].path)
    if cfg.preview:
        sinks.append(PreviewSink(f"facemap {src.stem} (q or Esc stops)", cfg.style()))
    counts = FrameCounts()
    frames = fm.process(src, mode=Mode.VIDEO, sinks=sinks, every=span.every,
                        max_frames=span.max_frames, start_s=span.start_s, end_s=span.end_s)
    last_ms = [0.0]

    def count(frame: Frame) -> None:
        counts.add(_counted(frame), len(frame.detections), len(frame.faces))
        last_ms[0] = frame.timestamp_ms
        bar.update(1)

    try:
        with progress(expected, src.stem, not cfg.quiet) as bar:
            for_each(frames, count)
    except KeyboardInterrupt as exc:
        if not earlier or (exc.args and isinstance(exc.args[0], str)):
            raise
        raise KeyboardInterrupt(
            f"interrupted: {src.stem}'s outputs of the earlier run are kept as they were (this run's first "
            f"{counts.frames} frames were not kept); run again to replace them"
        ) from None
    if counts.frames == 0:
        raise InputFileError(
            f"{src.path}: no frames in the chosen range ({{start_s}}/{{end_s}}/{{max_frames}}); check the range"
        )
    note = ""
    if span.max_frames is None and _stopped_early(info, span, last_ms[0], counts.frames, expected):
        note = f"ended early: {counts.frames} of {expected} frames decoded, the file looks truncated"
        log.warning("%s: %s; the logs and overlay cover the decoded frames", src.path, note)
    outputs = sinks[0].paths + outputs  # the logs, with the expression log when it was written
    analysed = ""
    if cfg.analyze:
        paths, analysed = write_analysis(out_dir, src.stem, cfg)
        outputs += paths
    return VideoReport(src.path, src.stem, counts, time.perf_counter() - t0, outputs, info, note, analysed)


def landmarks_logged(cfg: InferConfig) -> bool:
    """Whether the landmarks log is written: --dump-landmarks-csv, or --analyze (the analyzer
    reads it at the end)."""
    return cfg.dump_landmarks_csv or cfg.analyze


def analysis_names(stem: str, cfg: InferConfig) -> list[str]:
    """The files --analyze writes for ``stem``, relative to the output folder (one face; with
    --max-faces other than 1 the analyzer lays out its face_<id>/ folders itself)."""
    from ..analysis.report import OUTPUT_NAMES

    if not cfg.analyze or face_id_column(cfg.max_faces):
        return []
    return [f"{ANALYSIS_FOLDER}/{stem}/{name}" for name in OUTPUT_NAMES]


ANALYSIS_FOLDER = "analysis"


def write_analysis(out_dir: Path, stem: str, cfg: InferConfig) -> tuple[list[Path], str]:
    """After a run with --analyze: the offline analyzer on the logs just written (the whole
    clip's baseline), its files in ``out_dir/analysis/<stem>/`` as analyze_expressions.py
    writes them; returns their paths and the line to print."""
    from ..analysis import analyze_logs
    from ..analysis.report import write_outputs
    from ..io.schema import log_path
    from .analyze import row_line

    folder = Path(out_dir) / ANALYSIS_FOLDER / stem
    logs = {kind: log_path(out_dir, stem, kind) for kind in ("landmarks", "meta")}
    analyses = analyze_logs(logs["landmarks"], logs["meta"])
    rows = write_outputs(analyses, folder, paths={k: str(v) for k, v in logs.items()})  # paths: no face
    shown = [dict(r, stem=f"{stem}{'/' + str(r['stem']) if r['stem'] else ''}") for r in rows]
    lines = [row_line(r) for r in shown] or [f"{stem}: no face in any frame"]
    return [folder], "\n".join(lines) + f"\nanalysis of {stem} in {folder}/"


def _stopped_early(info: VideoInfo, span: FrameRange, last_ms: float, frames: int, expected: int) -> bool:
    """True when decoding stopped well before the end of the chosen range. Judged on time where
    the file states its duration (a variable frame rate makes frame-count estimates wrong), else
    on the estimated frame count."""
    if info.duration_s:
        end = info.duration_s if span.end_s is None else min(span.end_s, info.duration_s)
        start = span.start_s or 0.0
        return last_ms / 1000.0 < end - max(1.0, 0.05 * (end - start)) and frames < expected
    return bool(expected) and frames < 0.95 * expected


def report_line(rep: VideoReport) -> str:
    """One line per processed input."""
    c = rep.counts
    pct = 100.0 * c.with_face / c.frames if c.frames else 0.0
    d, t = c.by_reason.get("detected", 0), c.by_reason.get("tracked", 0)
    extra = []
    for key in ("unstable", "warn", "no_face"):
        if c.by_status.get(key):
            extra.append(f"{c.by_status[key]} {key}")
    if c.most_detected > max(c.most_followed, 1):  # several people, some left out: say so
        extra.append(f"up to {c.most_detected} faces in a frame, {max(c.most_followed, 1)} followed "
                     "(--max-faces 0 follows every face)")
    tail = (", " + ", ".join(extra)) if extra else ""
    return (
        f"{rep.path.name}: {c.frames} frames, face in {c.with_face} ({pct:.1f}%: {d} detected, "
        f"{t} tracked){tail}, {rep.fps:.1f} fps" + (f" ({rep.note})" if rep.note else "")
        + (f"\n{rep.analysed}" if rep.analysed else "")
    )


def summary_table(reports: list[VideoReport]) -> list[str]:
    """The table printed after several videos."""
    name_w = max([len("file")] + [len(r.path.name) for r in reports])
    lines = [f"{'file':<{name_w}}  {'frames':>7}  {'face %':>6}  {'unstable':>8}  {'no_face':>7}  {'fps':>6}  outputs"]
    for r in reports:
        c = r.counts
        pct = 100.0 * c.with_face / c.frames if c.frames else 0.0
        outs = ", ".join(p.name for p in r.outputs if p.suffix == ".mp4" or p.name.endswith(LOG_SUFFIXES["meta"]))
        lines.append(
            f"{r.path.name:<{name_w}}  {c.frames:>7}  {pct:>6.1f}  {c.by_status.get('unstable', 0):>8}  "
            f"{c.by_status.get('no_face', 0):>7}  {r.fps:>6.1f}  {outs}"
        )
    total = sum(r.counts.frames for r in reports)
    secs = sum(r.elapsed_s for r in reports)
    lines.append(f"{len(reports)} video(s), {total} frames, {secs:.1f} s of processing")
    return lines


_WORKER: dict = {}


def _interrupt(signum: int, frame: object) -> None:
    if _WORKER.get("stopping"):
        return  # a second stop (Ctrl-C to the group, then SIGTERM from the parent): one is enough
    _WORKER["stopping"] = True
    if _WORKER.get("busy"):
        raise KeyboardInterrupt  # ends the video being processed, cleanly
    # Idle (waiting for a video, or handing one's report back): a video still queued never
    # starts, and the pool's shutdown ends the process. Exiting here could leave the pool's
    # result lock held (a worker killed while handing back its report): the other worker then
    # waited for it forever, and so did the run (a Ctrl-C that hung).


def preflight(cfg: InferConfig, emit: Emit) -> InferConfig:
    """Before --jobs workers start: find (or fetch, once, here) every file they will load, so
    a missing model is one line here, not a failure in each worker. Returns the options with
    the files found filled in."""
    from dataclasses import replace

    from .build import chain_options, check_detector, note_guard, resolve_detector

    chain_options(cfg)
    cfg.style()
    check_detector(cfg)
    if cfg.landmarker == "facemap":  # the model first: its absence is the first thing to hear
        from ..assets import find_model, load_basis

        model = find_model(Path(cfg.model) if cfg.model else None, Path(cfg.script_dir))
        if cfg.assume_points is None:  # another landmark model needs no 3DMM basis
            load_basis(Path(cfg.basis_dir) if cfg.basis_dir else None, progress=not cfg.quiet)
        cfg = replace(cfg, model=str(model))
        note_guard(cfg, None, emit)
    else:
        from ..backends import make_landmarker
        from .build import note_no_params

        landmarker = make_landmarker(cfg.landmarker)  # or its own one-line refusal
        note_no_params(cfg, landmarker)
        note_guard(cfg, landmarker, emit)
    resolve_detector(cfg)  # YuNet's file, or the offline detector: found once, here
    if cfg.face_detect and cfg.bbox is None and cfg.detector == "yunet" and not cfg.detector_model:
        from ..assets import find_yunet_model

        cfg = replace(cfg, detector_model=str(find_yunet_model(progress=not cfg.quiet)))
    return cfg


def _worker_init(cfg: InferConfig, started=None) -> None:
    _WORKER["started"] = started  # a queue: (stem, pid) as each video starts, for the parent
    logging.basicConfig(level=logging.WARNING, format="facemap: %(message)s")
    # a stop of the run reaches a worker as SIGTERM: it ends its video as a single run does
    # (logs renamed into place, the overlay finished up to the last frame)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # Ctrl-C in a terminal reaches every process
    try:
        _WORKER["fm"], _ = open_facemap(cfg, lambda _line: None)
    except FacemapError as exc:  # raised by each video this worker is given: one line, in the parent
        _WORKER["error"] = exc
    _WORKER["cfg"] = cfg


def _worker_run(src: Source, info: VideoInfo, out_dir: Path, span: FrameRange) -> VideoReport:
    if _WORKER.get("stopping"):  # the run was stopped: a video still queued never starts
        raise KeyboardInterrupt
    if "error" in _WORKER:
        raise _WORKER["error"]
    if _WORKER.get("started") is not None:
        _WORKER["started"].put((src.stem, os.getpid()))
    _WORKER["busy"] = True
    try:
        return process_video(_WORKER["fm"], src, info, out_dir, _WORKER["cfg"], span)
    finally:
        _WORKER["busy"] = False


def probe_in_range(path: Path, span: FrameRange) -> VideoInfo:
    """``probe(path)``, refusing a picture (it would run as a one-frame video, judged as a clip,
    not a photo) and a video that has no frames in the chosen range."""
    from ..io.images import IMAGE_EXTENSIONS

    if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
        raise InputFileError(f"{path}: is a picture; pass it with {{image}}")
    info = probe(path)
    if info.duration_s and not info.frames_between(span.start_s, span.end_s):
        asked = f"{{start_s}} {span.start_s or 0:g} s" + (
            f", {{end_s}} {span.end_s:g} s" if span.end_s is not None else ""
        )
        raise InputFileError(
            f"{path}: no frames in the chosen range ({asked}); the video lasts "
            f"{info.duration_s:.1f} s: check the range"
        )
    return info


def own_outputs_left_out(paths: list[Path], cfg: InferConfig, emit: Emit, kind: str = "videos") -> list[Path]:
    """``paths`` without the files facemap wrote into ``--output`` (an overlay of an earlier run
    when the inputs' folder is the output folder), each said in one line; InputFileError when
    nothing is left. ``kind``: the inputs, as the error names them."""
    ours = written_here(paths, Path(cfg.output))
    if not ours:
        return paths
    left = [p for p in paths if p not in ours]
    if not left:
        more = f" (and {len(ours) - 1} more)" if len(ours) > 1 else ""
        raise InputFileError(
            f"{ours[0]}{more}: written by facemap into {cfg.output}/, an output, not an input; give the original {kind}"
        )
    for p in ours:
        if not cfg.quiet:
            emit(f"{p.name}: skipped, facemap wrote it into {cfg.output}/ (an output, not an input)")
    return left


def run_videos(cfg: InferConfig, emit: Emit) -> int:
    """infer.py --video: each file (folder, glob) in turn, or in --jobs processes.

    One video that cannot be read is refused before anything is written. Of several, each bad
    one (unreadable, no frames in the range) is a ``failed`` row of ``corpus.csv``, said in one
    line, and the others are done; the run then raises InputFileError (exit 3) naming them."""
    from ..io.images import unique_stems

    if cfg.jobs < 1:
        raise UsageError(f"{{jobs}} must be >= 1, got {cfg.jobs}")
    if cfg.preview and cfg.jobs > 1:
        raise UsageError("{preview} shows one video at a time; it does not go with {jobs} N")
    if cfg.preview and not have_display():
        raise UsageError("--preview: no display for the window (DISPLAY is not set); leave --preview out "
                         "(--save-video writes the same overlay to a file)")
    paths = own_outputs_left_out(collect_videos(cfg.video or []), cfg, emit)
    span = frame_range(cfg)
    several = len(paths) > 1
    inputs = [Source("video", stem, path=p) for p, stem in zip(paths, unique_stems(paths), strict=True)]
    idents = {s.stem: identity(s.path) for s in inputs} if several else {}
    infos: dict[str, VideoInfo] = {}
    bad: dict[str, FacemapError] = {}
    for src in inputs:  # every input is checked before anything is written
        try:
            infos[src.stem] = probe_in_range(src.path, span)
        except InputFileError as exc:
            if not several:
                raise
            bad[src.stem] = exc
    good = [src for src in inputs if src.stem in infos]
    reports: list[VideoReport] = []
    output = OutputDir(Path(cfg.output), clean=cfg.clean)
    output.check()  # before any model is looked for; --clean empties it only once the model loaded
    parallel = cfg.jobs > 1 and len(good) > 1
    fm = None if parallel or not good else open_facemap(cfg, emit)[0]
    if parallel:
        cfg = preflight(cfg, emit)
    rows: dict[str, dict[str, object]] = {}
    with output as out:
        table = out.file(CORPUS_CSV) if several else None

        def save() -> None:
            if table is not None:
                atomic_write_text(table, corpus_text([{**rows[s.stem], "video": os.path.abspath(s.path), **idents[s.stem]}
                                                      for s in inputs if s.stem in rows]))

        def failed(src: Source, exc: FacemapError, seconds: float | None = None) -> None:
            if not several:
                raise exc
            for rel in video_outputs(src.stem, cfg):
                if not (out.path / rel).is_file():  # what an earlier run completed stays
                    out.forget(rel)
            error = exc.render(FLAGS)
            rows[src.stem] = corpus_row(src, "failed", seconds=seconds, error=error)
            save()
            emit(f"{src.path.name}: failed: {error}")

        def done(rep: VideoReport) -> None:
            stale = stale_line(rep.stem, *drop_stale(out, rep, cfg))
            reports.append(rep)
            rows[rep.stem] = ok_row(rep, None)
            save()
            emit(report_line(rep))
            if stale and not cfg.quiet:
                emit(stale)

        for src in inputs:
            if src.stem in bad:
                failed(src, bad[src.stem])
        for src in good:
            for rel in video_outputs(src.stem, cfg):
                out.file(rel)
        if fm is not None:
            for src in good:
                t0 = time.perf_counter()
                try:
                    rep = process_video(fm, src, infos[src.stem], out.path, cfg, span)
                except InputFileError as exc:  # this video's fault: the others still run
                    failed(src, exc, time.perf_counter() - t0)
                    continue
                done(rep)
        elif good:
            # each worker keeps the earlier run's outputs of a video it is stopped in (process_video);
            # its own line cannot reach the user: the parent says it
            earlier = [s.stem for s in good
                       if any(out.wrote(rel) and (out.path / rel).is_file() for rel in every_output(s.stem, cfg))]
            try:
                _run_parallel(cfg, good, [infos[s.stem] for s in good], out.path, span, done, failed, emit)
            except KeyboardInterrupt:
                kept = [stem for stem in earlier if stem not in rows]
                if not kept:
                    raise
                raise KeyboardInterrupt(
                    f"interrupted: {sum(r.get('status') == 'ok' for r in rows.values())} of {len(inputs)} video(s) "
                    f"finished; the ones stopped part way keep the earlier run's outputs as they were ({', '.join(kept)}), "
                    "the others' logs end at their last processed frame; a rerun does the rest"
                ) from None
    order = {s.stem: i for i, s in enumerate(inputs)}
    reports.sort(key=lambda r: order[r.stem])  # --jobs: as they ended
    if len(reports) > 1:
        for line in summary_table(reports):
            emit(line)
    if not cfg.quiet:
        emit(f"outputs in {cfg.output}/" + (f" ({CORPUS_CSV}: one row per video)" if several else ""))
    lost = [s.path.name for s in inputs if rows.get(s.stem, {}).get("status") == "failed"]
    if lost:
        raise InputFileError(
            f"{len(lost)} of {len(inputs)} video(s) failed: {', '.join(lost)} (the error of each is in "
            f"{Path(cfg.output) / CORPUS_CSV})" + ("; the others are done" if len(lost) < len(inputs) else "")
        )
    return 0


def _run_parallel(cfg, inputs, infos, out_dir, span, done, failed, say=lambda line: None) -> None:
    """The videos in --jobs processes: ``done(report)`` for each video done, ``failed(src,
    error)`` for each that could not be read (an InputFileError), as they end. A worker process
    killed by a signal (the out-of-memory killer, a crash) breaks the pool, and every video not
    done with it: those run again in a new pool (``say`` names them); a video whose worker was
    killed running it twice is failed, the others go on. A worker that ends otherwise (an
    exception outside a video) is a bug, as before."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    from dataclasses import replace

    worker_cfg = replace(cfg, quiet=True)  # no progress bars or model lines from the workers
    ctx = mp.get_context("spawn")
    todo, killed_in, unnamed = list(zip(inputs, infos, strict=True)), set(), 0
    bar = progress(len(inputs), "videos", not cfg.quiet, unit="video")
    try:
        while todo:
            broken, started = [], ctx.Queue()
            with ProcessPoolExecutor(max_workers=min(cfg.jobs, len(todo)), mp_context=ctx,
                                     initializer=_worker_init, initargs=(worker_cfg, started)) as pool:
                futures: dict = {}
                try:
                    futures = {pool.submit(_worker_run, src, info, out_dir, span): (src, info) for src, info in todo}
                    procs = dict(getattr(pool, "_processes", None) or {})  # pid -> Process, for their exit codes
                    for fut in as_completed(futures):
                        bar.clear()
                        try:
                            rep = fut.result()
                        except InputFileError as exc:
                            failed(futures[fut][0], exc)
                        except BrokenProcessPool:
                            broken.append(futures[fut])
                            continue
                        else:
                            done(rep)
                        bar.update(1)
                except BaseException:
                    for f in futures:  # nothing new starts
                        f.cancel()
                    _stop_workers(pool)  # the running videos end now, each closing its outputs
                    raise
            if not broken:
                break
            ran_in = _started_by(started)  # stem -> the pid of the worker that ran it
            dead = {pid for pid, p in procs.items() if p.exitcode is not None and p.exitcode < 0
                    and p.exitcode != -signal.SIGTERM}  # killed by a signal, not stopped by the pool
            if not dead:  # a worker that ended otherwise: a bug, said as one
                raise BrokenProcessPool("a --jobs worker process ended without a video's error")
            culprits = {src.stem for src, _info in broken if ran_in.get(src.stem) in dead}
            unnamed += not culprits  # killed between videos: no video to blame; not forever
            if unnamed > 2:
                raise BrokenProcessPool("--jobs worker processes keep being killed between videos")
            for src, _info in broken:
                if src.stem in culprits and src.stem in killed_in:
                    failed(src, InputFileError(
                        f"{src.path}: the worker process running it was killed twice (by a signal: out of memory?); "
                        "run it alone, or with fewer {jobs}"))
                    bar.update(1)
            todo = [(src, info) for src, info in broken if not (src.stem in culprits and src.stem in killed_in)]
            killed_in |= culprits
            if todo:
                bar.clear()
                say(f"a worker process was killed (by a signal: out of memory?) running "
                    f"{', '.join(sorted(culprits)) or 'a video'}; running again "
                    f"{', '.join(src.path.name for src, _info in todo)}")
    finally:
        bar.close()


def _started_by(queue) -> dict[str, int]:
    """What the workers said as each video started: stem -> pid (the last to run it)."""
    import queue as queue_mod

    out = {}
    while True:
        try:
            stem, pid = queue.get(timeout=0.2)
        except (queue_mod.Empty, OSError, EOFError, ValueError):
            return out
        out[stem] = pid


def _stop_workers(pool) -> None:
    """SIGTERM to the pool's worker processes (only ours, by pid), then wait for them to close
    their outputs; a second Ctrl-C while waiting leaves them to finish on their own."""
    for proc in list(getattr(pool, "_processes", {}).values()):
        if proc.is_alive():
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGTERM)
    with contextlib.suppress(KeyboardInterrupt):
        pool.shutdown(wait=True, cancel_futures=True)


def run_camera(cfg: InferConfig, emit: Emit) -> int:
    """infer.py --camera INDEX: until q/Esc in the preview, Ctrl-C, or --max-frames."""
    if cfg.jobs > 1:
        raise UsageError("--jobs applies to several --video files, not to --camera")
    src = camera_source(cfg.camera)  # checked before OpenCV sees it
    span = frame_range(cfg)
    preview = not cfg.no_preview
    if preview and not have_display():
        raise UsageError(
            "--camera: no display for the preview window (DISPLAY is not set); "
            "add --no-preview to run headless (logs and --save-video still work)"
        )
    t0 = time.perf_counter()
    counts = FrameCounts()
    output = OutputDir(Path(cfg.output), clean=cfg.clean)
    output.check()
    fm, _ = open_facemap(cfg, emit)
    with output as out:
        for rel in video_outputs(src.stem, cfg):
            out.file(rel)
        sinks: list = [CsvLogSink(out.path, src.stem, raw=cfg.dump_csv, landmarks=landmarks_logged(cfg), points=cfg.points(),
                                  with_face_id=face_id_column(cfg.max_faces),
                                  info=run_info(fm.landmarker, fm.detector, cfg.changed(), fm.fitter), claim=False)]
        outputs = []
        if cfg.save_video:
            sinks.append(VideoOverlaySink(out.path / overlay_name(src.stem), 30.0, Fraction(1, 1000), style=cfg.style(),
                                          claim=False))
            outputs.append(sinks[-1].path)
        if preview:
            sinks.append(PreviewSink(f"facemap camera {cfg.camera} (q or Esc quits)", cfg.style()))
        if not cfg.quiet:
            stop = "q or Esc in the preview stops it" if preview else "Ctrl-C stops it"
            emit(f"opening camera {cfg.camera}; once it runs, {stop}")
        frames = fm.process(src, mode=Mode.VIDEO, sinks=sinks, every=span.every, max_frames=span.max_frames)
        try:
            for_each(frames, lambda frame: counts.add(_counted(frame)))
        except KeyboardInterrupt:  # Ctrl-C is the way to stop a live camera: a normal end
            log.info("interrupted: stopping the camera")
        outputs = sinks[0].paths + outputs  # the logs, with the expression log when it was written
        analysed = ""
        if cfg.analyze and counts.frames:
            paths, analysed = write_analysis(out.path, src.stem, cfg)
            outputs += paths
        rep = VideoReport(Path(f"camera:{cfg.camera}"), src.stem, counts, time.perf_counter() - t0, outputs,
                          analysed=analysed)
        stale = stale_line(rep.stem, *drop_stale(out, rep, cfg))
    emit(report_line(rep))
    if stale and not cfg.quiet:
        emit(stale)
    return 0
