"""Time: frame durations, smoothing, hysteresis, minimum durations and event lists.

Everything is in milliseconds from the frame timestamps, never in rows, so the same settings
give the same answer at any frame rate. All functions are vectorised over frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import AnalysisConfig

# The labels whose runs are events (an event per run), in the event list's order.
EVENT_LABELS = ("blink", "wink", "smile", "talking", "yawn", "looking_away")


def frame_durations_ms(
    timestamp_ms: np.ndarray, max_gap_factor: float = AnalysisConfig.frame_gap_factor
) -> np.ndarray:
    """(N,) time each frame stands for: the gap to the next frame (the last frame gets the median
    gap), capped at ``max_gap_factor`` x median so a pause in the recording is not counted."""
    t = np.asarray(timestamp_ms, dtype=np.float64)
    if t.size == 0:
        return t.copy()
    if t.size == 1:
        return np.array([0.0])
    gaps = np.diff(t)
    typical = float(np.median(gaps))
    dur = np.append(gaps, typical)
    return np.minimum(dur, max_gap_factor * typical)


_last_ns: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0), np.zeros(0, dtype=np.int64))]


def _timestamps_ns(timestamp_ms: np.ndarray) -> np.ndarray:
    """(N,) int64 nanoseconds, as pandas' time-based windows convert milliseconds. The last
    conversion is kept: the labels smooth several signals over the same timestamps, and the
    conversion costs more than the smoothing on a short window (the online analyzer's)."""
    t = np.asarray(timestamp_ms, dtype=np.float64)
    seen, ns = _last_ns[0]
    if seen.shape != t.shape or not np.array_equal(seen, t):
        ns = pd.to_timedelta(t, unit="ms").as_unit("ns").asi8
        _last_ns[0] = (t.copy(), ns)  # one swap: a thread reads the old pair or the new one
    return ns


def centred_mean(values: np.ndarray, timestamp_ms: np.ndarray, window_ms: float) -> np.ndarray:
    """Centred moving mean of each column of (N,) or (N, F) ``values`` over the frames in
    (t - window_ms/2, t + window_ms/2] (pandas' centred time-based rolling window, to 1e-12),
    skipping NaN; NaN frames stay NaN. Cumulative sums, so its cost does not depend on pandas'
    per-call overhead (the online analyzer calls it on short windows)."""
    v = np.asarray(values, dtype=np.float64)
    flat = v.reshape(v.shape[0], -1)
    t = _timestamps_ns(timestamp_ms)
    w = pd.Timedelta(milliseconds=float(window_ms)).value
    lo = np.searchsorted(t, t - w // 2, side="right")
    hi = np.searchsorted(t, t + (w - w // 2), side="right")
    finite = np.isfinite(flat)
    csum = np.vstack([np.zeros((1, flat.shape[1])), np.cumsum(np.where(finite, flat, 0.0), axis=0)])
    ccnt = np.vstack([np.zeros((1, flat.shape[1])), np.cumsum(finite, axis=0)])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (csum[hi] - csum[lo]) / (ccnt[hi] - ccnt[lo])
    out[~finite] = np.nan
    return out.reshape(v.shape)


def window_quantile(
    values: np.ndarray, timestamp_ms: np.ndarray, before_ms: float, after_ms: float, q: float
) -> np.ndarray:
    """(N,) the ``q`` quantile of (N,) ``values`` over the frames in (t - before_ms, t + after_ms]
    (t itself is in the window before it, not in the one after it: before_ms 0 leaves it out),
    skipping NaN (NaN where the window holds no finite value). Vectorised in blocks of frames
    (a block's windows side by side)."""
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    out = np.full(n, np.nan)
    if n == 0:
        return out
    t = _timestamps_ns(timestamp_ms)
    lo = np.searchsorted(t, t - pd.Timedelta(milliseconds=float(before_ms)).value, side="right")
    hi = np.searchsorted(t, t + pd.Timedelta(milliseconds=float(after_ms)).value, side="right")
    width = max(int(np.max(hi - lo)), 1)
    block = max(1, 1_000_000 // width)
    padded = np.append(np.where(np.isfinite(v), v, np.nan), np.nan)  # index n: outside every window
    for start in range(0, n, block):
        idx = lo[start:start + block, None] + np.arange(width)
        window = np.sort(padded[np.where(idx < hi[start:start + block, None], idx, n)], axis=1)  # NaN last
        count = np.isfinite(window).sum(axis=1)
        # numpy's "linear" quantile of each row's finite values (np.nanquantile loops over rows)
        pos = q * np.maximum(count - 1, 0)
        below = np.floor(pos).astype(np.int64)
        above = np.minimum(below + 1, np.maximum(count - 1, 0))
        rows = np.arange(len(window))
        a, b = window[rows, below], window[rows, above]
        value = a + (b - a) * (pos - below)
        out[start:start + block] = np.where(count > 0, value, np.nan)
    return out


def smooth(values: np.ndarray, timestamp_ms: np.ndarray, window_ms: float) -> np.ndarray:
    """Centred moving average over ``window_ms``; NaN frames (no face) stay NaN and are skipped."""
    v = np.asarray(values, dtype=np.float64)
    if window_ms <= 0 or v.size < 2:
        return v.copy()
    return centred_mean(v, timestamp_ms, window_ms)


def smooth_frame(frame: pd.DataFrame, timestamp_ms: np.ndarray, window_ms: float) -> pd.DataFrame:
    """``smooth`` applied to every column of a DataFrame at once."""
    if window_ms <= 0 or len(frame) < 2:
        return frame.copy()
    out = centred_mean(frame.to_numpy(dtype=np.float64), timestamp_ms, window_ms)
    return pd.DataFrame(out, index=frame.index, columns=frame.columns)


def hysteresis(values: np.ndarray, on: float, off: float) -> np.ndarray:
    """(N,) bool: switches on at ``values >= on``, off at ``values <= off`` (on > off); NaN resets.

    For a "low" signal (e.g. eyes closing), pass ``-values``, ``-on``, ``-off``.
    """
    v = np.asarray(values, dtype=np.float64)
    state = np.full(v.shape, np.nan)
    state[v <= off] = 0.0
    state[v >= on] = 1.0
    state[np.isnan(v)] = 0.0
    # each frame takes the state of the last frame that set one (a forward fill), off before any
    known = ~np.isnan(state)
    last = np.maximum.accumulate(np.where(known, np.arange(v.size), -1)) if v.size else np.zeros(0, int)
    return np.where(last >= 0, state[np.maximum(last, 0)], 0.0) > 0.5


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) row indices of the True runs of a bool mask; ``ends`` are exclusive."""
    m = np.asarray(mask, dtype=bool).astype(np.int8)
    edges = np.diff(np.concatenate([[0], m, [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def run_durations_ms(mask: np.ndarray, duration_ms: np.ndarray) -> tuple[np.ndarray, ...]:
    """(starts, ends, durations_ms) of the True runs, durations summed from frame durations."""
    starts, ends = runs(mask)
    csum = np.concatenate([[0.0], np.cumsum(duration_ms)])
    return starts, ends, csum[ends] - csum[starts]


def paint_runs(n: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(n,) bool, True on the rows [starts[i], ends[i]) of every run; vectorised."""
    delta = np.zeros(n + 1, dtype=np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, ends, -1)
    return np.cumsum(delta[:n]) > 0


def clean_runs(
    mask: np.ndarray,
    duration_ms: np.ndarray,
    min_on_ms: float = 0.0,
    max_gap_ms: float = 0.0,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Fill False gaps shorter than ``max_gap_ms`` between True runs (only where ``allowed``,
    e.g. face present), then drop True runs shorter than ``min_on_ms``."""
    m = np.asarray(mask, dtype=bool).copy()
    n = m.size
    if max_gap_ms > 0 and n:
        gap_mask = ~m
        gs, ge, gd = run_durations_ms(gap_mask, duration_ms)
        inner = (gs > 0) & (ge < n) & (gd < max_gap_ms)
        if allowed is not None and inner.any():
            bad = np.concatenate([[0], np.cumsum(~np.asarray(allowed, dtype=bool))])
            inner &= (bad[ge] - bad[gs]) == 0
        m |= paint_runs(n, gs[inner], ge[inner])
    if min_on_ms > 0 and n:
        s, e, d = run_durations_ms(m, duration_ms)
        short = d < min_on_ms
        m &= ~paint_runs(n, s[short], e[short])
    return m


def event_table(
    mask: np.ndarray, timestamp_ms: np.ndarray, duration_ms: np.ndarray, frames: np.ndarray
) -> pd.DataFrame:
    """One row per True run: start_frame, end_frame, start_ms, end_ms, duration_ms."""
    s, e, d = run_durations_ms(mask, duration_ms)
    t = np.asarray(timestamp_ms, dtype=np.float64)
    return pd.DataFrame(
        {
            "start_frame": np.asarray(frames)[s].astype(np.int64),
            "end_frame": np.asarray(frames)[e - 1].astype(np.int64)
            if s.size
            else np.array([], np.int64),
            "start_ms": t[s],
            "end_ms": t[s] + d,
            "duration_ms": d,
        }
    )


def label_events(
    flags: pd.DataFrame,
    face: np.ndarray,
    timestamp_ms: np.ndarray,
    duration_ms: np.ndarray,
    frames: np.ndarray,
) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Events of the blink, smile, yawn and looking_away labels, and their summary.

    Returns (table with a ``type`` column, summary): blinks count, rate per minute of face time,
    mean duration; smiles count and total time; yawns and looking-away periods likewise.
    """
    face_min = float(np.sum(np.asarray(duration_ms)[np.asarray(face, dtype=bool)])) / 60000.0
    tables, summary = [], {}
    for kind in EVENT_LABELS:
        ev = event_table(flags[kind].to_numpy().astype(bool), timestamp_ms, duration_ms, frames)
        ev.insert(0, "type", kind)
        tables.append(ev)
        count = len(ev)
        summary[kind] = {
            "count": count,
            "total_ms": round(float(ev["duration_ms"].sum()), 1),
            "mean_duration_ms": round(float(ev["duration_ms"].mean()), 1) if count else 0.0,
            "rate_per_min": round(count / face_min, 2) if face_min > 0 else 0.0,
        }
    table = pd.concat(tables, ignore_index=True).sort_values("start_ms", kind="stable")
    return table.reset_index(drop=True), summary
