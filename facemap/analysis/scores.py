"""The 0-100 scores. Every quantity is a share of TIME (frames weighted by their duration), so
no score depends on the frame rate, the resolution or the face size.

Per frame i (dt_i = its duration):
    present_i   = 1 if a face is found, else 0
    attentive_i = present_i and not looking_away_i and not (eyes_closed_i and not brief_i)
    brief_i     = 1 inside a closure of at most blink_max_ms (a blink, or a droop too shallow to be one)
    valence_i   = 1 if smile_i or laugh_i; -1 if frown_i; else 0
    score_i     = 100 * attentive_i * (1 + valence_i) / 2        (the per-frame ``score`` column)

    overall_score   = sum(dt_i * score_i) / sum(dt_i)
    positivity      = 50 + 50 * (T[smile or laugh] - T[frown]) / T[present]
    attention       = 100 * T[attentive] / T[all]
    expressiveness  = 100 * (0.5 * T[any of smile, laugh, surprise, frown, mouth_open, yawn] / T[present]
                             + 0.5 * mean over present time of intensity_i)
    intensity_i     = min(1, max(smile_index_i / (2 smile_on), mouth_level_i / 2,
                                 |brow_delta_i| / (2 brow_raise_on)))

T[x] is the total duration of the frames where x holds. A neutral, attentive face scores 50;
smiling all the time 100; frowning, absent, looking away or with eyes closed 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .labels import EXPRESSIVE

FORMULAS = {
    "score (per frame)": "100 * attentive * (1 + valence) / 2; attentive = face present, not "
    "looking_away, eyes not closed (closures up to blink_max_ms excepted); valence = +1 smile or laugh, -1 frown, else 0",
    "overall_score": "time-weighted mean of the per-frame score over all frames (no-face frames "
    "count as 0)",
    "positivity": "50 + 50 * (time smiling or laughing - time frowning) / time with a face",
    "attention": "100 * time attentive / total time",
    "expressiveness": "100 * (0.5 * share of face time with smile, laugh, surprise, frown, "
    "mouth_open or yawn + 0.5 * mean face-time intensity); intensity = min(1, max(smile_index / "
    "(2 smile_on), mouth_level / 2, |brow_delta| / (2 brow_raise_on)))",
    "weights": "every frame is weighted by its duration in ms (gap to the next timestamp), so "
    "frame rate does not matter; shape features are ratios or inter-ocular distances, so "
    "resolution and face size do not matter",
}


@dataclass(frozen=True)
class Scores:
    """The four 0-100 scores, the per-frame score (N,), and time fractions per label."""

    overall_score: float
    positivity: float
    expressiveness: float
    attention: float
    per_frame: np.ndarray
    time_fractions: dict[str, float]

    def as_dict(self) -> dict[str, float]:
        """The four scores, rounded to 0.1."""
        return {
            "overall_score": round(self.overall_score, 1),
            "positivity": round(self.positivity, 1),
            "expressiveness": round(self.expressiveness, 1),
            "attention": round(self.attention, 1),
        }


def _share(mask: np.ndarray, weight: np.ndarray, within: np.ndarray | None = None) -> float:
    w = weight if within is None else weight * within
    total = w.sum()
    return float((w * mask).sum() / total) if total > 0 else 0.0


def compute_scores(
    flags: pd.DataFrame,
    face: np.ndarray,
    duration_ms: np.ndarray,
    signals: pd.DataFrame,
    thresholds: dict[str, float],
    brief_closure: np.ndarray | None = None,
) -> Scores:
    """Scores from the label flags, face presence, frame durations and decision signals.
    ``brief_closure``: frames of short closures (blinks and shallow droops), not inattention;
    without it, the blink frames."""
    face = np.asarray(face, dtype=bool)
    w = np.asarray(duration_ms, dtype=np.float64)
    if w.sum() <= 0:  # a single image: every frame counts the same
        w = np.ones_like(w)
    f = {k: flags[k].to_numpy().astype(bool) for k in flags.columns}
    excused = f["blink"] if brief_closure is None else np.asarray(brief_closure, bool) | f["blink"]
    attentive = face & ~f["looking_away"] & ~(f["eyes_closed"] & ~excused)
    positive = f["smile"] | f["laugh"]
    valence = np.where(positive, 1.0, np.where(f["frown"], -1.0, 0.0))
    per_frame = 100.0 * attentive * (1.0 + valence) / 2.0
    overall = float((w * per_frame).sum() / w.sum())
    attention = 100.0 * _share(attentive, w)
    if face.any():
        positivity = 50.0 + 50.0 * (_share(positive, w, face) - _share(f["frown"], w, face))
        expressive = np.zeros(face.size, dtype=bool)
        for name in EXPRESSIVE:
            expressive |= f[name]
        sig = signals.fillna(0.0)
        intensity = np.minimum(
            1.0,
            np.maximum.reduce(
                [
                    np.maximum(sig["smile_index"].to_numpy(), 0.0) / (2 * thresholds["smile_on"]),
                    np.maximum(sig["mouth_level"].to_numpy(), 0.0) / 2.0,
                    np.abs(sig["brow_delta"].to_numpy()) / (2 * thresholds["brow_raise_on"]),
                ]
            ),
        )
        wf = w * face
        mean_intensity = float((wf * intensity).sum() / wf.sum())
        expressiveness = 100.0 * (0.5 * _share(expressive, w, face) + 0.5 * mean_intensity)
    else:
        positivity, expressiveness = 50.0, 0.0
    fractions = {name: round(_share(f[name], w), 4) for name in flags.columns}
    fractions["no_face"] = round(_share(~face, w), 4)
    return Scores(overall, positivity, expressiveness, attention, per_frame, fractions)
