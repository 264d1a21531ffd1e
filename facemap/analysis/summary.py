"""The summary table of several analyses (one row per clip, or per face of a clip with
face_id): its columns, summary.csv, summary.parquet and index.html."""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from urllib.parse import quote

from ..io.outputs import OutputDir, atomic_write_bytes

log = logging.getLogger(__name__)

# What an analysis of several clips (or faces) writes beside its one folder per clip (or face).
SUMMARY_NAMES = ["summary.csv", "index.html"]

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


def summary_row(stem: str, report: Mapping[str, object]) -> dict[str, object]:
    """The summary.csv row of one analysed clip (or face: ``stem`` then names it, ``face_0``),
    from its report.json content: its scores and the count of each of its event types; the
    row links ``<stem>/report.html`` (``report.html`` for stem "")."""
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
    row.update(report=f"{stem}/report.html".lstrip("/"), error="")
    return row


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


def write_tables(out: OutputDir, rows: list[dict[str, object]], title: str = "", in_batch: bool = False) -> None:
    """summary.csv, summary.parquet (without pyarrow: a warning) and index.html of ``rows`` in
    ``out``; ``title`` heads a clip's table of faces, ``in_batch`` when that clip is one of
    several (its index links back to theirs)."""
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
    atomic_write_bytes(html_path, index_html(rows, title, columns, in_batch).encode("utf-8"))


def index_html(rows: list[Mapping[str, object]], title: str = "", columns: list[str] | None = None,
               in_batch: bool = False) -> str:
    """index.html: one row per clip (or face), each analysed one linking its report.html;
    ``columns`` those of the summary table (one count column per event type); ``in_batch``: a
    clip's faces, that clip one of several (a link back to their index one folder up)."""
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
    back = '\n<p><a href="../index.html">every clip of this run</a></p>' if in_batch else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>facemap expression analysis: {esc(heading)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
th:first-child{{text-align:left}}tr.failed td{{background:#fdecea}}td.error{{text-align:left}}</style></head><body>
<h1>Expression analysis: {esc(heading)}</h1>{back}
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
