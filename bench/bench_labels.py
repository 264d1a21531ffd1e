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

Usage: python bench/bench_labels.py [--ref DIR]
Prints one row per clip (F1 per label, positives ours/MediaPipe, blink counts) and pooled F1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemap.analysis import AnalysisConfig, analyze_logs  # noqa: E402
from facemap.analysis.events import (  # noqa: E402
    clean_runs,
    frame_durations_ms,
    hysteresis,
    run_durations_ms,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MP_CLOSED, MP_OPEN = 0.5, 0.35  # MediaPipe closure hysteresis for its blink events
TARGETS = {"smile": 0.8, "mouth_open": 0.8, "eyes_closed": 0.7}


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


def compare_clip(stem: str, ref: Path, cfg: AnalysisConfig) -> dict[str, object]:
    """Analyse one clip and compare it with MediaPipe."""
    fps = video_fps(ref.parent / "videos" / f"{stem}.mp4")
    res = analyze_logs(
        ref / f"{stem}_dlib_landmarks.csv", ref / f"{stem}_dlib_meta.csv", fps=fps, config=cfg
    )
    truth = mediapipe_truth(ref / f"{stem}_mediapipe_blendshapes.csv").reindex(res.inputs.frames)
    both = truth["have"].fillna(False).to_numpy(bool) & res.inputs.face
    row: dict[str, object] = {"clip": stem, "fps": round(fps, 2), "frames": int(both.sum())}
    pooled = {}
    for name in TARGETS:
        ours = res.labelled.flags[name].to_numpy().astype(bool)[both]
        ref_ = truth[name].fillna(False).to_numpy(bool)[both]
        row[f"{name}_f1"] = round(f1(ours, ref_), 2)
        row[f"{name}_n"] = f"{ours.sum()}/{ref_.sum()}"
        pooled[name] = (ours, ref_)
    t = res.inputs.timestamp_ms
    dur = frame_durations_ms(t)
    mp_face = truth["have"].fillna(False).to_numpy(bool)
    closed = hysteresis(truth["blink_score"].fillna(0.0).to_numpy(), MP_CLOSED, MP_OPEN)
    closed = clean_runs(closed & mp_face, dur, 0.0, cfg.eyes_gap_ms, allowed=mp_face)
    _, _, d = run_durations_ms(closed, dur)
    row["blinks"] = res.event_summary["blink"]["count"]
    row["blinks_mp"] = int(np.sum(d <= cfg.blink_max_ms))
    row["_pooled"] = pooled
    return row


def main(argv: list[str] | None = None) -> int:
    """Print the comparison table; exit 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", type=Path, default=DATA / "ref")
    args = ap.parse_args(argv)
    cfg = AnalysisConfig()
    stems = sorted(
        p.name[: -len("_mediapipe_blendshapes.csv")]
        for p in args.ref.glob("*_mediapipe_blendshapes.csv")
    )
    if not stems:
        print(f"no *_mediapipe_blendshapes.csv in {args.ref}", file=sys.stderr)
        return 3
    rows = [compare_clip(s, args.ref, cfg) for s in stems]
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "_pooled"} for r in rows])
    table["blink_ok"] = (table["blinks"] - table["blinks_mp"]).abs() <= 1
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False))
    print()
    for name, target in TARGETS.items():
        ours = np.concatenate([r["_pooled"][name][0] for r in rows])
        ref_ = np.concatenate([r["_pooled"][name][1] for r in rows])
        per = table[f"{name}_f1"]
        print(
            f"{name:12s} pooled F1 {f1(ours, ref_):.2f} (target {target}); per clip median "
            f"{per.median():.2f}, clips >= target: {(per >= target).sum()}/{len(per)}"
        )
    print(f"blinks within +-1 of MediaPipe: {int(table['blink_ok'].sum())}/{len(table)} clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
