"""The validating readers of the CSV logs (layouts in ``schema``). Every log gives its
``face_ids``: -1 where a ``face_id`` cell is empty (a frame's no-face row), 0 on every row of a log
without the column (``has_face_id`` False); ``of_face`` gives one face's view of either."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputFileError
from ..provenance import RUN_INFO_LABELS
from ..types import N_LANDMARKS
from .schema import (
    FACE_ABSENT,
    FACE_ID,
    LANDMARK_XY_COLUMNS,
    NO_FACE_ID,
    RAW_COLUMNS,
    RUN_INFO_SUFFIX,
    log_stem,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LandmarkLog:
    """A landmarks log: frames (N,) int, landmarks (N, 68, 2) pixels, timestamps_ms (N,) or None;
    face_ids (N,) int (0 on every row when the file has no face_id column: ``has_face_id``)."""

    path: Path
    frames: np.ndarray
    landmarks: np.ndarray
    timestamps_ms: np.ndarray | None
    face_ids: np.ndarray
    has_face_id: bool

    def of_face(self, face_id: int) -> LandmarkLog:
        """The rows of one face (of a log without face_id column: every row for face 0)."""
        keep = self.face_ids == face_id
        ts = None if self.timestamps_ms is None else self.timestamps_ms[keep]
        return replace(self, frames=self.frames[keep], landmarks=self.landmarks[keep], timestamps_ms=ts,
                       face_ids=self.face_ids[keep])


@dataclass(frozen=True)
class MetaLog:
    """A meta log: frames (N,), status (N,) str, reason (N,) str, boxes (N, 4) pixels (NaN when
    absent), timestamps_ms (N,) or None, pose_deg (N, 3) or None; face_ids (N,) int (NO_FACE_ID
    on a frame's no-face row; 0 on every row when the file has no face_id column: ``has_face_id``)."""

    path: Path
    frames: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    boxes: np.ndarray
    timestamps_ms: np.ndarray | None
    pose_deg: np.ndarray | None
    face_ids: np.ndarray
    has_face_id: bool

    def of_face(self, face_id: int) -> MetaLog:
        """One face's view: one row per frame of the log, the face's own row where it has one,
        else ``no_face`` (reason ``FACE_ABSENT`` when other faces are there, the frame's own
        reason on a frame without a face) with no box; timestamps are the frame's. A log without
        a face_id column is face 0's view as it is."""
        if not self.has_face_id and face_id == 0:
            return self
        ids = self.face_ids == face_id
        frames, first = np.unique(self.frames, return_index=True)
        mine = np.flatnonzero(ids)
        at = np.searchsorted(frames, self.frames[mine])
        status = np.full(frames.size, "no_face", dtype=object)
        reason = np.where(self.face_ids[first] == NO_FACE_ID, self.reason[first], FACE_ABSENT).astype(object)
        boxes = np.full((frames.size, 4), np.nan)
        status[at], reason[at], boxes[at] = self.status[mine], self.reason[mine], self.boxes[mine]
        pose = None
        if self.pose_deg is not None:
            pose = np.full((frames.size, 3), np.nan)
            pose[at] = self.pose_deg[mine]
        ts = None if self.timestamps_ms is None else self.timestamps_ms[first]
        return MetaLog(self.path, frames, status, reason, boxes, ts, pose, np.full(frames.size, face_id),
                       self.has_face_id)


@dataclass(frozen=True)
class RawLog:
    """A raw-params log: frames (N,), params (N, 265); face_ids (N,) int (0 on every row when the
    file has no face_id column: ``has_face_id``)."""

    path: Path
    frames: np.ndarray
    params: np.ndarray
    face_ids: np.ndarray
    has_face_id: bool

    def of_face(self, face_id: int) -> RawLog:
        """The rows of one face (of a log without face_id column: every row for face 0)."""
        keep = self.face_ids == face_id
        return replace(self, frames=self.frames[keep], params=self.params[keep], face_ids=self.face_ids[keep])




def has_face_id(path: Path) -> bool:
    """True when the log's header has a ``face_id`` column (several faces a frame; a picture
    JSON: a ``faces`` list); False for a file that cannot be read (the reader then says why)."""
    if is_picture_json(path):
        doc = read_json_object(Path(path))
        return isinstance(doc, dict) and isinstance(doc.get("faces"), list)
    try:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return FACE_ID in (c.strip() for c in header.split(","))


# Largest frame number accepted (a week of video at 1000 fps); beyond it a value is not a frame.
MAX_FRAME = 1e9
# Columns that hold text; every other column of a log is numeric.
_TEXT_COLUMNS = ("status", "reason", FACE_ID)


def _read_clean(path: Path, required: list[str]) -> pd.DataFrame | None:
    """Fast path: parse numbers directly; None unless the file is clean (every required column
    present, at least one row, every non-text column numeric), so the checked string path
    below still produces every error message."""
    import pandas as pd

    try:
        with open(path, encoding="utf-8") as fh:
            header = {c.strip() for c in fh.readline().split(",")}
        # Text dtypes only for text columns that exist (any dtype argument slows the parser),
        # and pandas' default NA spellings ("", "nan", "NaN", "NA", ...), which parse fastest.
        text = {c: str for c in _TEXT_COLUMNS if c in header}
        df = pd.read_csv(path, skip_blank_lines=True, dtype=text or None)
    except Exception:  # noqa: BLE001 - any trouble: let the checked path report it
        return None
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0 or any(c not in df.columns for c in required) or df.columns.duplicated().any():
        return None
    numeric = [c for c in df.columns if c not in _TEXT_COLUMNS]
    if not all(pd.api.types.is_numeric_dtype(df[c]) for c in numeric):
        return None
    for c in _TEXT_COLUMNS:
        if c in df.columns:
            df[c] = df[c].fillna("").astype(str)
    return df


def _read_frame(path: Path, required: list[str], what: str, allow_empty: bool = False) -> pd.DataFrame:
    """The log as text columns (or numbers, from the fast path); ``allow_empty`` accepts a header
    with no rows."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: {what} not found; check the path")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, expected a {what} CSV file")
    if (clean := _read_clean(path, required)) is not None:
        return clean
    try:
        df = pd.read_csv(path, skip_blank_lines=True, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputFileError(f"{path}: {what} is empty; expected a header and rows") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        msg = str(exc).splitlines()[0]
        raise InputFileError(f"{path}: {what} is not valid CSV ({msg})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        shown = ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else "")
        raise InputFileError(
            f"{path}: {what} lacks column(s) {shown}; expected a header like "
            f"{','.join(required[:4])},..."
        )
    if len(df) == 0 and not allow_empty:
        raise InputFileError(f"{path}: {what} has a header but no rows")
    return df


def _numeric(df: pd.DataFrame, columns: list[str], path: Path, what: str) -> np.ndarray:
    import pandas as pd

    if all(pd.api.types.is_numeric_dtype(df[c]) for c in columns):  # from the fast path
        return df[columns].to_numpy(dtype=np.float64)
    block = df[columns].apply(lambda s: s.str.strip())
    num = block.apply(pd.to_numeric, errors="coerce")
    bad = num.isna() & (block != "") & ~block.isin(["nan", "NaN", "NA"])
    if bad.to_numpy().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise InputFileError(
            f"{path}: {what} row {r + 2} column {columns[c]} is not a number "
            f"({block.iat[r, c]!r}); fix or remove that row"
        )
    return num.to_numpy(dtype=np.float64)


def _frames(df: pd.DataFrame, path: Path, what: str) -> np.ndarray:
    f = _numeric(df, ["frame"], path, what)[:, 0]
    if not np.isfinite(f).all():
        r = int(np.argwhere(~np.isfinite(f))[0][0])
        raise InputFileError(f"{path}: {what} row {r + 2} has no valid frame number")
    if (f != np.round(f)).any():
        raise InputFileError(f"{path}: {what} frame numbers must be whole numbers")
    if (f < 0).any() or (f > MAX_FRAME).any():
        r = int(np.argmax((f < 0) | (f > MAX_FRAME)))
        raise InputFileError(
            f"{path}: {what} row {r + 2} has frame {f[r]:g}; frame numbers count from 1"
        )
    return f.astype(np.int64)


def _face_ids(df: pd.DataFrame, path: Path, what: str) -> np.ndarray | None:
    """(N,) int face ids (NO_FACE_ID where empty), or None when the log has no face_id column."""
    if FACE_ID not in df.columns:
        return None
    text = _stripped_text(df[FACE_ID])
    out = np.full(text.size, NO_FACE_ID, dtype=np.int64)
    given = text != ""
    for value in np.unique(text[given]):
        try:
            number = float(value)
        except ValueError:
            number = -1.5
        if not (number >= 0 and number == int(number)):
            r = int(np.argmax(text == value))
            raise InputFileError(
                f"{path}: {what} row {r + 2} has face_id {value!r}; a face_id is a whole number "
                "from 0 (empty on a frame without a face)"
            )
        out[given & (text == value)] = int(number)
    return out


def _check_faces(frames: np.ndarray, ids: np.ndarray, path: Path, what: str) -> None:
    """A several-faces log: frames in increasing order, each (frame, face_id) once."""
    if frames.size > 1 and (step := np.diff(frames)).min() < 0:
        r = int(np.argmax(step < 0)) + 1
        raise InputFileError(
            f"{path}: {what} row {r + 2} goes back to frame {frames[r]} after frame {frames[r - 1]}; "
            "frames must be in increasing order"
        )
    pairs = np.stack([frames, ids], axis=1)
    _, first, counts = np.unique(pairs, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = np.sort(first[counts > 1])[0]
        r = int(np.flatnonzero((pairs == pairs[dup]).all(axis=1))[1])
        who = f"face_id {ids[r]}" if ids[r] != NO_FACE_ID else "an empty face_id"
        raise InputFileError(
            f"{path}: {what} row {r + 2} repeats frame {frames[r]} with {who}; each face has one "
            "row per frame (one row per frame and face_id)"
        )


def _sorted_unique(
    frames: np.ndarray, path: Path, what: str, strict: bool = False, ids: np.ndarray | None = None
) -> np.ndarray | slice:
    """Indices that sort by frame and keep the first row of a duplicated frame (logged).

    With ``strict``, a duplicated or out-of-order frame is an InputFileError instead; with
    ``strict`` and ``ids`` (a several-faces log), every row is kept and a repeated
    (frame, face_id) is the error.
    """
    if ids is not None:  # several faces a frame: a row per (frame, face_id)
        if strict:
            _check_faces(frames, ids, path, what)
            return slice(None)
        order = np.lexsort((ids, frames))
        pairs = np.stack([frames[order], ids[order]], axis=1)
        first = np.r_[True, (np.diff(pairs, axis=0) != 0).any(axis=1)] if len(order) else order.astype(bool)
        if not first.all():
            log.warning("%s: %s has %d duplicated (frame, face_id) rows; kept the first of each",
                        path, what, int((~first).sum()))
        return order[first]
    if strict and frames.size > 1 and (step := np.diff(frames)).min() <= 0:
        r = int(np.argmax(step <= 0)) + 1
        kind = "repeats" if step[r - 1] == 0 else "goes back to"
        raise InputFileError(
            f"{path}: {what} row {r + 2} {kind} frame {frames[r]} after frame {frames[r - 1]}; "
            "frames must be unique and in increasing order (one row per frame)"
        )
    if frames.size < 2 or (np.diff(frames) > 0).all():
        return slice(None)  # already in order: no copy
    _, first = np.unique(frames, return_index=True)
    if first.size != frames.size:
        log.warning("%s: %s has %d duplicated frame rows; kept the first of each",
                    path, what, frames.size - first.size)
    return first  # np.unique returns the indices in sorted-frame order


def _header_points(path: Path) -> int | None:
    """How many points (x0, x1, ... columns) a landmarks log's header names; None if unreadable."""
    import re

    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            names = [n.strip() for n in fh.readline().split(",")]
    except OSError:
        return None  # the reader below says what is wrong
    xs = [int(n[1:]) for n in names if re.fullmatch(r"x\d+", n)]
    if not xs or max(xs) != len(xs) - 1 or "y0" not in names:
        return None
    # a log facemap wrote for N points ends with timestamp_ms; any log with more than 68 has others
    return len(xs) if names[-1] == "timestamp_ms" or len(xs) > N_LANDMARKS else None


def is_picture_json(path: Path) -> bool:
    """True when ``path`` names a JSON file (infer.py's per-picture ``<stem>.json``), which
    ``read_landmarks`` reads as a one-frame landmarks log."""
    return Path(path).suffix.lower() == ".json"


def read_json_object(path: Path) -> dict[str, object] | None:
    """A JSON file's object (a picture's JSON, a run.json, a report.json), or None when it
    cannot be read as one."""
    import json

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def read_picture_landmarks(path: Path) -> LandmarkLog:
    """A picture's landmarks from infer.py's ``<stem>.json``, as a one-frame landmarks log (frame
    1, no timestamp): the face's 68 points, or with a ``faces`` list (``--max-faces`` other than
    1) one row per face with its ``face_id``. InputFileError when the file is not such a
    document or holds no face."""
    path = Path(path)
    what = "picture JSON"
    if not path.is_file():
        raise InputFileError(f"{path}: {what} not found; check the path")
    doc = read_json_object(path)
    if not isinstance(doc, dict) or "landmarks" not in doc:
        raise InputFileError(
            f"{path}: is not a picture JSON infer.py wrote (expected an object with \"landmarks\"); "
            "give a landmarks log (<stem>_landmarks.csv) or infer.py's <stem>.json"
        )
    faces = doc.get("faces")
    by_face = isinstance(faces, list)
    entries = faces if by_face else [doc]
    ids, points = [], []
    for face in entries:
        given = face.get("landmarks") if isinstance(face, dict) else None
        if not given:  # a picture without a face has no points
            continue
        try:
            xy = np.asarray(given, dtype=np.float64)
        except (TypeError, ValueError):
            xy = np.zeros(0)
        if xy.shape != (N_LANDMARKS, 2) or not np.isfinite(xy).all():
            raise InputFileError(
                f"{path}: {what} landmarks are not {N_LANDMARKS} (x, y) points; this reads the 68 iBUG points"
            )
        fid = face.get("face_id", 0) if by_face else 0
        if not isinstance(fid, int) or isinstance(fid, bool) or fid < 0:
            raise InputFileError(f"{path}: {what} has a face whose face_id is {fid!r}; expected a number 0 or more")
        ids.append(fid)
        points.append(xy)
    if not points:
        raise InputFileError(f"{path}: {what} holds no face (no landmarks)")
    n = len(points)
    return LandmarkLog(path, np.ones(n, np.int64), np.stack(points), None, np.asarray(ids, np.int64), by_face)


# The keys of a picture's JSON that say what made it (the rest describe the picture).
_PICTURE_MADE_BY = (*RUN_INFO_LABELS, "predictor", "settings")


def read_run_info(log: Path) -> dict:
    """What made a clip's logs, from the ``<stem>_run.json`` beside ``log`` (any of its logs), or
    for a picture's JSON from the JSON itself: landmarker, detector, model, SHA-256s, settings
    (``provenance.run_info``). {} when there is none or it cannot be read (logs written before
    facemap wrote it, or by another tool): a report then says it is not known."""
    path = Path(log)
    if is_picture_json(path):
        doc = read_json_object(path)
        info = {k: doc[k] for k in _PICTURE_MADE_BY if isinstance(doc, dict) and k in doc}
        if "predictor" in info:  # dlib's predictor file is its model
            info.setdefault("model", info["predictor"])
            del info["predictor"]
        return info
    doc = read_json_object(path.parent / f"{log_stem(path)}{RUN_INFO_SUFFIX}")
    if not isinstance(doc, dict):
        return {}
    return doc


def check_landmark_rows(path: Path, frames: np.ndarray, points: np.ndarray) -> None:
    """Refuse (InputFileError) a landmarks log with a row whose coordinates are not all numbers
    (a truncated or hand-edited row): ``points`` (N, ...) its coordinates by row."""
    if not points.size:  # a face with no rows in this log
        return
    bad = ~np.isfinite(points.reshape(points.shape[0], -1)).all(axis=1)
    if bad.any():
        raise InputFileError(
            f"{path}: frame {int(frames[np.argmax(bad)])} has empty or NaN coordinates; a landmarks row must "
            "hold all 136 numbers (leave frames without a face out)"
        )


def read_landmarks(path: Path, *, strict: bool = False) -> LandmarkLog:
    """Read a landmarks log (infer.py's, or the original tool's without timestamp_ms), or a
    picture's landmarks from infer.py's ``<stem>.json`` (``read_picture_landmarks``).

    ``strict``: refuse duplicated or out-of-order frames instead of sorting them.
    """
    if is_picture_json(path):
        return read_picture_landmarks(path)
    what = "landmarks log"
    points = _header_points(Path(path))
    if points is not None and points != N_LANDMARKS:
        raise InputFileError(
            f"{path}: {what} holds {points} points per face (another landmark model, {{assume_points}} "
            f"{points}); this reads the 68 iBUG points (FaceMap, dlib, or a model run with {{assume_points}} 68)"
        )
    df = _read_frame(path, ["frame"] + LANDMARK_XY_COLUMNS, what)
    frames = _frames(df, Path(path), what)
    xy = _numeric(df, LANDMARK_XY_COLUMNS, Path(path), what).reshape(-1, N_LANDMARKS, 2)
    ts = None
    if "timestamp_ms" in df.columns:
        ts = _numeric(df, ["timestamp_ms"], Path(path), what)[:, 0]
        if np.isnan(ts).all():
            ts = None
    ids = _face_ids(df, Path(path), what)
    keep = _sorted_unique(frames, Path(path), what, strict, ids)
    return LandmarkLog(
        Path(path), frames[keep], xy[keep], None if ts is None else ts[keep], *_ids_of(ids, frames, keep)
    )


def _stripped_text(column: pd.Series) -> np.ndarray:
    """(N,) object array of the column's text, stripped; the few distinct values are stripped
    once each, not per row."""
    import pandas as pd

    codes, uniques = pd.factorize(column.fillna(""), use_na_sentinel=False)
    cleaned = np.array([str(u).strip() for u in uniques] or [""], dtype=object)
    return cleaned[codes]


def read_meta(path: Path, *, strict: bool = False) -> MetaLog:
    """Read a meta log (infer.py's, or the original tool's first seven columns).

    ``strict``: refuse duplicated or out-of-order frames instead of sorting them.
    """
    what = "meta log"
    df = _read_frame(path, ["frame", "status"], what)
    frames = _frames(df, Path(path), what)
    status = _stripped_text(df["status"])
    reason = _stripped_text(df["reason"]) if "reason" in df.columns else np.full(len(df), "", object)
    box_cols = ["x0", "y0", "x1", "y1"]
    boxes = (
        _numeric(df, box_cols, Path(path), what)
        if all(c in df.columns for c in box_cols)
        else np.full((len(df), 4), np.nan)
    )
    ts = _numeric(df, ["timestamp_ms"], Path(path), what)[:, 0] if "timestamp_ms" in df else None
    if ts is not None and np.isnan(ts).all():
        ts = None
    pose_cols = ["pitch_deg", "yaw_deg", "roll_deg"]
    pose = _numeric(df, pose_cols, Path(path), what) if all(c in df for c in pose_cols) else None
    ids = _face_ids(df, Path(path), what)
    keep = _sorted_unique(frames, Path(path), what, strict, ids)
    if strict and ids is not None:
        _check_no_face_rows(frames, ids, status, Path(path))
    return MetaLog(
        Path(path),
        frames[keep],
        status[keep],
        reason[keep],
        boxes[keep],
        None if ts is None else ts[keep],
        None if pose is None else pose[keep],
        *_ids_of(ids, frames, keep),
    )


def _check_no_face_rows(frames: np.ndarray, ids: np.ndarray, status: np.ndarray, path: Path) -> None:
    """A several-faces meta log: an empty face_id only on a frame's one no_face row."""
    empty = ids == NO_FACE_ID
    bad = empty & (status != "no_face")
    if bad.any():
        r = int(np.argmax(bad))
        raise InputFileError(
            f"{path}: meta log row {r + 2} (frame {frames[r]}) is {status[r]} with an empty "
            "face_id; only a frame without a face has an empty face_id"
        )
    both = empty & np.isin(frames, frames[~empty])
    if both.any():
        r = int(np.argmax(both))
        raise InputFileError(
            f"{path}: meta log row {r + 2}: frame {frames[r]} has a no_face row with an empty "
            "face_id and rows of faces; a frame has either"
        )


def read_raw(path: Path, *, strict: bool = False, allow_empty: bool = False) -> RawLog:
    """Read a raw-params log: frame,p0..p264.

    ``strict``: refuse duplicated or out-of-order frames instead of sorting them.
    ``allow_empty``: a header with no rows (a dlib run logs no params) gives a RawLog of 0 frames.
    """
    what = "raw params log"
    df = _read_frame(path, RAW_COLUMNS, what, allow_empty)
    frames = _frames(df, Path(path), what)
    params = _numeric(df, RAW_COLUMNS[1:], Path(path), what)
    ids = _face_ids(df, Path(path), what)
    keep = _sorted_unique(frames, Path(path), what, strict, ids)
    return RawLog(Path(path), frames[keep], params[keep], *_ids_of(ids, frames, keep))


def _ids_of(ids: np.ndarray | None, frames: np.ndarray, keep: np.ndarray | slice) -> tuple[np.ndarray, bool]:
    """The kept rows' face ids (0 on every row of a log without the column) and whether the log
    has the column."""
    return (np.zeros(frames.size, np.int64)[keep], False) if ids is None else (ids[keep], True)


# The whole-table reader (facemap.load_logs): every column of a log, or of the analyzer's
# expressions.csv, as a DataFrame.
_TABLE_REQUIRED = {
    "meta": ["frame", "status"],
    "landmarks": ["frame"],
    "raw": RAW_COLUMNS,
    "expressions": ["frame", "label"],
}
_TABLE_WHAT = {
    "meta": "meta log",
    "landmarks": "landmarks log",
    "raw": "raw params log",
    "expressions": "expressions table",
}
_TABLE_TEXT = ("status", "reason", "label")


def read_table(path: Path, kind: str) -> pd.DataFrame:
    """A whole log (kind meta, landmarks or raw) or the analyzer's expressions.csv (kind
    expressions) with every column: ``frame`` int, ``status``/``reason``/``label`` text, every
    other column float (NaN where empty). One row per frame, in increasing order: a duplicated or
    out-of-order frame is an InputFileError. A log with a ``face_id`` column (several faces a
    frame): one row per frame and face_id, ``face_id`` a nullable integer (``<NA>`` on a frame's
    no-face row). A landmarks or raw log may hold a header and no rows."""
    import pandas as pd

    what = _TABLE_WHAT[kind]
    path = Path(path)
    df = _read_frame(path, _TABLE_REQUIRED[kind], what, allow_empty=kind in ("landmarks", "raw"))
    frames = _frames(df, path, what) if len(df) else np.zeros(0, np.int64)
    ids = _face_ids(df, path, what) if kind != "expressions" else None
    _sorted_unique(frames, path, what, strict=True, ids=ids)
    if kind == "meta" and ids is not None:
        _check_no_face_rows(frames, ids, _stripped_text(df["status"]), path)
    numeric = [c for c in df.columns if c not in ("frame", FACE_ID) and c not in _TABLE_TEXT]
    values = _numeric(df, numeric, path, what) if len(df) and numeric else np.zeros((len(df), len(numeric)))
    out = pd.DataFrame(values, columns=numeric)
    for c in df.columns:
        if c in _TABLE_TEXT:
            out[c] = _stripped_text(df[c]) if len(df) else np.zeros(0, object)
    out.insert(0, "frame", frames)
    if ids is not None:
        out[FACE_ID] = pd.array(np.where(ids == NO_FACE_ID, None, ids).tolist() or [], dtype="Int64")
    return out[["frame", *(c for c in df.columns if c != "frame")]]
