"""Do the 3DMM fit's expression features help the smile, mouth_open and eyes_closed labels?

A leave-one-clip-out check against MediaPipe on the shared clips (issue 25); nothing here is used
by the analyzer.

Every clip's ref landmarks are fitted as ``infer.py`` fits them (``facemap.threedmm.stage.FitStage``
push / finish with the real basis: one identity per track, settled on its first frames), cached as
``<cache>/<clip>.npz``. Per frame the 3DMM features are the 39 expression coefficients and the
named measures (``facemap.threedmm.measures``), smoothed as the analyzer smooths the mouth, and
judged against the face's own baseline frames (those the analyzer chose): ``<name>_d`` minus
their median, ``<name>_dc`` minus the lesser of that median and 0 (the basis mean, the typical
face; the 2D smile features' reference is capped at the typical face the same way). The 2D
features are the analyzer's own (``labels.Judged``): ``si`` the smile index and the learned mouth
model's six.

For each feature set a logistic model (bench/train_label_models.py's fit, its L2, its threshold
grid chosen through the label's time rules on the training clips) is fitted on 33 clips and
labels the held-out one; the pooled F1 of the held-out clips is printed per group (first 22 /
new 12 / all 34) next to today's rules (smile, eyes_closed) and today's shipped mouth model
(in-sample). The eyes' 2D features are the rule's ``eye_level`` (closed below 1) and the EAR; their
3DMM feature is the mean of the two eye_closure measures, unsmoothed as the eyes are.

Usage: python bench/bench_label_models_3dmm.py [--ref DIR] [--cache DIR] [--logs DIR] [--per-clip]

--logs DIR: score each held-out clip on its ``infer.py --landmarker dlib --dump-csv
--dump-landmarks-csv --basis-dir ...`` logs (landmarks, meta and the raw log's fitted params: the
whole path); training stays on the other clips' ref logs and fits.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facemap.analysis import AnalysisConfig, analyze  # noqa: E402
from facemap.analysis.events import clean_runs, hysteresis, smooth_frame  # noqa: E402
from facemap.assets import load_basis  # noqa: E402
from facemap.io.records import read_landmarks, read_meta, read_raw  # noqa: E402
from facemap.threedmm.decode import expression_coefficients  # noqa: E402
from facemap.threedmm.fit import Fitter  # noqa: E402
from facemap.threedmm.measures import Measurer  # noqa: E402
from facemap.threedmm.stage import FitStage  # noqa: E402
from facemap.types import BBox, Face, Status  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "train_label_models", REPO / "bench" / "train_label_models.py"
)
train_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_mod)
bench = train_mod.bench

MEASURE_NAMES = ("smile", "jaw_open", "eye_closure_left", "eye_closure_right")
MOUTH_2D = ("mar_d", "jaw_d", "mar", "width_d", "lift_d", "mar_d*jaw_d")
SETS = {
    "smile": [
        ("si",),
        ("si", "smile_d"),
        ("si", "smile_dc"),
        ("smile_dc",),
        ("si", "smile_dc", "si*smile_dc"),
        ("si", "e2_dc", "e3_dc"),
        ("si", "smile_dc", "e2_dc", "e3_dc"),
    ],
    "mouth_open": [
        MOUTH_2D,
        (*MOUTH_2D, "jaw_open"),
        (*MOUTH_2D, "jaw_open_d"),
        (*MOUTH_2D, "jaw_open_d", "e25_d", "e13_d"),
        ("jaw_open", "jaw_open_d"),
    ],
    "eyes_closed": [
        ("eye_level",),
        ("eye_level", "ear"),
        ("eye_level", "eye_closure_d"),
        ("eye_level", "eye_closure"),
        ("eye_level", "eye_closure_d", "eye_closure"),
    ],
}


def stage_params(
    ref: Path, stem: str, fitter: Fitter, cache: Path
) -> tuple[np.ndarray, np.ndarray]:
    """(frames (N,), params (N, 265), NaN rows unfitted) of the clip's ref landmarks through the
    fit stage, as infer.py fits a video file; cached in ``cache``."""
    path = cache / f"{stem}.npz"
    if path.exists():
        z = np.load(path)
        return z["frames"], z["params"]
    lm = read_landmarks(ref / f"{stem}_dlib_landmarks.csv", strict=True)
    mt = read_meta(ref / f"{stem}_dlib_meta.csv", strict=True)
    boxes = mt.boxes[np.searchsorted(mt.frames, lm.frames)]
    stage, out = FitStage(fitter), []
    for k, frame in enumerate(lm.frames):
        ok = bool(np.isfinite(lm.landmarks[k]).all() and np.isfinite(boxes[k]).all())
        face = Face(
            frame=int(frame),
            status=Status.OK if ok else Status.NO_FACE,
            box=BBox(*map(float, boxes[k])) if ok else None,
            landmarks=lm.landmarks[k] if ok else np.zeros((0, 2)),
        )
        out += stage.push((face,))
    out += stage.finish()
    params = np.full((len(lm.frames), 265), np.nan)
    for k, faces in enumerate(out):
        if faces[0].params.size:
            params[k] = faces[0].params
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, frames=lm.frames, params=params)
    return lm.frames, params


class Clip:
    """One clip's per-frame features (2D and 3DMM), today's labels and MediaPipe's."""

    def __init__(self, stem, ref, frames_params, measurer, cfg, logs=None) -> None:
        inputs, truth = bench.load_clip(stem, ref, logs)
        res, j = train_mod.judged(inputs, cfg)
        frames, params = frames_params
        at = {int(f): k for k, f in enumerate(frames)}
        p = np.full((len(inputs.frames), 265), np.nan)
        for k, f in enumerate(inputs.frames):
            if int(f) in at:
                p[k] = params[at[int(f)]]
        raw = pd.concat(
            [
                pd.DataFrame(expression_coefficients(p), columns=[f"e{i}" for i in range(39)]),
                pd.DataFrame(measurer(p, MEASURE_NAMES)),
            ],
            axis=1,
        )
        raw["eye_closure"] = (raw.pop("eye_closure_left") + raw.pop("eye_closure_right")) / 2
        sm = smooth_frame(raw, inputs.timestamp_ms, cfg.mouth_smooth_ms)
        sm["eye_closure"] = smooth_frame(
            raw[["eye_closure"]], inputs.timestamp_ms, cfg.eye_smooth_ms
        )
        med = sm[np.isin(inputs.frames, res.baseline.frames)].median()
        self.x = {
            "si": (j.d["mouth_width"] + cfg.smile_lift_weight * j.d["lip_corner_lift"]).to_numpy(),
            "mar": j.sm["mar"].to_numpy(),
            "mar_d": j.d["mar"].to_numpy(),
            "jaw_d": j.d["jaw_open"].to_numpy(),
            "width_d": j.d["mouth_width"].to_numpy(),
            "lift_d": j.d["lip_corner_lift"].to_numpy(),
            "ear": j.sm["ear"].to_numpy(),
            "eye_level": res.labelled.signals["eye_level"].to_numpy(),  # the rule's: closed below 1
        }
        for name in sm.columns:
            self.x[name] = sm[name].to_numpy()
            self.x[f"{name}_d"] = (sm[name] - med[name]).to_numpy()
            self.x[f"{name}_dc"] = (sm[name] - min(med[name], 0.0)).to_numpy()
        shipped = analyze(inputs, AnalysisConfig())  # the shipped mouth model
        self.stem, self.face, self.duration_ms, self.cfg = stem, inputs.face, res.duration_ms, cfg
        self.both = truth["have"].fillna(False).to_numpy(bool) & inputs.face
        self.today = {
            "smile": res.labelled.flags["smile"].to_numpy().astype(bool),
            "mouth_open": shipped.labelled.flags["mouth_open"].to_numpy().astype(bool),
            "eyes_closed": res.labelled.flags["eyes_closed"].to_numpy().astype(bool),
        }
        self.truth = {n: truth[n].fillna(False).to_numpy(bool) for n in SETS}
        self.trusted = {n: bench.mp_trusted(stem, n, inputs.frames) for n in SETS}

    def design(self, names: tuple[str, ...]) -> np.ndarray:
        cols = []
        for name in names:
            parts = name.split("*")
            col = self.x[parts[0]].astype(np.float64)
            for q in parts[1:]:
                col = col * self.x[q]
            cols.append(col)
        return np.column_stack(cols)

    def frames_of(self, label: str, level: np.ndarray) -> np.ndarray:
        """The label's frames of a level (1.0 at the threshold) through the analyzer's time rules."""
        c = self.cfg
        if label == "eyes_closed":  # the rule's closed frames: no hysteresis, gaps bridged
            on = (level >= 1.0) & self.face
            return (
                clean_runs(on, self.duration_ms, 0.0, c.eyes_gap_ms, allowed=self.face) & self.face
            )
        off, min_ms, gap_ms = (
            (c.smile_off / c.smile_on, c.smile_min_ms, c.smile_gap_ms)
            if label == "smile"
            else (c.mouth_close_factor, c.mouth_min_ms, c.mouth_gap_ms)
        )
        on = hysteresis(level, 1.0, off) & self.face
        return clean_runs(on, self.duration_ms, min_ms, gap_ms, allowed=self.face) & self.face


def train(clips: list[Clip], label: str, names: tuple[str, ...]):
    """(probability function of a Clip, threshold) fitted on ``clips``' trusted frames."""
    xs, ys, keep = [], [], []
    for c in clips:
        x = c.design(names)
        k = c.both & c.trusted[label] & np.isfinite(x).all(axis=1)
        xs.append(x[k])
        ys.append(c.truth[label][k])
        keep.append(k)
    x = np.vstack(xs)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    w, b = train_mod.fit_logistic((x - mean) / scale, np.concatenate(ys).astype(np.float64))

    def prob(c: Clip) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return 1.0 / (1.0 + np.exp(-(b + ((c.design(names) - mean) / scale) @ w)))

    probs = [prob(c) for c in clips]
    truth = np.concatenate(ys)
    best = max(
        train_mod.THRESHOLDS,
        key=lambda t: bench.f1(
            np.concatenate(
                [c.frames_of(label, p / t)[k] for c, p, k in zip(clips, probs, keep, strict=True)]
            ),
            truth,
        ),
    )
    return prob, float(best)


def pooled(clips: list[Clip], pred: dict[str, np.ndarray], label: str) -> dict[str, float]:
    out = {}
    for g, keep in bench.GROUPS.items():
        use = [c for c in clips if keep(c.stem) and (c.stem, label) not in bench.UNPOOLED]
        out[g] = bench.f1(
            np.concatenate([pred[c.stem][c.both] for c in use]),
            np.concatenate([c.truth[label][c.both] for c in use]),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", type=Path, default=bench.DATA / "ref")
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path("/tmp/facemap_stage_fits"),
        help="where the clips' fitted params are kept (never the repository)",
    )
    ap.add_argument(
        "--logs", type=Path, help="score the held-out clips on this folder of infer.py logs"
    )
    ap.add_argument("--per-clip", action="store_true", help="print each clip's F1 for each set")
    args = ap.parse_args(argv)
    basis = load_basis(bench.DATA / "basis", download=False, progress=False)
    fitter, measurer = Fitter(basis), Measurer(basis)
    cfg = replace(AnalysisConfig(), learned_mouth=0)
    stems = bench.clip_stems(args.ref)
    fits = {s: stage_params(args.ref, s, fitter, args.cache) for s in stems}
    clips = [Clip(s, args.ref, fits[s], measurer, cfg) for s in stems]
    if args.logs is None:
        scored = clips
    else:
        scored = []
        for s in stems:
            raw = read_raw(args.logs / f"{s}_raw.csv", strict=True)
            scored.append(Clip(s, args.ref, (raw.frames, raw.params), measurer, cfg, args.logs))
    where = f"held-out clips scored on {args.logs}" if args.logs else "ref logs"
    for label, sets in SETS.items():
        usable = [c for c in clips if (c.stem, label) not in bench.UNPOOLED]
        today = "the shipped model (in-sample)" if label == "mouth_open" else "the rule"
        rows = {f"today: {today}": {c.stem: c.today[label] for c in scored}}
        for names in sets:
            pred, ths = {}, []
            for c in scored:
                prob, t = train([o for o in usable if o.stem != c.stem], label, names)
                pred[c.stem] = c.frames_of(label, prob(c) / t)
                ths.append(t)
            rows[" + ".join(names) + f" (thresholds {min(ths):g}-{max(ths):g})"] = pred
        print(f"\n{label}: pooled F1 first 22 / new 12 / all 34 ({where})")
        for tag, pred in rows.items():
            print(
                f"  {' / '.join(f'{v:.3f}' for v in pooled(scored, pred, label).values())}  {tag}"
            )
        if args.per_clip:
            table = pd.DataFrame(
                {
                    ("today" if k == 0 else f"set {k}"): [
                        round(bench.f1(p[c.stem][c.both], c.truth[label][c.both]), 2)
                        for c in scored
                    ]
                    for k, p in enumerate(rows.values())
                },
                index=[c.stem for c in scored],
            )
            print("  per clip (set k: the k-th feature set above)")
            with pd.option_context("display.width", 250, "display.max_columns", 20):
                print(table.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
