"""Time rules: durations, smoothing, hysteresis, minimum durations, all in milliseconds."""

from __future__ import annotations

import numpy as np
import pytest

from facemap.analysis.events import (
    clean_runs,
    event_table,
    frame_durations_ms,
    hysteresis,
    runs,
    smooth,
)


def test_frame_durations_use_timestamps_and_cap_pauses():
    t = np.array([0.0, 40.0, 80.0, 1000.0, 1040.0])
    np.testing.assert_allclose(frame_durations_ms(t), [40, 40, 120, 40, 40])


def test_hysteresis_holds_between_thresholds_and_resets_on_nan():
    v = np.array([0.0, 1.2, 0.9, 0.7, 0.4, 0.9, np.nan, 0.9, 1.1])
    assert hysteresis(v, on=1.0, off=0.5).tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 1]


def test_runs_and_event_table():
    m = np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=bool)
    s, e = runs(m)
    assert s.tolist() == [1, 4, 7] and e.tolist() == [3, 5, 8]
    t = np.arange(8) * 50.0
    ev = event_table(m, t, frame_durations_ms(t), np.arange(1, 9))
    assert ev["start_frame"].tolist() == [2, 5, 8]
    assert ev["end_frame"].tolist() == [3, 5, 8]
    assert ev["duration_ms"].tolist() == [100.0, 50.0, 50.0]


@pytest.mark.parametrize("fps", [15.0, 30.0, 60.0])
def test_minimum_duration_and_gap_are_in_milliseconds(fps):
    t = np.arange(int(2 * fps)) * 1000.0 / fps
    on = ((t >= 100) & (t < 180)) | ((t >= 500) & (t < 900)) | ((t >= 1000) & (t < 1400))
    cleaned = clean_runs(on, frame_durations_ms(t), min_on_ms=200.0, max_gap_ms=150.0)
    # the 80 ms blip is dropped; the 100 ms gap between the two long runs is filled
    assert not cleaned[t < 400].any()
    assert cleaned[(t >= 500) & (t < 1400)].all()


def test_gap_filling_does_not_bridge_frames_without_a_face():
    t = np.arange(10) * 33.3
    m = np.array([1, 1, 0, 0, 1, 1, 0, 0, 0, 0], dtype=bool)
    allowed = np.array([1, 1, 1, 0, 1, 1, 1, 1, 1, 1], dtype=bool)
    out = clean_runs(m, frame_durations_ms(t), max_gap_ms=100.0, allowed=allowed)
    assert out.tolist() == m.tolist()


def test_smoothing_window_is_time_based_and_keeps_nan():
    t30 = np.arange(30) * 1000 / 30
    step = (t30 >= 500).astype(float)
    step[3] = np.nan
    sm = smooth(step, t30, 200.0)
    assert np.isnan(sm[3])
    assert sm[0] == 0.0 and sm[-1] == 1.0
    assert 0.0 < sm[15] < 1.0  # the edge at 500 ms is spread over +-100 ms


@pytest.mark.parametrize("fps", [15.0, 30.0, 60.0])
def test_measurement_noise_does_not_depend_on_frame_rate(fps):
    """White noise (sigma 0.02) on a slow movement: the estimate is sigma at any frame rate,
    where consecutive differences would also count the movement, more of it at low rates."""
    from facemap.analysis.baseline import measurement_noise

    rng = np.random.default_rng(1)
    t = np.arange(0, 60_000, 1000.0 / fps)
    motion = 0.3 * np.sin(2 * np.pi * t / 1500.0)  # a 1.5 s swing
    values = (motion + rng.normal(0, 0.02, t.size))[:, None]
    sigma = measurement_noise(values, t)[0]
    assert sigma == pytest.approx(0.02, rel=0.15)
    diffs = 1.4826 * np.median(np.abs(np.diff(values[:, 0]))) / np.sqrt(2)
    if fps == 15.0:
        assert diffs > 1.5 * sigma  # what the old estimate would have said


def test_smoothing_follows_timestamps_changed_in_place():
    """The smoothing keeps its last timestamp conversion: the same array edited in place, or
    new times of the same length, get pandas' centred time window on the new times."""
    import pandas as pd

    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(20.0, 50.0, 40))
    v = rng.normal(size=40)

    def pandas_mean(times):
        s = pd.Series(v, index=pd.to_timedelta(times, unit="ms"))
        return s.rolling(pd.Timedelta(milliseconds=150), center=True, min_periods=1).mean().to_numpy()

    np.testing.assert_allclose(smooth(v, t, 150.0), pandas_mean(t), atol=1e-12)
    t[10:] += 200.0  # a pause: the windows around it now hold fewer frames
    np.testing.assert_allclose(smooth(v, t, 150.0), pandas_mean(t), atol=1e-12)
    t2 = t * 0.5
    np.testing.assert_allclose(smooth(v, t2, 150.0), pandas_mean(t2), atol=1e-12)
    assert not np.allclose(pandas_mean(t), pandas_mean(t2))


@pytest.mark.parametrize(("before", "after"), [(500.0, 0.0), (0.0, 500.0), (500.0, 500.0), (40.0, 0.0)])
def test_window_quantile_is_the_quantile_of_each_frames_window(before, after):
    """Against a frame-by-frame loop: irregular timestamps, NaN frames skipped, a window of NaN
    only is NaN; the frame itself belongs to the window before it."""
    from facemap.analysis.events import window_quantile

    rng = np.random.default_rng(2)
    t = np.cumsum(rng.uniform(20, 60, 400))
    v = rng.normal(0.3, 0.05, 400)
    v[rng.random(400) < 0.2] = np.nan
    v[100:130] = np.nan
    got = window_quantile(v, t, before, after, 0.8)
    for i in range(len(t)):
        inside = v[(t > t[i] - before) & (t <= t[i] + after)]
        inside = inside[np.isfinite(inside)]
        want = np.quantile(inside, 0.8) if inside.size else np.nan
        np.testing.assert_allclose(got[i], want, err_msg=str(i))
    assert np.isnan(got[115])  # NaN all around
