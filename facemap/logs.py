"""One tidy table per clip: the meta, landmarks and raw logs and the analyzer's expressions.csv
joined on ``frame``, with names that do not collide.

The CSV files keep their layouts (users' scripts read them); only the table renames:

- meta: ``frame, status, reason, box_x0, box_y0, box_x1, box_y1, timestamp_ms, pitch_deg, ...``
  (the face box ``x0,y0,x1,y1`` becomes ``box_*``);
- landmarks: ``lm_x0, lm_y0, ..., lm_x67, lm_y67`` (and ``lm_z*`` when the log has them), NaN in
  frames without a face;
- raw: ``p0 ... p264`` as in the log, when the raw log holds params (a dlib run logs none);
- expressions.csv: its columns as they are, the labels (``smile``, ``blink``, ...) as bool, except
  those another log already has, which get the prefix ``expr_`` (``expr_pitch_deg``: the
  analyzer's pose estimate beside the meta log's).

``frame`` and ``timestamp_ms`` appear once (the meta log's timestamps, else the landmarks log's,
else the analyzer's). One row per frame of the meta log; with several faces a frame (logs with a
``face_id`` column, infer.py ``--max-faces``), one row per meta row: per frame and face, the
logs joined on ``frame`` and ``face_id`` (``<NA>`` on a frame's no-face row), each face's
expressions.csv from the analyzer's ``face_<id>/`` folders.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputFileError
from .io.records import check_landmark_rows, read_table
from .io.schema import FACE_ID, LOG_SUFFIXES, log_stem

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_POINT = re.compile(r"[xyz]\d+")
EXPRESSIONS = "expressions.csv"
EXPR_PREFIX = "expr_"


def _logs_folder(folder: Path, stem: str) -> Path:
    """``folder``, or its ``logs/`` subfolder when the logs are there (infer.py's --output)."""
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "no such folder"
        raise InputFileError(f"{folder}: {what}; pass the folder holding the logs (such as out/logs)")
    meta = f"{stem}{LOG_SUFFIXES['meta']}"
    if (folder / meta).is_file() or not (folder / "logs").is_dir():
        return folder
    if (folder / "logs" / meta).is_file() or not _stems(folder):
        return folder / "logs"  # infer.py's output folder: its logs (or the clips listed there)
    return folder


def _stems(folder: Path) -> list[str]:
    return sorted({log_stem(p) for p in folder.glob(f"*{LOG_SUFFIXES['meta']}")})


def _is_analysis_of(folder: Path, stem: str, logs: Path) -> bool:
    """True when ``folder`` holds the analyzer's outputs for the clip ``stem`` (see
    ``_check_same_logs``)."""
    from .analysis.report import read_report, report_clip

    if not (folder / EXPRESSIONS).is_file():
        return False
    report = read_report(folder / "report.json")
    if report is None:
        return folder.name == stem  # OUT/<stem>/ of several clips, its report.json lost
    if report_clip(report)["stem"] != stem:
        return False
    _check_same_logs(folder / "report.json", report_clip(report)["logs"], stem, logs)
    return True


def _check_same_logs(report_path: Path, named: str, stem: str, logs: Path) -> None:
    """An InputFileError when ``report_path`` (of the clip ``stem``) names the logs of another
    folder than ``logs`` that still holds that clip's logs: another video of the same name,
    whose labels must not be joined to these frames. A report naming a folder that is gone
    (the folders were moved together) is taken as these logs' analysis."""
    if not named:
        return
    there, here = Path(named), logs.resolve()
    if there == here or not any((there / f"{stem}{s}").is_file() for s in LOG_SUFFIXES.values()):
        return
    raise InputFileError(
        f"{report_path}: is the analysis of the logs in {there}, not of {stem}'s logs in {here}; "
        "pass the analyzer's output folder of these logs (or run analyze_expressions.py on them)"
    )


def find_expressions(logs: Path, stem: str, analysis: Path | None = None, by_face: bool = False) -> dict[int, Path]:
    """The analyzer's expressions.csv of ``stem`` by face_id: in ``analysis/<stem>/`` (several
    clips) or ``analysis/`` (one clip, when its report.json is of ``stem``); ``by_face`` (logs
    with a face_id column): in the ``face_<id>/`` folders such a report.json lists, else face 0's
    in the folder itself. Without ``analysis``, where the README's commands write it:
    ``analysis/`` beside the logs folder (out/logs -> out/analysis). Empty when there is none; an
    InputFileError when ``analysis`` was given and holds none."""
    from .analysis.report import read_report, report_clip

    base = Path(analysis) if analysis is not None else logs.parent / "analysis"
    for folder in (base / stem, base):
        if not by_face:
            if _is_analysis_of(folder, stem, logs):
                return {0: folder / EXPRESSIONS}
            continue
        report = read_report(folder / "report.json")
        if report is None or "faces" not in report or report_clip(report)["stem"] != stem:
            continue
        _check_same_logs(folder / "report.json", report_clip(report)["logs"], stem, logs)
        found = {}
        for face in report["faces"]:
            path = folder / str(face.get("folder", "")) / EXPRESSIONS
            if path.is_file():
                found[int(face["face_id"])] = path
        if found or not report["faces"]:  # none: the clip's analysis found no face in any frame
            return found
    if analysis is not None and by_face:
        raise InputFileError(
            f"{base}: holds no per-face analysis of {stem} (expected {base / stem / 'face_0' / EXPRESSIONS} "
            f"or {base / 'face_0' / EXPRESSIONS}, with a report.json of {stem} listing the faces); "
            "pass the analyzer's output folder"
        )
    if analysis is not None:
        raise InputFileError(
            f"{base}: holds no analysis of {stem} (expected {base / stem / EXPRESSIONS}, or "
            f"{base / EXPRESSIONS} with a report.json of {stem}); pass the analyzer's output folder"
        )
    return {}


def load_logs(folder: Path | str, stem: str, analysis: Path | str | None = None) -> pd.DataFrame:
    """One row per frame of the clip ``stem``: its meta log joined on ``frame`` with its landmarks
    log, raw log and the analyzer's expressions.csv, each when present (see the module docstring
    for the column names). ``folder``: the logs folder (out/logs; infer.py's output folder holding
    ``logs/`` works too). ``analysis``: the analyzer's output folder (default: ``analysis/``
    beside the logs folder, when it holds this clip's analysis). A missing folder, meta log or
    analysis, and a log that is not one, are an InputFileError naming the file."""
    folder = _logs_folder(Path(folder), stem)
    meta_path = folder / f"{stem}{LOG_SUFFIXES['meta']}"
    if not meta_path.is_file():
        known = _stems(folder)
        listed = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "") if known else "none"
        raise InputFileError(f"{meta_path}: meta log not found; clips with a meta log in {folder}: {listed}")
    table = read_table(meta_path, "meta").rename(columns={c: f"box_{c}" for c in ("x0", "y0", "x1", "y1")})
    keys = ["frame", FACE_ID] if FACE_ID in table else ["frame"]

    def join(part: pd.DataFrame, path: Path) -> None:
        nonlocal table
        if (FACE_ID in part) != (FACE_ID in table):
            has, lacks = (path, meta_path) if FACE_ID in part else (meta_path, path)
            raise InputFileError(
                f"{lacks}: has no face_id column but {has} has one (several faces a frame); the "
                "logs are from different runs"
            )
        if "timestamp_ms" in part and ("timestamp_ms" in table or part["timestamp_ms"].isna().all()):
            part = part.drop(columns="timestamp_ms")
        clash = [c for c in part.columns if c not in keys and c in table.columns]
        if clash:
            raise InputFileError(f"{path}: column(s) {', '.join(clash)} already come from another log")
        table = table.merge(part, on=keys, how="left", validate="one_to_one")

    lm_path = folder / f"{stem}{LOG_SUFFIXES['landmarks']}"
    if lm_path.is_file():
        lm = read_table(lm_path, "landmarks")
        check_landmark_rows(lm_path, lm["frame"].to_numpy(), lm[[c for c in lm.columns if _POINT.fullmatch(c)]].to_numpy())
        join(lm.rename(columns={c: f"lm_{c}" for c in lm.columns if _POINT.fullmatch(c)}), lm_path)
    raw_path = folder / f"{stem}{LOG_SUFFIXES['raw']}"
    if raw_path.is_file():
        raw = read_table(raw_path, "raw")
        if len(raw):
            join(raw, raw_path)
        else:
            log.info("%s: holds no 3DMM parameters (a dlib run logs none); no p* columns", raw_path)
    by_face = FACE_ID in table
    found = find_expressions(folder, stem, None if analysis is None else Path(analysis), by_face)
    if found:
        import pandas as pd

        parts = []
        for fid, path in found.items():
            part = read_table(path, "expressions")
            if by_face:
                part.insert(1, FACE_ID, pd.array([fid] * len(part), dtype="Int64"))
            parts.append(part)
        where = found[min(found)].parent.parent if by_face else found[0]
        join(expression_columns(pd.concat(parts, ignore_index=True), table, keys), where)
        from .analysis.labels import LABELS

        for name in LABELS:  # bool, as facemap.analyze gives them (expressions.csv writes 0/1)
            if name in table:
                table[name] = table[name].fillna(0).astype(bool)
    return table


def expression_columns(expr: pd.DataFrame, table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The analyzer's columns ``expr`` as joined to the logs' ``table``: without a second
    timestamp, a name the logs have already prefixed (``expr_pitch_deg``)."""
    if "timestamp_ms" in table:
        expr = expr.drop(columns="timestamp_ms", errors="ignore")
    return expr.rename(columns={c: EXPR_PREFIX + c for c in expr.columns if c not in keys and c in table})
