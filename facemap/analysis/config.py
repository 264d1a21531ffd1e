"""Analysis settings: every threshold and time constant, with defaults, loadable from JSON.

Units: ``*_ms`` milliseconds; ``*_deg`` degrees; ``*_ratio`` a fraction of the person's baseline
value; other lengths are inter-ocular distances (IOD) ABOVE the person's baseline; ``mar_*`` are
inner-lip mouth aspect ratio above the baseline. ``min_z`` additionally requires every change to
exceed ``min_z`` times the person's own frame-to-frame spread at rest.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class AnalysisConfig:
    """Thresholds and time constants of the expression analyzer (see the module docstring)."""

    frame_gap_factor: float = 3.0  # a frame stands for the gap to the next, at most this many median gaps
    # baseline
    baseline_fraction: float = 0.3  # share of face frames with the least activity
    baseline_max_frames: int = 20_000  # long clips: every k-th face frame, this many (plenty for a median)
    ear_open_quantile: float = 0.8  # the open-eye level: this quantile of EAR over face frames
    noise_window_ms: float = 200.0  # jitter: residual from a centred moving average this long
    min_z: float = 3.0  # every change must also exceed min_z x the person's jitter
    # smallest jitter (near-noise-free input stays sane): of EAR and MAR, of lengths in IOD, of angles
    spread_floor_ratio: float = 0.01
    spread_floor_iod: float = 0.005
    spread_floor_deg: float = 1.0
    # smoothing windows (centred moving average)
    eye_smooth_ms: float = 0.0  # blinks can last two frames: eyes are not smoothed
    mouth_smooth_ms: float = 100.0
    brow_smooth_ms: float = 150.0
    pose_smooth_ms: float = 300.0
    # eyes: closed when the EAR is below eyes_closed_ear AND below eyes_closed_ratio of the
    # person's open-eye level; open again above both x (eyes_open_ratio / eyes_closed_ratio).
    # The absolute EAR is what tells a closed lid (MediaPipe's eyeBlink > 0.5 pooled over the 22
    # shared clips: F1 0.87 absolute, 0.80 relative only); the relative guard keeps people with
    # narrow eyes, or who squint through a clip, from reading as closed.
    eyes_closed_ear: float = 0.17
    eyes_closed_ratio: float = 0.8
    eyes_open_ratio: float = 0.96
    eyes_gap_ms: float = 70.0  # re-opening shorter than this is ignored
    blink_max_ms: float = 500.0  # a closure up to this long is a blink
    blink_depth: float = 0.94  # ... whose deepest frame is below this share of the closed limit
    wink_min_ms: float = 100.0  # one eye closed, the other open, this long: a wink
    # A brief dip: a closure of at most blink_max_ms is also closed where the EAR falls below
    # eyes_dip_ratio of the eyes' own level around it (the ear_open_quantile of EAR over the
    # eyes_dip_window_ms / 2 before it and over as long after it, the lower of the two) and below
    # eyes_dip_ear_factor x the closed limit. A blink of eyes that dlib never brings to the closed
    # limit (small or blurry eyes, slow blinks) is a deep dip against the frames around it; lids
    # held low (a squint, hooded lids, a lowered gaze) lower that level with them. 0 turns it off.
    eyes_dip_ratio: float = 0.65
    eyes_dip_ear_factor: float = 1.18
    eyes_dip_window_ms: float = 1000.0
    eyes_wide_ratio: float = 1.15
    # mouth open: lips apart (MAR above the mouth's reference) AND jaw dropped (IOD below it).
    # The mouth's reference is the closed mouth: the median of the clip's mouth_closed_quantile
    # most closed face frames (MAR and jaw of the same frames), not the low-activity frames,
    # which hold speech's small openings for a talker and the open mouth itself for a face that
    # stays open through most of the clip (surprise, disgust); 0: the low-activity frames.
    mouth_closed_quantile: float = 0.1
    mouth_open_mar: float = 0.3
    mouth_open_jaw: float = 0.02
    mouth_close_factor: float = 0.95  # hysteresis: closed again below this share of both
    # ... on 2D landmarks (dlib, --assume-points 68, FaceMap's landmarks log), learned_mouth 1:
    # the learned model decides instead (analysis/learned.py, label_models.json: a logistic model
    # over the lips' and jaw's change from the closed mouth, trained to MediaPipe's jawOpen > 0.3
    # by bench/train_label_models.py): open at a probability of mouth_open_p (the same hysteresis
    # and time rules). Held out clip by clip it beats the rule above (docs/analysis.md); the
    # 3DMM path (raw params) keeps the rule. 0: the rule everywhere.
    learned_mouth: int = 1
    mouth_open_p: float = 0.3
    mouth_min_ms: float = 100.0
    mouth_gap_ms: float = 100.0
    # talking: speech-like lip motion, the mean speed of the (mouth-smoothed) inner-lip opening
    # (MAR per second) over talk_window_ms; on above talk_on, off below talk_off_factor of it.
    # Speech moves the lips at syllable rate (3-8 Hz): 0.4-0.9 MAR/s on the shared talking
    # clips, 0.06-0.2 on quiet faces (dlib's jitter), checked against the audio's voice activity.
    talk_window_ms: float = 600.0
    talk_detrend_ms: float = 300.0
    talk_on: float = 0.3
    talk_off_factor: float = 0.8
    talk_min_ms: float = 500.0
    talk_gap_ms: float = 400.0
    yawn_mar: float = 0.5
    yawn_jaw: float = 0.2
    yawn_min_ms: float = 1500.0
    # smile: mouth widening + lift_weight x corner lift, IOD above the reference. The corners
    # rise about half as far as the mouth widens, so the lift counts double. Chosen leave-one-
    # clip-out against MediaPipe on a grid, judged with its grid neighbours
    # (bench/bench_labels.py --loo --plateau): every held-out clip chose these values.
    smile_lift_weight: float = 2.0
    smile_on: float = 0.23
    smile_off: float = 0.207  # 0.9 x smile_on; left at this default, it follows a smile_on set (0.9 x)
    smile_min_ms: float = 200.0
    smile_gap_ms: float = 150.0
    # A typical neutral mouth (2D landmarks, iBUG-68): anthropometric mouth width / outer eye
    # distance is 0.55-0.59 (this value chosen with the smile settings above), corners level
    # with the lip line. The person's reference for the smile features is capped at these, so a
    # person who smiles through most of the clip (whose "neutral" frames are smiles) is still
    # seen smiling; a narrower or lower mouth keeps its own reference. With raw params and the
    # basis, the basis mean face gives these two values instead.
    typical_mouth_width: float = 0.55
    typical_lip_corner_lift: float = 0.0
    # A typical open-eye EAR of 2D iBUG-68 landmarks (the median open level over the shared
    # clips): eyes_closed_ear is scaled by typical / this where the input defines its own typical
    # face (raw params: the basis mean face), so the closed share stays the same.
    typical_ear: float = 0.33
    # The rest of a typical neutral face (medians of the 22 shared clips' baselines, dlib's
    # landmarks), and how much face time a clip needs for a baseline of its own: a single image,
    # or a shorter clip, is judged against this typical face (raw params: the basis mean face).
    typical_mar: float = 0.07
    typical_jaw_open: float = 0.78
    typical_brow_raise: float = 0.236
    min_baseline_ms: float = 2000.0
    # Brows sit 0.17-0.29 IOD above the eyes at rest from person to person: against the typical
    # face, a raise or a frown must exceed this much more.
    typical_brow_spread: float = 0.05
    # A held expression: quiet frames further than this above the typical face (MAR; brow
    # height) are not neutral: a mouth held open or brows held raised through most of the clip.
    # The mouth's reference then comes from the clip's most closed frames (with
    # mouth_closed_quantile it does anyway: then only a mouth never closed, whose reference
    # becomes the typical face's), the brows' from the top of the neutral range
    # (baseline.held_reference). Just beyond the 22 shared clips' range
    # at rest: MAR 0.01-0.22, brows 0.17-0.29 IOD.
    held_mar_excess: float = 0.18
    held_brow_excess: float = 0.08
    held_quantile: float = 0.1  # a mouth held open: its reference from this share of frames nearest neutral
    # brows and frown
    brow_raise_on: float = 0.05
    # 2D landmarks: a head tipped from its baseline pitch moves the brows (in front of the eyes) and
    # the lip corners (behind the lip centre) by this many IOD per sine of the pitch change (dlib,
    # the 22 shared clips' low-smile frames); the brow and frown tests take it out.
    brow_pitch_slope: float = 0.056
    lip_corner_pitch_slope: float = 0.135
    frown_brow_drop: float = 0.03
    frown_corner_drop: float = 0.03
    expression_min_ms: float = 200.0
    # looking away: head turned from the person's baseline direction
    away_yaw_deg: float = 30.0
    away_pitch_deg: float = 25.0
    away_off_factor: float = 0.8
    away_min_ms: float = 500.0
    # The 3DMM path (raw params + basis: features of the pose-free canonical face). Its typical
    # neutral face is the basis mean face moved by these rest offsets, the median of the first
    # 22 shared clips' references in the fitted space (dlib's points fitted with
    # facemap.threedmm.fit, the real basis): the mean face's brows sit lower and its lip
    # corners higher than a face at rest (docs/analysis.md, "The 3DMM path").
    threedmm_rest_mouth_width: float = 0.0
    threedmm_rest_lip_corner_lift: float = -0.015
    threedmm_rest_brow_raise: float = 0.078
    threedmm_rest_jaw_open: float = 0.039
    # ... and its label thresholds, which take the place of their landmark-path namesakes
    # (smile_on, eyes_closed_ear, mouth_open_mar, mouth_open_jaw) for raw params: chosen
    # leave-one-clip-out on the 34 shared clips' fits (bench/bench_labels.py --raw-logs --loo).
    # The closed-eye limit is a share of the typical face's EAR (basis-independent).
    threedmm_smile_on: float = 0.23
    threedmm_eyes_closed_share: float = 0.515
    threedmm_mouth_open_mar: float = 0.3
    threedmm_mouth_open_jaw: float = 0.02
    # Which path judges a clip that has both a landmarks log and raw params (FaceMap's logs, or a
    # dlib run fitted to the 3DMM): 1, the landmarks (as good or better on every label held out
    # on the 34 shared clips' fits, docs/analysis.md); 0, the params. Raw params alone: the 3DMM path.
    landmarks_first: int = 1
    # the logs belong together when the nose tip lies within box_slack box sizes of its meta box in
    # min_inside_box of the frames; without a meta log, the frames from the first to the last logged
    # one are filled in up to max_gap_factor x rows + max_gap_frames (not gigabytes for a typo).
    box_slack: float = 0.5
    min_inside_box: float = 0.8
    max_gap_factor: float = 20.0
    max_gap_frames: int = 100_000
    # the online analyzer (analysis/online.py, facemap.open(..., analyze=True)): it decides the
    # frames due in steps of online_step_ms (one pass over its window per step and face, its cost
    # shared by the step's frames); before a step its reference face is recomputed from the
    # frames seen so far when online_rebase_ms of face time came since the last time (so every
    # step: the decisions use all it has seen); its labels are provisional (judged against a
    # baseline still settling) for the first online_trust_ms of face time.
    online_rebase_ms: float = 400.0
    online_rebase_share: float = 0.1  # ... or this share of the face time it keeps, when longer (long sessions)
    online_trust_ms: float = 5000.0
    online_step_ms: float = 400.0

    def __post_init__(self) -> None:
        defaults = type(self)
        on = self.smile_on
        if (self.smile_off == defaults.smile_off and on != defaults.smile_on and not isinstance(on, bool)
                and isinstance(on, numbers.Real) and math.isfinite(on) and on > 0):
            # the hysteresis band stays proportional (a smile_on under 0.207 with the default
            # smile_off ended every smile at once: off above on)
            object.__setattr__(self, "smile_off", float(on) * defaults.smile_off / defaults.smile_on)
        values = asdict(self)
        problem = settings_problem(values)
        if problem:
            raise UsageError(f"AnalysisConfig: {problem}")
        for name, value in values.items():  # numpy numbers and bools (the switches) as plain ones
            plain = int(value) if name in WHOLE_SETTINGS else float(value)
            if type(value) is not type(plain):
                object.__setattr__(self, name, plain)

    def as_dict(self) -> dict[str, float]:
        """All settings as a plain dict."""
        return asdict(self)


# Settings that others are divided by (or that scale time): 0 is refused.
POSITIVE_SETTINGS = (
    "smile_on", "eyes_closed_ratio", "typical_ear", "baseline_max_frames", "frame_gap_factor",
    "spread_floor_ratio", "spread_floor_iod", "spread_floor_deg", "max_gap_factor",
    "threedmm_smile_on", "threedmm_eyes_closed_share", "mouth_open_p", "eyes_dip_ear_factor",
    "eyes_dip_window_ms",
)
# Settings that count frames: whole numbers.
WHOLE_SETTINGS = ("baseline_max_frames", "max_gap_frames", "landmarks_first", "learned_mouth")
# Settings that are shares (quantiles, fractions of frames): at most 1.
SHARE_SETTINGS = (
    "ear_open_quantile", "held_quantile", "mouth_closed_quantile", "min_inside_box",
    "online_rebase_share", "mouth_open_p", "eyes_dip_ratio",
)
# Settings that switch a rule on (1) or off (0).
SWITCH_SETTINGS = ("landmarks_first", "learned_mouth")


# Settings that are offsets or typical values of a signed measure: any finite number.
SIGNED_SETTINGS = (
    "typical_lip_corner_lift", "threedmm_rest_mouth_width", "threedmm_rest_lip_corner_lift",
    "threedmm_rest_brow_raise", "threedmm_rest_jaw_open",
)


def settings_problem(values: Mapping[str, float]) -> str | None:
    """What is wrong with these settings (name -> number), in one clause, or None: the checks
    of a config file and of an ``AnalysisConfig`` built in Python."""
    def bad(v: object) -> bool:  # a number (numpy's too; a bool only for a switch), finite
        return not isinstance(v, numbers.Real) or not math.isfinite(v)

    not_numbers = [k for k, v in values.items() if isinstance(v, bool) and k not in SWITCH_SETTINGS]
    if not_numbers:
        return f"setting(s) {', '.join(not_numbers)} must be numbers, not true/false"
    switches = [k for k in SWITCH_SETTINGS if k in values and values[k] not in (0, 1)]
    if switches:
        return f"setting(s) {', '.join(switches)} must be 0 (off) or 1 (on)"
    out_of_range = [k for k, v in values.items() if bad(v) or (v < 0 and k not in SIGNED_SETTINGS)]
    if out_of_range:
        return f"setting(s) {', '.join(out_of_range)} must be finite numbers >= 0"
    zero = [k for k in POSITIVE_SETTINGS if values.get(k) == 0]
    if zero:
        return f"setting(s) {', '.join(zero)} must be above 0 (the others are scaled by it)"
    fractional = [k for k in WHOLE_SETTINGS if k in values and not float(values[k]).is_integer()]
    if fractional:
        return f"setting(s) {', '.join(fractional)} must be whole numbers (frames)"
    above_one = [k for k in SHARE_SETTINGS if values.get(k, 0.0) > 1]
    if above_one:
        return f"setting(s) {', '.join(above_one)} must be at most 1 (a share)"
    if "baseline_fraction" in values and not 0 < values["baseline_fraction"] <= 1:
        return "baseline_fraction must be above 0 and at most 1 (a share of the face frames)"
    if "smile_on" in values and "smile_off" in values and values["smile_off"] > values["smile_on"]:
        return (f"smile_off ({values['smile_off']:g}) must be at most smile_on ({values['smile_on']:g}): "
                "a smile ends below where it starts")
    return None


def load_config(path: Path | None) -> AnalysisConfig:
    """Defaults, overridden by the keys of a JSON object in ``path`` (if given)."""
    cfg = AnalysisConfig()
    if path is None:
        return cfg
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: {{config}} file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{path}: {{config}} is not valid JSON ({msg})") from None
    if not isinstance(data, dict):
        raise UsageError(
            f"{path}: {{config}} must hold a JSON object of threshold names to numbers"
        )
    valid = {f.name for f in fields(AnalysisConfig)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise UsageError(
            f"{path}: unknown setting(s) {', '.join(unknown)}; valid names: {', '.join(sorted(valid))}"
        )
    bad = [k for k, v in data.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
    if bad:
        raise UsageError(f"{path}: setting(s) {', '.join(bad)} must be numbers")
    values = {}
    for k, v in data.items():
        try:
            values[k] = float(v)
        except OverflowError:  # a 400-digit integer
            values[k] = math.inf
    problem = settings_problem(values)
    if problem:
        raise UsageError(f"{path}: {problem}")
    values.update({k: int(values[k]) for k in WHOLE_SETTINGS if k in values})
    return replace(cfg, **values)


def for_source(cfg: AnalysisConfig, source: str) -> AnalysisConfig:
    """The settings the labels of ``source`` are judged by: ``cfg`` for landmarks; for raw
    params ("raw+basis") the threedmm_* thresholds in place of their landmark-path namesakes
    (the smile's off level keeps its share of the on level; the closed-eye EAR is
    threedmm_eyes_closed_share x typical_ear, which labels.py scales to the typical face's EAR)."""
    if source != "raw+basis":
        return cfg
    return replace(
        cfg,
        smile_on=cfg.threedmm_smile_on,
        smile_off=cfg.threedmm_smile_on * cfg.smile_off / cfg.smile_on,
        eyes_closed_ear=cfg.threedmm_eyes_closed_share * cfg.typical_ear,
        mouth_open_mar=cfg.threedmm_mouth_open_mar,
        mouth_open_jaw=cfg.threedmm_mouth_open_jaw,
    )


# The rest offset each typical-face feature of the 3DMM path gets (``threedmm_typical``).
THREEDMM_REST = {
    "mouth_width": "threedmm_rest_mouth_width",
    "lip_corner_lift": "threedmm_rest_lip_corner_lift",
    "brow_raise": "threedmm_rest_brow_raise",
    "jaw_open": "threedmm_rest_jaw_open",
}


def threedmm_typical(mean_face: dict[str, float], cfg: AnalysisConfig) -> dict[str, float]:
    """The 3DMM path's typical neutral face: the basis mean face's features moved by the
    threedmm_rest_* offsets."""
    return {k: v + getattr(cfg, THREEDMM_REST[k]) if k in THREEDMM_REST else v for k, v in mean_face.items()}
