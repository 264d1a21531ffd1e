"""Per-frame labels from features, the person's baseline and time.

Every label column is 0/1 and several can hold at once (a laugh is also a smile and an open
mouth; a blink is also eyes closed). ``label`` holds the dominant one, the first in ``PRIORITY``
that is set; frames without a face are ``no_face``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .baseline import Baseline
from .config import AnalysisConfig
from .events import (
    clean_runs,
    hysteresis,
    paint_runs,
    run_durations_ms,
    smooth_frame,
    window_quantile,
)
from .features import FEATURE_COLUMNS, HEIGHT_OVER_WIDTH
from .learned import label_models

LABELS = [
    "neutral",
    "smile",
    "laugh",
    "surprise",
    "frown",
    "eyes_closed",
    "blink",
    "mouth_open",
    "yawn",
    "talking",
    "wink",
    "looking_away",
]
NO_FACE = "no_face"
PRIORITY = [
    "looking_away",
    "yawn",
    "laugh",
    "smile",
    "surprise",
    "frown",
    "blink",
    "eyes_closed",
    "wink",
    "mouth_open",
    "talking",
    "neutral",
]
EXPRESSIVE = ["smile", "laugh", "surprise", "frown", "mouth_open", "yawn"]
# The decision signals each frame is judged by (Labelled.signals), as the families name them.
SIGNALS = ["eye_ratio", "eye_level", "smile_index", "mouth_level", "lip_motion", "brow_delta", "turn"]


@dataclass(frozen=True)
class Labelled:
    """Labels for N frames: ``flags`` (N, len(LABELS)) 0/1 DataFrame, ``label`` (N,) str,
    ``signals`` the smoothed decision signals, ``thresholds`` the effective thresholds used,
    ``brief_closure`` (N,) bool: the frames of closures no longer than blink_max_ms (blinks,
    and droops too shallow to be blinks), which attention does not count as eyes closed."""

    flags: pd.DataFrame
    label: np.ndarray
    signals: pd.DataFrame
    thresholds: dict[str, float]
    brief_closure: np.ndarray | None = None


def _groups(cfg: AnalysisConfig) -> dict[str, tuple[list[str], float]]:
    return {
        "eyes": (["ear_left", "ear_right", "ear"], cfg.eye_smooth_ms),
        "mouth": (["mar", "mouth_width", "lip_corner_lift", "jaw_open"], cfg.mouth_smooth_ms),
        "brow": (["brow_raise"], cfg.brow_smooth_ms),
        "pose": (["pitch_deg", "yaw_deg", "roll_deg"], cfg.pose_smooth_ms),
    }


def effective_thresholds(base: Baseline, cfg: AnalysisConfig) -> dict[str, float]:
    """Configured thresholds, raised where needed to ``min_z`` x the person's jitter."""
    z, sp = cfg.min_z, base.spread
    smile_jitter = float(np.hypot(sp["mouth_width"], cfg.smile_lift_weight * sp["lip_corner_lift"]))
    ear_open = base.median.get("ear_open", float("nan"))
    ear_rel = sp["ear"] / (ear_open if np.isfinite(ear_open) and ear_open > 0 else 1.0)
    typical_ear = base.typical.get("ear", cfg.typical_ear)
    smile_on = max(cfg.smile_on, z * smile_jitter)
    brows_wider = cfg.typical_brow_spread if base.against_typical else 0.0
    return {
        "eyes_closed_ear": cfg.eyes_closed_ear * typical_ear / cfg.typical_ear,
        "eyes_closed_ratio": cfg.eyes_closed_ratio,
        "eyes_open_factor": max(1.0, cfg.eyes_open_ratio / cfg.eyes_closed_ratio),
        "eyes_wide_ratio": max(cfg.eyes_wide_ratio, 1.0 + z * ear_rel),
        "smile_on": smile_on,
        "smile_off": smile_on * cfg.smile_off / cfg.smile_on,
        "mouth_open_mar": max(cfg.mouth_open_mar, z * sp["mar"]),
        "mouth_open_jaw": max(cfg.mouth_open_jaw, z * sp["jaw_open"]),
        "talk_on": cfg.talk_on,
        "yawn_mar": max(cfg.yawn_mar, z * sp["mar"]),
        "yawn_jaw": max(cfg.yawn_jaw, z * sp["jaw_open"]),
        "brow_raise_on": max(cfg.brow_raise_on, z * sp["brow_raise"]) + brows_wider,
        "frown_brow_drop": max(cfg.frown_brow_drop, z * sp["brow_raise"]) + brows_wider,
        "frown_corner_drop": max(cfg.frown_corner_drop, z * sp["lip_corner_lift"]),
        "away_yaw_deg": max(cfg.away_yaw_deg, z * sp["yaw_deg"]),
        "away_pitch_deg": max(cfg.away_pitch_deg, z * sp["pitch_deg"]),
    }


@dataclass(frozen=True)
class Judged:
    """What every label family judges, for N frames: ``sm`` the smoothed features, ``d`` their change
    from the reference, ``tip`` (N,) the sine of the pitch change (2D landmarks), ``th`` thresholds;
    ``landmarks``: the features are of 2D landmarks (the learned models were trained on those)."""

    sm: pd.DataFrame
    d: pd.DataFrame
    tip: np.ndarray
    face: np.ndarray
    timestamp_ms: np.ndarray
    duration_ms: np.ndarray
    base: Baseline
    th: dict[str, float]
    cfg: AnalysisConfig
    still: bool
    landmarks: bool = False  # the features come from 2D landmarks (the learned rules' input)

    def clean(self, mask: np.ndarray, min_ms: float, gap_ms: float = 0.0) -> np.ndarray:
        """``mask`` on face frames without runs under ``min_ms`` or gaps up to ``gap_ms`` (a still: as is)."""
        if self.still:
            return mask & self.face
        return clean_runs(mask & self.face, self.duration_ms, min_ms, gap_ms, allowed=self.face) & self.face


def judge(
    features: pd.DataFrame,
    face: np.ndarray,
    timestamp_ms: np.ndarray,
    duration_ms: np.ndarray,
    base: Baseline,
    cfg: AnalysisConfig,
    undo_foreshortening: bool = False,
    still: bool = False,
) -> Judged:
    """What N frames are judged by (``label_frames``' arguments): the smoothed features, their
    change from the reference (2D landmarks: foreshortening undone), the thresholds."""
    n = len(features)
    face = np.asarray(face, dtype=bool)
    sm = features.copy()
    for cols, window in _groups(cfg).values():
        sm[cols] = smooth_frame(features[cols], timestamp_ms, window)
    if undo_foreshortening and face.any():
        # 2D landmarks: widths shrink with cos(yaw), heights with cos(pitch). Undo the change
        # from the baseline pose (the baseline was measured there), with the smoothed pose;
        # first order only, and the 3DMM's canonical shape needs none of it.
        def squash(pitch_deg, yaw_deg):
            p, y = (np.radians(np.clip(v, -60.0, 60.0)) for v in (pitch_deg, yaw_deg))
            return np.cos(y) / np.cos(p)

        factor = squash(sm["pitch_deg"].to_numpy(), sm["yaw_deg"].to_numpy()) / squash(
            base.median["pitch_deg"], base.median["yaw_deg"]
        )
        sm[HEIGHT_OVER_WIDTH] = sm[HEIGHT_OVER_WIDTH].mul(factor, axis=0)
        # Depth: the lip corners sit behind the lip centre and the brows in front of the eyes,
        # so a head tipped from its baseline pitch moves them on the picture (brow_pitch_slope, lip_corner_pitch_slope).
        tip = np.sin(
            np.radians(np.clip(sm["pitch_deg"].to_numpy() - base.median["pitch_deg"], -60, 60))
        )
    else:
        tip = np.zeros(n)
    d = sm - pd.Series(base.median)[FEATURE_COLUMNS]
    th = effective_thresholds(base, cfg)
    if undo_foreshortening and cfg.learned_mouth:  # the learned model decides mouth_open
        th["mouth_open_p"] = cfg.mouth_open_p
    return Judged(sm, d, tip, face, timestamp_ms, duration_ms, base, th, cfg, still, undo_foreshortening)


def label_frames(
    features: pd.DataFrame,
    face: np.ndarray,
    timestamp_ms: np.ndarray,
    duration_ms: np.ndarray,
    base: Baseline,
    cfg: AnalysisConfig,
    undo_foreshortening: bool = False,
    still: bool = False,
) -> Labelled:
    """Label N frames. ``features`` has NaN rows where ``face`` is False.

    ``undo_foreshortening``: the features come from 2D landmarks (not the pose-free 3DMM path);
    divide out the first-order effect of head yaw and pitch before judging them.
    ``still``: the frames are pictures without a time axis (an image): no time rules (minimum
    durations, gaps) apply, each frame is judged on its own.
    """
    n = len(features)
    j = judge(features, face, timestamp_ms, duration_ms, base, cfg, undo_foreshortening, still)
    face = j.face
    out = label_eyes(j)
    out |= label_smile(j)
    out |= label_mouth(j, out["smile"])
    out |= label_brows(j, out["smile"], out["mouth_open"], out["eye_ratio"])
    out |= label_attention(j)

    flags = pd.DataFrame({name: out[name] for name in LABELS[1:]})
    flags.insert(0, "neutral", face & ~flags.any(axis=1).to_numpy())
    flags = flags.astype(np.int8)

    label = np.full(n, NO_FACE, dtype=object)
    chosen = np.zeros(n, dtype=bool)
    for name in PRIORITY:  # 10 labels, each step vectorised over frames
        hit = (flags[name].to_numpy() == 1) & ~chosen
        label[hit] = name
        chosen |= hit
    signals = pd.DataFrame({name: out[name] for name in SIGNALS})
    return Labelled(flags, label, signals, j.th, out["brief_closure"] & face)


def brief_dips(j: Judged) -> tuple[np.ndarray, np.ndarray] | None:
    """The brief dips (``AnalysisConfig.eyes_dip_ratio``): (N,) bool, frames of closures up to
    ``blink_max_ms`` judged against the eyes' own level before and after them, and (N,) their level, 1.0 at
    the dip's limit (as ``eye_level``); None when the rule is off or for a picture."""
    cfg, th = j.cfg, j.th
    if cfg.eyes_dip_ratio <= 0 or j.still:
        return None
    ear = j.sm["ear"].to_numpy()
    # The eyes' level around a frame: the lower of the level before it and the level after it,
    # so the first frames of a squint (open eyes before, the squint after) are no dip.
    half, q = cfg.eyes_dip_window_ms / 2, cfg.ear_open_quantile
    around = np.fmin(window_quantile(ear, j.timestamp_ms, half, 0.0, q),
                     window_quantile(ear, j.timestamp_ms, 0.0, half, q))
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.maximum(ear / (cfg.eyes_dip_ear_factor * th["eyes_closed_ear"]),
                           ear / around / cfg.eyes_dip_ratio)
    # Brief: the whole run under the dip's EAR limit lasts at most blink_max_ms (a longer one,
    # a squint or lids held low, is judged by the closed limit alone).
    low = j.clean(ear < cfg.eyes_dip_ear_factor * th["eyes_closed_ear"], 0.0, cfg.eyes_gap_ms)
    s, e, dur = run_durations_ms(low, j.duration_ms)
    brief = paint_runs(len(ear), s[dur <= cfg.blink_max_ms], e[dur <= cfg.blink_max_ms])
    # Both eyes dip: the more open one too is under eyes_closed_ratio of the level around (a
    # wink, one eye shut and the other open, halves the two eyes' mean EAR but is no dip).
    wider = np.fmax(j.sm["ear_left"].to_numpy(), j.sm["ear_right"].to_numpy())
    with np.errstate(invalid="ignore"):
        both = wider < cfg.eyes_closed_ratio * around
    return j.clean((level < 1.0) & both, 0.0, cfg.eyes_gap_ms) & brief, level


def label_eyes(j: Judged) -> dict[str, np.ndarray]:
    """eyes_closed, blink and wink; signals eye_ratio (EAR / the open-eye level) and eye_level
    (1 at the closed limit); brief_closure: the frames of closures up to blink_max_ms."""
    sm, th, cfg, base = j.sm, j.th, j.cfg, j.base
    eye_ratio = (sm["ear"] / base.median["ear_open"]).to_numpy()  # NaN without a face
    # Closed: below the absolute EAR AND below the share of the person's open level (the larger
    # of the two ratios under 1); open again once either is eyes_open_factor above its limit.
    eye_level = np.maximum(
        sm["ear"].to_numpy() / th["eyes_closed_ear"], eye_ratio / th["eyes_closed_ratio"]
    )
    # A frame is closed below the limit; a closure (a blink, when short) lasts until the eyes
    # are clearly open again (hysteresis), so a noisy frame does not split one blink in two.
    closed = j.clean(eye_level < 1.0, 0.0, cfg.eyes_gap_ms)
    closure = j.clean(hysteresis(-eye_level, -1.0, -th["eyes_open_factor"]), 0.0, cfg.eyes_gap_ms)
    dips = brief_dips(j)
    if dips is not None:  # a brief dip's frames are closed at the dip's own level
        dip_runs, dip_level = dips
        eye_level = np.where(dip_runs, np.fmin(eye_level, dip_level), eye_level)
        closed |= dip_runs
        closure |= dip_runs

    # A wink: one eye closed while the other is clearly open; its closures are not blinks.
    def one_eye(col: str) -> np.ndarray:
        ear = sm[col].to_numpy()
        return np.maximum(
            ear / th["eyes_closed_ear"], ear / base.median["ear_open"] / th["eyes_closed_ratio"]
        )

    left, right = one_eye("ear_left"), one_eye("ear_right")
    opened = th["eyes_open_factor"]
    wink = j.clean(
        ((left < 1.0) & (right >= opened)) | ((right < 1.0) & (left >= opened)), cfg.wink_min_ms
    )
    s, e, dur = run_durations_ms(closure, j.duration_ms)
    winked = np.concatenate([[0], np.cumsum(wink)])  # wink frames before each index
    wink_share = (winked[e] - winked[s]) / np.maximum(e - s, 1)
    # A blink closes the lids fully: its deepest frame is well below the closed limit (a droop
    # that only grazes the limit stays eyes_closed frames, not a blink).
    level = np.append(np.where(np.isfinite(eye_level), eye_level, np.inf), np.inf)
    deepest = (
        np.minimum.reduceat(level, np.ravel([s, e], order="F"))[::2] if s.size else np.zeros(0)
    )
    brief = (dur <= cfg.blink_max_ms) & (not j.still)  # a picture's closed eyes are no blink
    short = brief & (wink_share < 0.5) & (deepest < cfg.blink_depth)
    blink, brief_closure = paint_runs(len(sm), s[short], e[short]) & j.face, paint_runs(len(sm), s[brief], e[brief])
    return dict(eyes_closed=closed, blink=blink, wink=wink, brief_closure=brief_closure, eye_ratio=eye_ratio,
                eye_level=eye_level)


def label_smile(j: Judged) -> dict[str, np.ndarray]:
    """smile; signal smile_index (mouth widening + smile_lift_weight x corner lift, IOD)."""
    cfg = j.cfg
    smile_index = (j.d["mouth_width"] + cfg.smile_lift_weight * j.d["lip_corner_lift"]).to_numpy()
    smile = j.clean(
        hysteresis(smile_index, j.th["smile_on"], j.th["smile_off"]), cfg.smile_min_ms, cfg.smile_gap_ms
    )
    return {"smile": smile, "smile_index": smile_index}


def mouth_inputs(j: Judged) -> dict[str, np.ndarray]:
    """The per-frame features the learned mouth_open model reads (``learned.LabelModel``), each
    judged against the face's own reference: the inner-lip MAR (``mar``) and its rise above the
    closed mouth (``mar_d``), the jaw's drop (``jaw_d``, IOD), the mouth's widening and its
    corners' lift (``width_d``, ``lift_d``, IOD above the reference)."""
    return {
        "mar": j.sm["mar"].to_numpy(),
        "mar_d": j.d["mar"].to_numpy(),
        "jaw_d": j.d["jaw_open"].to_numpy(),
        "width_d": j.d["mouth_width"].to_numpy(),
        "lift_d": j.d["lip_corner_lift"].to_numpy(),
    }


def mouth_open_level(j: Judged) -> np.ndarray:
    """(N,) the mouth's opening, 1.0 at the open limit. 2D landmarks with ``cfg.learned_mouth``:
    the learned model's probability over ``cfg.mouth_open_p``; else the rule: lips apart AND jaw
    dropped (a grin parts the lips without opening the jaw), the lesser of MAR and jaw, each
    over its threshold."""
    if j.landmarks and j.cfg.learned_mouth:
        return label_models()["mouth_open"].probability(mouth_inputs(j)) / j.cfg.mouth_open_p
    mar_d, jaw_d = j.d["mar"].to_numpy(), j.d["jaw_open"].to_numpy()
    return np.minimum(mar_d / j.th["mouth_open_mar"], jaw_d / j.th["mouth_open_jaw"])


def mouth_open_frames(j: Judged, mouth_level: np.ndarray) -> np.ndarray:
    """(N,) bool: the mouth_open frames of a ``mouth_open_level`` (on at 1, off below
    mouth_close_factor; runs under mouth_min_ms dropped, gaps up to mouth_gap_ms bridged)."""
    cfg = j.cfg
    return j.clean(hysteresis(mouth_level, 1.0, cfg.mouth_close_factor), cfg.mouth_min_ms, cfg.mouth_gap_ms)


def label_mouth(j: Judged, smile: np.ndarray) -> dict[str, np.ndarray]:
    """mouth_open, laugh (a smile with the mouth open), talking and yawn (not while smiling);
    signals mouth_level (1 at the open limit) and lip_motion (MAR per second)."""
    sm, th, cfg, timestamp_ms = j.sm, j.th, j.cfg, j.timestamp_ms
    mar_d, jaw_d = j.d["mar"].to_numpy(), j.d["jaw_open"].to_numpy()
    mouth_level = mouth_open_level(j)
    mouth = mouth_open_frames(j, mouth_level)
    # Talking: the lips keep moving (speech), which an open mouth alone does not tell.
    t_s = np.asarray(timestamp_ms, dtype=np.float64) / 1000.0
    # Syllables move the lips 3-8 times a second; a smile, a yawn or a shout moves them once.
    # The opening's slow course (a centred mean over talk_detrend_ms) is taken out first.
    lips = sm[["mar"]]
    fast = (lips - smooth_frame(lips, timestamp_ms, cfg.talk_detrend_ms))["mar"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        speed = np.abs(np.diff(fast, prepend=np.nan)) / np.diff(t_s, prepend=np.nan)
    speed[~np.isfinite(speed)] = np.nan
    lip_motion = smooth_frame(pd.DataFrame({"v": speed}), timestamp_ms, cfg.talk_window_ms)["v"]
    lip_motion = lip_motion.to_numpy() if len(speed) > 1 else np.full(len(sm), np.nan)
    talking = j.clean(
        hysteresis(lip_motion, th["talk_on"], th["talk_on"] * cfg.talk_off_factor),
        cfg.talk_min_ms,
        cfg.talk_gap_ms,
    )
    yawn_level = np.minimum(mar_d / th["yawn_mar"], jaw_d / th["yawn_jaw"])
    yawn = j.clean(
        hysteresis(yawn_level, 1.0, cfg.mouth_close_factor) & ~smile,
        cfg.yawn_min_ms,
        cfg.mouth_gap_ms,
    )
    return dict(mouth_open=mouth, laugh=smile & mouth, talking=talking, yawn=yawn, mouth_level=mouth_level,
                lip_motion=lip_motion)


def label_brows(
    j: Judged, smile: np.ndarray, mouth: np.ndarray, eye_ratio: np.ndarray
) -> dict[str, np.ndarray]:
    """surprise (brows up with wide eyes or an open mouth) and frown (brows down or lip corners
    down), neither while smiling; signal brow_delta (IOD above the reference)."""
    th = j.th
    # The smile index keeps the raw lift.
    brow_d = j.d["brow_raise"].to_numpy() - j.cfg.brow_pitch_slope * j.tip
    lift_d = j.d["lip_corner_lift"].to_numpy() + j.cfg.lip_corner_pitch_slope * j.tip
    brow_up = brow_d >= th["brow_raise_on"]
    surprise = j.clean(
        brow_up & ((eye_ratio >= th["eyes_wide_ratio"]) | mouth) & ~smile, j.cfg.expression_min_ms
    )
    corners_down = (lift_d <= -th["frown_corner_drop"]) & ~mouth
    frown = j.clean(
        ((brow_d <= -th["frown_brow_drop"]) | corners_down) & ~smile, j.cfg.expression_min_ms
    )
    return {"surprise": surprise, "frown": frown, "brow_delta": brow_d}


def label_attention(j: Judged) -> dict[str, np.ndarray]:
    """looking_away (head turned from the reference direction); signal turn (1 at the limit)."""
    turn = np.maximum(
        np.abs(j.d["yaw_deg"].to_numpy()) / j.th["away_yaw_deg"],
        np.abs(j.d["pitch_deg"].to_numpy()) / j.th["away_pitch_deg"],
    )
    away = j.clean(hysteresis(turn, 1.0, j.cfg.away_off_factor), j.cfg.away_min_ms)
    return {"looking_away": away, "turn": turn}
