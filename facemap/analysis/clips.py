"""Several clips in one analysis: find each clip's logs, analyse each into ``<out>/<stem>/``, and
write ``<out>/summary.csv`` and ``<out>/index.html`` with one row per clip.

    with Batch(out) as batch:
        for clip in find_clips("out/logs"):
            outcome = batch.analyze(clip)     # a clip that fails is an outcome, not an exception

A clip that cannot be analysed (a bad log, no landmarks) is recorded with its error and the others
still run. A picture's logs (infer.py --image) hold only a meta log: its landmarks are read from
the picture's JSON (``<out>/<stem>.json``, beside the logs folder) and it is analysed as a picture,
against the typical neutral face; a picture whose JSON is not there is skipped with a note. The summary and index are written when the ``with`` block ends without an exception;
clips analysed into the folder by an earlier run are listed too.

A clip whose logs have a ``face_id`` column is written face by face (``write_outputs``) into
``<out>/<stem>/``, with one summary row per face (stem ``<stem>/face_<id>``).
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FacemapError, InputFileError, UsageError
from ..io.outputs import OutputDir
from ..io.records import read_meta
from ..io.schema import LOG_SUFFIXES, log_kind, log_stem, picture_json_path
from . import analyze_logs, one_face
from .config import AnalysisConfig
from .report import face_folder, read_report, refuse_mixing, write_outputs
from .summary import PARQUET_NAME, SUMMARY_COLUMNS, SUMMARY_NAMES, summary_row, write_tables

# The kinds of log a clip is made of (the summary log is found, but the analysis does not read it).
CLIP_KINDS = ("meta", "landmarks", "raw")


@dataclass(frozen=True)
class ClipLogs:
    """One clip's logs: ``stem`` and the paths of its meta, landmarks and raw logs (None when
    the clip has no such log; ``landmarks`` may be a picture's ``<stem>.json``)."""

    stem: str
    meta: Path | None = None
    landmarks: Path | None = None
    raw: Path | None = None

    @property
    def paths(self) -> list[Path]:
        """The logs that exist, meta first."""
        return [p for p in (self.meta, self.landmarks, self.raw) if p is not None]


@dataclass(frozen=True)
class ClipOutcome:
    """What became of one clip: its folder, its summary rows (one; one per face when its logs
    have face_id), and the error when it failed; a skipped clip (a picture's logs without its
    landmarks) has no row and its ``note`` says why."""

    clip: ClipLogs
    folder: Path
    rows: tuple[dict[str, object], ...]
    error: FacemapError | None = None
    by_face: bool = False  # the logs have face_id: one row per face
    note: str = ""  # why the clip was skipped
    warnings: tuple[str, ...] = ()  # what the analysis warned of, when it ran in another process (Ray)

    @property
    def skipped(self) -> bool:
        """True when the clip was left out (not analysed, not failed): ``note`` says why."""
        return bool(self.note)

    @property
    def row(self) -> dict[str, object]:
        """The clip's (first) summary row."""
        return self.rows[0]

    @property
    def ok(self) -> bool:
        """True when the clip was analysed and its outputs written."""
        return self.error is None and not self.skipped


def find_clips(spec: str | Path) -> list[ClipLogs]:
    """The clips in a logs folder (``out/logs``, or ``out`` holding ``logs/``), or the clips that
    a glob's files belong to (each clip then takes all of its logs from that file's folder),
    sorted by stem. Raises InputFileError when none is found, UsageError when two clips share
    a stem (their outputs would share a folder)."""
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and log_kind(p.name))
        if not files and (path / "logs").is_dir():
            files = sorted(p for p in (path / "logs").iterdir() if p.is_file() and log_kind(p.name))
    elif glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file() and log_kind(Path(p).name))
    elif path.is_file():
        files = [path] if log_kind(path.name) else []
    else:
        raise InputFileError(
            f"{text}: no such folder or file; {{logs}} takes a logs folder (such as out/logs) "
            "or a glob of its files"
        )
    folders: dict[str, Path] = {}
    for f in files:
        stem = log_stem(f)
        if stem in (".", ".."):
            continue
        if stem in folders and folders[stem] != f.parent:
            raise UsageError(
                f"{{logs}}: two clips are named {stem} ({folders[stem]} and {f.parent}); their "
                "outputs would share one folder: analyse them in two runs, each with its own {output}"
            )
        folders[stem] = f.parent
    if not folders:
        raise InputFileError(
            f"{text}: holds no facemap logs (<stem>_meta.csv, <stem>_landmarks.csv, "
            "<stem>_raw.csv); point {logs} at infer.py's logs folder (such as out/logs)"
        )
    clips = []
    for stem in sorted(folders):
        found = {
            kind: folders[stem] / f"{stem}{LOG_SUFFIXES[kind]}"
            for kind in CLIP_KINDS
            if (folders[stem] / f"{stem}{LOG_SUFFIXES[kind]}").is_file()
        }
        picture = picture_json_path(folders[stem], stem)
        if set(found) == {"meta"} and picture.is_file():
            found["landmarks"] = picture  # a picture's logs: its landmarks are in its JSON
        clips.append(ClipLogs(stem, **found))
    return clips


def analyze_clip(
    out: Path,
    clip: ClipLogs,
    *,
    plots: bool = True,
    names: Mapping[str, str] | None = None,
    fps: float | None = None,
    config: AnalysisConfig | None = None,
    baseline_frames: tuple[int, int] | None = None,
    basis_dir: Path | None = None,
) -> ClipOutcome:
    """Analyse one clip into ``<out>/<stem>/`` (face by face when its logs have face_id); a
    FacemapError becomes a failed outcome, its error spelled with ``names``."""
    folder = Path(out) / clip.stem
    try:
        if clip.landmarks is None and clip.raw is None:
            if (note := picture_note(clip)) is not None:
                return ClipOutcome(clip, folder, (), note=note)
            where = clip.meta if clip.meta is not None else clip.stem
            raise InputFileError(
                f"{where}: no landmarks log beside it ({clip.stem}{LOG_SUFFIXES['landmarks']}); "
                "write one with {dump_landmarks_csv}"
            )
        analyses = analyze_logs(clip.landmarks, clip.meta, clip.raw, None, fps, config, baseline_frames, basis_dir)
        rows = write_outputs(analyses, folder, plots=plots, paths=clip_paths(clip), in_batch=True)
        named = ("/".join(filter(None, (clip.stem, r["stem"]))) for r in rows)
        rows = tuple(dict(r, stem=s, report=f"{s}/report.html") for s, r in zip(named, rows, strict=True))
        return ClipOutcome(clip, folder, rows, by_face=one_face(analyses) is None)
    except FacemapError as exc:
        return failed_outcome(clip, folder, exc, names)


def picture_note(clip: ClipLogs) -> str | None:
    """Why a clip with only a meta log of one frame (a picture's: infer.py --image logs no
    landmarks, they are in its JSON) is skipped; None for any other clip."""
    if clip.meta is None or clip.landmarks is not None or clip.raw is not None:
        return None
    try:
        frames = read_meta(clip.meta).frames
    except FacemapError:
        return None  # the clip fails, saying what is wrong with its meta log
    if np.unique(frames).size != 1:
        return None
    where = picture_json_path(clip.meta.parent, clip.stem)
    return (
        f"skipped: {clip.meta} is a picture's log and its landmarks are not there (neither "
        f"{clip.stem}{LOG_SUFFIXES['landmarks']} beside it nor the picture's {where}); to analyse it, "
        "give its <stem>.json with {landmarks}, or log its landmarks with {dump_landmarks_csv}"
    )


def failed_outcome(clip: ClipLogs, folder: Path, exc: FacemapError, names: Mapping[str, str] | None = None) -> ClipOutcome:
    """The outcome of a clip that could not be analysed: one failed row with its error."""
    row = {c: "" for c in SUMMARY_COLUMNS}
    row.update(stem=clip.stem, status="failed", error=exc.render(dict(names or {})))
    return ClipOutcome(clip, folder, (row,), exc)


class Batch:
    """An output folder for several clips: ``<out>/<stem>/`` per clip, plus summary.csv and
    index.html. Locks ``out`` while open; ``names`` spells the options in error messages (a
    front end's flags)."""

    def __init__(self, out: Path, plots: bool = True, names: Mapping[str, str] | None = None) -> None:
        self.path = Path(out)
        self.plots = plots
        self.names = dict(names or {})
        self.outcomes: list[ClipOutcome] = []
        self.earlier: list[str] = []  # the clips of earlier runs the table lists, once written
        self.wrote_tables = False
        self._dir: OutputDir | None = None

    def __enter__(self) -> Batch:
        self._dir = OutputDir(self.path)
        self._dir.open()
        try:
            refuse_mixing(self._dir, "clips")
            self._dir.refuse_foreign([*SUMMARY_NAMES, PARQUET_NAME])  # before any clip, not after all
        except BaseException:
            self._dir.close()
            raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is None:
                self._write_summary()
        finally:
            self._dir.close()

    def analyze(self, clip: ClipLogs, **options: object) -> ClipOutcome:
        """Analyse one clip into ``<out>/<stem>/``; a FacemapError becomes a failed outcome.
        ``options``: fps, config, baseline_frames, basis_dir, as ``analyze_clip`` takes them."""
        outcome = analyze_clip(self.path, clip, plots=self.plots, names=self.names, **options)
        self.outcomes.append(outcome)
        return outcome

    def add(self, outcome: ClipOutcome) -> None:
        """Record a clip analysed elsewhere (by a Ray worker) into this folder."""
        self.outcomes.append(outcome)

    def rows(self) -> list[dict[str, object]]:
        """One row per clip (per face of a clip with face_id), by stem: this run's clips, and
        clips analysed into ``out`` by an earlier run (read back from their report.json)."""
        rows = {r["stem"]: r for o in self.outcomes for r in o.rows}
        rows.update((r["stem"], r) for r in self._earlier_rows())
        return [rows[s] for s in sorted(rows, key=_natural)]

    def _earlier_rows(self) -> list[dict[str, object]]:
        """The rows of the clips an earlier run analysed into ``out`` and this run did not."""
        done = {o.clip.stem for o in self.outcomes}
        rows: list[dict[str, object]] = []
        self.earlier = []
        for marker in sorted(self.path.glob("*/.facemap-output")):
            stem = marker.parent.name
            if stem in done or "report.json" not in OutputDir(marker.parent).listed():
                continue
            try:
                rows.extend(_read_rows(marker.parent, stem))
            except (KeyError, TypeError):  # not an analysis report
                continue
            self.earlier.append(stem)
        return rows

    def _write_summary(self) -> None:
        """The table and index; not when no clip of this run was analysed (each failed or was
        skipped) and no earlier run's clip is there to list (the lines said it all: nothing is
        left behind)."""
        rows = self.rows()
        if self.earlier or any(o.ok for o in self.outcomes):
            write_tables(self._dir, rows)
            self.wrote_tables = True


def _natural(stem: str) -> tuple:
    """Sort key: ``face_10`` after ``face_9``; clips by name."""
    head, _, tail = stem.rpartition("/face_")
    return (head, int(tail)) if head and tail.isdigit() else (stem, -1)


def _read_rows(folder: Path, stem: str) -> list[dict[str, object]]:
    """The summary rows of a clip analysed into ``folder`` by an earlier run (one per face when
    its logs had face_id)."""
    report = read_report(folder / "report.json")
    if not (isinstance(report, dict) and "faces" in report):
        return [summary_row(stem, report)]
    names = [face_folder(int(face["face_id"])) for face in report["faces"]]
    return [summary_row(f"{stem}/{name}", read_report(folder / name / "report.json")) for name in names]


def clip_paths(clip: ClipLogs) -> dict[str, str]:
    """The paths of a clip's logs by kind, as an analysis records them."""
    return {k: str(p) for k, p in (("landmarks", clip.landmarks), ("meta", clip.meta), ("raw", clip.raw)) if p}


