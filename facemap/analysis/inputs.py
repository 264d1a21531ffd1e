"""Load the per-frame logs (through facemap.records only), check they belong together, and build
one row per frame: frame number, timestamp, face present, features."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError, UsageError, number
from ..io.records import (
    LandmarkLog,
    MetaLog,
    RawLog,
    check_landmark_rows,
    has_face_id,
    read_landmarks,
    read_meta,
    read_raw,
    read_run_info,
)
from ..io.schema import NO_FACE_ID
from ..threedmm.decode import Basis, Decoder
from .config import AnalysisConfig
from .features import FEATURE_COLUMNS, SHAPE_FEATURES, canonical_features, landmark_features

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    """N frames: ``frames`` (N,) 1-based, ``timestamp_ms`` (N,), ``face`` (N,) bool, ``features``
    (N rows, NaN where no face), ``source`` ("landmarks" or "raw+basis"), ``paths`` of the logs;
    ``typical``: shape features of a typical neutral face when the input defines one (the basis
    mean face with raw params), else None (the analysis settings give them); ``face_id``: the
    face these are of, in logs with a face_id column (several faces a frame), else None;
    ``made_by``: what made the logs (landmarker, detector, model, settings), {} when unknown."""

    frames: np.ndarray
    timestamp_ms: np.ndarray
    face: np.ndarray
    features: pd.DataFrame
    source: str
    paths: dict[str, str] = field(default_factory=dict)
    fps: float | None = None
    time_source: str = ""
    typical: dict[str, float] | None = None
    face_id: int | None = None
    made_by: dict = field(default_factory=dict)  # what made the logs (io.records.read_run_info), {} if unknown


def _check_against_meta(
    frames: np.ndarray,
    points: np.ndarray | None,
    meta: MetaLog,
    path: Path,
    cfg: AnalysisConfig,
) -> None:
    """Refuse logs that cannot come from the same run as the meta log (the nose tips of
    ``points`` outside the boxes: cfg.box_slack, cfg.min_inside_box)."""
    where = np.searchsorted(meta.frames, frames)
    where = np.clip(where, 0, meta.frames.size - 1)
    missing = meta.frames[where] != frames
    if missing.any():
        raise InputFileError(
            f"{path}: frame {int(frames[missing][0])} is not in {meta.path} "
            f"({int(missing.sum())} such frames); are the two logs from different videos?"
        )
    status = meta.status[where]
    absent = status == "no_face"
    if absent.any():
        raise InputFileError(
            f"{path}: frame {int(frames[absent][0])} has a face but {meta.path} says no_face "
            f"({int(absent.sum())} such frames); are the two logs from different videos?"
        )
    ok_frames = meta.frames[meta.status == "ok"]
    lost = ~np.isin(ok_frames, frames)
    if lost.any():
        raise InputFileError(
            f"{path}: has no row for frame {int(ok_frames[lost][0])} that {meta.path} marks ok "
            f"({int(lost.sum())} such frames); are the two logs from different videos?"
        )
    if points is None:
        return
    boxes = meta.boxes[where]
    usable = (
        np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    )
    if not usable.any():
        return
    c = points[usable, 30]  # the nose tip
    b = boxes[usable]
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    slack = cfg.box_slack
    inside = (
        (c[:, 0] >= b[:, 0] - slack * w)
        & (c[:, 0] <= b[:, 2] + slack * w)
        & (c[:, 1] >= b[:, 1] - slack * h)
        & (c[:, 1] <= b[:, 3] + slack * h)
    )
    if inside.mean() < cfg.min_inside_box:
        raise InputFileError(
            f"{path}: landmarks lie outside the face boxes of {meta.path} in "
            f"{100 * (1 - inside.mean()):.0f}% of frames; are the two logs from different videos?"
        )


def _timestamps(
    frames: np.ndarray, sources: list[tuple[Path, np.ndarray, np.ndarray]], fps: float | None
) -> tuple[np.ndarray, str]:
    """(timestamps, where they came from) for ``frames``: from the first log that has them
    (interpolated over frame numbers for frames it lacks), else from ``fps``."""
    for path, fr, ts in sources:
        if np.isinf(ts).any():
            bad = int(fr[np.argmax(np.isinf(ts))])
            raise InputFileError(
                f"{path}: timestamp_ms is not a finite number at frame {bad}; fix it or pass {{fps}}"
            )
        if np.isnan(ts).any():
            bad = int(fr[np.argmax(np.isnan(ts))])
            raise InputFileError(
                f"{path}: timestamp_ms is empty at frame {bad}; fill it or pass {{fps}}"
            )
        if fr.size > 1 and (np.diff(ts) <= 0).any():
            bad = int(fr[1:][np.argmax(np.diff(ts) <= 0)])
            raise InputFileError(
                f"{path}: timestamp_ms does not increase at frame {bad}; timestamps must grow with frames"
            )
        if fps is not None:
            log.info("using the timestamps in %s; --fps %s is ignored", path, fps)
        if fr.size == 1:
            step = 1000.0 / fps if fps is not None else 0.0
            return ts[0] + (frames - fr[0]) * step, f"timestamp_ms in {path}"
        return _extrap(frames, fr, ts), f"timestamp_ms in {path}"
    if fps is None and frames.size == 1:
        return np.zeros(1), "single frame"  # an image: no time axis needed
    if fps is None:
        raise UsageError(
            "the logs have no timestamp_ms column; pass {fps} (the video's frame rate)"
        )
    return (frames - 1) * (1000.0 / fps), f"--fps {fps:g}"


def _extrap(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Linear interpolation over frame numbers, extrapolated with the mean frame interval."""
    out = np.interp(x, xp, fp)
    step = (fp[-1] - fp[0]) / (xp[-1] - xp[0])
    out = np.where(x < xp[0], fp[0] + (x - xp[0]) * step, out)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * step, out)


def mean_face_features(basis: Basis) -> dict[str, float]:
    """Shape features of the basis mean face (average identity, no expression): the 3DMM's own
    typical neutral face."""
    mean = np.asarray(basis.mean_face, dtype=np.float64).reshape(1, -1, 3)
    feats = canonical_features(mean, np.zeros((1, 3)))
    return {c: float(feats[c].iloc[0]) for c in SHAPE_FEATURES}


# A frame rate the analyzer takes: a time-lapse of one frame in 1000 s up to a 100 kHz camera
# (beyond either, a frame's time in ms is no longer a sane number: 1e-300 overflows).
FPS_RANGE = (0.001, 100_000.0)


def check_fps(fps: object) -> float:
    """``fps`` when it is a finite number in FPS_RANGE, else a UsageError naming ``{fps}``."""
    value = float(number(fps, "{fps}"))
    low, high = FPS_RANGE
    if not low <= value <= high:
        raise UsageError(f"{{fps}} must be a frame rate from {low:g} to {high:g}, got {fps!r}")
    return value


def _from_params(lm: LandmarkLog | None, rw: RawLog | None, cfg: AnalysisConfig) -> bool:
    """True when a face is judged from its raw params (the 3DMM path): params without
    landmarks, or both with ``landmarks_first`` 0."""
    return rw is not None and (lm is None or not cfg.landmarks_first)


def _read_logs(
    landmarks: Path | None,
    meta: Path | None,
    raw: Path | None,
    basis: Basis | None,
    fps: float | None,
    basis_dir: Path | None,
    cfg: AnalysisConfig,
) -> tuple[MetaLog | None, LandmarkLog | None, RawLog | None, Basis | None, dict[str, str]]:
    """Read the logs (strict), drop a raw log without params, find the basis when the params
    are what the face is judged from."""
    if landmarks is None and raw is None:
        raise UsageError("give {landmarks} (a landmarks log) or {raw} with a 3DMM basis")
    if fps is not None:
        check_fps(fps)
    mt = read_meta(meta, strict=True) if meta is not None else None
    lm, no_face = None, False
    if landmarks is not None:
        try:
            lm = read_landmarks(landmarks, strict=True)
        except InputFileError as exc:
            if mt is None and exc.template.endswith("has a header but no rows"):
                raise InputFileError(f"{exc.template}; if no frame of the clip had a face, give its meta log "
                                     "with {meta} too (every frame is then no_face)") from None
            if mt is None or (mt.status != "no_face").any():
                raise
            # The meta log says no frame has a face: an empty landmarks log is expected (the
            # analysis says so once, naming the meta log).
            log.debug("%s; %s has no face in any frame", exc, mt.path)
            no_face = True
    rw = read_raw(raw, strict=True, allow_empty=True) if raw is not None else None
    if mt is not None and (mt.status == "no_face").all():
        no_face = True  # the meta log says no frame has a face: logs without rows are expected
    if rw is not None and no_face and not np.isfinite(rw.params).any():
        rw = raw = None  # no face, no parameters: the analysis says so once
    if rw is not None and not np.isfinite(rw.params).any():
        if landmarks is None:
            raise InputFileError(
                f"{rw.path}: holds no 3DMM parameters (a dlib run logs none); pass the clip's "
                "landmarks log with {landmarks}"
                + ("" if mt is not None else ", or, if no frame of the clip had a face, its meta log with {meta}")
            )
        log.warning(
            "%s: holds no 3DMM parameters (a dlib run logs none); using the landmarks in %s",
            rw.path,
            landmarks,
        )
        rw = raw = None
    if basis is None and _from_params(lm, rw, cfg):
        from ..assets import load_basis

        basis = load_basis(
            basis_dir,
            download=False,
            instead="or judge the clip from its landmarks log instead: {landmarks} LOG without "
            "{raw} (infer.py --dump-landmarks-csv writes it)",
        )
    paths = {k: str(p) for k, p in (("landmarks", landmarks), ("meta", meta), ("raw", raw)) if p}
    return mt, lm, rw, basis, paths


def _has_face_ids(landmarks: Path | None, meta: Path | None, raw: Path | None) -> bool:
    """True when the clip's logs have a ``face_id`` column (infer.py ``--max-faces N``, N != 1:
    several faces a frame); an InputFileError when some of them have it and some do not. A log
    that is not there is left to the reader to report."""
    given = {p: has_face_id(p) for p in (meta, landmarks, raw) if p is not None and Path(p).is_file()}
    if len(set(given.values())) > 1:
        multi = next(p for p, v in given.items() if v)
        single = next(p for p, v in given.items() if not v)
        raise InputFileError(
            f"{single}: has no face_id column but {multi} has one (several faces a frame); "
            "the logs are from different runs: give the logs of one run"
        )
    return any(given.values())


def load_inputs(
    landmarks: Path | None = None,
    meta: Path | None = None,
    raw: Path | None = None,
    basis: Basis | None = None,
    fps: float | None = None,
    basis_dir: Path | None = None,
    config: AnalysisConfig | None = None,
) -> dict[int, Inputs]:
    """Read and cross-check the logs; compute each face's features (pose-free when ``raw`` holds
    params): face_id -> that face's Inputs, by id (``{0: inputs}`` for logs without a
    ``face_id`` column, whose Inputs have ``face_id`` None).

    Each face's timeline is every frame of the clip (the meta log's frames, else every frame from
    the first to the last logged one): frames where the face has no row are no face for it, so
    times stay clip times. A raw log that holds no params (a dlib run logs none) is noted and the
    landmarks are used. The 3DMM basis (``basis``, else loaded from ``basis_dir`` or the cache,
    never downloaded) is only needed, and only looked for, when the face is judged from the raw
    log's params (no landmarks log, or ``landmarks_first`` 0).
    ``config``: the settings that check the logs belong together (default ``AnalysisConfig()``).
    """
    cfg = config or AnalysisConfig()
    by_face = _has_face_ids(landmarks, meta, raw)  # a mixed set gets its own message
    mt, lm, rw, basis, paths = _read_logs(landmarks, meta, raw, basis, fps, basis_dir, cfg)
    for lg in (lm, rw):
        if lg is not None and (lg.face_ids == NO_FACE_ID).any():
            r = int(np.argmax(lg.face_ids == NO_FACE_ID))
            raise InputFileError(
                f"{lg.path}: frame {int(lg.frames[r])} has a row with an empty face_id; every "
                "landmarks or raw row is of a face and names it"
            )
    ids = np.unique(np.concatenate([lg.face_ids for lg in (mt, lm, rw) if lg is not None]))
    ids = [int(i) for i in ids if i != NO_FACE_ID] if by_face else [0]
    frames = None
    if mt is None:  # every frame from the first to the last that either log holds
        known = np.concatenate([lg.frames for lg in (lm, rw) if lg is not None])
        frames = _frame_span(known, lm.path if lm is not None else rw.path, cfg)
    given = [p for p in (landmarks, meta, raw) if p is not None]
    made_by = next((info for p in given if (info := read_run_info(p))), {})
    out = {}
    for fid in ids:
        views = [None if lg is None else lg.of_face(fid) for lg in (mt, lm, rw)]
        try:
            out[fid] = replace(_build(*views, basis, fps, paths, cfg, frames, fid if by_face else None), made_by=made_by)
        except InputFileError as exc:
            if not by_face:
                raise
            raise InputFileError(f"{exc.template} (face_id {fid})") from None
    return out


def _frame_span(known: np.ndarray, path: Path, cfg: AnalysisConfig) -> np.ndarray:
    """Every frame from the first to the last of ``known`` (no meta log lists them; no face in
    the missing ones), but not beyond cfg.max_gap_factor x rows + cfg.max_gap_frames."""
    first, last = int(known.min()), int(known.max())
    if last - first + 1 > cfg.max_gap_factor * known.size + cfg.max_gap_frames:
        raise InputFileError(
            f"{path}: frame numbers run from {first} to {last}, but the log holds {known.size} "
            "rows; is a frame number mistyped? Fix it, or pass {meta} (the meta log lists "
            "every frame)"
        )
    return np.arange(first, last + 1, dtype=np.int64)


def _build(
    mt: MetaLog | None,
    lm: LandmarkLog | None,
    rw: RawLog | None,
    basis: Basis | None,
    fps: float | None,
    paths: dict[str, str],
    cfg: AnalysisConfig,
    frames: np.ndarray | None = None,
    face_id: int | None = None,
) -> Inputs:
    """Cross-check one face's logs and compute its features over the meta log's frames, else
    ``frames``."""
    if lm is not None:
        check_landmark_rows(lm.path, lm.frames, lm.landmarks)
    if rw is not None:
        finite = np.isfinite(rw.params[:, :264]).all(axis=1)
        if not finite.all():
            log.warning(
                "%s: %d frames with non-finite params are treated as no face",
                rw.path,
                int((~finite).sum()),
            )
    if mt is not None:
        if lm is not None:
            _check_against_meta(lm.frames, lm.landmarks, mt, lm.path, cfg)
        if rw is not None:
            _check_against_meta(rw.frames, None, mt, rw.path, cfg)
        frames = mt.frames
    if lm is not None and rw is not None:
        common = np.intersect1d(lm.frames, rw.frames)
        if common.size < 0.5 * min(lm.frames.size, rw.frames.size):
            raise InputFileError(
                f"{rw.path}: shares only {common.size} frames with {lm.path}; "
                "are the two logs from different videos?"
            )

    sources = []
    for log_ in (mt, lm):
        if log_ is not None and log_.timestamps_ms is not None and log_.frames.size:
            sources.append((log_.path, log_.frames, log_.timestamps_ms))
    t_ms, time_source = _timestamps(frames, sources, fps)

    n = frames.size
    values = np.full((n, len(FEATURE_COLUMNS)), np.nan)  # filled as numpy, framed once
    if _from_params(lm, rw, cfg):
        keep = np.isfinite(rw.params[:, :264]).all(axis=1)
        dec = Decoder(basis).decode(rw.params[keep])
        rows = np.searchsorted(frames, rw.frames[keep])
        values[rows] = canonical_features(dec.vertices_canonical, dec.pose_deg).to_numpy()
        source = "raw+basis"
        typical = mean_face_features(basis)
    else:
        if lm is not None:
            rows = np.searchsorted(frames, lm.frames)
            values[rows] = landmark_features(lm.landmarks).to_numpy()
        source = "landmarks"
        typical = None
    needed = [FEATURE_COLUMNS.index(c) for c in ("ear", "mar", "mouth_width")]
    face = np.isfinite(values[:, needed]).all(axis=1)
    if mt is not None:
        # no_face, and frames where no face was found but the model ran on the frame's centre
        face &= (mt.status != "no_face") & (mt.reason != "no_bbox")
    values[~face] = np.nan
    feats = pd.DataFrame(values, columns=FEATURE_COLUMNS)
    return Inputs(frames, t_ms, face, feats, source, paths, fps, time_source, typical, face_id)
