"""The CSV log layouts and output file names in one place (``logwriter`` writes, ``records`` reads).

Files under ``<out>/logs/`` (names and leading columns from the original tool; new columns last):

- ``<stem>_meta.csv``:      frame,status,reason,x0,y0,x1,y1,timestamp_ms,pitch_deg,yaw_deg,roll_deg
- ``<stem>_summary.csv``:   frame,min,max,shape0,timestamp_ms
- ``<stem>_raw.csv``:       frame,p0,...,p264
- ``<stem>_landmarks.csv``: frame,x0,y0,...,x67,y67,timestamp_ms
- ``<stem>_expression.csv``: frame,smile,jaw_open,eye_closure_left,eye_closure_right,timestamp_ms
  (with ``--dump-csv``, when the faces have 3DMM parameters: FaceMap's, or fitted to 68 points;
  the named measures of ``facemap.threedmm.measures``)
- ``<stem>_run.json``:      what made them (``RUN_INFO_SUFFIX``; videos and webcams)

``frame`` is the 1-based index of the decoded frame (1 for an image). Coordinates are image
pixels, x0,y0,x1,y1 in the meta file are the inclusive face box, angles are degrees.

A run that may find several faces a frame (``face_id_column``) logs ``face_id`` after ``frame``,
one row per face; a frame without a face keeps one ``no_face`` row with an empty ``face_id``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..threedmm.measures import MEASURES
from ..types import N_LANDMARKS, N_PARAMS

LANDMARK_XY_COLUMNS = [c for i in range(N_LANDMARKS) for c in (f"x{i}", f"y{i}")]
META_COLUMNS = ["frame", "status", "reason", "x0", "y0", "x1", "y1",
                "timestamp_ms", "pitch_deg", "yaw_deg", "roll_deg"]
SUMMARY_COLUMNS = ["frame", "min", "max", "shape0", "timestamp_ms"]
RAW_COLUMNS = ["frame"] + [f"p{i}" for i in range(N_PARAMS)]
LANDMARK_COLUMNS = ["frame"] + LANDMARK_XY_COLUMNS + ["timestamp_ms"]
EXPRESSION_COLUMNS = ["frame", *MEASURES, "timestamp_ms"]

FACE_ID = "face_id"
NO_FACE_ID = -1  # the face_id of a frame's no-face row (an empty cell)
# The reason of a frame, in one face's view of a several-faces meta log, where that face has no
# row but other faces have.
FACE_ABSENT = "face_absent"

LOG_SUFFIXES = {kind: f"_{kind}.csv" for kind in ("meta", "summary", "raw", "landmarks", "expression")}


def face_id_column(max_faces: int) -> bool:
    """True when the logs of a run with ``max_faces`` (1, N, or 0 for every face) have a
    ``face_id`` column: every run that may find more than one face a frame."""
    return max_faces != 1


def log_columns(kind: str, points: int = N_LANDMARKS, with_face_id: bool = False) -> list[str]:
    """The header of a log (kind meta, summary, raw or landmarks, the latter for ``points``
    points); ``with_face_id``: ``face_id`` right after ``frame``."""
    if kind == "landmarks":
        columns = ["frame"] + [c for i in range(points) for c in (f"x{i}", f"y{i}")] + ["timestamp_ms"]
    else:
        columns = {"meta": META_COLUMNS, "summary": SUMMARY_COLUMNS, "raw": RAW_COLUMNS,
                   "expression": EXPRESSION_COLUMNS}[kind]
    return [columns[0], FACE_ID, *columns[1:]] if with_face_id else list(columns)


def log_kinds(raw: bool = False, landmarks: bool = False) -> list[str]:
    """The logs of one input always written: meta and summary always, raw and landmarks on
    request (the expression log, which goes with the raw log, is ``OPTIONAL_LOG``)."""
    return ["meta", "summary"] + (["raw"] if raw else []) + (["landmarks"] if landmarks else [])


# The expression log goes with the raw log but is written only when a face has the named
# measures (3DMM parameters and a FaceMap basis): a run claims its name (never overwriting
# another program's file) without promising it.
OPTIONAL_LOG = "expression"


def log_path(out_dir: Path, stem: str, kind: str) -> Path:
    """``<out>/logs/<stem><suffix>`` for kind in meta, summary, raw, landmarks."""
    return Path(out_dir) / "logs" / f"{stem}{LOG_SUFFIXES[kind]}"


def log_names(stem: str, raw: bool = False, landmarks: bool = False, optional: bool = False) -> list[str]:
    """Paths relative to the output folder of the logs written for ``stem``; ``optional``: with
    the expression log's when the raw log is written (``OPTIONAL_LOG``)."""
    kinds = log_kinds(raw, landmarks) + ([OPTIONAL_LOG] if optional and raw else [])
    return [log_path(Path(""), stem, k).as_posix() for k in kinds]


def picture_json_path(logs_dir: Path, stem: str) -> Path:
    """Where infer.py wrote the picture JSON (``<stem>.json``, with the landmarks) of a picture
    whose logs are in ``logs_dir``: the output folder that holds ``logs/``."""
    return Path(logs_dir).parent / f"{stem}.json"


# What made an input's logs (``provenance.run_info``: landmarker, detector, model and its SHA-256,
# basis SHA-256, settings), beside them as JSON; not a log (no ``log_kind``), so readers of the
# CSV logs never meet it.
RUN_INFO_SUFFIX = "_run.json"


def run_info_name(stem: str) -> str:
    """``logs/<stem>_run.json``, relative to the output folder."""
    return f"logs/{stem}{RUN_INFO_SUFFIX}"


def log_kind(name: str) -> str | None:
    """The kind of log a file name is (``meta`` for ``clip_meta.csv``), or None."""
    for kind, suffix in LOG_SUFFIXES.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return kind
    return None


def log_stem(path: Path) -> str:
    """The clip's stem in a log's name: ``clip`` for ``clip_meta.csv`` (any kind), else the name
    without its extension."""
    name = Path(path).name
    kind = log_kind(name)
    return name[: -len(LOG_SUFFIXES[kind])] if kind else Path(path).stem


# The longest output name is 27 bytes more than its stem (``.<stem>_overlay.jpg.<8 random>.part``,
# an atomic write's temp file); file systems allow 255 bytes a name. A longer stem is shortened.
STEM_MAX_BYTES = 200
_STEM_KEEP_BYTES = STEM_MAX_BYTES - 9  # then "~" and 8 hex digits of the full stem's hash


def short_stem(stem: str) -> str:
    """``stem``, or when it is longer than STEM_MAX_BYTES (UTF-8; a name that is not UTF-8 by
    its bytes on disk) its first 191 bytes, ``~`` and 8 hex digits of a hash of the whole stem,
    so that every output name fits the file system and two long names stay apart."""
    import hashlib

    raw = stem.encode("utf-8", "surrogateescape")
    if len(raw) <= STEM_MAX_BYTES:
        return stem
    kept, size = [], 0
    for ch in stem:
        size += len(ch.encode("utf-8", "surrogateescape"))
        if size > _STEM_KEEP_BYTES:
            break
        kept.append(ch)
    return "".join(kept) + "~" + hashlib.sha1(raw).hexdigest()[:8]


def overlay_name(stem: str, suffix: str = ".mp4") -> str:
    """``<stem>_overlay.mp4`` (a video's), or with another ``suffix`` (``.jpg``: a picture's)."""
    return f"{stem}_overlay{suffix}"


# corpus.csv (infer.py --video CORPUS --ray): one row per video of the corpus.
# The video's size and modification time (ns) as it was when its outputs were made: a rerun skips it
# only when its path, size and mtime are those of its row.
CORPUS_COLUMNS = ["video", "stem", "status", "frames", "face_pct", "fps", "node", "seconds", "error",
                  "video_bytes", "video_mtime_ns"]
CORPUS_STATUSES = ("ok", "failed", "skipped")


def corpus_text(rows: list[dict[str, object]]) -> str:
    """corpus.csv as text: the header, then one row per video (``rows``: dicts keyed by
    CORPUS_COLUMNS; a missing or None value is an empty cell, floats to 0.1 or 0.01)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CORPUS_COLUMNS)
    for row in rows:
        if row.get("status") not in CORPUS_STATUSES:
            raise ValueError(f"corpus row status {row.get('status')!r}, expected one of {CORPUS_STATUSES}")
        cells = []
        for c in CORPUS_COLUMNS:
            v = row.get(c)
            if v is None:
                cells.append("")
            elif isinstance(v, float):
                cells.append(f"{v:.2f}" if c == "seconds" else f"{v:.1f}")
            else:
                cells.append(" ".join(str(v).split()))  # one line per row, whatever the error said
        writer.writerow(cells)
    return buf.getvalue()


def read_corpus(path: Path) -> dict[str, dict[str, str]]:
    """A corpus.csv facemap wrote, by stem (text cells); {} when the file cannot be read or
    lacks the columns (the table is rebuilt, so an unreadable one is not an error)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not set(CORPUS_COLUMNS) <= set(reader.fieldnames):
                return {}
            return {r["stem"]: r for r in reader if r.get("stem")}
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
