"""Write the analyzer's outputs: score.txt, report.json, expressions.csv, timeline.png,
report.html (per face, in ``face_<id>/``, with a report.json listing the faces, summary.csv and
index.html, for logs with face_id). Every file goes to a hidden temp name first and is renamed
into place."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._version import __version__
from ..errors import OutputError
from ..io.outputs import HoldSignals, OutputDir, atomic_write_bytes
from ..io.records import read_json_object
from ..io.schema import log_stem
from ..provenance import RUN_INFO_LABELS
from . import one_face
from .labels import LABELS, NO_FACE, PRIORITY
from .scores import FORMULAS
from .summary import SUMMARY_NAMES, summary_row, write_tables

if TYPE_CHECKING:
    from . import Analysis

OUTPUT_NAMES = ["score.txt", "report.json", "expressions.csv", "timeline.png", "report.html"]


def clip_of(paths: Mapping[str, str]) -> dict[str, str]:
    """Which clip a set of logs is: ``stem`` and ``logs``, the resolved folder of its landmarks
    log (else of its raw, else of its meta log). Two analyses are of the same clip when both match."""
    for kind in ("landmarks", "raw", "meta"):
        if isinstance(paths.get(kind), str) and paths[kind]:
            path = Path(paths[kind])
            return {"stem": log_stem(path), "logs": str(path.resolve().parent)}
    return {"stem": "", "logs": ""}


def report_clip(report: Mapping[str, object]) -> dict[str, str]:
    """The clip a report.json describes (an older report without ``clip``: from its inputs)."""
    clip = report.get("clip")
    if isinstance(clip, dict) and isinstance(clip.get("stem"), str) and isinstance(clip.get("logs"), str):
        return {"stem": clip["stem"], "logs": clip["logs"]}
    inputs = report.get("inputs")
    return clip_of(inputs if isinstance(inputs, dict) else {})


def read_report(path: Path) -> dict[str, object] | None:
    """A report.json's content, or None when it cannot be read as a JSON object."""
    return read_json_object(path)


def speaking(result: Analysis) -> dict[str, float]:
    """Speaking time: seconds labelled ``talking`` and their share of the time with a face."""
    talk = result.labelled.flags["talking"].to_numpy().astype(bool)
    face_ms = float(np.sum(result.duration_ms[result.inputs.face]))
    talk_ms = float(np.sum(result.duration_ms[talk]))
    return {
        "time_s": round(talk_ms / 1000.0, 2),
        "share_of_face_time": round(talk_ms / face_ms, 4) if face_ms > 0 else 0.0,
    }


# The landmarker whose logs the label thresholds were chosen on (docs/analysis.md, validation).
TUNED_ON = "dlib"
CAUTION = (
    "The label thresholds were chosen on dlib logs of 22 clips (against MediaPipe); they are "
    "untested on {what}: check the labels of a clip of yours before relying on them."
)


def caution(made_by: Mapping[str, object]) -> str | None:
    """The caution a report carries when its logs were not made by the landmarker the thresholds
    were chosen on (or it is not known which made them); None for dlib's logs."""
    name = made_by.get("landmarker")
    if name == TUNED_ON:
        return None
    return CAUTION.format(what=f"{name}'s logs" if name else "logs whose landmarker is not recorded")


def score_explained(scores: Mapping[str, float]) -> str:
    """Why the overall score is what it is, from its parts (report.json's sub_scores and
    overall_score): it mixes presence with affect; positivity is judged on face time only."""
    overall, att, pos = scores["overall_score"], scores["attention"], scores["positivity"]
    affect = 100.0 * overall / att if att > 0 else 0.0
    return (
        f"The overall score mixes presence with affect: it is attention ({att:.1f}: the share of "
        f"the time with an attentive face: present, not looking away, eyes open) times the mean "
        f"affect of that time ({affect:.1f}: 50 for a neutral face, 100 smiling, 0 frowning); time "
        f"without an attentive face counts 0, so {att:.1f} x {affect:.1f} / 100 = {overall:.1f}. "
        f"Positivity ({pos:.1f}) is judged on the time with a face only and does not enter it."
    )


def settings_changed(result: Analysis) -> dict[str, object]:
    """The analysis settings that differ from their defaults (--config)."""
    from .config import AnalysisConfig

    default = AnalysisConfig().as_dict()
    return {k: v for k, v in result.config.as_dict().items() if v != default.get(k)}


def report_dict(result: Analysis) -> dict[str, object]:
    """The content of report.json."""
    inp, lab, sc = result.inputs, result.labelled, result.scores
    labels, counts = np.unique(lab.label.astype(str), return_counts=True)
    n = int(inp.frames.size)
    class_distribution = {name: 0 for name in LABELS + [NO_FACE]}
    class_distribution.update({str(k): int(v) for k, v in zip(labels, counts, strict=True)})
    total_ms = float(result.duration_ms.sum())
    ev = result.events.copy()
    ev[["start_ms", "end_ms", "duration_ms"]] = ev[["start_ms", "end_ms", "duration_ms"]].round(1)
    face = {} if inp.face_id is None else {"face_id": inp.face_id}
    return {
        "clip": clip_of(inp.paths),
        **face,
        "overall_score": round(sc.overall_score, 1),
        "frames_scored": int(inp.face.sum()),
        "class_distribution": class_distribution,
        "sub_scores": {
            "positivity": round(sc.positivity, 1),
            "expressiveness": round(sc.expressiveness, 1),
            "attention": round(sc.attention, 1),
        },
        "score_explained": score_explained({"overall_score": sc.overall_score, "attention": sc.attention,
                                            "positivity": sc.positivity}),
        "formulas": FORMULAS,
        "events": {"summary": result.event_summary, "list": ev.to_dict(orient="records")},
        "speaking": speaking(result),
        "time_fractions": sc.time_fractions,
        "label_priority": PRIORITY + [NO_FACE],
        "thresholds": {
            "configured": result.config.as_dict(),
            "effective": {k: round(float(v), 6) for k, v in lab.thresholds.items()},
        },
        "baseline": result.baseline.as_dict(),
        "made_by": dict(inp.made_by),
        "analysis_settings_changed": settings_changed(result),
        "caution": caution(inp.made_by),
        "inputs": {
            **inp.paths,
            "features_from": inp.source,
            "fps": inp.fps,
            "frames": n,
            "frames_with_face": int(inp.face.sum()),
            "duration_s": round(total_ms / 1000.0, 3),
            "timestamps": inp.time_source,
        },
        "version": __version__,
    }


def _html(result: Analysis, report: dict, png: bytes | None, in_batch: bool = False) -> str:
    """The report page; ``in_batch``: one of several clips (``--logs``), linking back to their index."""
    esc = html.escape
    sub = report["sub_scores"]
    rows = (
        "".join(
            f"<tr><td>{esc(str(r['type']))}</td><td>{r['start_frame']}</td><td>{r['end_frame']}</td>"
            f"<td>{r['start_ms'] / 1000:.2f}</td><td>{r['duration_ms']:.0f}</td></tr>"
            for r in report["events"]["list"]
        )
        or '<tr><td colspan="5">no events</td></tr>'
    )
    summary = "".join(
        f"<tr><td>{esc(k)}</td><td>{v['count']}</td><td>{v['rate_per_min']}</td>"
        f"<td>{v['mean_duration_ms']}</td><td>{v['total_ms'] / 1000:.2f}</td></tr>"
        for k, v in report["events"]["summary"].items()
    )
    fractions = "".join(
        f"<tr><td>{esc(k)}</td><td>{100 * v:.1f}%</td></tr>"
        for k, v in report["time_fractions"].items()
    )
    formulas = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in FORMULAS.items())
    img = (
        f'<img alt="timeline" style="max-width:100%" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else "<p>(no plot)</p>"
    )
    src = esc(", ".join(f"{k}: {v}" for k, v in result.inputs.paths.items()))
    made = _made_by_html(report["made_by"], report["analysis_settings_changed"])
    warn = f'<p class="caution">{esc(report["caution"])}</p>' if report["caution"] else ""
    base = report["baseline"]
    if base["against_typical"]:
        base_text = f"the typical neutral face ({esc(base['method'])})"
    else:
        runs = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in base["frames"])
        base_text = (f"{base['n_frames']} frames ({esc(base['method'])}), shaded gold on the timeline: "
                     f"frames {esc(runs)}")
    face = "" if result.inputs.face_id is None else f": face {result.inputs.face_id}"
    back = ('\n<p><a href="../index.html">every face of this clip</a></p>' if result.inputs.face_id is not None
            else '\n<p><a href="../index.html">every clip of this run</a></p>' if in_batch else "")

    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>facemap expression report{face}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
.score{{font-size:3em;font-weight:bold;margin:0.2em 0}}.explain{{max-width:60em;color:#333}}
td.l{{text-align:left}}.caution{{background:#fff4d6;border-left:4px solid #e0a800;padding:0.5em 1em;max-width:60em}}</style></head><body>
<h1>Expression report{face}</h1>
<p>{src} &middot; facemap {esc(__version__)}</p>
<p>{esc(_made_by_line(report["made_by"]))} (<a href="#made-by">details</a>)</p>{back}
{warn}
<p class="score">{report["overall_score"]:.1f} / 100</p>
<p class="explain">{esc(report["score_explained"])}</p>
<table><tr><th>positivity</th><th>expressiveness</th><th>attention</th><th>frames with a face</th><th>speaking</th></tr>
<tr><td>{sub["positivity"]:.1f}</td><td>{sub["expressiveness"]:.1f}</td><td>{sub["attention"]:.1f}</td>
<td>{report["frames_scored"]} / {report["inputs"]["frames"]}</td>
<td>{report["speaking"]["time_s"]:.1f} s ({100 * report["speaking"]["share_of_face_time"]:.0f}% of face time)</td></tr></table>
{img}
<p>Neutral reference (baseline): {base_text}.</p>
<h2>Events</h2>
<table><tr><th>event</th><th>count</th><th>per minute</th><th>mean ms</th><th>total s</th></tr>{summary}</table>
<table><tr><th>event</th><th>first frame</th><th>last frame</th><th>start s</th><th>duration ms</th></tr>{rows}</table>
<h2>Share of time per label</h2><table>{fractions}</table>
<h2>How the scores are computed</h2><ul>{formulas}</ul>
<h2 id="made-by">What made this report</h2>{made}
</body></html>
"""


def _made_by_line(made_by: Mapping[str, object]) -> str:
    """One line naming the landmarker, detector and model file of the logs."""
    if not made_by:
        return "landmarker, detector and model: not recorded in the logs"
    model = made_by.get("model")
    return (f"landmarks by {made_by.get('landmarker', '?')} on {made_by.get('detector', '?')} face boxes"
            + (f", model {Path(str(model)).name}" if model else ""))


def _made_by_html(made_by: Mapping[str, object], analysis: Mapping[str, object]) -> str:
    """The table of what made the logs (infer.py's record) and the analysis settings changed."""
    esc = html.escape
    if not made_by:
        rows = ('<tr><td>logs</td><td class="l">not recorded (logs written before facemap recorded it, or by '
                "another tool): landmarker, detector and model unknown</td></tr>")
    else:
        rows = ""
        for key, label in RUN_INFO_LABELS.items():
            value = made_by.get(key)
            if isinstance(value, Mapping):
                value = ", ".join(f"{k}: {v}" for k, v in value.items())
            if value not in (None, ""):
                rows += f'<tr><td>{esc(label)}</td><td class="l"><code>{esc(str(value))}</code></td></tr>'
        settings = made_by.get("settings")
        shown = ", ".join(f"{k} {v}" for k, v in settings.items()) if isinstance(settings, Mapping) else ""
        rows += f'<tr><td>infer.py settings not at their defaults</td><td class="l">{esc(shown or "none")}</td></tr>'
    shown = ", ".join(f"{k} {v}" for k, v in analysis.items())
    rows += f'<tr><td>analysis settings not at their defaults</td><td class="l">{esc(shown or "none")}</td></tr>'
    return f"<table>{rows}</table>"


def face_folder(face_id: int) -> str:
    """The folder of one face's analysis: ``face_<id>``."""
    return f"face_{face_id}"


def write_outputs(
    analyses: Mapping[int, Analysis] | Analysis,
    out_dir: Path,
    plots: bool = True,
    paths: Mapping[str, str] | None = None,
    in_batch: bool = False,
) -> list[dict[str, object]]:
    """Write a clip's analyses (``analyze_logs``) into ``out_dir``; returns their summary rows.

    Logs without face_id (``one_face``): OUTPUT_NAMES in ``out_dir`` (one row, stem ""); with
    face_id: those in ``face_<id>/`` per face, with a report.json listing the faces, summary.csv
    and index.html (a row per face, stem ``face_<id>``; ``paths``: the clip's logs, for that
    report when there is no face). ``plots=False``: no PNG; ``in_batch``: one clip of several (``--logs``), its pages link
    back to their index.html one folder up. Refuses (OutputError) a folder that
    holds another clip's analysis or several clips' (``refuse_mixing``). One ``Analysis`` (as
    ``analyze`` returns) is written as one face."""
    if not isinstance(analyses, Mapping):
        analyses = {0: analyses}
    single = one_face(analyses)
    if single is not None:
        report, files = _files(single, plots, in_batch)
        with HoldSignals():  # the clip's files are replaced together: a stop lands before or after
            _write_files(Path(out_dir), report, files)
        return [summary_row("", report)]
    first = next(iter(analyses.values()), None)
    logs = dict(first.inputs.paths) if first is not None else dict(paths or {})
    clip = clip_of(logs)
    with OutputDir(Path(out_dir)) as out:
        refuse_mixing(out, "faces", clip)
        rows, listed, made = [], [], {fid: _files(analyses[fid], plots) for fid in sorted(analyses)}
        for fid, (report, _) in made.items():
            name = face_folder(fid)
            rows.append(summary_row(name, report))
            face = report["inputs"]["frames_with_face"]
            listed.append({"face_id": fid, "folder": name, "frames_with_face": face, "overall_score": report["overall_score"]})
        frames = int(first.inputs.frames.size) if first is not None else None  # no face: not known
        doc = {"clip": clip, "faces": listed, "inputs": {**logs, "frames": frames}, "version": __version__}
        with HoldSignals():  # every face's files and the clip's report together
            for fid, (report, files) in made.items():
                _write_files(out.path / face_folder(fid), report, files)
            atomic_write_bytes(out.file("report.json"), (json.dumps(doc, indent=2) + "\n").encode())
            write_tables(out, rows, f"{len(rows)} face{'s' if len(rows) != 1 else ''} of {clip['stem'] or '?'}", in_batch)
    return rows


def _files(result: Analysis, plots: bool, in_batch: bool = False) -> tuple[dict[str, object], dict[str, bytes | None]]:
    """One face's report.json content and the bytes of each of its files, all made before any
    is written (so that writing them takes moments)."""
    report = report_dict(result)
    png = None
    if plots:
        from .plots import timeline_png

        png = timeline_png(result)
    table = result.frame_table().to_csv(index=False, lineterminator="\n", na_rep="")
    files = {  # in the order they were always written
        "score.txt": f"{result.scores.overall_score:.1f}\n".encode(),
        "expressions.csv": table.encode("utf-8"),
        "report.json": (json.dumps(report, indent=2, allow_nan=False, default=_json_default) + "\n").encode(),
        "timeline.png": png,
        "report.html": _html(result, report, png, in_batch).encode("utf-8"),
    }
    return report, files


def _write_files(out_dir: Path, report: dict[str, object], files: dict[str, bytes | None]) -> None:
    """One face's files into ``out_dir``; a file without bytes (no plot) is removed: one from
    an earlier run would not match this report."""
    with OutputDir(out_dir) as out:
        refuse_mixing(out, "clip", report["clip"])
        paths = {name: out.file(name) for name in OUTPUT_NAMES if files[name] is not None}
        for name, data in files.items():
            if data is None:
                out.forget(name)
            else:
                atomic_write_bytes(paths[name], data)


def refuse_mixing(out: OutputDir, writing: str, clip: Mapping[str, str] | None = None) -> None:
    """Raise OutputError when ``out`` holds facemap's analysis that ``writing`` would mix with:
    ``"clip"`` (one clip's files), ``"faces"`` (a clip's ``face_<id>/`` folders) or ``"clips"``
    (one folder per clip of ``clip``s). Facemap never overwrites another clip's analysis; its own
    earlier analysis of ``clip`` is replaced (writing faces over it: its one-face files go)."""
    old = read_report(out.path / "report.json") if out.wrote("report.json") else None
    if writing == "clips":
        if out.wrote("report.json"):
            raise OutputError(
                f"{out.path}: holds the analysis of one clip ({report_clip(old or {})['stem'] or '?'}, "
                "report.json); facemap does not mix several clips in with it: choose another {output}"
            )
        return
    by_face = old is not None and "faces" in old
    if writing == "clip" and by_face:
        raise OutputError(
            f"{out.path}: holds the analysis of several faces of {report_clip(old)['stem'] or '?'} "
            "(report.json, face_<id>/); facemap does not write one face over them: choose another {output}"
        )
    if out.wrote(SUMMARY_NAMES[0]) and (old is None or writing == "clip"):
        raise OutputError(
            f"{out.path}: holds the analysis of several clips ({SUMMARY_NAMES[0]}); facemap does "
            "not write one clip over them: choose another {output}"
            + (", or add this clip to them with {logs}" if writing == "clip" else "")
        )
    there = report_clip(old) if old is not None else None
    if there is not None and (there["stem"], there["logs"]) != (clip["stem"], clip["logs"]):
        raise OutputError(
            f"{out.path}: holds the analysis of another clip ({there['stem'] or '?'}, logs in "
            f"{there['logs'] or '?'}); facemap does not overwrite it: choose another {{output}}"
            + (", or analyse several clips at once with {logs}" if writing == "clip" else "")
        )
    if writing == "faces" and old is not None and not by_face:  # this clip analysed as one face
        for name in OUTPUT_NAMES:
            if name != "report.json":
                out.forget(name)


def _json_default(obj: object) -> object:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return None if not np.isfinite(obj) else float(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
