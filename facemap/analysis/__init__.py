"""Expression analysis: features -> baseline -> labels -> events -> scores -> report.

``analyze_logs`` is the one call the CLI makes for a clip (one Analysis per face: a single one
for logs without a ``face_id`` column); the steps are importable on their own.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FacemapError
from ..threedmm.decode import Basis
from .baseline import Baseline, check_frame_range, compute_baseline, parse_frame_range
from .config import AnalysisConfig, for_source, load_config, threedmm_typical
from .events import frame_durations_ms, label_events
from .inputs import Inputs, load_inputs
from .labels import LABELS, NO_FACE, PRIORITY, Labelled, label_frames
from .scores import Scores, compute_scores

__all__ = [
    "LABELS",
    "NO_FACE",
    "PRIORITY",
    "Analysis",
    "AnalysisConfig",
    "Baseline",
    "Inputs",
    "analyze",
    "analyze_faces",
    "analyze_logs",
    "face_baseline",
    "load_config",
    "load_inputs",
    "one_face",
    "parse_frame_range",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Analysis:
    """Everything the analyzer found for one clip."""

    inputs: Inputs
    config: AnalysisConfig
    duration_ms: np.ndarray
    baseline: Baseline
    labelled: Labelled
    scores: Scores
    events: pd.DataFrame
    event_summary: dict[str, dict[str, float]]

    def frame_table(self) -> pd.DataFrame:
        """One row per frame: frame, timestamp_ms, label, score, features, signals, 0/1 labels."""
        inp, lab = self.inputs, self.labelled
        head = pd.DataFrame(
            {
                "frame": inp.frames,
                "timestamp_ms": np.round(inp.timestamp_ms, 3),
                "label": lab.label,
                "score": np.round(self.scores.per_frame, 1),
            }
        )
        feats = inp.features.round(5).reset_index(drop=True)
        sig = lab.signals.round(5).reset_index(drop=True)
        sig.loc[~inp.face] = np.nan
        return pd.concat([head, feats, sig, lab.flags.reset_index(drop=True)], axis=1)


def _say_no_face(where: object) -> None:
    """The one warning of a clip without a face in any frame, naming its log when known."""
    log.warning("%sno frame has a face; every frame is labelled %s", f"{where}: " if where else "", NO_FACE)


def analyze(
    inputs: Inputs,
    config: AnalysisConfig | None = None,
    baseline_frames: tuple[int, int] | None = None,
) -> Analysis:
    """Run baseline, labels, events and scores on loaded inputs (raw params: judged by the
    threedmm_* settings, ``config.for_source``)."""
    cfg = config or AnalysisConfig()
    judged = for_source(cfg, inputs.source)
    dur = frame_durations_ms(inputs.timestamp_ms, cfg.frame_gap_factor)
    face = inputs.face
    if not face.any():
        _say_no_face(next((inputs.paths[k] for k in ("meta", "landmarks", "raw") if k in inputs.paths), None))
    typical = threedmm_typical(inputs.typical, cfg) if inputs.typical else None
    base = face_baseline(inputs.features, inputs.frames, face, inputs.timestamp_ms, dur, cfg,
                         typical, baseline_frames)
    labelled = label_frames(
        inputs.features,
        face,
        inputs.timestamp_ms,
        dur,
        base,
        judged,
        undo_foreshortening=inputs.source == "landmarks",
        still=len(inputs.frames) == 1,
    )
    scores = compute_scores(
        labelled.flags, face, dur, labelled.signals, labelled.thresholds, labelled.brief_closure
    )
    events, summary = label_events(labelled.flags, face, inputs.timestamp_ms, dur, inputs.frames)
    return Analysis(inputs, cfg, dur, base, labelled, scores, events, summary)


def face_baseline(
    features: pd.DataFrame,
    frames: np.ndarray,
    face: np.ndarray,
    timestamp_ms: np.ndarray,
    duration_ms: np.ndarray,
    cfg: AnalysisConfig,
    typical: dict[str, float] | None = None,
    baseline_frames: tuple[int, int] | None = None,
) -> Baseline:
    """The reference face the labels of N frames are judged against: the person's own
    (``compute_baseline``) once ``cfg.min_baseline_ms`` of face time is there (or the frames
    named by ``baseline_frames``), else the typical neutral face (``typical``, or the settings'
    ``typical_face``). The offline analyzer calls it on a whole clip, the online one
    (``online.OnlineAnalyzer``) on the frames seen so far."""
    if not face.any():
        nan = {c: float("nan") for c in [*features.columns, "ear_open"]}
        return Baseline(nan, {c: 1.0 for c in features.columns}, 0, "none (no face)")
    typical = typical or typical_face(cfg)
    base = compute_baseline(
        features, frames, face, baseline_frames, timestamp_ms, typical,
        held={"mar": cfg.held_mar_excess, "brow_raise": cfg.held_brow_excess}, cfg=cfg,
    )
    face_ms = float(np.sum(duration_ms[face])) if len(duration_ms) > 1 else 0.0
    if baseline_frames is None and face_ms < cfg.min_baseline_ms:
        # a photo or a short clip: too few frames to tell this person's neutral face
        base = typical_baseline(base, typical, face_ms)
    return base


def typical_face(cfg: AnalysisConfig) -> dict[str, float]:
    """The typical neutral face of 2D iBUG-68 landmarks, from the settings."""
    return {
        "mouth_width": cfg.typical_mouth_width,
        "lip_corner_lift": cfg.typical_lip_corner_lift,
        "ear": cfg.typical_ear,
        "mar": cfg.typical_mar,
        "jaw_open": cfg.typical_jaw_open,
        "brow_raise": cfg.typical_brow_raise,
    }


def typical_baseline(base: Baseline, typical: dict[str, float], face_ms: float) -> Baseline:
    """``base`` with the typical neutral face as its reference: shape features from
    ``typical``, the open-eye level its EAR, a frontal head; the spread stays the clip's."""
    median = dict(base.median)
    for col in ("mouth_width", "lip_corner_lift", "mar", "jaw_open", "brow_raise"):
        if col in typical:
            median[col] = typical[col]
    if "ear" in typical:
        median["ear_open"] = typical["ear"]
    median.update(pitch_deg=0.0, yaw_deg=0.0)
    method = f"typical neutral face ({face_ms / 1000.0:.1f} s of face: too short for a baseline)"
    return replace(
        base, median=median, method=method, typical=dict(typical), against_typical=True, held={}
    )


def analyze_logs(
    landmarks: Path | None = None,
    meta: Path | None = None,
    raw: Path | None = None,
    basis: Basis | None = None,
    fps: float | None = None,
    config: AnalysisConfig | None = None,
    baseline_frames: tuple[int, int] | None = None,
    basis_dir: Path | None = None,
) -> dict[int, Analysis]:
    """Load the logs and analyse each face (no files written; see ``report.write_outputs``):
    face_id -> that face's Analysis, each with its own baseline, over every frame of the clip
    (``{0: analysis}`` for logs without a ``face_id`` column). ``baseline_frames`` applies to
    every face; of several faces, one not seen in those frames gets the automatic baseline (a
    warning says which), unless no face is. The basis is looked for (``basis``, else
    ``basis_dir`` or the cache) only when ``raw`` holds 3DMM params."""
    baseline_frames = check_frame_range(baseline_frames)
    faces = load_inputs(landmarks, meta, raw, basis, fps, basis_dir, config)
    if not faces:  # several faces a frame, none in any: no face to analyse (one face: analyze says it)
        _say_no_face(meta or landmarks or raw)
    unseen: set[int] = set()
    if baseline_frames is not None and len(faces) > 1:
        a, b = baseline_frames
        unseen = {fid for fid, i in faces.items() if not (i.face & (i.frames >= a) & (i.frames <= b)).any()}
        if unseen == set(faces):
            unseen = set()  # the range is wrong for everyone: each face's analysis says so
        for fid in sorted(unseen):
            log.warning("face_id %d: no frame with this face in --baseline-frames %d:%d; its baseline "
                        "is chosen as without the option", fid, a, b)
    out = {}
    for fid, inputs in faces.items():
        try:
            out[fid] = analyze(inputs, config, None if fid in unseen else baseline_frames)
        except FacemapError as exc:  # say whose analysis it was
            if inputs.face_id is None:
                raise
            raise type(exc)(f"{exc.template} (face_id {fid})") from None
    return out


def one_face(analyses: Mapping[int, Analysis]) -> Analysis | None:
    """The Analysis of logs without a ``face_id`` column (its files are written flat), else None
    (logs with the column: one ``face_<id>/`` folder per face)."""
    only = analyses.get(0) if len(analyses) == 1 else None
    return only if only is not None and only.inputs.face_id is None else None


def analyze_faces(*args: object, **kwargs: object) -> dict[int, Analysis]:
    """Deprecated: ``analyze_logs`` analyses logs with and without ``face_id`` alike."""
    warnings.warn("analyze_faces is deprecated; use analyze_logs", DeprecationWarning, stacklevel=2)
    return analyze_logs(*args, **kwargs)
