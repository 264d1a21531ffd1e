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
  (1 s, less the wait for the next step) are released unlabelled, the frames after them
  labelled, and its event still starts at its first frame. (Keeping such a run while it is short,
  in case it grows, labelled live the mouth openings of 0.5-1.5 s that the offline analyzer
  drops: lp_d3's 1.4 s one.)
- the **lag**: a frame is decided ``lag_ms`` after it arrived (default ``default_lag_ms``: the
  reach of the talking windows, 500 ms), so the centred windows see the frames after it as
  the offline analyzer's do; ``lag_ms=0`` decides a frame at the next step, with the frames
  that came up to then (the least delay, not the past only). Frames are decided in
  steps of ``online_step_ms`` (400 ms): one ``label_frames`` pass per face decides every frame
  due, so a frame comes out 500-900 ms after it came in.
- the **baseline**: the person's reference face, starting from the typical neutral face (as
  the offline analyzer does for a photo or a clip under ``min_baseline_ms``) and recomputed
  before a step from every frame seen so far (the last ``baseline_max_frames``) when
  ``online_rebase_ms`` of face time came since the last time (so every step), or
  ``online_rebase_share`` of the face time kept when longer (a refresh reads every frame kept:
  in a long session its cost per frame stays the same), and at ``finish()`` for the last
  frames (as the offline analyzer, from the whole clip). For the first ``online_trust_ms`` of
  face time the face is ``provisional``. Given the offline (whole-clip) reference instead
  (``reference=``), the online labels and events are the offline ones; without it, what
  differs is the reference the first seconds give (``bench/bench_online.py``).
- the **events**: the runs of the event labels (``events.EVENT_LABELS``) in the frames
  released, so an event is what the labels shown said; a run's first frame is the window's
  (a yawn, released after its first second, starts at its first frame), two runs the window
  joins across a gap (as the offline analyzer bridges it) are one event, and a run is reported
  once the window shows its label off from the frame after it to its newest frame for the
  gap the analyzer bridges plus its smoothing reach (``settle_ms``; on its last frame when
  the window already shows it), or when the frames end (``finish``); a run the latest
  judgement no longer holds is dropped.
- the **memory**: a face's history lives in arrays that grow to at most the last
  ``baseline_max_frames`` frames and a spare quarter (``History``), the frames waiting are those of the
  lag, a face gone for ``window_ms`` is forgotten: an hour-long session holds what a
  ten-minute one does.

No file, no model, no object rebuilt per frame; ``bench/bench_online.py`` prints the cost (about
0.7-0.8 ms of CPU per face and frame, spent in steps, three quarters of it pandas' overhead in
``label_frames``) and the agreement with the offline analyzer.
Pictures (``judge_still``) are each judged on their own against the typical face, exactly as
the offline analyzer judges a photo.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..types import N_LANDMARKS, Event, Face, Status
from . import analyze, face_baseline
from .baseline import Baseline
from .config import AnalysisConfig
from .events import EVENT_LABELS, frame_durations_ms
from .features import FEATURE_COLUMNS, landmark_features
from .inputs import Inputs
from .labels import LABELS, NO_FACE, PRIORITY, label_frames
from .learned import label_models

_LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}
_EVENT_INDEX = tuple((kind, _LABEL_INDEX[kind]) for kind in EVENT_LABELS)
# The window's columns as plain Python strings: label_frames looks columns up a few dozen times
# a step, and pandas' string dtype makes each lookup slower.
_COLUMNS = pd.Index(FEATURE_COLUMNS, dtype=object)
# Continuous measures, each 1.0 at the threshold of the label it is named after.
MEASURES = ("smile", "mouth_open", "eyes_closed", "talking", "brow_raise", "looking_away")


def _measure_values(signal: Mapping[str, np.ndarray], thresholds: Mapping[str, float]) -> tuple[np.ndarray, ...]:
    """``MEASURES`` from the decision signals (arrays of the same length), in that order."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (
            signal["smile_index"] / thresholds["smile_on"],
            signal["mouth_level"],
            1.0 / signal["eye_level"],
            signal["lip_motion"] / thresholds["talk_on"],
            signal["brow_delta"] / thresholds["brow_raise_on"],
            signal["turn"],
        )


def measures(signals: pd.DataFrame, thresholds: Mapping[str, float]) -> pd.DataFrame:
    """The analyzer's decision signals (``Labelled.signals``) as ``MEASURES``: (N, 6), each
    1.0 at its label's threshold (``Labelled.thresholds``), 0 at the reference face (smile,
    brow_raise), above 1 past the threshold; NaN without a face."""
    values = _measure_values({c: signals[c].to_numpy() for c in signals.columns}, thresholds)
    return pd.DataFrame(dict(zip(MEASURES, values, strict=True)), index=signals.index)
MAX_FPS = 240  # the highest frame rate a face's history is sized for (a window's frames)


def window_ms(cfg: AnalysisConfig) -> float:
    """How much of the past the online analyzer judges each frame with: twice the longest
    minimum duration, gap and smoothing reach of the settings."""
    longest = max(cfg.yawn_min_ms, cfg.talk_min_ms, cfg.away_min_ms, cfg.blink_max_ms, cfg.smile_min_ms,
                  cfg.mouth_min_ms, cfg.expression_min_ms, cfg.wink_min_ms)
    gap = max(cfg.eyes_gap_ms, cfg.mouth_gap_ms, cfg.talk_gap_ms, cfg.smile_gap_ms)
    reach = max(cfg.talk_window_ms + cfg.talk_detrend_ms, cfg.pose_smooth_ms, cfg.brow_smooth_ms,
                cfg.mouth_smooth_ms, cfg.eye_smooth_ms, cfg.eyes_dip_window_ms)
    return 2.0 * (longest + gap + reach)


def default_lag_ms(cfg: AnalysisConfig) -> float:
    """How far behind the newest frame the online analyzer decides a frame by default: the
    reach of its longest centred window (talking: the detrend and lip-motion windows on the
    mouth-smoothed opening; the eyes' level around a brief dip), so each frame is judged with
    the frames around it."""
    return max(cfg.mouth_smooth_ms + cfg.talk_detrend_ms + cfg.talk_window_ms, cfg.eyes_dip_window_ms) / 2


def online_lag_ms(cfg: AnalysisConfig, lag_ms: float | None = None, name: str = "lag_ms") -> float:
    """The lag the online analyzer decides frames at (``default_lag_ms`` for None), once its
    timing is checked (a lag past half the window, or a step past it, is one UsageError) and
    the label models it needs are read (package data, once a process: a broken file is one
    ModelError before the first frame, not in its step)."""
    half = window_ms(cfg) / 2
    lag = default_lag_ms(cfg) if lag_ms is None else float(lag_ms)
    if not (np.isfinite(lag) and 0 <= lag <= half):
        raise UsageError(f"{name} must be 0 to {half:g} ms (half the analyzer's window), got {lag_ms}")
    if not (0 < cfg.online_step_ms <= half):
        raise UsageError(f"online_step_ms must be above 0 and at most {half:g} ms (half the analyzer's "
                         f"window: a frame is decided within the window), got {cfg.online_step_ms:g}")
    if cfg.learned_mouth:
        label_models()
    return lag


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


class History:
    """One face's last ``cap`` frames in arrays: frame numbers, timestamps (ms) and features
    ((N, len(FEATURE_COLUMNS)), NaN rows where the face was not seen). An append is O(1)
    (amortised): the features of the frames added since the last read are computed in one
    vectorised call when they are read (``fill``); the arrays double as the frames come, up to
    ``cap`` rows plus a spare quarter, and once that full the newest rows move to the front, so
    memory stays at that size however long the run (a face seen briefly holds little)."""

    def __init__(self, cap: int, start_rows: int = 1024) -> None:
        self.cap = max(2, int(cap))
        self.max_rows = self.cap + max(64, self.cap // 4)
        self.frames = np.zeros(0, dtype=np.int64)
        self.times_ms = np.zeros(0)
        self.values = np.full((0, len(FEATURE_COLUMNS)), np.nan)
        self._resize(min(self.max_rows, start_rows))
        self.n = 0  # rows in use
        self._todo: list[tuple[int, np.ndarray]] = []  # (row, (68, 2) landmarks) to featurise

    def __len__(self) -> int:
        return min(self.n, self.cap)

    def _resize(self, rows: int) -> None:
        used = len(self.frames)
        frames, times, values = np.zeros(rows, dtype=np.int64), np.zeros(rows), np.full((rows, len(FEATURE_COLUMNS)), np.nan)
        frames[:used], times[:used], values[:used] = self.frames, self.times_ms, self.values
        self.frames, self.times_ms, self.values = frames, times, values

    def add(self, frame: int, timestamp_ms: float, points: np.ndarray | None) -> None:
        """Append one frame: the face's (68, 2) landmarks, or None when it is not in it."""
        if self.n == len(self.frames) < self.max_rows:
            self._resize(min(self.max_rows, 2 * self.n))
        elif self.n == len(self.frames):  # full: keep the newest cap - 1 rows, at the front
            self.fill()
            keep = slice(self.n - self.cap + 1, self.n)
            for a in (self.frames, self.times_ms, self.values):
                a[: self.cap - 1] = a[keep]
            self.values[self.cap - 1 :] = np.nan
            self.n = self.cap - 1
        i = self.n
        self.frames[i], self.times_ms[i] = frame, timestamp_ms
        if points is not None:
            self._todo.append((i, points))
        self.n += 1

    def fill(self) -> None:
        """Compute the features of the frames added since the last call (``landmark_features``)."""
        if not self._todo:
            return
        rows = np.fromiter((i for i, _ in self._todo), dtype=np.int64, count=len(self._todo))
        values = landmark_features(np.stack([p for _, p in self._todo])).to_numpy(dtype=np.float64, copy=True)
        values[~np.isfinite(values).all(axis=1)] = np.nan
        self.values[rows] = values
        self._todo.clear()

    def since(self, timestamp_ms: float) -> int:
        """The row (counted from the oldest kept) of the first frame at or after ``timestamp_ms``."""
        first = self.n - len(self)
        return int(np.searchsorted(self.times_ms[first : self.n], timestamp_ms, side="left"))

    def view(self, start: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
        """(frames, timestamp_ms, features, face) of the kept rows from ``start`` on (copies)."""
        self.fill()
        rows = slice(self.n - len(self) + start, self.n)
        values = self.values[rows].copy()
        face = ~np.isnan(values[:, 0])
        return self.frames[rows].copy(), self.times_ms[rows].copy(), pd.DataFrame(values, columns=_COLUMNS), face


@dataclass
class _Run:
    """A run of an event label in the frames released: first frame and its time, last frame,
    the time its last frame started and ended (ms)."""

    start_frame: int
    start_ms: float
    end_frame: int
    last_ms: float
    end_ms: float

    def event(self, kind: str, face_id: int) -> Event:
        return Event(kind, face_id, self.start_frame, self.end_frame, self.start_ms, self.end_ms)


@dataclass
class FaceState:
    """What the online analyzer keeps of one face: its history (``History``: the last
    ``baseline_max_frames`` frames), its reference face, and the runs of its event labels in
    the frames released (``open``: still on at the last frame released; ``ended``: off since,
    kept ``settle_ms`` in case the analyzer bridges the gap to the next run)."""

    cfg: AnalysisConfig
    hist: History = field(init=False)
    face_ms: float = 0.0
    last_face_ms: float = -np.inf
    last_ms: float = np.nan  # the newest frame's time (NaN before the first)
    rebased_at_ms: float = -np.inf
    base: Baseline | None = None
    open: dict[str, _Run] = field(default_factory=dict)
    ended: dict[str, _Run] = field(default_factory=dict)
    reported_end: dict[str, int] = field(default_factory=dict)  # kind -> last frame of its last event

    def __post_init__(self) -> None:
        # the reference's frames, and never fewer than a window's at MAX_FPS (a small
        # baseline_max_frames must not drop frames still to be decided)
        self.hist = History(max(self.cfg.baseline_max_frames, math.ceil(window_ms(self.cfg) * MAX_FPS / 1000)))

    def add(self, frame: int, timestamp_ms: float, points: np.ndarray | None) -> None:
        """Append one frame: the face's (68, 2) landmarks, or None when it is not in it; the
        face time grows by the gap since the previous frame when the face was in both."""
        if points is not None:
            if self.last_face_ms == self.last_ms:
                self.face_ms += max(0.0, timestamp_ms - self.last_ms)
            self.last_face_ms = timestamp_ms
        self.last_ms = timestamp_ms
        self.hist.add(frame, timestamp_ms, points)

    def held_face_ms(self) -> float:
        """Face time in the history (at most the time it spans)."""
        h = self.hist
        span = h.times_ms[h.n - 1] - h.times_ms[h.n - len(h)] if h.n else 0.0
        return min(self.face_ms, float(span))

    def rebase(self) -> None:
        """The reference face from every frame kept, as the offline analyzer makes it."""
        frames, t, feats, face = self.hist.view()
        dur = frame_durations_ms(t, self.cfg.frame_gap_factor)
        self.base = face_baseline(feats, frames, face, t, dur, self.cfg)
        self.rebased_at_ms = self.face_ms

    def release(self, fid: int, frame: int, timestamp_ms: float, judged: _Judged | None, row: int,
                settle: Mapping[str, float]) -> list[Event]:
        """Follow the event runs through one released frame: ``judged`` the face's window (None
        when it was not judged this step) and ``row`` this frame's row in it (-1: the face is
        not labelled in this frame). Returns the runs now over, as events: their label off in
        the window from the frame after their last to its newest frame, for ``settle`` ms (it
        can no longer grow back; a run still on at this frame is reported on it, its last
        frame), or followed by a run the window does not join to them."""
        out = []
        for kind, j in _EVENT_INDEX:
            run = self.open.get(kind)
            if judged is not None and row >= 0 and judged.flags[row, j]:
                if run is None:
                    start = self._run_start(kind, j, judged, row)
                    run = self.ended.pop(kind, None)
                    if run is None or start > run.end_frame + 1:  # not joined to the run before
                        if run is not None:
                            out.append(self._report(kind, fid, run))
                        s = int(np.searchsorted(judged.frames, start))
                        run = _Run(start, float(judged.times[s]), frame, timestamp_ms, timestamp_ms)
                    self.open[kind] = run
                run.end_frame, run.last_ms, run.end_ms = frame, timestamp_ms, timestamp_ms + judged.dur[row]
            elif run is not None:  # it ended on the frame released before
                self.ended[kind] = self.open.pop(kind)
            for runs in (self.open, self.ended):
                run = runs.get(kind)
                if run is not None and self._over(run, judged, j, settle[kind], timestamp_ms):
                    del runs[kind]
                    if judged is None or judged.holds(run, j):  # not dropped by the latest judgement
                        out.append(self._report(kind, fid, run))
        return out

    @staticmethod
    def _over(run: _Run, judged: _Judged | None, j: int, settle_ms: float, now_ms: float) -> bool:
        """True when ``run`` can no longer grow back (see ``release``)."""
        if judged is None:
            return now_ms - run.last_ms >= settle_ms
        after = int(np.searchsorted(judged.frames, run.end_frame, side="right"))
        return after < len(judged.frames) and judged.times[-1] - run.last_ms >= settle_ms and not judged.flags[after:, j].any()

    def _run_start(self, kind: str, j: int, judged: _Judged, row: int) -> int:
        """The first frame of the run that ``row`` begins in the frames released, as the window
        judges it: a label with a minimum duration longer than the lag (a yawn) is released
        after its first frames, its event starts at its first frame; never before the last
        event of that label reported."""
        off = np.flatnonzero(judged.flags[: row + 1, j] == 0)
        first = int(judged.frames[off[-1] + 1 if off.size else 0])
        return max(first, self.reported_end.get(kind, -1) + 1)

    def _report(self, kind: str, fid: int, run: _Run) -> Event:
        self.reported_end[kind] = run.end_frame
        return run.event(kind, fid)

    def flush(self, fid: int) -> list[Event]:
        """Every run still open or waiting, as events (the frames ended, or the face left)."""
        runs = [(k, self.ended.pop(k)) for k in list(self.ended)] + [(k, self.open.pop(k)) for k in list(self.open)]
        return [self._report(k, fid, r) for k, r in sorted(runs, key=lambda kr: kr[1].start_frame)]


@dataclass(frozen=True)
class _Judged:
    """A face's window as ``label_frames`` judged it: frames, times and durations (ms) (W,),
    0/1 flags (W, len(LABELS)), the dominant label (W,) and ``MEASURES`` (W, 6)."""

    frames: np.ndarray
    times: np.ndarray
    dur: np.ndarray
    flags: np.ndarray
    label: np.ndarray
    measures: np.ndarray

    def holds(self, run: _Run, j: int) -> bool:
        """True unless the window, judged now, has label ``j`` on none of the run's frames."""
        a, b = np.searchsorted(self.frames, [run.start_frame, run.end_frame + 1])
        return a == b or bool(self.flags[a:b, j].any())

    def row(self, frame: int) -> int:
        """The row of ``frame`` when the face is labelled in it, else -1."""
        r = int(np.searchsorted(self.frames, frame))
        return r if r < len(self.frames) and self.frames[r] == frame and self.label[r] != NO_FACE else -1


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
    frame at the next step, with the frames that came up to then. ``finish()`` returns the frames still waiting. Faces are
    told apart by ``Face.id``; a face not seen for ``window_ms(cfg)`` is forgotten. Build one
    per video or camera run; it holds no file and no model, and its memory is bounded (per
    face: ``baseline_max_frames`` rows of features) however long the run.
    """

    def __init__(self, config: AnalysisConfig | None = None, lag_ms: float | None = None,
                 reference: Baseline | None = None) -> None:
        self.cfg = config or AnalysisConfig()
        # a fixed reference face for every face instead of the adaptive one (bench_online.py
        # --whole-clip-reference gives the offline one: what differs then is the mechanism)
        if reference is not None and not isinstance(reference, Baseline):
            raise UsageError(f"reference must be a facemap.analysis.Baseline (a reference face) or None, got {type(reference).__name__}")
        self.reference = reference
        self.window_ms = window_ms(self.cfg)
        self.lag_ms = online_lag_ms(self.cfg, lag_ms)
        self.settle_ms = settle_ms(self.cfg)
        self.faces: dict[int, FaceState] = {}
        self.pending: deque[tuple[int, float, tuple[Face, ...], dict[int, bool]]] = deque()
        # at most this many frames wait (None: as many as the lag takes); the oldest beyond it
        # are decided early, with the frames that came so far (see ``size_hold``)
        self.max_waiting: int | None = None
        self.held_events: list[Event] = []  # over, waiting for a frame to go out with

    def size_hold(self, frame_bytes: int, budget: int) -> None:
        """Let at most ``budget`` bytes of frames of ``frame_bytes`` each wait for their
        verdicts (a frame's image waits with it in the chain): beyond that many frames, the
        oldest are decided before their lag is up. At least two frames wait."""
        if frame_bytes > 0:
            self.max_waiting = max(2, int(budget // frame_bytes))

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
            if fid not in self.faces:
                self.faces[fid] = FaceState(self.cfg)
        for fid, state in self.faces.items():
            points = seen.get(fid)
            state.add(frame, t, points)
        trust = {fid: self.faces[fid].face_ms < self.cfg.online_trust_ms for fid in seen}
        self.pending.append((frame, t, faces, trust))
        out = self._release(t, final=False)
        for fid in [fid for fid, s in self.faces.items() if t - s.last_face_ms > self.window_ms]:
            if not any(fid in trust for _, _, _, trust in self.pending):  # gone, its frames released
                self.held_events += self.faces.pop(fid).flush(fid)
        return out

    def finish(self) -> list[Verdict]:
        """The verdicts of the frames still waiting, and the events still open or unsettled
        when the frames end (as the offline analyzer counts a run that reaches the clip's end)."""
        t = self.pending[-1][1] if self.pending else 0.0
        if self.reference is None:
            # the last step: its frames are judged against the reference from every frame seen,
            # whenever the last refresh was (the offline analyzer's, for a clip)
            for state in self.faces.values():
                if state.hist.n:
                    state.rebase()
        out = self._release(t, final=True)
        self.faces.clear()
        return out

    def _release(self, now_ms: float, final: bool) -> list[Verdict]:
        # Frames are decided in steps of online_step_ms (one label_frames call per face decides
        # every frame due), so the cost of a call is shared by the frames of a step.
        ready = self.pending and self.pending[0][1] <= now_ms - self.lag_ms - self.cfg.online_step_ms
        # over the cap: decide down to half of it at once (one step's work for many frames,
        # not one per frame)
        over = 0
        if self.max_waiting is not None and len(self.pending) > self.max_waiting:
            over = len(self.pending) - max(1, self.max_waiting // 2)
        if not (final or ready or over > 0 or self.held_events):
            return []
        due = []
        # the newest frame waits for the next one or finish() (only lag_ms=0 would release it):
        # the events still open when the frames end go out with a frame
        while self.pending and (
            final or len(due) < over or (len(self.pending) > 1 and self.pending[0][1] <= now_ms - self.lag_ms)
        ):
            due.append(self.pending.popleft())
        oldest: dict[int, float] = {}  # each face's oldest frame to decide now
        for _, t, _, trust in due:
            for fid in trust:
                oldest.setdefault(fid, t)
        wanted = set(oldest)
        for fid in wanted:  # the reference from every frame so far, at most every online_rebase_ms
            state = self.faces[fid]
            if self.reference is not None:
                state.base = self.reference
            elif state.base is None or state.face_ms - state.rebased_at_ms >= self._rebase_every(state):
                state.rebase()
        judged = {fid: self._judge(self.faces[fid], oldest[fid]) for fid in wanted}
        out = []
        for frame, t, faces, trust in due:
            rows = {fid: j.row(frame) if fid in trust else -1 for fid, j in judged.items()}
            events = self.held_events
            self.held_events = []
            for fid, state in self.faces.items():
                if state.open or state.ended or rows.get(fid, -1) >= 0:
                    events += state.release(fid, frame, t, judged.get(fid), rows.get(fid, -1), self.settle_ms)
            labelled_faces = []
            for f in faces:
                r = rows.get(f.id, -1)
                if r < 0:
                    labelled_faces.append(f)
                    continue
                j = judged[f.id]
                labelled_faces.append(replace(
                    f,
                    labels=label_names(j.flags[r], str(j.label[r])),
                    measures=dict(zip(MEASURES, j.measures[r].tolist(), strict=True)),  # NaN: not measurable yet
                    provisional=trust[f.id],
                ))
            out.append(Verdict(frame, t, tuple(labelled_faces), tuple(events)))
        if final:
            for fid, state in self.faces.items():
                self.held_events += state.flush(fid)
            for e in self.held_events if out else ():  # each on the first frame at or after its last
                i = next((i for i, v in enumerate(out) if v.frame >= e.end_frame), len(out) - 1)
                out[i] = replace(out[i], events=out[i].events + (e,))
            self.held_events = [] if out else self.held_events
        return out

    def _rebase_every(self, state: FaceState) -> float:
        """Face time between two baseline refreshes: online_rebase_ms, or online_rebase_share of
        the face time in the history when longer (a refresh costs in proportion to the frames
        kept, and the history holds at most baseline_max_frames of them)."""
        return max(self.cfg.online_rebase_ms, self.cfg.online_rebase_share * state.held_face_ms())

    def _judge(self, state: FaceState, oldest_ms: float) -> _Judged:
        """``label_frames`` on the face's window, judged as a clip that ends at its newest frame.
        The window reaches back to half a window before ``oldest_ms``, the oldest frame to
        decide, when that is further: after a pause in the frames (a camera that stalled, a
        frame every few seconds) the frames before it are still judged, with their own past."""
        h = state.hist
        start = min(state.last_ms - self.window_ms, oldest_ms - self.window_ms / 2)
        frames, times, feats, face = h.view(h.since(start))
        dur = frame_durations_ms(times, self.cfg.frame_gap_factor)
        lab = label_frames(feats, face, times, dur, state.base, self.cfg, undo_foreshortening=True)
        signals = {c: lab.signals[c].to_numpy() for c in lab.signals.columns}
        values = np.column_stack(_measure_values(signals, lab.thresholds))
        return _Judged(frames, times, dur, lab.flags.to_numpy(), lab.label, values)

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
                           measures={k: float(v) for k, v in m.items()}, provisional=False))
    return tuple(out)
