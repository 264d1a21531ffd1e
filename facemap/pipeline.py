"""The one chain, for images, videos and cameras alike:

    source frames -> face boxes -> landmarker -> guard -> smoother -> [3DMM fit] -> sinks

``Pipeline`` holds the parts that are slow to build (the detector and the landmarker) and the
options; ``Pipeline.run(frames, mode)`` is a generator: one ``Frame`` per input frame. In
``Mode.IMAGE`` every picture stands alone: the detector runs on it and the largest face is
landmarked. In ``Mode.VIDEO`` the face is followed from frame to frame (``FaceTracker``: the next
box comes from the previous landmarks, the detector runs when the face is lost, on a scene cut
and every ``redetect_every`` frames), outliers are marked (``JumpGuard``) and landmarks and pose
are smoothed (One Euro, driven by the timestamps). Smoothing is for drawing: the smoothed points
and pose ride beside the landmarker's (``Face.smoothed``, ``Face.smoothed_pose``), and
``Face.landmarks`` / ``Face.pose``, which every log holds, stay what the landmarker returned
(smoothing eats blinks and lip motion, which the analyzer must see).

Sinks are objects with ``write(frame)`` and ``close(error=None)`` (or any callable taking a
Frame); the chain names none of them, and whoever runs it closes them (``close_sinks``). Every frame goes to every sink with Ctrl-C / SIGTERM held
until all have it, so an interrupted run leaves outputs that hold the same frames. A sink may
raise ``StopRun`` to end the run cleanly (a preview window's q key): ``run`` raises it after
yielding that frame, and ``FaceMap.process`` ends there as if the frames had run out.
"""

from __future__ import annotations

import contextlib
import logging
import numbers
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .backends.base import Detector, Landmarker
from .errors import FacemapError, UsageError
from .io.outputs import HoldSignals
from .io.video import VideoFrame
from .threedmm.fit import Fitter
from .threedmm.stage import FitStage
from .track.guard import GuardOptions
from .track.smooth import SmoothOptions
from .track.tracker import FaceTracker, TrackOptions
from .types import Face, Frame, Mode

if TYPE_CHECKING:
    from .analysis.config import AnalysisConfig

log = logging.getLogger(__name__)


_Step = tuple[tuple[Face, ...], tuple, str]


class StopRun(Exception):
    """Raised by a sink to end the run after the current frame (not an error)."""


@runtime_checkable
class Sink(Protocol):
    """Where frames go: ``write`` once per frame, ``close`` once at the end.

    ``close(error)`` gets the exception that ended the run, or None: an interruption
    (KeyboardInterrupt) should keep what was written so far; another error may discard it.
    """

    def write(self, frame: Frame) -> None:
        """Take one frame."""
        ...

    def close(self, error: BaseException | None = None) -> None:
        """Finish (or, after an error, discard) the output."""
        ...


class CallbackSink:
    """Any callable ``fn(frame)`` as a sink."""

    def __init__(self, fn: Callable[[Frame], object]) -> None:
        self.fn = fn

    def write(self, frame: Frame) -> None:
        """Call the function with the frame."""
        self.fn(frame)

    def close(self, error: BaseException | None = None) -> None:
        """Nothing to close."""


def as_sink(obj: object) -> Sink:
    """``obj`` if it is a sink, a CallbackSink if it is a callable; UsageError otherwise."""
    if isinstance(obj, Sink):
        return obj
    if callable(obj):
        return CallbackSink(obj)
    raise UsageError(f"sinks: a sink needs write(frame) and close(), or is a callable; got {type(obj).__name__}")


@dataclass(frozen=True)
class Options:
    """How the chain treats frames: tracking, jump guard and smoothing (video mode)."""

    track: TrackOptions = TrackOptions()
    guard: GuardOptions = GuardOptions()
    smooth: SmoothOptions = SmoothOptions()
    # faces per picture, largest first: 1 (one face, one-face logs), N, or 0 for every face
    max_faces: int = 1
    # the expression analyzer as a stage (facemap.analysis.online): its settings, or None (off)
    analyze: AnalysisConfig | None = None
    # how far behind the newest frame a frame is decided (None: the analyzer's default)
    analyze_lag_ms: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_faces, numbers.Integral) or isinstance(self.max_faces, bool) or self.max_faces < 0:
            raise UsageError(f"{{max_faces}} must be 1 (one face), N or 0 (every face), got {self.max_faces!r}")
        object.__setattr__(self, "max_faces", int(self.max_faces))  # numpy's integers too
        if self.analyze is not None:  # the analysis (pandas) is imported only when asked for
            from .analysis.config import AnalysisConfig
            from .analysis.online import online_lag_ms

            if not isinstance(self.analyze, AnalysisConfig):
                raise UsageError(f"{{analyze}} must be an AnalysisConfig (or True), got {type(self.analyze).__name__}")
            online_lag_ms(self.analyze, self.analyze_lag_ms, "analyze_lag_ms")  # a bad lag or label model is refused here, before any frame


# Each stage that holds frames keeps at most this many bytes of images: the 3DMM fit's hold (a
# video file: the frames of a settling track, 32 frames up to 1440p, 21 of a 4K video,
# FitStage.size_hold; then a settled track's batches of 8) and the online analyzer's (the
# frames waiting for their verdicts, about 0.9 s of them at the default lag: all of them up to
# 1440p at 30 fps or 1080p at 60, 21 of a 4K video, the oldest then decided early;
# OnlineAnalyzer.size_hold).
HOLD_BYTES = 512 * 1024 * 1024


class _Hold:
    """Frames a stage answers for later (the 3DMM fit's settling identities and batches, the
    online analyzer's verdicts), oldest first: ``update(frame)`` and ``finish()`` give the answers for
    the oldest frames waiting, in order, and ``merge(frame, answer)`` is the frame that goes on."""

    def __init__(
        self,
        update: Callable[[Frame], list],
        finish: Callable[[], list],
        merge: Callable[[Frame, object], Frame],
    ) -> None:
        self.update, self.finish, self.merge = update, finish, merge
        self.waiting: deque[Frame] = deque()

    def push(self, frame: Frame) -> list[Frame]:
        """Hold ``frame``; the frames answered for now, in order."""
        self.waiting.append(frame)
        return self._take(self.update(frame))

    def flush(self) -> list[Frame]:
        """Every frame still waiting, answered for now (at the end)."""
        return self._take(self.finish()) if self.waiting else []

    def _take(self, answers: list) -> list[Frame]:
        return [self.merge(self.waiting.popleft(), a) for a in answers]


class Pipeline:
    """The detector + landmarker and the per-mode stages after them. Build once, run often."""

    def __init__(
        self,
        detector: Detector,
        landmarker: Landmarker,
        options: Options = Options(),
        fitter: Fitter | None = None,
    ) -> None:
        self.detector = detector
        self.landmarker = landmarker
        self.options = options
        # the 3DMM fit for landmarkers without parameters (dlib): their 68 points -> FaceMap's 265
        self.fitter = fitter
        # the backends are not thread-safe (dlib, OpenCV): runs sharing them take turns per frame
        self._backends = threading.Lock()

    def run(
        self,
        frames: Iterable[VideoFrame],
        mode: Mode = Mode.VIDEO,
        sinks: Iterable[object] = (),
        source: Path | None = None,
        stem: str = "",
        live: bool = False,
    ) -> Iterator[Frame]:
        """One Frame per frame of ``frames`` (one sequence in video mode), each handed to every
        sink before it is yielded, in order. Closing the sinks is the caller's (``close_sinks``).

        With the 3DMM fit, a video file's face track waits until its identity settles (at most
        ``FitStage.settle_frames`` = 32 frames held, images included), so every frame of a track
        carries one identity, and then in batches of ``BATCH_FRAMES`` = 8 fitted together;
        ``live`` (a camera) holds nothing: a track's first frames carry provisional identities
        (see ``facemap.threedmm.stage``). A held frame's ``elapsed_ms`` leaves out its fit, which
        is done with its track's."""
        mode = Mode(mode)
        outs = [as_sink(s) for s in sinks]
        step = self._image_step() if mode is Mode.IMAGE else self._video_step()
        fit = FitStage(self.fitter) if self.fitter is not None else None
        video = mode is not Mode.IMAGE
        hold = HoldSignals()
        cfg = self.options.analyze
        judge_still = None  # the analysis, chosen once: frame by frame (video) or per picture
        holds: list[_Hold] = []  # stages that answer for a frame later, in chain order
        fit_now = fit  # the fit frame by frame (a picture, a live camera), or held (a video file)
        if fit is not None and video and not live:
            # a video file: a track's frames wait until its identity settles, then for their
            # batch (FitStage.push), at most HOLD_BYTES of images: fewer frames settle an
            # identity in a 4K video
            def fit_push(f: Frame) -> list:
                if f.image is not None:
                    fit.size_hold(f.image.nbytes, HOLD_BYTES)
                return fit.push(f.faces)

            fit_hold = _Hold(fit_push, fit.finish, lambda frame, faces: replace(frame, faces=faces))
            holds.append(fit_hold)
            fit_now = None
        if cfg is not None and video:
            from .analysis.online import OnlineAnalyzer

            online = OnlineAnalyzer(cfg, self.options.analyze_lag_ms)

            def judge_push(f: Frame) -> list:
                if f.image is not None and online.max_waiting is None:
                    online.size_hold(f.image.nbytes, HOLD_BYTES)
                return online.update(f.index, f.timestamp_ms, f.faces)

            holds.append(
                _Hold(
                    judge_push,
                    online.finish,
                    lambda frame, v: replace(frame, faces=v.faces, events=v.events),
                )
            )
        elif cfg is not None:
            from .analysis.online import judge_still

        def give(frame: Frame) -> bool:
            """Hand ``frame`` to every sink; True when one asked to stop."""
            stop = False
            if outs:
                with hold:  # every sink gets this frame, or none does
                    for sink in outs:
                        try:
                            sink.write(frame)
                        except StopRun:
                            stop = True
            return stop

        def through(frame: Frame) -> list[Frame]:
            """``frame`` through the holds: the frames that come out now, in order."""
            out = [frame]
            for h in holds:
                out = [o for f in out for o in h.push(f)]
            return out

        def drain() -> list[Frame]:
            """Every frame still held, decided now (the frames ended or the run stops), in order."""
            out: list[Frame] = []
            for h in holds:
                out = [o for f in out for o in h.push(f)] + h.flush()
            return out

        ready: deque[Frame] = deque()  # decided, not yet handed to the sinks

        def emit() -> Iterator[Frame]:
            while ready:
                done = ready.popleft()
                if give(done):  # a sink asked to stop: the frames held are decided now
                    ready.extend(drain())
                    while ready:
                        give(ready.popleft())
                    yield done
                    raise StopRun
                yield done

        source_frames = iter(frames)
        try:
            while True:
                try:
                    vf = next(source_frames)
                except StopIteration:
                    break
                except Exception:
                    # the source failed (a generator raised, a file's data broke off): the frames
                    # held are decided now and handed on, to the caller and the sinks, first
                    ready.extend(drain())
                    with contextlib.suppress(StopRun):  # a sink's stop then: the source's error still goes on
                        yield from emit()
                    raise
                t0 = time.perf_counter()
                with self._backends:
                    faces, boxes, reason = step(vf)
                if fit_now is not None:
                    faces = fit_now(faces, video=video)
                if judge_still is not None:
                    faces = judge_still(faces, cfg)
                frame = Frame(
                    index=vf.index,
                    timestamp_ms=vf.timestamp_ms,
                    faces=faces,
                    image=vf.image,
                    source=source,
                    stem=stem,
                    detections=boxes,
                    time_s=vf.time_s,
                    reason="" if faces else reason,
                    elapsed_ms=(time.perf_counter() - t0) * 1000.0,
                )
                ready.extend(through(frame))
                yield from emit()
            ready.extend(drain())
            yield from emit()
        except (GeneratorExit, KeyboardInterrupt):
            # stopped early (Ctrl-C, the caller's break): the frames decided or still held (the
            # fit's settling tracks, the analyzer's undecided frames) go to the sinks as decided
            # now, so the logs hold every frame
            ready.extend(drain())
            while ready:
                give(ready.popleft())
            raise

    # -- the two modes
    # Each step maps one frame to (faces, the detector's boxes, why there is no face).
    def _image_step(self) -> Callable[[VideoFrame], _Step]:
        detector, landmarker = self.detector, self.landmarker
        limit = self.options.max_faces or None  # 0: every face

        def step(vf: VideoFrame) -> _Step:
            boxes = list(detector.detect(vf.image))  # largest first
            chosen = boxes[:limit]
            # the crops of all chosen faces go through the model as one batch
            found = landmarker.landmark(vf.image, chosen, vf.index, vf.timestamp_ms) if chosen else []
            faces = tuple(replace(f, id=i) for i, f in enumerate(found[: len(chosen)]))
            return faces, tuple(boxes), "detector_failed"

        return step

    def _video_step(self) -> Callable[[VideoFrame], _Step]:
        opts = self.options
        tracker = FaceTracker(self.detector, self.landmarker, opts.track, opts.max_faces, opts.guard, opts.smooth)

        def step(vf: VideoFrame) -> _Step:
            faces = tracker(vf.image, vf.index, vf.timestamp_ms)
            return faces, tuple(tracker.last_detections), tracker.reason

        return step


def close_sinks(sinks: list[Sink], error: BaseException | None = None) -> None:
    """Close every sink; the first close error is raised after all were tried (unless the run
    already failed, whose error wins). Ctrl-C / SIGTERM (a second one, while an interrupted run
    closes) is held until every sink is closed, so none is left half-written."""
    first: BaseException | None = None
    with HoldSignals():
        for sink in sinks:
            try:
                sink.close(error)
            except Exception as exc:
                first = first or exc
    lost = [path for sink in sinks for path in getattr(sink, "lost", ())]
    said = error if error is not None else first
    if lost and isinstance(said, FacemapError):
        said.not_kept(lost)  # the run's one line names every output it could not keep
    if first is not None and error is None:
        raise first
