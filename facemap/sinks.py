"""Sinks: where the chain's frames go. Each has ``write(frame)`` and ``close(error=None)``.

- ``CsvLogSink``: the per-frame CSV logs of one input (meta and summary; raw and landmarks on
  request), streamed, each renamed into place on close.
- ``VideoOverlaySink``: the overlay as H.264 MP4 at the source's timing, its audio copied.
- ``ImageFilesSink``: for pictures, per frame an overlay JPEG, a JSON document and one-row logs.
- ``PreviewSink``: a window showing the overlay; q or Esc ends the run.

Any callable taking a Frame is a sink too (``facemap.pipeline.as_sink``).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from .draw import DrawStyle, annotate
from .errors import OutputError, UsageError
from .io.logwriter import FrameLogs, write_run_info
from .io.outputs import (
    OutputDir,
    atomic_write_bytes,
    atomic_write_json,
    list_written,
    refuse_unlisted,
)
from .io.schema import OPTIONAL_LOG, log_names, overlay_name, run_info_name
from .io.video import DEFAULT_CRF, DEFAULT_PRESET, VideoSink
from .pipeline import StopRun
from .types import N_LANDMARKS, N_PARAMS, Face, Frame

log = logging.getLogger(__name__)

QUIT_KEYS = (ord("q"), ord("Q"), 27)
JPEG_QUALITY = 95


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


class CsvLogSink:
    """The CSV logs of one input under ``folder/logs`` (``<stem>_meta.csv`` ...): per frame its
    first face, or with ``with_face_id`` (a face_id column) every face, or its no-face record.
    ``info`` (``provenance.run_info``: what made them) goes beside them as ``<stem>_run.json``
    once they are in place. With ``claim`` (the default) the folder is the sink's own to look
    after: a file of a log's name that facemap did not write there (not listed in the folder's
    marker, and not a facemap log by its header) is refused at the first frame (``OutputError``,
    nothing written), and the logs written are listed in the marker, as ``infer.py`` lists its
    own; ``claim=False``: the caller's ``OutputDir`` does both."""

    def __init__(
        self,
        folder: Path,
        stem: str,
        raw: bool = False,
        landmarks: bool = False,
        points: int = N_LANDMARKS,
        with_face_id: bool = False,
        keep_empty: bool = True,
        info: dict | None = None,
        discard_on_interrupt: bool = False,
        claim: bool = True,
    ) -> None:
        self.folder, self.stem, self.raw, self.landmarks = Path(folder), stem, raw, landmarks
        self.claim = claim
        self.info = info
        self.discard_on_interrupt = discard_on_interrupt  # True: an interrupted run keeps no log
        self.keep_empty = keep_empty  # False: a run without a frame (refused) writes no logs
        self.points = points  # landmarks per face: 68, or N from another model (--assume-points)
        self.with_face_id = with_face_id
        self._planned = [self.folder / rel for rel in log_names(stem, raw, landmarks)]
        if info is not None:
            self._planned.append(self.folder / run_info_name(stem))
        self.logs: FrameLogs | None = None
        self.lost: list[Path] = []  # the logs a failed write left unwritten (none kept)
        self._input: tuple | None = None  # the input whose frames these logs hold

    @property
    def paths(self) -> list[Path]:
        """The files this sink writes: the logs, ``<stem>_run.json`` with ``info``, and the
        expression log once a face with named measures opened it."""
        opened = [lg.path for kind, lg in self.logs.logs.items() if kind == OPTIONAL_LOG] if self.logs else []
        return self._planned + opened

    def _open(self) -> FrameLogs:
        if self.claim:  # before any file: a log's name held by another program's file refuses the run
            planned = self._relative(self._planned)
            maybe = [n for n in log_names(self.stem, self.raw, optional=True) if n not in planned]  # the expression log
            refuse_unlisted(self.folder, planned + maybe)
        self.logs = FrameLogs(self.folder, self.stem, self.raw, self.landmarks, self.points, self.with_face_id)
        return self.logs

    def write(self, frame: Frame) -> None:
        """This frame's rows in every log (the logs are opened at the first). The logs are one
        input's: a frame of another input is a UsageError (its frame numbers start again)."""
        here = (frame.source, frame.stem)
        if self._input is None:
            self._input = here
        elif here != self._input:
            raise UsageError(
                f"CsvLogSink {self.stem!r}: a frame of {frame.stem or 'another input'} after those of "
                f"{self._input[1] or 'the first input'}; the logs hold one input's frames: give each input its own "
                "CsvLogSink (one process() call each), or use facemap.analyze for several"
            )
        (self.logs or self._open()).write_frame(frame.faces, frame.result)

    def close(self, error: BaseException | None = None) -> None:
        """Rename every log into place (also after an interruption or another error: the rows
        so far are complete), all of them or none: after an OutputError (an output could not
        be written: a full disk) none is kept, nor when one of them cannot be finished; those
        are listed in ``lost``. A run that ended without a frame leaves header-only logs, or
        none after an error or with ``keep_empty=False``. With ``discard_on_interrupt`` an
        interruption keeps none either (the files in place, an earlier run's, stay as they are)."""
        if self.logs is None:
            if error is not None or not self.keep_empty:
                return
            self._open()
        if isinstance(error, KeyboardInterrupt) and self.discard_on_interrupt:
            self.logs.discard()
            return
        if isinstance(error, OutputError):
            self.logs.discard()
            self.lost = self.logs.paths
            return
        try:
            self.logs.close()
        except OutputError:
            self.lost = self.logs.paths
            raise
        if self.info is not None:
            write_run_info(self.folder, self.stem, self.info)
        if self.claim:
            list_written(self.folder, self._relative(self.paths))

    def _relative(self, paths: list[Path]) -> list[str]:
        return [p.relative_to(self.folder).as_posix() for p in paths]


class VideoOverlaySink:
    """The overlay of every frame as an H.264 MP4 at ``path``.

    Frames are placed at their source time (``frame.time_s``); ``audio_from`` (the source
    video) gives the audio, copied. The encoder opens at the first frame, sized ``size``
    (width, height) or, without it, as that frame. After an interruption the file is finished up to the
    last frame (with ``discard_on_interrupt``, removed: a file in place, an earlier run's, stays as
    it is); after another error it is removed. ``path`` is written as given (a file there is
    replaced); with ``claim`` (the default) the overlay is then listed in its folder's marker,
    as ``infer.py`` lists its own (not in the working folder, home or a repository).
    """

    def __init__(
        self,
        path: Path,
        fps: float = 30.0,
        time_base: Fraction = Fraction(1, 1000),
        size: tuple[int, int] | None = None,
        audio_from: Path | None = None,
        style: DrawStyle = DrawStyle(),
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        discard_on_interrupt: bool = False,
        claim: bool = True,
    ) -> None:
        self.path = Path(path)
        self.discard_on_interrupt = discard_on_interrupt
        self.claim = claim  # the overlay listed in its folder's marker (the path is the caller's own choice)
        self.fps, self.time_base, self.size = fps, time_base, size
        self.audio_from, self.style, self.crf, self.preset = audio_from, style, crf, preset
        self._sink: VideoSink | None = None
        self._rate = _Rate()
        self.lost: list[Path] = []  # the overlay, when an error removed it

    def _open(self, width: int, height: int) -> None:
        self._sink = VideoSink(
            self.path, width, height, self.fps, self.time_base,
            audio_from=self.audio_from, crf=self.crf, preset=self.preset,
        )
        self._sink.open()

    def write(self, frame: Frame) -> None:
        """Draw the frame and queue it for encoding."""
        fps = self._rate.tick()
        overlay = annotate(frame, self.style, fps)
        if self._sink is None:
            h, w = overlay.shape[:2]
            self._open(*(self.size or (w, h)))
        self._sink.write(overlay, frame.time_s)

    @property
    def frames_written(self) -> int:
        """Frames encoded so far."""
        return self._sink.frames_written if self._sink is not None else 0

    def close(self, error: BaseException | None = None) -> None:
        """Finish the file (renamed into place), or remove it after an error."""
        if self._sink is None:
            return
        if error is not None and not isinstance(error, KeyboardInterrupt):
            self.lost = [self.path]  # removed, as an error leaves it
        try:
            if error is None:
                self._sink.close()
            elif isinstance(error, KeyboardInterrupt) and self.discard_on_interrupt:
                self._sink.close(abort=True)
            else:
                self._sink.close_after(error)
        except OutputError:
            self.lost = [self.path]
            raise
        if self.claim:
            list_written(self.path.parent, [self.path.name])


class ImageFilesSink:
    """For pictures: per frame ``<stem>_overlay.jpg``, ``<stem>.json`` and the one-row logs
    ``logs/<stem>_meta.csv`` ... (``raw``/``landmarks`` on request, ``npy``: the raw parameters
    as ``logs/<stem>_raw.npy``, see ``raw_params``), each written whole through ``out`` (atomic, listed in its
    marker). ``out``: a folder (opened, and locked, at the first picture, until ``close``) or an
    ``OutputDir`` the caller opened. ``meta`` is added to every JSON document (model, detector,
    ...); ``with_face_id``: every face, in the logs (a face_id column) and in the JSON (``faces``).
    """

    def __init__(
        self,
        out: OutputDir | Path | str,
        overlay: bool = True,
        raw: bool = False,
        landmarks: bool = False,
        npy: bool = False,
        style: DrawStyle = DrawStyle(),
        meta: dict | None = None,
        jpeg_quality: int = JPEG_QUALITY,
        points: int = N_LANDMARKS,
        with_face_id: bool = False,
    ) -> None:
        self._own = not isinstance(out, OutputDir)  # a folder given: this sink opens and closes it
        self.out = OutputDir(Path(out)) if self._own else out
        self.points = points
        self.with_face_id = with_face_id
        self.overlay, self.raw, self.landmarks, self.npy = overlay, raw, landmarks, npy
        self.style = style
        self.meta = dict(meta or {})
        self.jpeg_quality = jpeg_quality
        self.written: dict[str, list[Path]] = {}

    def write(self, frame: Frame) -> None:
        """All files of this picture."""
        if self._own and not self.out.locked:
            self.out.open()
        stem = picture_stem(frame)
        r = frame.result
        jpeg = None
        if self.overlay:
            ok, jpeg = cv2.imencode(".jpg", annotate(frame, self.style), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise OutputError(f"{frame.source or stem}: cannot encode the overlay as JPEG")
        measured = any(f.expression_measures for f in (frame.faces if self.with_face_id else frame.faces[:1]))
        params = raw_params(frame, self.with_face_id) if self.npy else None
        npy = f"logs/{stem}_raw.npy"
        rel_logs = log_names(stem, self.raw, self.landmarks, optional=measured)
        names = ([overlay_name(stem, ".jpg")] if jpeg is not None else []) + rel_logs
        names += ([npy] if params is not None else []) + [f"{stem}.json"]
        # every name claimed before any file is written: a name another program's file holds
        # refuses the picture whole
        written = [self.out.file(rel) for rel in names]
        # what an earlier run of facemap wrote for this picture and this one does not: gone, so
        # that no file is left beside logs it does not belong with
        unwritten = set(log_names(stem, self.raw, optional=True)) - set(rel_logs)  # the expression log
        for rel in sorted(unwritten | ({npy} if self.npy and params is None else set())):
            self.out.forget(rel)
        if jpeg is not None:
            atomic_write_bytes(written[0], jpeg.tobytes())
        with FrameLogs(self.out.path, stem, self.raw, self.landmarks, self.points, self.with_face_id) as logs:
            logs.write_frame(frame.faces, r)
        if params is not None:
            buf = io.BytesIO()
            np.save(buf, params)
            atomic_write_bytes(self.out.path / npy, buf.getvalue())
        atomic_write_json(written[-1], image_json(frame, self.meta, self.with_face_id))
        self.written[stem] = written

    def close(self, error: BaseException | None = None) -> None:
        """Every file was finished as it was written; a folder this sink opened is closed."""
        if self._own:
            self.out.close()


def picture_stem(frame: Frame) -> str:
    """The stem a picture's outputs take: its file's, or for an array (no file) one of its own
    by frame number, ``<stem>_000001``."""
    return frame.stem if frame.source is not None else f"{frame.stem or 'frame'}_{frame.index:06d}"


def raw_params(frame: Frame, with_face_id: bool = False) -> np.ndarray | None:
    """A picture's raw parameters for ``<stem>_raw.npy``, float32: the first face's as
    (1, N_PARAMS); ``with_face_id`` (the logs' face_id layout), every face's as
    (faces, N_PARAMS), row i the face ``frame.faces[i]`` (the order of the logs' rows and the
    JSON's ``faces``), NaN for a face without parameters. None when no face has any."""
    if not with_face_id:
        return frame.result.params[None].astype(np.float32) if frame.result.params.size else None
    if not any(f.params.size == N_PARAMS for f in frame.faces):
        return None
    rows = np.full((len(frame.faces), N_PARAMS), np.nan, np.float32)
    for i, face in enumerate(frame.faces):
        if face.params.size == N_PARAMS:
            rows[i] = face.params
    return rows


def _face_json(r: Face) -> dict:
    doc = {
        "status": r.status.value,
        "reason": r.reason,
        "box": list(r.box.as_tuple()) if r.box is not None else None,
        "landmarks": np.round(r.landmarks, 3).tolist() if r.has_face else [],
        "pose_deg": (
            dict(zip(("pitch", "yaw", "roll"), (round(v, 3) for v in r.pose.as_tuple()), strict=True))
            if r.pose is not None
            else None
        ),
        "expression": np.round(r.expression, 6).tolist(),
    }
    if r.expression_measures:  # 3DMM parameters: the named measures (facemap.threedmm.measures)
        doc["expression_measures"] = {k: round(v, 4) for k, v in r.expression_measures.items()}
    if r.labels:  # analysed (--analyze): the analyzer's verdict on the picture
        doc["labels"] = list(r.labels)
        doc["measures"] = {k: round(v, 4) if np.isfinite(v) else None for k, v in r.measures.items()}
    return doc


def image_json(frame: Frame, extra: dict | None = None, with_face_id: bool = False) -> dict:
    """The per-picture JSON document (units in the key names): the first face's fields at the
    top, as ever; ``with_face_id`` (the logs' face_id layout), also a ``faces`` list of every
    face with its ``face_id``."""
    r: Face = frame.result
    h, w = frame.image.shape[:2] if frame.image is not None else (0, 0)
    doc = {
        "image": str(frame.source) if frame.source is not None else frame.stem,
        "width": int(w),
        "height": int(h),
        "face_found": r.has_face,
        "faces_detected": len(frame.detections),
        **_face_json(r),
    }
    if with_face_id:
        doc["faces"] = [{"face_id": f.id, **_face_json(f)} for f in frame.faces]
    doc.update(extra or {})
    return doc


def have_display() -> bool:
    """True when a preview window can be shown (macOS/Windows always; Linux needs X or Wayland)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class PreviewSink:
    """A window showing each frame's overlay; q or Esc in it ends the run (``StopRun``). Without a
    display (Linux with neither X nor Wayland) a UsageError when made: OpenCV would abort the
    whole process at the first frame."""

    def __init__(self, title: str = "facemap (q or Esc quits)", style: DrawStyle = DrawStyle()) -> None:
        if not have_display():
            raise UsageError(
                "PreviewSink: no display for the window (neither DISPLAY nor WAYLAND_DISPLAY is set); leave "
                "it out (VideoOverlaySink writes the same overlay to a file)"
            )
        self.title, self.style = title, style
        self._rate = _Rate()
        self._shown = False

    def write(self, frame: Frame) -> None:
        """Show the overlay and read the keyboard."""
        overlay = annotate(frame, self.style, self._rate.tick())
        try:
            cv2.imshow(self.title, overlay)
            key = cv2.waitKey(1) & 0xFF
        except cv2.error as exc:
            raise UsageError(
                f"cannot open a preview window ({str(exc).strip().splitlines()[-1][:80]}); "
                "run without the preview window ({no_preview})"
            ) from None
        self._shown = True
        if key in QUIT_KEYS:
            raise StopRun

    def close(self, error: BaseException | None = None) -> None:
        """Close the window."""
        if self._shown:
            try:
                cv2.destroyWindow(self.title)
            except cv2.error:
                log.debug("preview window already closed")
