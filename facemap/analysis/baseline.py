"""The person's neutral face: a robust reference from low-activity frames (or chosen frames)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import UsageError
from .config import AnalysisConfig
from .features import FEATURE_COLUMNS

# Features whose rise means activity (smiling, opening, raising), and those judged both ways.
_RISING = ["mouth_width", "lip_corner_lift", "mar", "jaw_open"]
_TWO_SIDED = ["ear", "brow_raise", "yaw_deg", "pitch_deg"]
# Smile features whose reference is capped at a typical neutral face (see ``compute_baseline``).
CAPPED = ["mouth_width", "lip_corner_lift"]
# Which floor of AnalysisConfig (spread_floor_*) each feature's spread has.
_FLOOR_OF = {
    **dict.fromkeys(["ear_left", "ear_right", "ear", "mar"], "spread_floor_ratio"),
    **dict.fromkeys(["mouth_width", "lip_corner_lift", "brow_raise", "jaw_open"], "spread_floor_iod"),
    **dict.fromkeys(["pitch_deg", "yaw_deg", "roll_deg"], "spread_floor_deg"),
}


@dataclass(frozen=True)
class Baseline:
    """The person's reference face.

    median: per-feature median over ``n_frames`` baseline frames chosen by ``method``
        ("low_activity" or "frames A:B"), plus ``ear_open``, the open-eye EAR level (the
        ear_open_quantile of EAR over all face frames).
        With the automatic choice, the smile features (``CAPPED``) are then capped at
        ``typical``, a typical neutral face: the person's own value where it is lower, the
        typical one where the person's quiet frames are wider or higher (someone who smiles
        through most of the clip). Frames named as baseline frames are not capped.
    spread: per-feature measurement noise (``measurement_noise``: robust residual from a
        noise_window_ms centred moving average, frame-rate independent; floored), the unit of "the person's own
        variation".
    typical: the typical neutral face (the smile features are capped at it).
    against_typical: True when the reference is the typical face itself (a photo, or a clip too
        short for a baseline of its own).
    frames: the numbers of the baseline frames (report.json lists them as runs, the timeline
        shades them).
    held: the features whose quiet frames hold an expression (a mouth open or brows raised
        through most of the clip: outside the range of neutral faces), with where their
        reference came from instead (see ``held_reference``).
    """

    median: dict[str, float]
    spread: dict[str, float]
    n_frames: int
    method: str
    typical: dict[str, float] = field(default_factory=dict)
    against_typical: bool = False  # the reference IS the typical face (a photo, a short clip)
    held: dict[str, str] = field(
        default_factory=dict
    )  # feature -> how its held reference was found
    frames: tuple[int, ...] = ()  # the baseline frames' numbers, increasing (none: the typical face)

    def frame_runs(self) -> list[list[int]]:
        """The baseline frames as inclusive runs of consecutive frame numbers, [[first, last], ...]."""
        runs: list[list[int]] = []
        for f in self.frames:
            if runs and f == runs[-1][1] + 1:
                runs[-1][1] = f
            else:
                runs.append([f, f])
        return runs

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return {
            "method": self.method,
            "n_frames": self.n_frames,
            "frames": [] if self.against_typical else self.frame_runs(),
            "median": {k: _num(v) for k, v in self.median.items()},
            "spread": {k: _num(v) for k, v in self.spread.items()},
            "typical_neutral_cap": {k: _num(v) for k, v in self.typical.items()},
            "against_typical": self.against_typical,
            "held_expression": dict(self.held),
        }


def _num(v: float) -> float | None:
    return round(float(v), 6) if np.isfinite(v) else None


def _pct_rank(values: np.ndarray, max_reference: int = 4096) -> np.ndarray:
    """Percentile rank (0..1) of each value among the column's values (an evenly spaced sample
    of at most ``max_reference`` of them, which is plenty for choosing baseline frames)."""
    step = max(1, values.size // max_reference)
    ref = np.sort(values[::step])
    return np.searchsorted(ref, values, side="right") / max(ref.size, 1)


def activity(features: pd.DataFrame) -> np.ndarray:
    """(N,) how far each face frame is from a resting face, as a sum of percentile ranks."""
    act = np.zeros(len(features))
    for col in _RISING:
        act += _pct_rank(features[col].to_numpy())
    for col in _TWO_SIDED:
        act += 2.0 * np.abs(_pct_rank(features[col].to_numpy()) - 0.5)
    return act


def parse_frame_range(text: str) -> tuple[int, int]:
    """``"A:B"`` -> (A, B), 1-based inclusive frame numbers."""
    parts = text.split(":")
    try:
        a, b = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"{{baseline_frames}} expects A:B (frame numbers), got {text!r}") from None
    if a < 1 or b < a:
        raise UsageError(f"{{baseline_frames}} expects 1 <= A <= B, got {text!r}")
    return a, b


def check_frame_range(value: object) -> tuple[int, int] | None:
    """``baseline_frames`` as given to the Python API: None, ``(A, B)`` or ``"A:B"`` ->
    (A, B), 1 <= A <= B; a UsageError naming it otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_frame_range(value)
    try:
        a, b = value  # type: ignore[misc]
        if isinstance(a, bool) or isinstance(b, bool) or int(a) != a or int(b) != b:
            raise TypeError
        a, b = int(a), int(b)
    except (TypeError, ValueError):
        raise UsageError(f"{{baseline_frames}} expects (A, B) or 'A:B' (frame numbers), got {value!r}") from None
    if a < 1 or b < a:
        raise UsageError(f"{{baseline_frames}} expects 1 <= A <= B, got {value!r}")
    return a, b


def measurement_noise(
    values: np.ndarray,
    times_ms: np.ndarray,
    window_ms: float = AnalysisConfig.noise_window_ms,
    max_samples: int = AnalysisConfig.baseline_max_frames,
) -> np.ndarray:
    """(F,) robust noise level of each column of (M, F) ``values`` sampled at ``times_ms``.

    Each sample is compared with the centred moving average over ``window_ms`` (steady motion
    cancels in a centred average); the residual of white noise over k samples has variance
    sigma^2 (1 - 1/k), which is corrected for, so the estimate does not depend on the frame rate.
    Long inputs: every k-th sample, about ``max_samples`` of them (plenty for a median).
    """
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(times_ms, dtype=np.float64)
    if v.shape[0] < 3:
        return np.full(v.shape[1], np.nan)
    finite = np.isfinite(v)
    csum = np.vstack([np.zeros((1, v.shape[1])), np.cumsum(np.where(finite, v, 0.0), axis=0)])
    ccnt = np.vstack([np.zeros((1, v.shape[1])), np.cumsum(finite, axis=0)])
    at = np.arange(0, v.shape[0], max(1, v.shape[0] // int(max_samples)))
    lo = np.searchsorted(t, t[at] - window_ms / 2.0, side="left")
    hi = np.searchsorted(t, t[at] + window_ms / 2.0, side="right")
    k = ccnt[hi] - ccnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (csum[hi] - csum[lo]) / k
        scaled = np.abs(v[at] - mean) * np.sqrt(k / (k - 1.0))
    usable = (k >= 2) & finite[at]
    return np.array(
        [
            1.4826 * np.median(col[ok]) if ok.any() else np.nan
            for col, ok in zip(scaled.T, usable.T, strict=True)
        ]
    )


def compute_baseline(
    features: pd.DataFrame,
    frames: np.ndarray,
    face: np.ndarray,
    frame_range: tuple[int, int] | None = None,
    timestamp_ms: np.ndarray | None = None,
    typical: dict[str, float] | None = None,
    held: dict[str, float] | None = None,
    cfg: AnalysisConfig | None = None,
) -> Baseline:
    """Robust baseline over face frames: the ``cfg.baseline_fraction`` with least activity, or
    ``frame_range``; the smile features capped at ``typical`` (a typical neutral face) where
    given, and the features of ``held`` checked for a held expression (``held_reference``).
    ``cfg``: the baseline settings (default ``AnalysisConfig()``)."""
    cfg = cfg or AnalysisConfig()
    face_feats = features[face]
    face_frames = np.asarray(frames)[face]
    if frame_range is not None:
        a, b = frame_range
        sel = (face_frames >= a) & (face_frames <= b)
        if not sel.any():
            raise UsageError(
                f"{{baseline_frames}} {a}:{b} holds no frame with a face; choose frames where the "
                "person is visible and at rest"
            )
        method = f"frames {a}:{b}"
    else:
        # Long clips: judge every step-th face frame only (baseline_max_frames are plenty for a median).
        step = max(1, len(face_feats) // int(cfg.baseline_max_frames))
        candidates = np.arange(0, len(face_feats), step)
        act = activity(face_feats.iloc[candidates])
        k = max(1, int(np.ceil(cfg.baseline_fraction * candidates.size)))
        sel = np.zeros(len(face_feats), dtype=bool)
        sel[candidates[np.argsort(act, kind="stable")[:k]]] = True
        method = "low_activity"
    chosen = face_feats[sel]
    med = {c: float(v) for c, v in chosen.median().items()}
    # The cap applies to the automatic choice; frames the user named are their neutral face.
    typical = {} if frame_range is not None else typical or {}
    typical = {c: float(v) for c, v in typical.items() if np.isfinite(v)}
    for c, v in typical.items():
        if c in CAPPED:
            med[c] = min(med[c], v)
    if frame_range is None and cfg.mouth_closed_quantile > 0:
        med.update(closed_mouth_reference(face_feats, cfg.mouth_closed_quantile))
    held_notes = held_reference(face_feats, med, typical, held or {}, cfg.held_quantile)
    # Open-eye level: eyes are open most of the time, so a high quantile of EAR over all face
    # frames (the low-activity frames of someone who squints a lot can be half-closed).
    med["ear_open"] = float(face_feats["ear"].quantile(cfg.ear_open_quantile))
    # Spread: how much this person's measurements wobble from frame to frame (measurement
    # noise), judged against a short moving average in time, so it is the same at any frame rate.
    times = np.asarray(timestamp_ms, dtype=np.float64)[face] if timestamp_ms is not None else None
    if times is None:
        times = face_frames * (1000.0 / 30.0)
    noise = measurement_noise(
        face_feats.to_numpy(dtype=np.float64), times, cfg.noise_window_ms, cfg.baseline_max_frames
    )
    jitter = dict(zip(face_feats.columns, noise, strict=True))
    spread = {
        c: float(np.nanmax([jitter.get(c, np.nan), getattr(cfg, _FLOOR_OF[c])])) for c in FEATURE_COLUMNS
    }
    chosen_frames = tuple(int(f) for f in np.sort(face_frames[sel]))
    return Baseline(med, spread, int(sel.sum()), method, typical, held=held_notes, frames=chosen_frames)


def closed_mouth_reference(face_feats: pd.DataFrame, quantile: float) -> dict[str, float]:
    """The mouth's reference, {"mar": ..., "jaw_open": ...}: their medians over the ``quantile``
    share of face frames with the least MAR (the mouth closed), jaw from the same frames.

    A closed mouth is the same for everyone (MAR near 0), while the low-activity frames hold
    speech's openings for a talker and the open mouth itself for a face open through most of the
    clip; a clip whose mouth is never closed is caught by ``held_reference``."""
    x = face_feats["mar"]
    closed = face_feats[x <= x.quantile(quantile)]
    if closed.empty:
        return {}
    return {c: float(closed[c].median()) for c in ("mar", "jaw_open")}


def held_reference(
    face_feats: pd.DataFrame,
    med: dict[str, float],
    typical: dict[str, float],
    held: dict[str, float],
    quantile: float = AnalysisConfig.held_quantile,
) -> dict[str, str]:
    """Replace, in ``med``, the reference of a feature whose quiet frames hold an expression.

    ``held`` maps "mar" and/or "brow_raise" to how far above ``typical`` a neutral face goes
    (person to person). A quiet-frame MAR further above the typical one is a mouth held open
    (funny faces, a tongue out, lips apart through a clip): the mouth's reference (MAR and jaw)
    becomes the median of the clip's most closed frames (the ``quantile`` with the least
    MAR), or the typical face's where even those are open (the jaw condition keeps a person
    whose lips merely part at rest from reading as open). Quiet brows further above the typical
    ones are brows held raised: their reference moves down to the top of the neutral range
    (typical + allowance) and no further, so a person with high brows who frowns now and then
    is not read as raising them. (Brows held LOWERED are not corrected: from one clip they
    cannot be told from brows set low.) Returns {feature: where its reference came from}.
    """
    notes: dict[str, str] = {}
    for col, allowance in held.items():
        cols = ["mar", "jaw_open"] if col == "mar" else [col]
        if any(c not in typical or not np.isfinite(typical[c]) for c in cols):
            continue
        if not np.isfinite(med.get(col, np.nan)):
            continue
        t = float(typical[col])
        if med[col] - t <= allowance:
            continue
        if col == "brow_raise":
            med[col] = t + allowance
            notes[col] = "the top of the neutral range (typical + held_brow_excess)"
            continue
        x = face_feats[col]
        nearest = face_feats[x <= x.quantile(quantile)]
        if float(nearest[col].median()) - t <= allowance:
            for c in cols:
                med[c] = float(nearest[c].median())
            notes[col] = f"the {quantile:.0%} of face frames nearest neutral"
        else:
            for c in cols:
                med[c] = float(typical[c])
            notes[col] = "the typical neutral face (no frame of the clip is near neutral)"
    return notes
