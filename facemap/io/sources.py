"""What ``process()`` accepts, turned into frames: files, folders, globs, videos, cameras, arrays.

``resolve_sources(source)`` checks the input up front and returns a list of ``Source``: one per
image file, video file or camera, or one for an iterable of arrays. ``Source.frames()`` yields
``VideoFrame`` objects (index, timestamp_ms, time_s, image) and releases what it opened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputFileError, UsageError, number
from ..types import Mode
from .images import IMAGE_EXTENSIONS, collect_files, read_image, unique_stems
from .video import VIDEO_EXTENSIONS, VideoFrame, read_frames

log = logging.getLogger(__name__)

# Timestamps given to frames that come as bare arrays (no clock of their own).
DEFAULT_ARRAY_FPS = 30.0


@dataclass(frozen=True)
class FrameRange:
    """Which frames of a video or camera to process: every ``every``-th frame in
    [start_s, end_s) seconds, at most ``max_frames`` of them."""

    every: int = 1
    max_frames: int | None = None
    start_s: float | None = None
    end_s: float | None = None

    def __post_init__(self) -> None:
        number(self.every, "{every}", whole=True)
        if self.max_frames is not None:
            number(self.max_frames, "{max_frames}", whole=True)
        for value, name in ((self.start_s, "{start_s}"), (self.end_s, "{end_s}")):
            if value is not None:
                number(value, name, unit=" of seconds")
        if self.every < 1:
            raise UsageError(f"{{every}} must be >= 1, got {self.every}")
        if self.max_frames is not None and self.max_frames < 1:
            raise UsageError(f"{{max_frames}} must be >= 1, got {self.max_frames}")
        if self.start_s is not None and self.start_s < 0:
            raise UsageError(f"{{start_s}} must be >= 0 seconds, got {self.start_s}")
        if self.end_s is not None and self.end_s <= (self.start_s or 0.0):
            raise UsageError(
                f"{{end_s}} ({self.end_s} s) must be after {{start_s}} ({self.start_s or 0.0} s)"
            )


@dataclass(frozen=True)
class Source:
    """One input: ``kind`` is image (a file), array (one picture), video, camera or arrays (an
    iterable of frames); ``stem`` names its outputs."""

    kind: str
    stem: str
    path: Path | None = None
    camera: int | None = None
    arrays: Iterable | None = field(default=None, repr=False, compare=False)
    fps: float = DEFAULT_ARRAY_FPS

    @property
    def mode(self) -> Mode:
        """The mode this kind of input runs in unless told otherwise."""
        return Mode.IMAGE if self.kind in ("image", "array") else Mode.VIDEO

    @property
    def name(self) -> str:
        """How messages name it: the file name, ``camera N`` or ``arrays``."""
        if self.path is not None:
            return self.path.name
        return f"camera {self.camera}" if self.kind == "camera" else self.stem

    def frames(self, span: FrameRange = FrameRange()) -> Iterator[VideoFrame]:
        """This input's frames, upright BGR, with their 1-based index and timestamps."""
        if self.kind == "image":
            assert self.path is not None
            yield VideoFrame(1, 0.0, 0.0, read_image(self.path))
        elif self.kind == "video":
            yield from read_frames(self.path, span.start_s, span.end_s, span.every, span.max_frames)
        elif self.kind == "camera":
            yield from camera_frames(int(self.camera), span.max_frames, span.every)
        else:
            yield from array_frames(self.arrays, self.fps, span.every, span.max_frames)


def _kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return "image"


def resolve_sources(source: object, fps: float = DEFAULT_ARRAY_FPS) -> list[Source]:
    """The inputs ``source`` names, checked: a path (image, video or folder), a glob, a list of
    them, a camera index (int), one BGR array, or an iterable of BGR arrays or VideoFrames."""
    if isinstance(source, Source):
        return [source]
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, Source) for s in source):
        return list(source)
    if isinstance(source, bool):
        raise UsageError(f"cannot process {source!r}; give a path, a camera index or images")
    if isinstance(source, int):
        return [camera_source(source)]
    if isinstance(source, np.ndarray) and source.ndim == 4:  # (N, H, W, 3): N frames, as a list of them
        return [Source("arrays", "frames", arrays=source, fps=fps)]
    if isinstance(source, np.ndarray):
        return [Source("array", "image", arrays=[source], fps=fps)]
    if isinstance(source, (list, tuple)) and not source:
        raise UsageError("the source is an empty list (a glob that matched nothing?); give a path, a folder, "
                         "a glob, a camera index or images")
    if isinstance(source, (str, Path)):
        items = [str(source)]
    elif isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, Path)) for s in source):
        items = [str(s) for s in source]
    elif isinstance(source, Iterable):
        return [Source("arrays", "frames", arrays=source, fps=fps)]
    else:
        raise UsageError(
            f"cannot process a {type(source).__name__}; give a path, a folder, a glob, a camera "
            "index, a BGR array or an iterable of them"
        )
    paths = collect_files(items, IMAGE_EXTENSIONS + VIDEO_EXTENSIONS, "image or video")
    return [
        Source(_kind_of(p), stem, path=p) for p, stem in zip(paths, unique_stems(paths), strict=True)
    ]


# OpenCV takes a camera index as a C int; larger ones are no camera (and some crash it).
MAX_CAMERA_INDEX = 2**31 - 1


def camera_source(index: int) -> Source:
    """Camera ``index``, checked before OpenCV sees it (a negative index asks OpenCV for "any
    camera", and can crash it)."""
    if not 0 <= index <= MAX_CAMERA_INDEX:
        raise UsageError(
            f"{{camera}} index must be >= 0 (0 is the first camera) and <= {MAX_CAMERA_INDEX}, got {index}"
        )
    return Source("camera", f"camera{index}", camera=index)


def array_frames(
    arrays: Iterable, fps: float = DEFAULT_ARRAY_FPS, every: int = 1, max_frames: int | None = None
) -> Iterator[VideoFrame]:
    """Frames from an iterable of (H, W, 3) uint8 BGR arrays (or VideoFrames, passed through),
    timestamped at ``fps``."""
    if not number(fps, "fps") > 0:
        raise UsageError(f"fps must be > 0, got {fps}")
    emitted = 0
    for n, item in enumerate(arrays, start=1):
        if max_frames is not None and emitted >= max_frames:
            return
        if (n - 1) % every:
            continue
        if isinstance(item, VideoFrame):
            frame = item
        else:
            image = np.asarray(item)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or not image.size:
                got = "an empty one" if not image.size else image.dtype
                raise InputFileError(f"frame {n}: expected an (H, W, 3) uint8 BGR array, got {got} {image.shape}")
            t = (n - 1) / fps
            frame = VideoFrame(index=n, timestamp_ms=t * 1000.0, time_s=t, image=image)
        emitted += 1
        yield frame


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
