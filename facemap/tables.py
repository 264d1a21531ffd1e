"""``facemap.analyze(source)``: landmarks and the expression analysis of a picture or a video as
one pandas table, the same as ``infer.py`` + ``analyze_expressions.py`` give.

The source runs through ``FaceMap.process`` into the very logs ``infer.py`` writes (in a
temporary folder), the offline analyzer reads them as ``analyze_expressions.py`` does (the
whole clip's baseline, after the pass), and ``load_logs`` joins the two: one row per frame and
face. Nothing is left on disk.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .api import DEFAULT_LANDMARKER, FaceMap, _mode
from .api import open as open_facemap
from .errors import ClosedError, UsageError
from .io.schema import FACE_ID, face_id_column, log_path
from .sinks import CsvLogSink, picture_stem
from .threedmm.decode import expression_coefficients
from .types import N_EXP, N_PARAMS, Frame, Mode

if TYPE_CHECKING:
    import pandas as pd

    from .analysis.config import AnalysisConfig

log = logging.getLogger(__name__)

# The keyword arguments of FaceMap.process; the other options go to facemap.open.
_PROCESS_OPTIONS = tuple(p for p in inspect.signature(FaceMap.process).parameters if p not in ("self", "source", "sinks"))


class _LogsByStem:
    """A CsvLogSink per input (``frame.stem``), as infer.py writes each input's logs; with
    ``pictures`` (image mode) each array is an input of its own, ``<stem>_<frame>`` (as
    ``ImageFilesSink`` names them): a picture, judged on its own."""

    def __init__(self, folder: Path, raw: bool, with_face_id: bool, pictures: bool = False) -> None:
        self.folder, self.raw, self.with_face_id, self.pictures = folder, raw, with_face_id, pictures
        self.sinks: dict[str, CsvLogSink] = {}

    def write(self, frame: Frame) -> None:
        """This frame's rows in its input's logs."""
        stem = picture_stem(frame) if self.pictures else frame.stem or "arrays"
        sink = self.sinks.get(stem)
        if sink is None:
            sink = self.sinks[stem] = CsvLogSink(self.folder, stem, raw=self.raw, landmarks=True,
                                                 with_face_id=self.with_face_id, claim=False)  # a temp folder of ours
        sink.write(frame)

    def close(self, error: BaseException | None = None) -> None:
        """Finish every input's logs."""
        for sink in self.sinks.values():
            sink.close(error)


class _TempPathsQuiet(logging.Filter):
    """While in use, the analyzer's warnings that name ``folder`` (facemap.analyze's own temp
    logs: a path the user never saw) or say no frame has a face are kept back and counted; only
    this thread's: another thread's analysis (another facemap.analyze) keeps its warnings."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder, self.dropped, self._thread = str(folder), 0, threading.get_ident()
        self._loggers = [logging.getLogger("facemap.analysis"), logging.getLogger("facemap.analysis.inputs")]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self._thread:
            return True
        text = record.getMessage()
        if self.folder in text or text.startswith("no frame has a face"):
            self.dropped += 1
            return False
        return True

    def __enter__(self) -> _TempPathsQuiet:
        for lg in self._loggers:
            lg.addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for lg in self._loggers:
            lg.removeFilter(self)


def _without_a_face(table: pd.DataFrame) -> pd.DataFrame:
    """A clip's logs table (several faces, no face in any frame: no analysis to join) with the
    columns an analysis of such a clip has: label no_face, score 0, the features, signals and
    measures NaN, the labels 0."""
    import numpy as np
    import pandas as pd

    from .analysis.features import FEATURE_COLUMNS
    from .analysis.labels import LABELS, SIGNALS
    from .analysis.online import MEASURES
    from .logs import expression_columns

    expr = pd.DataFrame({"frame": table["frame"], "label": "no_face", "score": 0.0})
    expr = pd.concat([expr, pd.DataFrame(np.nan, index=expr.index, columns=[*FEATURE_COLUMNS, *SIGNALS]),
                      pd.DataFrame(0, index=expr.index, columns=list(LABELS))], axis=1)
    keys = ["frame", FACE_ID] if FACE_ID in table else ["frame"]
    table = table.merge(expression_columns(expr, table, keys), on="frame", how="left")
    return pd.concat([table, pd.DataFrame(np.nan, index=table.index, columns=[f"measure_{m}" for m in MEASURES])], axis=1)


def analyze(
    source: object,
    landmarker: object = DEFAULT_LANDMARKER,
    *,
    config: AnalysisConfig | None = None,
    baseline_frames: tuple[int, int] | None = None,
    **options: object,
) -> pd.DataFrame:
    """Landmarks and expression analysis of ``source`` as one ``pandas.DataFrame``.

    source: what ``FaceMap.process`` takes (an image or video file, a folder or glob, a list, a
        camera index, BGR arrays). landmarker: as ``facemap.open`` (a name or an object, or an
        open ``FaceMap`` to reuse). config: the analyzer's settings (``AnalysisConfig``;
        default as ``analyze_expressions.py``). baseline_frames: (A, B) the frames of the
        person's neutral face (``--baseline-frames A:B``). options: ``facemap.open``'s
        (``detector``, ``max_faces``, ``model``, ...) and ``process``'s (``every``,
        ``max_frames``, ``start_s``, ``end_s``, ``mode``, ``fps``).

    One row per frame and face (a frame without a face: one row, its labels False): ``stem``
    (which input), ``face_id``, the meta log's ``frame``, ``status``, ``reason``,
    ``box_x0..box_y1``, ``timestamp_ms``, ``pitch_deg``, ``yaw_deg``, ``roll_deg``; the
    landmarks ``lm_x0, lm_y0, ..., lm_x67, lm_y67``; the raw 3DMM parameters ``p0..p264`` and
    the 39 expression coefficients ``exp0..exp38`` (``Face.expression``; FaceMap only); then the analyzer's ``expressions.csv`` columns (``label``, ``score``, the
    features, the decision signals) with the labels as bool columns (``smile``, ``blink``,
    ...), and the measures ``measure_<name>`` (1.0 at each label's threshold;
    ``facemap.analysis.online.MEASURES``). A video's rows equal what ``infer.py
    --dump-landmarks-csv`` then ``analyze_expressions.py`` write; a picture is judged against
    the typical neutral face, as the analyzer judges a photo (arrays with ``mode="image"``:
    each one a picture, stem ``frames_<n>``).

    ``df.attrs["events"]``: the events, one row each (``stem``, ``face_id``, ``type``,
    ``start_frame``, ``end_frame``, ``start_ms``, ``end_ms``, ``duration_ms``);
    ``df.attrs["scores"]``: per input and face, the analyzer's overall score and sub-scores.
    """
    import numpy as np
    import pandas as pd

    from .analysis import analyze_logs
    from .analysis.baseline import check_frame_range
    from .analysis.config import AnalysisConfig
    from .analysis.labels import LABELS
    from .analysis.online import measures
    from .analysis.report import write_outputs
    from .logs import load_logs

    if config is not None and not isinstance(config, AnalysisConfig):
        raise UsageError(f"config must be a facemap.analysis.AnalysisConfig, got {type(config).__name__}")
    baseline_frames = check_frame_range(baseline_frames)  # before the frames, not after them
    if isinstance(landmarker, FaceMap) and landmarker.closed:  # its own words: the FaceMap was given
        raise ClosedError("the FaceMap given is closed; pass an open one, or a landmarker name")
    run_opts = {k: options.pop(k) for k in list(options) if k in _PROCESS_OPTIONS}
    if isinstance(landmarker, FaceMap):
        if options:
            raise UsageError(f"{', '.join(sorted(options))}: options of facemap.open; the FaceMap given is open already")
        fm, own = landmarker, False
    else:
        fm, own = open_facemap(landmarker, **options), True
    with_face_id = face_id_column(fm.options.max_faces)
    tables, events, scores = [], [], []
    try:
        with tempfile.TemporaryDirectory(prefix="facemap-analyze-") as tmp:
            folder = Path(tmp)
            params = getattr(fm.landmarker, "gives_params", True) or fm.fitter is not None
            sink = _LogsByStem(folder, params, with_face_id, _mode(run_opts.get("mode")) is Mode.IMAGE)
            for _ in fm.process(source, sinks=[sink], **run_opts):
                pass
            for name in sink.sinks:
                lm, meta = log_path(folder, name, "landmarks"), log_path(folder, name, "meta")
                with _TempPathsQuiet(folder) as quiet:  # the logs are ours, in a temp folder: not the user's
                    analyses = analyze_logs(lm, meta, config=config, baseline_frames=baseline_frames)
                if quiet.dropped:
                    log.warning("%s: no face in any frame; every frame is no_face", name)
                out = folder / "analysis" / name
                write_outputs(analyses, out, plots=False, paths={"landmarks": str(lm), "meta": str(meta)})
                table = load_logs(folder / "logs", name, analysis=out)
                if FACE_ID not in table:
                    table.insert(1, FACE_ID, pd.array(np.where(table["status"] == "no_face", pd.NA, 0), dtype="Int64"))
                table.insert(0, "stem", name)
                raw = [f"p{i}" for i in range(N_PARAMS)]
                if all(c in table for c in raw):  # FaceMap: the 39 expression coefficients, as Face.expression
                    exp = expression_coefficients(table[raw].to_numpy(dtype=np.float64))
                    table = pd.concat([table, pd.DataFrame(exp, columns=[f"exp{i}" for i in range(N_EXP)])], axis=1)
                parts = []
                for fid, a in analyses.items():
                    m = measures(a.labelled.signals, a.labelled.thresholds).add_prefix("measure_")
                    m.loc[~a.inputs.face] = np.nan
                    m.insert(0, "frame", a.inputs.frames)
                    m.insert(1, FACE_ID, fid)
                    parts.append(m)
                    ev = a.events.copy()
                    ev.insert(0, "stem", name)
                    ev.insert(1, FACE_ID, fid)
                    events.append(ev)
                    scores.append({"stem": name, FACE_ID: fid, "overall_score": a.scores.overall_score,
                                   "positivity": a.scores.positivity, "expressiveness": a.scores.expressiveness,
                                   "attention": a.scores.attention})
                if parts:
                    m = pd.concat(parts, ignore_index=True)
                    m[FACE_ID] = m[FACE_ID].astype("Int64")
                    table = table.merge(m, on=["frame", FACE_ID], how="left")
                else:  # several faces, and no face in any frame: the columns of a clip without one
                    table = _without_a_face(table)
                tables.append(table)
    finally:
        if own:
            fm.close()
    df = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    for name in LABELS:
        if name in df:
            df[name] = df[name].fillna(0).astype(bool)
    # the columns even with no face anywhere (no analysis, no events table to take them from)
    none = pd.DataFrame(columns=["stem", FACE_ID, "type", "start_frame", "end_frame", "start_ms", "end_ms", "duration_ms"])
    df.attrs["events"] = pd.concat(events, ignore_index=True) if events else none
    df.attrs["scores"] = pd.DataFrame(scores, columns=["stem", FACE_ID, "overall_score", "positivity",
                                                       "expressiveness", "attention"])
    return df
