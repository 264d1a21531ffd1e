"""The online analyzer: the offline analyzer's labels and events, frame by frame, per face.

``OnlineAnalyzer.update(frame, timestamp_ms, faces)`` takes one frame's faces (as the chain
yields them) and returns the ``Verdict`` s of the frames it has now decided: their faces
labelled (``labels``, ``measures``, ``provisional``) and the events that ended. It has no rules
of its own: each face's features come from ``features.landmark_features``, its reference face
from ``face_baseline`` and its labels from ``labels.label_frames``, the functions
``analyze_expressions.py`` runs on a whole clip, here run on what is known so far:

- the **window**: the face's last ``window_ms(cfg)`` of frames (every minimum duration, gap and
  smoothing reach of ``AnalysisConfig`` fits in it twice), judged by ``label_frames`` as the
  offline analyzer judges a clip that ends at its newest frame: a run reaching it that is still
  shorter than its label's minimum duration is not that label yet. Only a label whose minimum
  is longer than the lag is concerned (``yawn``, 1.5 s): its first ``yawn_min_ms - lag_ms``
  (1 s, less the wait for the next step) are released unlabelled, the frames after them labelled, and the event, found on the
  window once it ended, still starts at its first frame. (Keeping such a run while it is short,
  in case it grows, labelled live the mouth openings of 0.5-1.5 s that the offline analyzer
  drops: lp_d3's 1.4 s one.)
- the **lag**: a frame is decided ``lag_ms`` after it arrived (default ``default_lag_ms``: the
  reach of the talking windows, 500 ms), so the centred windows see the frames after it as
  the offline analyzer's do; ``lag_ms=0`` decides from the past only. Frames are decided in
  steps of ``online_step_ms``: one ``label_frames`` pass per face decides every frame due.
- the **baseline**: the person's reference face, starting from the typical neutral face (as
  the offline analyzer does for a photo or a clip under ``min_baseline_ms``) and recomputed
  from the frames seen so far (the last ``baseline_max_frames``) every ``online_rebase_ms`` of
  face time (or ``online_rebase_share`` of the face time so far, when longer), so it adapts as
  the person's own quiet frames arrive. For the first ``online_trust_ms`` of face time the
  face is ``provisional``.
- the **events**: a run of an event label (``events.EVENT_LABELS``) is an event once its label
  stayed off longer than the gap the analyzer bridges plus its smoothing reach
  (``settle_ms``), or when the frames end (``finish``); it goes on the first frame released at
  or after its last frame, with its first frame from the frames released so far when it began
  before the window.

No file, no model, no object rebuilt per frame; ``bench/bench_online.py`` prints the cost (about
1 ms of CPU per face and frame, spent in steps) and the agreement with the offline analyzer.
Pictures (``judge_still``) are each judged on their own against the typical face, exactly as
the offline analyzer judges a photo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..types import N_LANDMARKS, Event, Face, Status
from . import analyze, face_baseline
from .baseline import Baseline
from .config import AnalysisConfig
from .events import EVENT_LABELS, frame_durations_ms, runs
from .features import FEATURE_COLUMNS, landmark_features
from .inputs import Inputs
from .labels import LABELS, NO_FACE, PRIORITY, label_frames

_NAN_ROW = np.full(len(FEATURE_COLUMNS), np.nan)
_LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}
# Continuous measures, each 1.0 at the threshold of the label it is named after.
MEASURES = ("smile", "mouth_open", "eyes_closed", "talking", "brow_raise", "looking_away")


def measures(signals: pd.DataFrame, thresholds: Mapping[str, float]) -> pd.DataFrame:
    """The analyzer's decision signals (``Labelled.signals``) as ``MEASURES``: (N, 6), each
    1.0 at its label's threshold (``Labelled.thresholds``), 0 at the reference face (smile,
    brow_raise), above 1 past the threshold; NaN without a face."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame(
            {
                "smile": signals["smile_index"].to_numpy() / thresholds["smile_on"],
                "mouth_open": signals["mouth_level"].to_numpy(),
                "eyes_closed": 1.0 / signals["eye_level"].to_numpy(),
                "talking": signals["lip_motion"].to_numpy() / thresholds["talk_on"],
                "brow_raise": signals["brow_delta"].to_numpy() / thresholds["brow_raise_on"],
                "looking_away": signals["turn"].to_numpy(),
            },
            index=signals.index,
        )


def window_ms(cfg: AnalysisConfig) -> float:
    """How much of the past the online analyzer judges each frame with: twice the longest
    minimum duration, gap and smoothing reach of the settings."""
    longest = max(cfg.yawn_min_ms, cfg.talk_min_ms, cfg.away_min_ms, cfg.blink_max_ms, cfg.smile_min_ms,
                  cfg.mouth_min_ms, cfg.expression_min_ms, cfg.wink_min_ms)
    gap = max(cfg.eyes_gap_ms, cfg.mouth_gap_ms, cfg.talk_gap_ms, cfg.smile_gap_ms)
    reach = max(cfg.talk_window_ms + cfg.talk_detrend_ms, cfg.pose_smooth_ms, cfg.brow_smooth_ms,
                cfg.mouth_smooth_ms, cfg.eye_smooth_ms)
    return 2.0 * (longest + gap + reach)


def default_lag_ms(cfg: AnalysisConfig) -> float:
    """How far behind the newest frame the online analyzer decides a frame by default: the
    reach of its longest centred window (talking: the detrend and lip-motion windows on the
    mouth-smoothed opening), so each frame is judged with the frames around it."""
    return (cfg.mouth_smooth_ms + cfg.talk_detrend_ms + cfg.talk_window_ms) / 2


def settle_ms(cfg: AnalysisConfig) -> dict[str, float]:
    """Per event label: how long after its last frame a run can still grow back (the gap its
    label bridges plus half of each centred window it is smoothed with)."""
    return {
        "blink": cfg.eyes_gap_ms + cfg.eye_smooth_ms / 2,
        "wink": cfg.eye_smooth_ms / 2,
        "smile": cfg.smile_gap_ms + cfg.mouth_smooth_ms / 2,
        "talking": cfg.talk_gap_ms + (cfg.mouth_smooth_ms + cfg.talk_detrend_ms + cfg.talk_window_ms) / 2,
        "yawn": cfg.mouth_gap_ms + cfg.mouth_smooth_ms / 2,
        "looking_away": cfg.pose_smooth_ms / 2,
    }


def analysable(face: Face) -> bool:
    """True when the analyzer judges this face: 68 landmarks, and a box that is not the
    frame's centre guessed without a detection (the offline analyzer's ``no_bbox`` rule)."""
    return (
        face.landmarks.shape == (N_LANDMARKS, 2)
        and face.status is not Status.NO_FACE
        and face.reason != "no_bbox"
        and bool(np.isfinite(face.landmarks).all())
    )


def label_names(flags_row: np.ndarray, dominant: str) -> tuple[str, ...]:
    """The labels set in one row of 0/1 flags (``LABELS`` order), the dominant one first, the
    others in ``PRIORITY`` order."""
    on = {name for name, v in zip(LABELS, flags_row, strict=True) if v}
    return (dominant, *(n for n in PRIORITY if n in on and n != dominant))


@dataclass
class FaceState:
    """What the online analyzer keeps of one face: its history (the last
    ``baseline_max_frames`` frames, NaN rows where it was not seen), its reference face and
    the events it has reported."""

    cfg: AnalysisConfig
    frames: list[int] = field(default_factory=list)
    times_ms: list[float] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    face_ms: float = 0.0
    rebased_at_ms: float = -np.inf
    base: Baseline | None = None
    reported_end: dict[str, int] = field(default_factory=dict)  # kind -> last frame reported
    # kind -> [first frame, its ms, last frame] of the latest run of that event label in the
    # frames released so far (a run longer than the window keeps its start here)
    released: dict[str, list] = field(default_factory=dict)
    last_released: int = -1
    last_face_ms: float = -np.inf
    todo: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (row number, landmarks) to featurise
    dropped: int = 0  # rows cut from the front (the history is capped)

    def add(self, frame: int, timestamp_ms: float, points: np.ndarray | None) -> None:
        """Append one frame: the face's (68, 2) landmarks, or None when it is not in it. Their
        features are computed later, for every frame added since, in one vectorised call."""
        if points is not None:
            if self.times_ms and self.last_face_ms == self.times_ms[-1]:
                self.face_ms += max(0.0, timestamp_ms - self.times_ms[-1])
            self.last_face_ms = timestamp_ms
            self.todo.append((self.dropped + len(self.rows), points))
        self.frames.append(frame)
        self.times_ms.append(timestamp_ms)
        self.rows.append(_NAN_ROW)
        cap = int(self.cfg.baseline_max_frames)
        if len(self.frames) > cap:
            self.fill()
            cut = len(self.frames) - cap
            del self.frames[:cut], self.times_ms[:cut], self.rows[:cut]
            self.dropped += cut

    def fill(self) -> None:
        """Compute the features of the frames added since the last call (``landmark_features``)."""
        if not self.todo:
            return
        values = landmark_features(np.stack([pts for _, pts in self.todo])).to_numpy()
        for (at, _), row in zip(self.todo, values, strict=True):
            self.rows[at - self.dropped] = row if np.isfinite(row).all() else _NAN_ROW
        self.todo.clear()

    def history(self, start: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
        """(frames, timestamp_ms, features, face) of the rows from ``start``."""
        self.fill()
        values = np.vstack(self.rows[start:])
        feats = pd.DataFrame(values, columns=FEATURE_COLUMNS)
        face = np.isfinite(values).all(axis=1)
        return np.asarray(self.frames[start:]), np.asarray(self.times_ms[start:]), feats, face

    def rebase(self) -> None:
        """The reference face from every frame kept, as the offline analyzer makes it."""
        frames, t, feats, face = self.history()
        dur = frame_durations_ms(t, self.cfg.frame_gap_factor)
        self.base = face_baseline(feats, frames, face, t, dur, self.cfg)
        self.rebased_at_ms = self.face_ms


@dataclass(frozen=True)
class Verdict:
    """One frame as the online analyzer releases it: its ``faces`` labelled (``labels``,
    ``measures``, ``provisional``) and the ``events`` known, when it was released, to have
    ended."""

    frame: int
    timestamp_ms: float
    faces: tuple[Face, ...]
    events: tuple[Event, ...] = ()


class OnlineAnalyzer:
    """The expression analyzer as a stage of the chain: per face id, causal, frame by frame.

    ``update(frame, timestamp_ms, faces)`` takes a frame and returns the ``Verdict`` s of the
    frames now decided, in steps of ``online_step_ms``: a frame is decided ``lag_ms`` after it,
    at most ``online_step_ms`` more (default
    ``default_lag_ms(cfg)``: the reach of the analyzer's centred windows, so a frame is judged
    with the frames around it, as the offline analyzer judges it); ``lag_ms=0`` decides each
    frame at once, from the past only. ``finish()`` returns the frames still waiting. Faces are
    told apart by ``Face.id``; a face not seen for ``window_ms(cfg)`` is forgotten. Build one
    per video or camera run; it holds no file and no model.
    """

    def __init__(self, config: AnalysisConfig | None = None, lag_ms: float | None = None) -> None:
        self.cfg = config or AnalysisConfig()
        self.window_ms = window_ms(self.cfg)
        self.lag_ms = default_lag_ms(self.cfg) if lag_ms is None else float(lag_ms)
        if not (np.isfinite(self.lag_ms) and 0 <= self.lag_ms <= self.window_ms / 2):
            raise UsageError(f"lag_ms must be 0 to {self.window_ms / 2:g} ms (half the analyzer's window), got {lag_ms}")
        self.settle_ms = settle_ms(self.cfg)
        self.faces: dict[int, FaceState] = {}
        self.pending: list[tuple[int, float, tuple[Face, ...], dict[int, bool]]] = []
        self.held_events: list[Event] = []  # ended, waiting for their last frame's verdict

    def update(self, frame: int, timestamp_ms: float, faces: Sequence[Face]) -> list[Verdict]:
        """Take one frame's faces; return the verdicts of the frames decided now (those
        ``lag_ms`` or more before this one), oldest first."""
        t = float(timestamp_ms)
        faces = tuple(faces)
        seen = {}
        for f in faces:
            if analysable(f) and f.id not in seen:
                seen[f.id] = f.landmarks
        for fid in seen:
            self.faces.setdefault(fid, FaceState(self.cfg))
        events: list[Event] = []
        for fid, state in list(self.faces.items()):
            row = seen.get(fid)
            state.add(frame, t, row)
            if row is None and t - state.last_face_ms > self.window_ms:
                events += self._events(fid, state, final=True)
                del self.faces[fid]
            elif row is not None and (state.base is None or state.face_ms - state.rebased_at_ms >= self._rebase_every(state)):
                state.rebase()
        trust = {fid: self.faces[fid].face_ms < self.cfg.online_trust_ms for fid in seen}
        self.pending.append((frame, t, faces, trust))
        return self._release(t, events, final=False)

    def finish(self) -> list[Verdict]:
        """The verdicts of the frames still waiting, and the events still open or unsettled
        when the frames end (as the offline analyzer counts a run that reaches the clip's end)."""
        t = self.pending[-1][1] if self.pending else 0.0
        out = self._release(t, [], final=True)
        self.faces.clear()
        return out

    def _release(self, now_ms: float, events: list[Event], final: bool) -> list[Verdict]:
        # Frames are decided in steps of online_step_ms (one label_frames call per face decides
        # every frame due), so the cost of a call is shared by the frames of a step.
        ready = self.pending and self.pending[0][1] <= now_ms - self.lag_ms - self.cfg.online_step_ms
        if not (final or ready or events):
            return []
        due = [p for p in self.pending if final or p[1] <= now_ms - self.lag_ms]
        self.pending = self.pending[len(due):]
        judged = {fid: self._judge(state) for fid, state in self.faces.items() if state.base is not None}
        tables = {fid: (lab.flags.to_numpy(), lab.label, measures(lab.signals, lab.thresholds).to_numpy(), frames)
                  for fid, (lab, frames, _, _) in judged.items()}
        out = []
        for frame, t, faces, trust in due:
            rows = {}
            for fid, (flags, label, _, frames) in tables.items():
                r = int(np.searchsorted(frames, frame))
                if fid in trust and r < len(frames) and frames[r] == frame and label[r] != NO_FACE:
                    rows[fid] = r
                self._track_runs(self.faces[fid], frame, t, flags[rows[fid]] if fid in rows else None)
            labelled_faces = []
            for f in faces:
                if f.id not in rows:
                    labelled_faces.append(f)
                    continue
                flags, label, values, _ = tables[f.id]
                r = rows[f.id]
                labelled_faces.append(replace(
                    f,
                    labels=label_names(flags[r], str(label[r])),
                    measures={k: float(v) for k, v in zip(MEASURES, values[r], strict=True) if np.isfinite(v)},
                    provisional=trust[f.id],
                ))
            out.append(Verdict(frame, t, tuple(labelled_faces)))
        for fid, (labelled, frames, times, dur) in judged.items():
            events += self._events(fid, self.faces[fid], labelled, frames, times, dur, final)
        # an event goes on the first frame released at or after its last frame
        self.held_events += events
        for i, v in enumerate(out):
            ended = [e for e in self.held_events if e.end_frame <= v.frame or (final and i == len(out) - 1)]
            if ended:
                out[i] = replace(v, events=tuple(ended))
                self.held_events = [e for e in self.held_events if e not in ended]
        return out

    @staticmethod
    def _track_runs(state: FaceState, frame: int, timestamp_ms: float, flags_row: np.ndarray | None) -> None:
        """Follow the runs of the event labels in the frames released (``flags_row``: the
        frame's 0/1 flags in ``LABELS`` order, None without the face)."""
        for kind in EVENT_LABELS:
            if flags_row is None or not flags_row[_LABEL_INDEX[kind]]:
                continue
            run = state.released.get(kind)
            if run is not None and run[2] == state.last_released:
                run[2] = frame
            else:
                state.released[kind] = [frame, timestamp_ms, frame]
        state.last_released = frame

    def _rebase_every(self, state: FaceState) -> float:
        """Face time between two baseline refreshes: online_rebase_ms, or online_rebase_share of
        the face time so far when longer (a refresh costs in proportion to the frames kept)."""
        return max(self.cfg.online_rebase_ms, self.cfg.online_rebase_share * state.face_ms)

    def _window_start(self, state: FaceState) -> int:
        t = state.times_ms
        return int(np.searchsorted(np.asarray(t[-4096:]), t[-1] - self.window_ms, side="left")) + max(0, len(t) - 4096)

    def _judge(self, state: FaceState):
        """``label_frames`` on the face's window, judged as a clip that ends at its newest frame."""
        frames, times, feats, face = state.history(self._window_start(state))
        dur = frame_durations_ms(times, self.cfg.frame_gap_factor)
        labelled = label_frames(feats, face, times, dur, state.base, self.cfg, undo_foreshortening=True)
        return labelled, frames, times, dur

    def _events(self, fid: int, state: FaceState, labelled=None, frames=None, times=None, dur=None,
                final: bool = False) -> list[Event]:
        """The runs of the event labels in the window that are over (settled, or ``final``)
        and not yet reported."""
        if labelled is None:
            if state.base is None or not state.frames:
                return []
            labelled, frames, times, dur = self._judge(state)
        out = []
        n = len(frames)
        for kind in EVENT_LABELS:
            starts, ends = runs(labelled.flags[kind].to_numpy().astype(bool))
            for s, e in zip(starts, ends, strict=True):
                if frames[s] <= state.reported_end.get(kind, -1):
                    continue  # reported (a run that grew back after it settled stays reported)
                settled = e < n and times[-1] - times[e - 1] >= self.settle_ms[kind]
                if not (settled or final):
                    continue
                start_frame, start_ms = int(frames[s]), float(times[s])
                run = state.released.get(kind)
                if run is not None and run[0] < start_frame and run[2] >= start_frame - 1 and run[0] <= frames[e - 1]:
                    start_frame, start_ms = run[0], run[1]  # it began before the window (or its hysteresis) shows
                out.append(Event(kind, fid, start_frame, int(frames[e - 1]), start_ms,
                                 float(times[e - 1] + dur[e - 1])))
                state.reported_end[kind] = int(frames[e - 1])
        return out


def judge_still(faces: Sequence[Face], config: AnalysisConfig | None = None) -> tuple[Face, ...]:
    """Each face of a picture judged on its own against the typical neutral face: the offline
    analyzer's verdict on a one-frame clip (a photo), as labels and measures."""
    cfg = config or AnalysisConfig()
    out = []
    for f in faces:
        if not analysable(f):
            out.append(f)
            continue
        feats = landmark_features(f.landmarks[None])
        face = np.isfinite(feats.to_numpy()).all(axis=1)
        inputs = Inputs(np.array([f.frame]), np.zeros(1), face, feats, "landmarks")
        a = analyze(inputs, cfg)
        lab = a.labelled
        m = measures(lab.signals, lab.thresholds).iloc[0]
        out.append(replace(f, labels=label_names(lab.flags.to_numpy()[0], str(lab.label[0])),
                           measures={k: float(v) for k, v in m.items() if np.isfinite(v)}, provisional=False))
    return tuple(out)
