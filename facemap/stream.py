"""Videos and webcams: the per-frame generator chain and the jobs that drive it.

frames -> roi + model (FaceTracker) -> guard (JumpGuard) -> smooth (LandmarkSmoother) -> sinks

``track_frames`` is the chain: it takes any iterator of VideoFrame and yields one ``Tracked``
per frame. ``process_video`` drives it over one file and feeds the sinks: the CSV logs
(exactly one meta row per processed frame), the H.264 overlay and a progress bar.
``run_videos`` processes a list of files in turn (or in ``jobs`` processes) and ``run_camera``
a live webcam with a preview window. Everything that is slow to build (detector, model,
basis, log files, encoder) is built once per video, never per frame.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .draw import DrawStyle, draw_overlay
from .errors import InputFileError, UsageError
from .records import FrameLogs, log_path
from .smooth import SMOOTH_PRESETS, LandmarkSmoother, SmoothParams
from .track import FaceTracker, JumpGuard, TrackOptions
from .types import FrameResult, Status
from .video import VideoFrame, VideoInfo, probe

log = logging.getLogger(__name__)

Emit = Callable[[str], None]
QUIT_KEYS = (ord("q"), ord("Q"), 27)


@dataclass(frozen=True)
class VideoOptions:
    """What to process and write for each video (or camera)."""

    every: int = 1
    max_frames: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    save_video: bool = False
    dump_csv: bool = False
    dump_landmarks_csv: bool = False
    style: DrawStyle = DrawStyle()
    track: TrackOptions = TrackOptions()
    jump_threshold: float = 1.0
    smooth: SmoothParams | None = SMOOTH_PRESETS["medium"]
    progress: bool = False  # the CLI turns it on (the library itself prints nothing)
    crf: int = 20
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        if self.every < 1:
            raise UsageError(f"--every must be >= 1, got {self.every}")
        if self.max_frames is not None and self.max_frames < 1:
            raise UsageError(f"--max-frames must be >= 1, got {self.max_frames}")
        if self.start_s is not None and self.start_s < 0:
            raise UsageError(f"--start must be >= 0 seconds, got {self.start_s}")
        if self.end_s is not None and self.end_s <= (self.start_s or 0.0):
            raise UsageError(
                f"--end ({self.end_s} s) must be after --start ({self.start_s or 0.0} s)"
            )

    def log_kinds(self) -> list[str]:
        """The log kinds written per input."""
        return ["meta", "summary"] + (["raw"] if self.dump_csv else []) + (
            ["landmarks"] if self.dump_landmarks_csv else []
        )

    def output_names(self, stem: str) -> list[str]:
        """Relative paths of the files written for ``stem``."""
        names = [log_path(Path(""), stem, k).as_posix() for k in self.log_kinds()]
        if self.save_video:
            names.append(overlay_name(stem))
        return names


def overlay_name(stem: str) -> str:
    """``<stem>_overlay.mp4``."""
    return f"{stem}_overlay.mp4"


@dataclass(frozen=True)
class Tracked:
    """One frame through the chain: the frame, the result as logged/drawn (smoothed landmarks
    and pose, raw params) and the unsmoothed result."""

    frame: VideoFrame
    result: FrameResult
    raw: FrameResult


@dataclass
class FrameCounts:
    """Per-status and per-reason frame counts."""

    frames: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, r: FrameResult) -> None:
        """Count one result."""
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

    @property
    def fps(self) -> float:
        """Processed frames per second of wall time."""
        return self.counts.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0


class FrameOutputsGuard:
    """Holds Ctrl-C / SIGTERM while one frame's outputs are written, then raises it, so an
    interrupted run leaves logs and overlay with the same frames. Reused for every frame; a
    no-op off the main thread (signals are only delivered there)."""

    def __init__(self) -> None:
        self._active = threading.current_thread() is threading.main_thread()
        self._saved: dict[int, object] = {}
        self._pending = False

    def _hold(self, signum: int, frame: object) -> None:
        self._pending = True

    def __enter__(self) -> None:
        if self._active:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._hold)

    def __exit__(self, *exc: object) -> None:
        if self._active:
            for sig, handler in self._saved.items():
                signal.signal(sig, handler)
            if self._pending:
                self._pending = False
                raise KeyboardInterrupt


def track_frames(
    frames: Iterable[VideoFrame],
    tracker: FaceTracker,
    guard: JumpGuard,
    smoother: LandmarkSmoother | None,
) -> Iterator[Tracked]:
    """The chain: for each frame, find/follow the face, run the model, guard, smooth."""
    for vf in frames:
        raw = tracker(vf.image, vf.index, vf.timestamp_ms)
        if tracker.new_segment:
            guard.reset()
            if smoother is not None:
                smoother.reset()
        guarded = guard(raw)
        shown = guarded
        if smoother is not None and guarded.status is Status.OK:
            shown = smoother(guarded)
        yield Tracked(vf, shown, guarded)


def make_chain_parts(detector, landmarker, options: VideoOptions):
    """(tracker, guard, smoother) for one video."""
    tracker = FaceTracker(detector, landmarker, options.track)
    guard = JumpGuard(options.jump_threshold)
    smoother = LandmarkSmoother(options.smooth) if options.smooth is not None else None
    return tracker, guard, smoother


class _Rate:
    """Exponential moving average of the processing rate (frames/s), for the HUD."""

    def __init__(self) -> None:
        self.fps = 0.0
        self._t = time.perf_counter()

    def tick(self) -> float:
        now = time.perf_counter()
        dt, self._t = now - self._t, now
        if dt > 0:
            inst = 1.0 / dt
            self.fps = inst if self.fps == 0 else 0.9 * self.fps + 0.1 * inst
        return self.fps


def _progress(total: int | None, desc: str, enabled: bool, unit: str = "frame"):
    from tqdm import tqdm

    return tqdm(
        total=total or None,
        desc=desc,
        unit=unit,
        disable=None if enabled else True,  # None: only on a terminal, no \r-lines in redirected logs
        dynamic_ncols=True,
        leave=False,
        file=sys.stderr,
    )


def process_video(
    path: Path,
    stem: str,
    detector,
    landmarker,
    out_dir: Path,
    options: VideoOptions,
) -> VideoReport:
    """Process one video file: logs under ``out_dir/logs``, overlay in ``out_dir``."""
    from .video import VideoSink, read_frames

    path = Path(path)
    info = probe(path)
    t0 = time.perf_counter()
    expected = info.frames_between(options.start_s, options.end_s)
    expected = -(-expected // options.every) if expected else 0
    if options.max_frames:
        expected = min(expected, options.max_frames) if expected else options.max_frames
    tracker, guard, smoother = make_chain_parts(detector, landmarker, options)
    counts = FrameCounts()
    rate = _Rate()
    outputs: list[Path] = []
    frames = read_frames(path, options.start_s, options.end_s, options.every, options.max_frames)
    with FrameLogs(
        out_dir, stem, raw=options.dump_csv, landmarks=options.dump_landmarks_csv
    ) as logs, _progress(expected, stem, options.progress) as bar:
        outputs.extend(logs.paths)
        sink = None
        if options.save_video:
            sink = VideoSink(
                Path(out_dir) / overlay_name(stem),
                info.width,
                info.height,
                info.fps / options.every,
                info.time_base,
                audio_from=path if info.has_audio else None,
                crf=options.crf,
                preset=options.preset,
            )
            sink.open()
        whole_frame = FrameOutputsGuard()
        try:
            for item in track_frames(frames, tracker, guard, smoother):
                fps = rate.tick()
                overlay = (
                    draw_overlay(item.frame.image, item.result, options.style, fps)
                    if sink is not None
                    else None
                )
                with whole_frame:  # logs and overlay get this frame, or neither does
                    logs.write(item.result)
                    if sink is not None:
                        sink.write(overlay, item.frame.time_s)
                counts.add(item.result)
                bar.update(1)
        except BaseException as exc:
            if sink is not None:
                sink.close_after(exc)
            raise
        finally:
            frames.close()
        if sink is not None:
            sink.close()
            outputs.append(sink.path)
    if counts.frames == 0:
        raise InputFileError(
            f"{path}: no frames in the chosen range (--start/--end/--max-frames); check the range"
        )
    note = ""
    if expected and counts.frames < 0.95 * expected and options.max_frames is None:
        note = f"ended early: {counts.frames} of {expected} frames decoded, the file looks truncated"
        log.warning("%s: %s; the logs and overlay cover the decoded frames", path, note)
    return VideoReport(path, stem, counts, time.perf_counter() - t0, outputs, info, note)


# ----------------------------------------------------------------------------- camera


def camera_frames(index: int, max_frames: int | None = None, every: int = 1) -> Iterator[VideoFrame]:
    """Frames from webcam ``index`` (OpenCV capture), timestamped by the wall clock; the
    capture is released in ``finally``."""
    import cv2

    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its backend-by-backend
    try:  # warnings for a missing camera would bury our one-line error
        cap = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(level)
    try:
        if not cap.isOpened():
            raise InputFileError(
                f"camera {index}: cannot open it; check the index (0 is the first camera) and "
                "that no other program uses it"
            )
        t0 = time.monotonic()
        n = emitted = 0
        while max_frames is None or emitted < max_frames:
            ok, image = cap.read()
            if not ok or image is None:
                if n == 0:
                    raise InputFileError(f"camera {index}: opened but gives no frames; check permissions")
                log.warning("camera %d: stopped giving frames after %d", index, n)
                return
            n += 1
            if (n - 1) % every:
                continue
            t = time.monotonic() - t0
            emitted += 1
            yield VideoFrame(index=n, timestamp_ms=t * 1000.0, time_s=t, image=image)
    finally:
        cap.release()


def _until_interrupted(items: Iterator[Tracked]) -> Iterator[Tracked]:
    """Pass items through; Ctrl-C ends the stream normally (the way to stop a live camera)."""
    try:
        yield from items
    except KeyboardInterrupt:
        log.info("interrupted: stopping the camera")


def have_display() -> bool:
    """True when a preview window can be shown (macOS/Windows always; Linux needs X or Wayland)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def process_camera(
    index: int,
    detector,
    landmarker,
    out_dir: Path,
    options: VideoOptions,
    preview: bool = True,
    stem: str | None = None,
) -> VideoReport:
    """Run on a live webcam until q/Esc in the preview, Ctrl-C, or ``max_frames``."""
    import cv2

    from .video import VideoSink

    if preview and not have_display():
        raise UsageError(
            "--camera: no display for the preview window (DISPLAY is not set); "
            "add --no-preview to run headless (logs and --save-video still work)"
        )
    stem = stem or f"camera{index}"
    t0 = time.perf_counter()
    tracker, guard, smoother = make_chain_parts(detector, landmarker, options)
    counts = FrameCounts()
    rate = _Rate()
    outputs: list[Path] = []
    frames = camera_frames(index, options.max_frames, options.every)
    window = f"facemap camera {index} (q or Esc quits)"
    sink = None
    with FrameLogs(out_dir, stem, raw=options.dump_csv, landmarks=options.dump_landmarks_csv) as logs:
        outputs.extend(logs.paths)
        try:
            whole_frame = FrameOutputsGuard()
            for item in _until_interrupted(track_frames(frames, tracker, guard, smoother)):
                fps = rate.tick()
                need_overlay = preview or options.save_video
                overlay = draw_overlay(item.frame.image, item.result, options.style, fps) if need_overlay else None
                if options.save_video and sink is None:
                    h, w = item.frame.image.shape[:2]
                    sink = VideoSink(Path(out_dir) / overlay_name(stem), w, h, 30.0, Fraction(1, 1000))
                    sink.open()
                with whole_frame:  # logs and recording get this frame, or neither does
                    logs.write(item.result)
                    if sink is not None:
                        sink.write(overlay, item.frame.time_s)
                counts.add(item.result)
                if preview:
                    try:
                        cv2.imshow(window, overlay)
                        key = cv2.waitKey(1) & 0xFF
                    except cv2.error as exc:
                        raise UsageError(
                            f"--camera: cannot open a preview window ({str(exc).strip().splitlines()[-1][:80]}); "
                            "add --no-preview"
                        ) from None
                    if key in QUIT_KEYS:
                        break
        except BaseException as exc:
            if sink is not None:
                sink.close_after(exc)
            raise
        finally:
            frames.close()
            if preview:
                import contextlib

                with contextlib.suppress(Exception):
                    cv2.destroyWindow(window)
        if sink is not None:
            sink.close()
            outputs.append(sink.path)
    return VideoReport(Path(f"camera:{index}"), stem, counts, time.perf_counter() - t0, outputs, None)


# ----------------------------------------------------------------------------- jobs


def video_options(cfg) -> VideoOptions:
    """VideoOptions from an InferConfig (refusing image-only options)."""
    if getattr(cfg, "dump_npy", False):
        raise UsageError(
            "--dump-npy is for images; for videos use --dump-csv (logs/<stem>_raw.csv holds the "
            "raw parameters of every frame)"
        )
    from .smooth import smooth_params

    return VideoOptions(
        every=cfg.every,
        max_frames=cfg.max_frames,
        start_s=cfg.start,
        end_s=cfg.end,
        save_video=cfg.save_video,
        dump_csv=cfg.dump_csv,
        dump_landmarks_csv=cfg.dump_landmarks_csv,
        style=cfg.style(),
        track=TrackOptions(redetect_every=cfg.redetect_every, skip_if_no_face=cfg.skip_if_no_face),
        jump_threshold=cfg.jump_threshold,
        smooth=smooth_params(cfg.smooth, cfg.smooth_mincutoff, cfg.smooth_beta),
        progress=not cfg.quiet,
    )


def report_line(rep: VideoReport) -> str:
    """One line per processed input."""
    c = rep.counts
    pct = 100.0 * c.with_face / c.frames if c.frames else 0.0
    d, t = c.by_reason.get("detected", 0), c.by_reason.get("tracked", 0)
    extra = []
    for key in ("unstable", "warn", "no_face"):
        if c.by_status.get(key):
            extra.append(f"{c.by_status[key]} {key}")
    tail = (", " + ", ".join(extra)) if extra else ""
    return (
        f"{rep.path.name}: {c.frames} frames, face in {c.with_face} ({pct:.1f}%: {d} detected, "
        f"{t} tracked){tail}, {rep.fps:.1f} fps" + (f" ({rep.note})" if rep.note else "")
    )


def summary_table(reports: list[VideoReport]) -> list[str]:
    """The table printed after several videos."""
    name_w = max([len("file")] + [len(r.path.name) for r in reports])
    lines = [f"{'file':<{name_w}}  {'frames':>7}  {'face %':>6}  {'unstable':>8}  {'no_face':>7}  {'fps':>6}  outputs"]
    for r in reports:
        c = r.counts
        pct = 100.0 * c.with_face / c.frames if c.frames else 0.0
        outs = ", ".join(p.name for p in r.outputs if p.suffix == ".mp4" or p.name.endswith("_meta.csv"))
        lines.append(
            f"{r.path.name:<{name_w}}  {c.frames:>7}  {pct:>6.1f}  {c.by_status.get('unstable', 0):>8}  "
            f"{c.by_status.get('no_face', 0):>7}  {r.fps:>6.1f}  {outs}"
        )
    total = sum(r.counts.frames for r in reports)
    secs = sum(r.elapsed_s for r in reports)
    lines.append(f"{len(reports)} video(s), {total} frames, {secs:.1f} s of processing")
    return lines


_WORKER: dict = {}


def _worker_init(cfg) -> None:
    from .runner import build_detector, build_landmarker

    logging.basicConfig(level=logging.WARNING, format="facemap: %(message)s")
    _WORKER["detector"] = build_detector(cfg)
    _WORKER["landmarker"], _ = build_landmarker(cfg, lambda _line: None)


def _worker_run(path: Path, stem: str, out_dir: Path, options: VideoOptions) -> VideoReport:
    return process_video(path, stem, _WORKER["detector"], _WORKER["landmarker"], out_dir, options)


def run_videos(cfg, emit: Emit) -> int:
    """infer.py --video: each file (folder, glob) in turn, or in --jobs processes."""
    from .images import unique_stems
    from .outputs import OutputDir
    from .video import collect_videos

    jobs = int(getattr(cfg, "jobs", 1))
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    paths = collect_videos(cfg.video or [])
    options = video_options(cfg)
    for p in paths:  # every input is checked before anything is written
        info = probe(p)
        if info.duration_s and not info.frames_between(options.start_s, options.end_s):
            asked = f"--start {options.start_s or 0:g} s" + (
                f", --end {options.end_s:g} s" if options.end_s is not None else ""
            )
            raise InputFileError(
                f"{p}: no frames in the chosen range ({asked}); the video lasts "
                f"{info.duration_s:.1f} s: check the range"
            )
    stems = unique_stems(paths)
    reports: list[VideoReport] = []
    with OutputDir(Path(cfg.output), clean=cfg.clean) as out:
        for stem in stems:
            for rel in options.output_names(stem):
                out.file(rel)
        if jobs == 1 or len(paths) == 1:
            from .runner import build_detector, build_landmarker

            detector = build_detector(cfg)
            landmarker, _desc = build_landmarker(cfg, emit)
            for path, stem in zip(paths, stems, strict=True):
                rep = process_video(path, stem, detector, landmarker, out.path, options)
                reports.append(rep)
                emit(report_line(rep))
        else:
            reports = _run_parallel(cfg, paths, stems, out.path, options, jobs, emit)
    if len(reports) > 1:
        for line in summary_table(reports):
            emit(line)
    if not cfg.quiet:
        emit(f"outputs in {cfg.output}/")
    return 0


def _run_parallel(cfg, paths, stems, out_dir, options, jobs, emit) -> list[VideoReport]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from dataclasses import replace

    opts = replace(options, progress=False)
    by_path: dict[Path, VideoReport] = {}
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=ctx,
                             initializer=_worker_init, initargs=(cfg,)) as pool:
        futures = {pool.submit(_worker_run, p, s, out_dir, opts): p for p, s in zip(paths, stems, strict=True)}
        bar = _progress(len(paths), "videos", options.progress, unit="video")
        try:
            for fut in as_completed(futures):
                rep = fut.result()
                by_path[futures[fut]] = rep
                bar.clear()
                emit(report_line(rep))
                bar.update(1)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        finally:
            bar.close()
    return [by_path[p] for p in paths]


def run_camera(cfg, emit: Emit) -> int:
    """infer.py --camera INDEX."""
    from .outputs import OutputDir
    from .runner import build_detector, build_landmarker

    if getattr(cfg, "jobs", 1) and cfg.jobs > 1:
        raise UsageError("--jobs applies to several --video files, not to --camera")
    options = video_options(cfg)
    preview = not cfg.no_preview
    if preview and not have_display():
        raise UsageError(
            "--camera: no display for the preview window (DISPLAY is not set); "
            "add --no-preview to run headless (logs and --save-video still work)"
        )
    stem = f"camera{cfg.camera}"
    with OutputDir(Path(cfg.output), clean=cfg.clean) as out:
        for rel in options.output_names(stem):
            out.file(rel)
        detector = build_detector(cfg)
        landmarker, _ = build_landmarker(cfg, emit)
        if not cfg.quiet:
            stop = "q or Esc in the preview stops it" if preview else "Ctrl-C stops it"
            emit(f"opening camera {cfg.camera}; once it runs, {stop}")
        rep = process_camera(cfg.camera, detector, landmarker, out.path, options, preview, stem)
    emit(report_line(rep))
    return 0

