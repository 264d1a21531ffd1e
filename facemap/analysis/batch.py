"""Several clips in one analysis: find each clip's logs, analyse each into ``<out>/<stem>/``, and
write ``<out>/summary.csv`` and ``<out>/index.html`` with one row per clip.

    with Batch(out) as batch:
        for clip in find_clips("out/logs"):
            outcome = batch.analyze(clip)     # a clip that fails is an outcome, not an exception

A clip that cannot be analysed (a bad log, no landmarks) is recorded with its error and the others
still run. The summary and index are written when the ``with`` block ends without an exception.

A clip whose logs have a ``face_id`` column (several faces a frame) is analysed face by face
(``write_faces``): ``<out>/<stem>/face_<id>/`` per face, ``<out>/<stem>/`` holding a report.json
that lists the faces and that clip's summary.csv and index.html, and one summary row per face
(stem ``<stem>/face_<id>``).
"""

from __future__ import annotations

import contextlib
import glob
import html
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .._version import __version__
from ..errors import FacemapError, InputFileError, OutputError, UsageError
from ..io.outputs import OutputDir, atomic_write_bytes
from ..io.schema import LOG_SUFFIXES, log_stem
from ..raypool import (
    Callbacks,
    Job,
    PoolWorker,
    check_pool_options,
    import_ray,
    pool_session,
)
from . import Analysis, analyze_faces, analyze_logs, logs_have_face_ids
from .config import AnalysisConfig
from .report import (
    OUTPUT_NAMES,
    SUMMARY_NAMES,
    clip_of,
    read_report,
    report_clip,
    report_dict,
    write_outputs,
)

log = logging.getLogger(__name__)

# The kinds of log a clip is made of (the summary log is found, but the analysis does not read it).
CLIP_KINDS = ("meta", "landmarks", "raw")

SUMMARY_COLUMNS = [
    "stem",
    "status",
    "frames",
    "frames_with_face",
    "overall_score",
    "positivity",
    "expressiveness",
    "attention",
    "blinks",
    "smiles",
    "yawns",
    "looking_away",
    "report",
    "error",
]
SCORE_COLUMNS = SUMMARY_COLUMNS[4:8]
FLOAT_COLUMNS = ("speaking_s",)  # seconds labelled talking (report.json "speaking")
# The count of each event type of report.json is a column of the table: named after the type, the
# first three by the plural names the table has always had; a new event type appears by itself.
EVENT_COLUMNS = {"blink": "blinks", "smile": "smiles", "yawn": "yawns"}
PARQUET_NAME = "summary.parquet"  # the same table as summary.csv, typed (needs pyarrow)
PARQUET_MISSING = "{path}: not written: Parquet needs pyarrow (pip install pyarrow); summary.csv holds the same table"


def event_column(kind: str) -> str:
    """The summary column holding the count of the event type ``kind``."""
    return EVENT_COLUMNS.get(kind, kind)


def table_columns(rows: list[Mapping[str, object]]) -> list[str]:
    """The columns of a summary table: the fixed ones, with one count column per event type
    found in ``rows`` (the usual four first, any other after them, in order of appearance)."""
    events = SUMMARY_COLUMNS[8:12]
    for r in rows:
        events += [c for c in r if c not in SUMMARY_COLUMNS and c not in events]
    return SUMMARY_COLUMNS[:8] + events + SUMMARY_COLUMNS[12:]


@dataclass(frozen=True)
class ClipLogs:
    """One clip's logs: ``stem`` and the paths of its meta, landmarks and raw logs (None when
    the clip has no such log)."""

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
    have face_id), and the error when it failed."""

    clip: ClipLogs
    folder: Path
    rows: tuple[dict[str, object], ...]
    error: FacemapError | None = None
    by_face: bool = False  # the logs have face_id: one row per face

    @property
    def row(self) -> dict[str, object]:
        """The clip's (first) summary row."""
        return self.rows[0]

    @property
    def ok(self) -> bool:
        """True when the clip was analysed and its outputs written."""
        return self.error is None


def _kind(name: str) -> str | None:
    for kind, suffix in LOG_SUFFIXES.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return kind
    return None


def find_clips(spec: str | Path) -> list[ClipLogs]:
    """The clips in a logs folder (``out/logs``, or ``out`` holding ``logs/``), or the clips that
    a glob's files belong to (each clip then takes all of its logs from that file's folder),
    sorted by stem. Raises InputFileError when none is found, UsageError when two clips share
    a stem (their outputs would share a folder)."""
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _kind(p.name))
        if not files and (path / "logs").is_dir():
            files = sorted(p for p in (path / "logs").iterdir() if p.is_file() and _kind(p.name))
    elif glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file() and _kind(Path(p).name))
    elif path.is_file():
        files = [path] if _kind(path.name) else []
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
        clips.append(ClipLogs(stem, **found))
    return clips


def face_folder(face_id: int) -> str:
    """The folder of one face's analysis: ``face_<id>``."""
    return f"face_{face_id}"


def summary_row(stem: str, report: Mapping[str, object]) -> dict[str, object]:
    """The summary.csv row of one analysed clip (or face: ``stem`` then names it, ``face_0``),
    from its report.json content: its scores and the count of each of its event types; the
    row links ``<stem>/report.html``."""
    sub = report["sub_scores"]
    row = {
        "stem": stem,
        "status": "ok",
        "frames": report["inputs"]["frames"],
        "frames_with_face": report["inputs"]["frames_with_face"],
        "overall_score": report["overall_score"],
        **{c: sub[c] for c in SCORE_COLUMNS[1:]},
    }
    row.update({event_column(kind): ev["count"] for kind, ev in report["events"]["summary"].items()})
    speaking = report.get("speaking")
    if isinstance(speaking, Mapping):  # reports written before talking was a label have none
        row["speaking_s"] = speaking.get("time_s")
    row.update(report=f"{stem}/report.html", error="")
    return row


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
            where = clip.meta if clip.meta is not None else clip.stem
            raise InputFileError(
                f"{where}: no landmarks log beside it ({clip.stem}{LOG_SUFFIXES['landmarks']}); "
                "write one with {dump_landmarks_csv}"
            )
        args = (clip.landmarks, clip.meta, clip.raw, None, fps, config, baseline_frames, basis_dir)
        if logs_have_face_ids(clip.landmarks, clip.meta, clip.raw):
            faces = analyze_faces(*args)
            rows = write_faces(faces, folder, plots=plots, paths=clip_paths(clip))
            named = (f"{clip.stem}/{r['stem']}" for r in rows)
            rows = tuple(dict(r, stem=s, report=f"{s}/report.html") for s, r in zip(named, rows, strict=True))
            return ClipOutcome(clip, folder, rows, by_face=True)
        result = analyze_logs(*args)
        write_outputs(result, folder, plots=plots)
        return ClipOutcome(clip, folder, (summary_row(clip.stem, report_dict(result)),))
    except FacemapError as exc:
        return failed_outcome(clip, folder, exc, names)


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
        self._dir: OutputDir | None = None

    def __enter__(self) -> Batch:
        self._dir = OutputDir(self.path)
        self._dir.open()
        try:
            if self._dir.wrote("report.json"):
                old = read_report(self.path / "report.json") or {}
                stem = report_clip(old)["stem"] or "?"
                raise OutputError(
                    f"{self.path}: holds the analysis of one clip ({stem}, report.json); facemap "
                    "does not mix several clips in with it: choose another {output}"
                )
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

    def analyze(
        self,
        clip: ClipLogs,
        *,
        fps: float | None = None,
        config: AnalysisConfig | None = None,
        baseline_frames: tuple[int, int] | None = None,
        basis_dir: Path | None = None,
    ) -> ClipOutcome:
        """Analyse one clip into ``<out>/<stem>/``; a FacemapError becomes a failed outcome."""
        outcome = analyze_clip(self.path, clip, plots=self.plots, names=self.names, fps=fps, config=config,
                               baseline_frames=baseline_frames, basis_dir=basis_dir)
        self.outcomes.append(outcome)
        return outcome

    def add(self, outcome: ClipOutcome) -> None:
        """Record a clip analysed elsewhere (by a Ray worker) into this folder."""
        self.outcomes.append(outcome)

    def rows(self) -> list[dict[str, object]]:
        """One row per clip (per face of a clip with face_id), by stem: this run's clips, and
        clips analysed into ``out`` by an earlier run (read back from their report.json)."""
        rows = {r["stem"]: r for o in self.outcomes for r in o.rows}
        done = {o.clip.stem for o in self.outcomes}
        for marker in sorted(self.path.glob("*/.facemap-output")):
            stem = marker.parent.name
            if stem in done:
                continue
            if "report.json" not in OutputDir(marker.parent).listed():
                continue
            report = read_report(marker.parent / "report.json")
            try:
                if isinstance(report, dict) and "faces" in report:
                    rows.update((r["stem"], r) for r in _read_face_rows(marker.parent, stem))
                else:
                    rows[stem] = summary_row(stem, report)
            except (KeyError, TypeError):  # not an analysis report
                continue
        return [rows[s] for s in sorted(rows, key=_natural)]

    def _write_summary(self) -> None:
        _write_tables(self._dir, self.rows())


def _natural(stem: str) -> tuple:
    """Sort key: ``face_10`` after ``face_9``; clips by name."""
    head, _, tail = stem.rpartition("/face_")
    return (head, int(tail)) if head and tail.isdigit() else (stem, -1)


def _read_face_rows(folder: Path, stem: str) -> list[dict[str, object]]:
    """The summary rows of a clip analysed face by face into ``folder`` by an earlier run."""
    report = read_report(folder / "report.json") or {}
    rows = []
    for face in report["faces"]:
        name = face_folder(int(face["face_id"]))
        rows.append(summary_row(f"{stem}/{name}", read_report(folder / name / "report.json")))
    return rows


def summary_frame(rows: list[Mapping[str, object]]):
    """The summary table as a typed DataFrame (counts Int64, scores Float64, text str; a failed
    clip's numbers missing), as summary.parquet holds it."""
    import pandas as pd

    columns = table_columns(rows)
    table = pd.DataFrame([{c: r.get(c, "") for c in columns} for r in rows], columns=columns)
    for c in columns:
        if c in ("stem", "status", "report", "error"):
            table[c] = table[c].fillna("").astype(str)
        else:
            values = pd.to_numeric(table[c].replace("", None), errors="coerce")
            table[c] = values.astype("Float64" if c in SCORE_COLUMNS or c in FLOAT_COLUMNS else "Int64")
    return table


def have_pyarrow() -> bool:
    """True when pyarrow (through which pandas writes Parquet) is installed."""
    import importlib.util

    try:
        return importlib.util.find_spec("pyarrow") is not None
    except (ImportError, ValueError):
        return False


def _write_tables(out: OutputDir, rows: list[dict[str, object]], title: str = "") -> None:
    import io

    columns = table_columns(rows)
    table = summary_frame(rows)
    csv_path, html_path = (out.file(name) for name in SUMMARY_NAMES)
    atomic_write_bytes(csv_path, table.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    if not have_pyarrow():
        log.warning(PARQUET_MISSING.format(path=out.path / PARQUET_NAME))
        out.forget(PARQUET_NAME)  # an earlier one would not match the new summary.csv
    else:
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        atomic_write_bytes(out.file(PARQUET_NAME), buf.getvalue())
    atomic_write_bytes(html_path, index_html(rows, title, columns).encode("utf-8"))


def clip_paths(clip: ClipLogs) -> dict[str, str]:
    """The paths of a clip's logs by kind, as an analysis records them."""
    return {k: str(p) for k, p in (("landmarks", clip.landmarks), ("meta", clip.meta), ("raw", clip.raw)) if p}


def write_faces(
    faces: Mapping[int, Analysis],
    out_dir: Path,
    plots: bool = True,
    paths: Mapping[str, str] | None = None,
) -> list[dict[str, object]]:
    """Write the analyses of one clip's faces (``analyze_faces``): ``face_<id>/`` each (the files
    of one clip), a report.json listing the faces, summary.csv and index.html with one row per
    face (stem ``face_<id>``). ``paths``: the clip's logs, for the report when no face was found.
    Returns the summary rows. Refuses (OutputError) a folder that holds another clip's analysis
    or several clips'; its own earlier analysis of this clip is replaced."""
    first = next(iter(faces.values()), None)
    logs = dict(first.inputs.paths) if first is not None else dict(paths or {})
    clip = clip_of(logs)
    with OutputDir(Path(out_dir)) as out:
        old = read_report(out.path / "report.json") if out.wrote("report.json") else None
        if old is not None:
            there = report_clip(old)
            if (there["stem"], there["logs"]) != (clip["stem"], clip["logs"]):
                raise OutputError(
                    f"{out.path}: holds the analysis of another clip ({there['stem'] or '?'}, logs in "
                    f"{there['logs'] or '?'}); facemap does not overwrite it: choose another {{output}}"
                )
            if "faces" not in old:  # this clip analysed as one face: its files would not match
                for name in OUTPUT_NAMES:
                    if name != "report.json":
                        out.forget(name)
        elif out.wrote(SUMMARY_NAMES[0]):
            raise OutputError(
                f"{out.path}: holds the analysis of several clips ({SUMMARY_NAMES[0]}); facemap does "
                "not write one clip over them: choose another {output}"
            )
        rows, listed = [], []
        for fid in sorted(faces):
            name = face_folder(fid)
            write_outputs(faces[fid], out.path / name, plots=plots)
            report = report_dict(faces[fid])
            rows.append(summary_row(name, report))
            listed.append(
                {
                    "face_id": fid,
                    "folder": name,
                    "frames_with_face": report["inputs"]["frames_with_face"],
                    "overall_score": report["overall_score"],
                }
            )
        frames = int(first.inputs.frames.size) if first is not None else None  # no face: not known
        doc = {
            "clip": clip,
            "faces": listed,
            "inputs": {**logs, "frames": frames},
            "version": __version__,
        }
        atomic_write_bytes(out.file("report.json"), (json.dumps(doc, indent=2) + "\n").encode())
        _write_tables(out, rows, f"{len(rows)} face{'s' if len(rows) != 1 else ''} of {clip['stem'] or '?'}")
    return rows


def index_html(rows: list[Mapping[str, object]], title: str = "", columns: list[str] | None = None) -> str:
    """index.html: one row per clip (or face), each analysed one linking its report.html;
    ``columns`` those of the summary table (one count column per event type)."""
    esc = html.escape
    columns = columns or table_columns(rows)
    events = columns[8:-2]
    ok = [r for r in rows if r["status"] == "ok"]
    body = []
    for r in rows:
        if r["status"] == "ok":
            name = f'<a href="{esc(quote(str(r["report"])))}">{esc(str(r["stem"]))}</a>'
            cells = [f"{r[c]}" for c in SUMMARY_COLUMNS[2:4]] + [
                f"{float(r[c]):.1f}" for c in SCORE_COLUMNS
            ] + [_cell(r.get(c, "")) for c in events]
            body.append(
                f"<tr><td>{name}</td>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>"
            )
        else:
            body.append(
                f'<tr class="failed"><td>{esc(str(r["stem"]))}</td>'
                f'<td colspan="{6 + len(events)}" class="error">failed: {esc(str(r["error"]))}</td></tr>'
            )
    heads = ["face" if title else "clip", "frames", "with a face", "score", "positivity", "expressiveness", "attention",
             *(esc(c.replace("_", " ")) for c in events)]
    failed = len(rows) - len(ok)
    clips = len({str(r["stem"]).split("/")[0] for r in rows})
    heading = title or f"{clips} clips"
    per = " (one row per face of a clip with face_id)" if clips != len(rows) and not title else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>facemap expression analysis: {esc(heading)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
th:first-child{{text-align:left}}tr.failed td{{background:#fdecea}}td.error{{text-align:left}}</style></head><body>
<h1>Expression analysis: {esc(heading)}</h1>
<p>{len(ok)} analysed{per}{f", {failed} failed" if failed else ""}; each {"face" if title else "clip" if not per else "clip's or face"}'s report is linked from its name;
the same numbers are in summary.csv and summary.parquet.</p>
<table><tr>{"".join(f"<th>{h}</th>" for h in heads)}</tr>
{"".join(body)}
</table>
</body></html>
"""


def _cell(value: object) -> str:
    """An index cell: a count as it is, a float (speaking_s) to one decimal."""
    return f"{value:.1f}" if isinstance(value, float) else f"{value}"


class ClipWorker(PoolWorker):
    """One Ray actor of ``--logs ... --ray``: the clips it is given analysed into the output
    folder, as ``Batch.analyze`` does."""

    def setup(self, out: str, plots: bool, options: dict) -> None:
        """The output folder, --no-plots, and the analysis options."""
        self.out, self.plots, self.options = Path(out), plots, dict(options)

    def work(self, clip: ClipLogs) -> ClipOutcome:
        """One clip into ``<out>/<stem>/``."""
        return analyze_clip(self.out, clip, plots=self.plots, names=self.names, **self.options)


def _absolute(clip: ClipLogs) -> ClipLogs:
    """The clip with its log paths made absolute, as a worker on another node sees them."""
    return ClipLogs(clip.stem, *(Path(os.path.abspath(p)) if p is not None else None
                                 for p in (clip.meta, clip.landmarks, clip.raw)))


_TEMP = re.compile(r"\.(.+)\.[A-Za-z0-9_]{8}\.part")  # an atomic write's temp file: .<name>.<8 chars>.part


def remove_temp_files(folder: Path) -> None:
    """The temp files of atomic writes that a killed worker left in one clip's folder (only
    those of the files an analysis writes)."""
    ours = {*OUTPUT_NAMES, *SUMMARY_NAMES, PARQUET_NAME, ".facemap-output"}
    for p in Path(folder).rglob(".*.part"):
        m = _TEMP.fullmatch(p.name)
        if m and m.group(1) in ours and p.is_file():
            with contextlib.suppress(OSError):
                p.unlink()


def analyze_on_ray(
    batch: Batch,
    clips: list[ClipLogs],
    *,
    address: str | None,
    workers: int | None = None,
    cpus: float = 1.0,
    on_outcome: Callable[[ClipOutcome], None] = lambda o: None,
    on_retry: Callable[[str, str], None] = lambda stem, error: None,
    progress: bool = False,
    **options: object,
) -> None:
    """``--logs ... --ray [ADDRESS]``: the clips over a pool of Ray actors (``facemap.raypool``),
    each into ``<out>/<stem>/`` as without Ray; their outcomes go into ``batch`` in the order of
    ``clips`` (its table and index are written when the batch closes). The logs and ``out`` must
    be at the same paths on every node (a shared filesystem; paths are made absolute). A clip
    whose worker died or hit a bug is tried once more, then failed; ``on_outcome`` is called as
    each clip ends, ``on_retry(stem, error)`` before a second try. ``options``: fps, config,
    baseline_frames, basis_dir, as ``analyze_clip`` takes them."""
    ray = import_ray()
    check_pool_options(workers, cpus)
    clips = [_absolute(c) for c in clips]
    if options.get("basis_dir") is not None:
        options["basis_dir"] = Path(os.path.abspath(options["basis_dir"]))
    out = Path(os.path.abspath(batch.path))
    outcomes: dict[str, ClipOutcome] = {}
    by_stem = {c.stem: c for c in clips}
    inputs = [str(p) for c in clips for p in c.paths]
    with pool_session(
        ray, address, ClipWorker, (batch.names, str(out), batch.plots, options), workers, cpus,
        (inputs, str(out)), len(clips), progress, "clip",
    ) as session:
        bar, add = session.bar, session.add

        def finish(outcome: ClipOutcome) -> None:
            outcomes[outcome.clip.stem] = outcome
            bar.clear()
            on_outcome(outcome)
            add(sum(int(r["frames"] or 0) for r in outcome.rows) if outcome.ok else 0)

        def done(job: Job, result: dict) -> None:
            finish(result["value"])

        def retry(job: Job, result: dict) -> None:
            remove_temp_files(out / job.key)
            bar.clear()
            on_retry(job.key, result["error"])

        def failed(job: Job, result: dict) -> None:
            remove_temp_files(out / job.key)
            finish(failed_outcome(by_stem[job.key], out / job.key, InputFileError(result["error"])))

        jobs = [Job(c.stem, c.stem, (c,)) for c in clips]
        session.pool.run(session.actors, jobs, Callbacks(
            done=done, failed=failed, retry=retry, abandon=lambda job: remove_temp_files(out / job.key),
            tick=bar.refresh,
        ))
    for c in clips:
        batch.add(outcomes[c.stem])
