"""The one writer of the CSV logs (layouts in ``schema``): row formatters, ``CsvLog`` (one streamed
file) and ``FrameLogs`` (an input's logs; ``with_face_id``: ``schema.face_id_column(max_faces)``)."""

from __future__ import annotations

import contextlib
import csv
import os
import time
from pathlib import Path

import numpy as np

from ..errors import OutputError
from ..types import N_LANDMARKS, N_PARAMS, Face, Status
from .outputs import atomic_write_json
from .schema import (
    EXPRESSION_COLUMNS,
    OPTIONAL_LOG,
    log_columns,
    log_kinds,
    log_path,
    run_info_name,
)


def _fmt(value: float, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return ""
    return f"{value:.{digits}f}"


def _fmt_g(value: float) -> str:
    return "" if not np.isfinite(value) else f"{value:.7g}"


def meta_row(result: Face) -> list[str]:
    """One meta row for a Face."""
    box = result.box.as_tuple() if result.box is not None else (np.nan,) * 4
    pose = result.pose.as_tuple() if result.pose is not None else (np.nan,) * 3
    return (
        [str(result.frame), result.status.value, result.reason]
        + [_fmt(v, 1) for v in box]
        + [_fmt(result.timestamp_ms, 3)]
        + [_fmt(v, 3) for v in pose]
    )


def summary_row(result: Face) -> list[str]:
    """One summary row: min, max and length of the raw params (empty when none)."""
    p = result.params
    stats = [_fmt_g(float(p.min())), _fmt_g(float(p.max())), str(p.size)] if p.size else ["", "", "0"]
    return [str(result.frame)] + stats + [_fmt(result.timestamp_ms, 3)]


def landmarks_row(result: Face) -> list[str] | None:
    """One landmarks row, or None when the frame has no landmarks."""
    if not result.has_face:
        return None
    return (
        [str(result.frame)]
        + [_fmt(v, 3) for v in result.landmarks.reshape(-1)]
        + [_fmt(result.timestamp_ms, 3)]
    )


def raw_row(result: Face) -> list[str] | None:
    """One raw-params row, or None when the frame has no params."""
    if result.params.size != N_PARAMS:
        return None
    return [str(result.frame)] + [_fmt_g(float(v)) for v in result.params]


def expression_row(result: Face) -> list[str] | None:
    """One row of the named 3DMM measures, or None when the face has none."""
    if not result.expression_measures:
        return None
    named = result.expression_measures
    return (
        [str(result.frame)]
        + [_fmt(named.get(c, float("nan")), 5) for c in EXPRESSION_COLUMNS[1:-1]]
        + [_fmt(result.timestamp_ms, 3)]
    )


_ROWS = {"meta": meta_row, "summary": summary_row, "raw": raw_row, "landmarks": landmarks_row,
         "expression": expression_row}


class CsvLog:
    """A streaming CSV writer: one open handle, header always written, flushed every second.

    Rows go to a hidden temp file beside the target, renamed over it by ``close()`` (also on
    error or interruption), so the target is never half-written.
    """

    def __init__(self, path: Path, columns: list[str], flush_every_s: float = 1.0) -> None:
        self.path = Path(path)
        self.columns = columns
        self.tmp_path = self.path.with_name(f".{self.path.name}.part")
        self._flush_every_s = flush_every_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.tmp_path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(
                f"{self.path}: cannot write log ({exc.strerror or exc}); choose a writable {{output}}"
            ) from exc
        self._writer = csv.writer(self._fh)
        self._writer.writerow(columns)
        self._last_flush = time.monotonic()
        self.rows = 0

    def write(self, row: list[str]) -> None:
        """Append one row (already formatted)."""
        try:
            self._writer.writerow(row)
            self.rows += 1
            now = time.monotonic()
            if now - self._last_flush >= self._flush_every_s:
                self._fh.flush()
                self._last_flush = now
        except OSError as exc:
            self._discard()
            raise OutputError(
                f"{self.path}: cannot write log ({exc.strerror or exc}); free space or choose another {{output}}"
            ) from exc

    def _discard(self) -> None:
        """Close and remove the temp file (the log could not be completed)."""
        with contextlib.suppress(OSError, ValueError):
            self._fh.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp_path)

    def finish(self) -> None:
        """Flush and close the temp file, every row on disk (``commit`` renames it into place); a
        log that cannot be finished (a full disk) is removed, never left half-written."""
        if self._fh.closed:
            return
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        except OSError as exc:
            self._discard()
            raise OutputError(
                f"{self.path}: cannot finish log ({exc.strerror or exc}); free space or choose another {{output}}"
            ) from exc

    def commit(self) -> None:
        """Rename the finished temp file into place."""
        try:
            os.replace(self.tmp_path, self.path)
        except OSError as exc:
            self._discard()
            raise OutputError(
                f"{self.path}: cannot finish log ({exc.strerror or exc}); free space or choose another {{output}}"
            ) from exc

    def discard(self) -> None:
        """Remove the log's temp file, unfinished or finished (the target is never touched)."""
        self._discard()

    def close(self) -> None:
        """``finish`` and ``commit``: the log in place, or removed when it cannot be finished."""
        if not self._fh.closed:
            self.finish()
            self.commit()


class FrameLogs:
    """The set of per-frame logs for one input: meta and summary always, raw and landmarks on
    request; ``with_face_id``: every log has a face_id column, one row per face."""

    def __init__(
        self,
        out_dir: Path,
        stem: str,
        raw: bool = False,
        landmarks: bool = False,
        points: int = N_LANDMARKS,
        with_face_id: bool = False,
    ) -> None:
        self.points = points
        self.with_face_id = with_face_id
        # the expression log goes with the raw log, opened at the first face with named measures
        # (schema.OPTIONAL_LOG: the caller claims its name with the others')
        self._expression = (out_dir, stem) if raw else None
        self.logs: dict[str, CsvLog] = {}
        try:
            for kind in log_kinds(raw, landmarks):
                self.logs[kind] = CsvLog(log_path(out_dir, stem, kind), log_columns(kind, points, with_face_id))
        except BaseException:
            self.close()
            raise

    def write(self, result: Face) -> None:
        """Write one face of a frame, or its no-face record, to every open log; with a face_id
        column the rows carry the face's id (empty for the no-face record)."""
        face_id = ["" if result.status is Status.NO_FACE else str(result.id)] if self.with_face_id else []
        if self._expression is not None and result.expression_measures:
            out_dir, stem = self._expression
            self._expression = None
            path = log_path(out_dir, stem, OPTIONAL_LOG)
            self.logs[OPTIONAL_LOG] = CsvLog(path, log_columns(OPTIONAL_LOG, with_face_id=self.with_face_id))
        for kind in self.logs:
            if (row := _ROWS[kind](result)) is None:
                continue
            if kind == "landmarks" and len(result.landmarks) != self.points:
                raise ValueError(f"frame {result.frame}: {len(result.landmarks)} landmarks, the log holds {self.points}")
            self.logs[kind].write(row[:1] + face_id + row[1:])

    def write_frame(self, faces: tuple[Face, ...], empty: Face) -> None:
        """A frame's faces (logs without a face_id column: the first), or its no-face record ``empty``."""
        for face in (faces if self.with_face_id else faces[:1]) or (empty,):
            self.write(face)

    @property
    def paths(self) -> list[Path]:
        """The logs' paths."""
        return [lg.path for lg in self.logs.values()]

    def close(self) -> None:
        """Finish every log, then rename each into place: all of them, or, when one cannot be
        finished (a full disk), none (every temp file removed; the OutputError names them all)."""
        try:
            for lg in self.logs.values():
                lg.finish()
        except OutputError as exc:
            self.discard()
            exc.not_kept(self.paths)
            raise
        done: list[CsvLog] = []
        try:
            for lg in self.logs.values():
                lg.commit()
                done.append(lg)
        except OutputError as exc:
            self.discard()
            for lg in done:  # this run's logs, just put in place: all of them or none
                with contextlib.suppress(OSError):
                    os.unlink(lg.path)
            exc.not_kept(self.paths)
            raise

    def discard(self) -> None:
        """Remove every log's temp file: a run whose outputs could not be written keeps none of
        its logs (the files in place, from an earlier run, are left as they are)."""
        for lg in self.logs.values():
            lg.discard()

    def __enter__(self) -> FrameLogs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_run_info(out_dir: Path, stem: str, info: dict) -> Path:
    """``<out>/logs/<stem>_run.json``: what made the logs of ``stem`` (``provenance.run_info``),
    written whole or not at all."""
    path = Path(out_dir) / run_info_name(stem)
    atomic_write_json(path, info)
    return path
