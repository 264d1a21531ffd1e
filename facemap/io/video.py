"""Video in and out with PyAV: ``probe``, ``read_frames`` (a generator) and ``VideoSink``.

Decoding runs on its own thread and hands frames over through a bounded queue; encoding runs
on another, so with the model in the main thread the two cores overlap and memory stays flat
however long the video is. Frames carry their true presentation time (variable-frame-rate
phone videos keep their timing) and come out upright (the stream's rotation metadata is
applied). ``av`` is imported inside the functions that read or write video, never at import
time: on macOS opencv-python and av both bundle libavdevice, and importing both prints a
harmless "Class AVFFrameReceiver is implemented in both" warning only when video is used.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputFileError, OutputError

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".wmv", ".3gp", ".ts", ".mts",
                    ".m2ts", ".flv")
# A frame timed at most this many frames before the one before it is a muxer's slip, not a join
NUDGE_FRAMES = 4
# The overlay's colours: BT.709 (FFmpeg's AVCOL_SPC/PRI/TRC_BT709, PyAV's Colorspace.ITU709), limited
# (MPEG) range, converted so and tagged so
BT709, LIMITED = 1, 1
DECODE_QUEUE = 8
ENCODE_QUEUE = 8
DEFAULT_CRF = 20
DEFAULT_PRESET = "veryfast"
_END = object()
# Audio codecs the MP4 muxer takes as they are (copied without re-encoding).
MP4_AUDIO_CODECS = {"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"}


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. Sizes are as displayed (rotation applied)."""

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float
    rotation_deg: int
    has_audio: bool
    codec: str
    time_base: Fraction
    start_s: float

    def frames_between(self, start_s: float | None, end_s: float | None) -> int:
        """Estimated number of frames in [start_s, end_s) seconds (whole video when None)."""
        t0 = max(0.0, start_s or 0.0)
        t1 = self.duration_s if end_s is None else min(end_s, self.duration_s)
        if self.frame_count and start_s is None and end_s is None:
            return self.frame_count
        return max(0, int(round((t1 - t0) * self.fps)))


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    index:        1-based index of the frame in the file (as the logs' ``frame`` column)
    timestamp_ms: presentation time from the start of the video stream, milliseconds; always
                  increasing (times that run back, as in files joined end to end, are renumbered
                  one frame interval after the frame before, with one warning)
    time_s:       presentation time on the file's clock, seconds (what VideoSink aligns audio to)
    image:        (H, W, 3) uint8 BGR, upright
    """

    index: int
    timestamp_ms: float
    time_s: float
    image: np.ndarray


def _open_input(path: Path):
    import av

    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: video not found; check the path")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder; pass video files, or the folder with {{video}} DIR")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: video file is empty (0 bytes); copy it again")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise InputFileError(
            f"{path}: not a readable video ({why}); is it a complete video file (mp4, mov, mkv)? "
            "A copy cut short loses the MP4 index: copy it again"
        ) from None
    if not container.streams.video:
        container.close()
        raise InputFileError(f"{path}: holds no video stream; pass a video file")
    return container


def probe(path: Path) -> VideoInfo:
    """Open ``path`` and describe its video stream (decodes one frame for the rotation)."""
    path = Path(path)
    container = _open_input(path)
    try:
        vs = container.streams.video[0]
        tb = vs.time_base or Fraction(1, 90000)
        fps = float(vs.average_rate or vs.guessed_rate or vs.base_rate or 30)
        start_s = float(vs.start_time * tb) if vs.start_time is not None else 0.0
        if vs.duration:
            duration = float(vs.duration * tb)
        elif (tagged := _duration_tag(vs)) is not None:  # Matroska/WebM: the stream's own, as a tag
            duration = tagged
        elif container.duration and len(container.streams) == 1:
            duration = container.duration / 1_000_000
        else:  # the container's covers every stream (audio may run longer): the video's own end, below
            duration = 0.0
        count = int(vs.frames or 0) or int(round(duration * fps))
        rotation = 0
        w, h = vs.codec_context.width, vs.codec_context.height
        sar = _pixel_aspect(vs)
        with contextlib.suppress(Exception):
            for frame in container.decode(vs):
                rotation = _rotation_of(frame)
                w, h = frame.width, frame.height
                break
        if sar is not None:  # frames are read with square pixels (square_pixels)
            w = max(2, round(w * sar))
        if not duration and container.duration:
            duration = _video_end(container, vs)
            count = count or int(round(duration * fps))
        if rotation in (90, 270):
            w, h = h, w
        return VideoInfo(
            path=path,
            width=int(w),
            height=int(h),
            fps=fps,
            frame_count=count,
            duration_s=duration,
            rotation_deg=rotation,
            has_audio=bool(container.streams.audio),
            codec=vs.codec_context.name,
            time_base=Fraction(tb),
            start_s=start_s,
        )
    finally:
        container.close()


def _video_end(container, vs) -> float:
    """The end of the video stream, in seconds on its clock, from its last packets (a seek near
    the container's end), for files whose container duration covers every stream (TS with audio
    running longer) and whose video has none of its own; where the file cannot seek (FLV), the
    container's duration, an estimate."""
    import av

    tb = vs.time_base or Fraction(1, 90000)
    try:
        container.seek(max(0, int(container.duration) - 3_000_000))  # on the container's clock, 3 s before its end
        ends = [pk.pts + (pk.duration or 0) for pk in container.demux(vs) if pk.pts is not None]
    except av.error.FFmpegError:
        ends = []
    return float(max(ends) * tb) if ends else container.duration / 1_000_000


def _duration_tag(stream) -> float | None:
    """A stream's ``DURATION`` tag (Matroska, WebM: "00:00:02.400000000") in seconds, or None."""
    text = str((stream.metadata or {}).get("DURATION", ""))
    m = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", text.strip())
    return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None


def _rotation_of(frame) -> int:
    """Counter-clockwise rotation to display ``frame`` upright: 0, 90, 180 or 270."""
    try:
        rot = int(frame.rotation)
    except Exception:  # older PyAV without VideoFrame.rotation
        rot = 0
    return int(round(rot / 90.0)) * 90 % 360


def upright(image: np.ndarray, rotation_deg: int) -> np.ndarray:
    """Rotate ``image`` counter-clockwise by ``rotation_deg`` (0, 90, 180, 270)."""
    if rotation_deg == 90:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if rotation_deg == 180:
        return cv2.rotate(image, cv2.ROTATE_180)
    if rotation_deg == 270:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    return image


def _pixel_aspect(vs) -> Fraction | None:
    """The stream's sample (pixel) aspect ratio when its pixels are not square (anamorphic
    video: DV, HDV, some broadcast files), else None."""
    sar = vs.sample_aspect_ratio or vs.codec_context.sample_aspect_ratio
    return Fraction(sar) if sar and Fraction(sar) != 1 else None


def square_pixels(image: np.ndarray, sar: Fraction | None) -> np.ndarray:
    """``image`` resampled to square pixels (its width times ``sar``), as a player shows it:
    faces keep their proportions for the landmarker and the ratios measured on them."""
    if sar is None:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (max(2, round(w * sar)), h), interpolation=cv2.INTER_AREA if sar < 1 else cv2.INTER_LINEAR)


def read_frames(
    path: Path,
    start_s: float | None = None,
    end_s: float | None = None,
    every: int = 1,
    max_frames: int | None = None,
    queue_size: int = DECODE_QUEUE,
) -> Iterator[VideoFrame]:
    """Yield upright BGR frames of ``path`` in [start_s, end_s), every ``every``-th, at most
    ``max_frames`` of them. Decoding runs on its own thread; the file is closed in ``finally``
    (also when the consumer stops early or is interrupted)."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    container = _open_input(Path(path))
    q: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def decode() -> None:
        try:
            for item in _decode(container, path, start_s, end_s, every, max_frames, stop):
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        finally:
            container.close()

    worker = threading.Thread(target=decode, name="facemap-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                q.get_nowait()
        worker.join()


def _pts_up_to(container, vs, limit_pts: int) -> list[int]:
    """Sorted presentation times of the video packets up to ``limit_pts`` (demuxed, not decoded:
    cheap), so that a frame found after a seek gets its true 1-based position in the file."""
    found = []
    for packet in container.demux(vs):
        # a trimmed file's pre-roll (an edit list: packets flagged discard) is decoded, never shown
        if packet.pts is not None and not getattr(packet, "is_discard", False):
            found.append(int(packet.pts))
        if packet.dts is not None and packet.dts > limit_pts:
            break
    found.sort()
    return found


# Damaged packets in a row past which the file is taken for broken off (not a damaged spot)
MAX_DAMAGED_RUN = 250


def _decoded(container, vs, path) -> Iterator:
    """The video stream's frames, packet by packet: a packet the decoder refuses (a damaged
    spot: bytes overwritten, a bad sector) is skipped with one warning and decoding goes on
    from the next one it takes (the frames up to the next key frame may be lost with it);
    an error reading the file itself, or MAX_DAMAGED_RUN refused packets in a row, ends it."""
    import av

    damaged, run, first, produced, first_error = 0, 0, None, False, None
    for packet in container.demux(vs):
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            if packet.size == 0:  # the flush at the end: nothing more to decode
                break
            first_error = first_error or exc
            damaged, run = damaged + 1, run + 1
            if first is None:
                first = float(packet.pts * vs.time_base) if packet.pts is not None else None
                where = f" at {first - float((vs.start_time or 0) * vs.time_base):.2f} s" if first is not None else ""
                why = getattr(exc, "strerror", None) or str(exc)[:80]
                log.warning("%s: damaged data%s (%s); skipped, decoding goes on after it", path, where, why)
            if run >= MAX_DAMAGED_RUN:
                raise
            continue
        run = 0 if frames else run
        produced = produced or bool(frames)
        yield from frames
    if damaged and not produced:  # nothing decoded at all: not a damaged spot, an unreadable file
        raise first_error
    if damaged > 1:
        log.warning("%s: %d damaged packets skipped in all", path, damaged)


def _seek_at_or_before(container, vs, target: int, slack: int) -> None:
    """Seek so that decoding starts at or before ``target`` (pts): where a container's seek
    lands after it, or nowhere (MPEG-TS goes to the next key frame: --start 1 lost a second of
    frames, or all of a short clip), from 2 s, 10 s earlier, then the file's start."""
    import av

    tb = vs.time_base or Fraction(1, 90000)
    start = vs.start_time or 0
    for back_s in (0.0, 2.0, 10.0, None):
        if back_s is None:  # the file's start (a seek to 0 on the container's clock gets there)
            container.seek(0)
            return
        pos = max(start, target - int(back_s / tb))
        container.seek(pos, stream=vs, backward=True, any_frame=False)
        try:
            first = next(iter(container.decode(vs)), None)
        except av.error.FFmpegError:
            first = None
        if first is not None and (first.pts is None or first.pts <= target + slack):
            container.seek(pos, stream=vs, backward=True, any_frame=False)  # again: that frame was taken
            return


def _decode(container, path, start_s, end_s, every, max_frames, stop) -> Iterator[VideoFrame]:
    import av

    vs = container.streams.video[0]
    vs.thread_type = "AUTO"
    sar = _pixel_aspect(vs)
    tb = vs.time_base or Fraction(1, 90000)
    fps = float(vs.average_rate or vs.guessed_rate or 30)
    stream_start = float(vs.start_time * tb) if vs.start_time is not None else 0.0
    index = 0
    earlier: list[int] = []
    if start_s:
        target = int((stream_start + start_s) / tb)
        earlier = _pts_up_to(container, vs, target + int(2.0 / tb))
        _seek_at_or_before(container, vs, target, int(0.5 / fps / tb))
        index = -1  # set from the first decoded frame's place among the frames before it
    emitted = 0
    last_t = None
    shift, renumbered = 0.0, False  # seconds added to the file's times once they run back
    nudged = 0  # frames whose time repeated or ran back a little (a muxer's slip): each set just after the one before
    just_nudged = False  # the frame before was: running back again, the file's clock started again (a join)
    try:
        for frame in _decoded(container, vs, path):
            if stop.is_set():
                return
            if frame.pts is not None:
                t = float(frame.pts * tb) + shift
            else:
                t = (last_t + 1.0 / fps) if last_t is not None else stream_start
            slip = last_t is not None and t <= last_t and last_t - t <= NUDGE_FRAMES / fps and not just_nudged
            just_nudged = slip
            if slip:
                # a repeated or swapped time: this frame alone is put 1 ms after the one before; the
                # frames after it keep the file's own times (a lasting shift drifted them, 40 ms a slip)
                if not nudged:
                    log.warning("%s: the frame after %.3f s repeats or runs back its time (a muxing slip); such a "
                                "frame is timed 1 ms after the one before it, the frames after keep the file's times",
                                path, last_t - stream_start)
                nudged += 1
                t = last_t + 0.001
            elif last_t is not None and t <= last_t:  # runs back (files joined with cat): renumbered
                shift += last_t + 1.0 / fps - t
                if not renumbered:
                    log.warning(
                        "%s: timestamps run back after %.3f s (to %.3f s; files joined end to end?); "
                        "frames from there on are timed %.3f s after the frame before them",
                        path, last_t - stream_start, t - stream_start, 1.0 / fps,
                    )
                renumbered = True
                t = last_t + 1.0 / fps
            last_t = t
            rel = t - stream_start
            if index < 0:  # frames before this one (seeked): counted, so variable frame rates hold
                index = bisect.bisect_left(earlier, frame.pts) if frame.pts is not None else int(round(rel * fps))
            index += 1
            if start_s and rel < start_s - 0.5 / fps:
                continue
            if end_s is not None and rel >= end_s - 1e-9:
                return
            if (index - 1) % every:
                continue
            image = upright(square_pixels(frame.to_ndarray(format="bgr24"), sar), _rotation_of(frame))
            yield VideoFrame(index=index, timestamp_ms=rel * 1000.0, time_s=t, image=image)
            emitted += 1
            if max_frames is not None and emitted >= max_frames:
                return
    except av.error.FFmpegError as exc:
        if emitted == 0:
            raise InputFileError(
                f"{path}: cannot decode video ({str(exc)[:120]}); is the file complete?"
            ) from None
        log.warning("%s: decoding stopped after %d frames (%s); the file may be truncated",
                    path, emitted, str(exc)[:120])


class VideoSink:
    """Write BGR frames as H.264 (yuv420p) MP4 with their own timestamps, copying audio (re-encoding to AAC what MP4 cannot hold).

    Use as a context manager; ``write(image, time_s)`` per frame, where ``time_s`` is the
    frame's time on the source's clock (VideoFrame.time_s). The first frame lands at 0 and the
    source's audio (``audio_from``) is copied, cut to the same span. Encoding runs on its own
    thread. The file is written under a temp name and renamed into place on a clean close; on
    an error the partial file is removed.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: float,
        time_base: Fraction = Fraction(1, 90000),
        audio_from: Path | None = None,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        queue_size: int = ENCODE_QUEUE,
    ) -> None:
        self.path = Path(path)
        self.width = int(width) - int(width) % 2
        self.height = int(height) - int(height) % 2
        if self.width < 2 or self.height < 2:
            raise OutputError(f"{self.path}: cannot encode a {width}x{height} video")
        self.fps = Fraction(fps).limit_denominator(100000) if fps > 0 else Fraction(30)
        self.time_base = Fraction(time_base)
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.crf = crf
        self.preset = preset
        self.tmp_path = self.path.with_name(f".{self.path.name}.part")
        self.frames_written = 0
        self._q: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._transcode = False  # the source's audio re-encoded to AAC (MP4 cannot hold it as it is)

    # -- lifecycle
    def __enter__(self) -> VideoSink:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self.close_after(exc)

    def close_after(self, exc: BaseException) -> None:
        """Close after ``exc`` ended the run: an interruption (Ctrl-C, SIGTERM) finishes the
        video up to the last frame written, so it plays; any other error removes it."""
        self.close(abort=not isinstance(exc, KeyboardInterrupt))

    def open(self) -> None:
        """Create the output file and start the encoding thread."""
        import av

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            out = av.open(str(self.tmp_path), mode="w", format="mp4")
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"{self.path}: cannot write video ({exc}); choose a writable {{output}}") from None
        try:
            vs = out.add_stream("libx264", rate=self.fps)
            vs.width, vs.height = self.width, self.height
            vs.pix_fmt = "yuv420p"
            # BT.709, limited range, converted so and said so: an untagged HD stream is decoded as
            # BT.709 by most players, and BT.601 samples then shift colours (green 255 -> 214)
            cc = vs.codec_context
            cc.colorspace = cc.color_primaries = cc.color_trc = BT709
            cc.color_range = LIMITED
            vs.time_base = self.time_base
            vs.codec_context.time_base = self.time_base
            vs.options = {"crf": str(self.crf), "preset": self.preset}
            audio_in = audio_src = audio_out = None
            if self.audio_from is not None:
                audio_in = av.open(str(self.audio_from), mode="r")
                if audio_in.streams.audio:
                    audio_src = audio_in.streams.audio[0]
                    codec = audio_src.codec_context.codec.canonical_name  # mp3, not "mp3float"
                    self._transcode = codec not in MP4_AUDIO_CODECS  # PCM (a camera's .mov, .avi): to AAC
                if audio_src is not None:
                    try:
                        if self._transcode:
                            cc = audio_src.codec_context
                            rate, channels = cc.sample_rate or 48000, cc.channels or 2
                            settings = {  # a layout named by its order ("1 channels" will not do); AAC's
                                "layout": {1: "mono", 2: "stereo"}.get(channels, cc.layout.name),  # rate: at
                                "bit_rate": min(64000 * channels, 3 * rate * channels),  # most 6 bits a sample
                            }
                            trial = av.CodecContext.create("aac", "w")  # refused here, not by the encoding
                            trial.sample_rate, trial.format = rate, "fltp"  # thread: the overlay goes on
                            for k, v in settings.items():
                                setattr(trial, k, v)
                            trial.open()
                            del trial  # freed with the object (no close() in PyAV)
                            audio_out = out.add_stream("aac", rate=rate)
                            for k, v in settings.items():
                                setattr(audio_out.codec_context, k, v)
                        else:
                            audio_out = out.add_stream_from_template(audio_src)
                    except (av.error.FFmpegError, ValueError) as exc:
                        log.warning("%s: audio not copied (%s); the overlay has no sound", self.audio_from, exc)
                        audio_src = None
                if audio_src is None:
                    audio_in.close()
                    audio_in = None
        except BaseException:
            out.close()
            with contextlib.suppress(OSError):
                os.unlink(self.tmp_path)
            raise
        self._thread = threading.Thread(
            target=self._encode_loop,
            args=(out, vs, audio_in, audio_src, audio_out),
            name="facemap-encode",
            daemon=True,
        )
        self._thread.start()

    def write(self, image_bgr: np.ndarray, time_s: float) -> None:
        """Queue one (H, W, 3) uint8 BGR frame shown at ``time_s`` (source clock, seconds)."""
        if self._error is not None:
            raise self._error
        if self._thread is None:
            raise RuntimeError("VideoSink.write before open()")
        while True:
            try:
                self._q.put((image_bgr, float(time_s)), timeout=0.5)
                return
            except queue.Full:
                if self._error is not None:
                    raise self._error from None
                if not self._thread.is_alive():
                    raise OutputError(f"{self.path}: the encoder stopped unexpectedly") from None

    def close(self, abort: bool = False) -> None:
        """Flush the encoder, finish the file and rename it into place (remove it on abort)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            marker = ("abort" if abort else "end", 0.0)
            while self._thread.is_alive():
                try:
                    self._q.put(marker, timeout=0.1)
                    break
                except queue.Full:
                    continue
            self._thread.join()
        if abort or self._error is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp_path)
            if self._error is not None and not abort:
                raise self._error
            return
        try:
            os.replace(self.tmp_path, self.path)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot finish video ({exc.strerror or exc})") from None

    # -- encoder thread
    def _encode_loop(self, out, vs, audio_in, audio_src, audio_out) -> None:
        import av

        origin: float | None = None
        last_pts = -1
        last_t = 0.0
        audio_packets = audio_in.demux(audio_src) if audio_in is not None else None
        pending_audio = None
        frame_dur = 1.0 / float(self.fps)

        def mux_audio(until_s: float) -> None:
            nonlocal pending_audio
            if audio_packets is None or origin is None:
                return
            atb = audio_src.time_base
            while True:
                pkt = pending_audio
                pending_audio = None
                if pkt is None:
                    pkt = next(audio_packets, None)
                    if pkt is None:
                        return
                if pkt.pts is None or pkt.dts is None:
                    continue
                t = float(pkt.pts * atb)
                if t >= until_s:
                    pending_audio = pkt
                    return
                shift = int(round(origin / atb))
                if self._transcode:  # decoded and encoded again, each frame at its own time
                    for aframe in pkt.decode():
                        rate = aframe.sample_rate
                        start = int(round((float(aframe.pts * atb) - origin) * rate))
                        if start + aframe.samples <= 0:  # ends before the first video frame
                            continue
                        aframe.pts, aframe.time_base = start, Fraction(1, rate)
                        for apkt in audio_out.encode(aframe):
                            out.mux(apkt)
                    continue
                if pkt.pts - shift < 0:
                    continue
                pkt.pts -= shift
                pkt.dts -= shift
                pkt.stream = audio_out
                out.mux(pkt)

        try:
            with contextlib.ExitStack() as stack:
                stack.callback(out.close)
                if audio_in is not None:
                    stack.callback(audio_in.close)
                while True:
                    image, t = self._q.get()
                    if isinstance(image, str):
                        if image == "abort":
                            return
                        break
                    if origin is None:
                        origin = t
                    h, w = image.shape[:2]
                    if (w, h) != (self.width, self.height):
                        image = image[: self.height, : self.width]
                        if image.shape[:2] != (self.height, self.width):
                            image = cv2.resize(image, (self.width, self.height))
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
                    frame = frame.reformat(format="yuv420p", dst_colorspace=BT709, dst_color_range=LIMITED)
                    pts = int(round((t - origin) / self.time_base))
                    if pts <= last_pts:
                        pts = last_pts + 1
                    last_pts = pts
                    last_t = t
                    frame.pts = pts
                    frame.time_base = self.time_base
                    for packet in vs.encode(frame):
                        out.mux(packet)
                    self.frames_written += 1
                    mux_audio(t)
                for packet in vs.encode(None):
                    out.mux(packet)
                mux_audio(last_t + frame_dur)
                if self._transcode and audio_out is not None:
                    for apkt in audio_out.encode(None):
                        out.mux(apkt)
        except BaseException as exc:
            msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            self._error = exc if isinstance(exc, OutputError) else OutputError(
                f"{self.path}: cannot encode video ({msg}); check free space and {{output}}"
            )
            # Keep draining so a producer blocked on put() can see the error.
            with contextlib.suppress(Exception):
                while True:
                    item = self._q.get(timeout=0.05)
                    if isinstance(item[0], str):
                        break


def collect_videos(inputs: list[str]) -> list[Path]:
    """Video paths from files, folders and globs."""
    from .images import collect_files

    return collect_files(inputs, VIDEO_EXTENSIONS, "video")
