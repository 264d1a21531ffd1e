"""Train the learned label models (facemap/analysis/label_models.json) and print their
leave-one-clip-out tables against the rules, on the shared clips' dlib ref logs and MediaPipe.

For each label in MODELS: every shared clip's ref landmarks are analysed with the default
settings (the rule, ``learned_mouth=0``), and the model's per-frame inputs (``labels.mouth_inputs``:
the face's own baseline-relative features) are taken from the analyzer's own judged features.
The target is MediaPipe's label (bench_labels.mediapipe_truth). Training frames leave out the
frames where the data README says MediaPipe is wrong (bench_labels.MP_WRONG) and the references
it calls unusable (bench_labels.UNPOOLED). A logistic model (L2, Newton's method, features
standardised over the training frames) is fitted on the other clips for each held-out clip; its
probability threshold is chosen on those training clips, through the analyzer's own time rules
(``labels.mouth_open_frames``); the held-out clip is then labelled by it. The pooled F1 of the
held-out clips is printed next to the rule's, per clip and per group (first 22 / new 12 / all 34).

Usage: python bench/train_label_models.py [--ref DIR] [--logs DIR] [--write]

--logs DIR: score each held-out clip on these ``infer.py`` logs (``<stem>_landmarks.csv``,
``<stem>_meta.csv``: the user's whole path) instead of its ref logs; training stays on the other
clips' ref logs.

--write: fit on all clips and write facemap/analysis/label_models.json (the threshold chosen on
all clips goes in the file; AnalysisConfig.mouth_open_p should say the same, the script checks).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facemap.analysis import AnalysisConfig, analyze  # noqa: E402
from facemap.analysis.labels import judge, mouth_inputs, mouth_open_frames  # noqa: E402
from facemap.analysis.learned import MODELS_FILE, LabelModel  # noqa: E402
from facemap.io.outputs import atomic_write_text  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_labels", REPO / "bench" / "bench_labels.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

# label -> (its features, as LabelModel names them; the rule's setting that switches it off)
MODELS = {
    "mouth_open": (("mar_d", "jaw_d", "mar", "width_d", "lift_d", "mar_d*jaw_d"), "learned_mouth"),
}
L2 = 0.01  # ridge on the standardised weights (not the bias)
THRESHOLDS = np.round(np.arange(0.2, 0.71, 0.05), 2)  # probability thresholds tried


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = L2, iters: int = 50
) -> tuple[np.ndarray, float]:
    """(weights (K,), bias) of an L2 logistic regression of 0/1 ``y`` (N,) on standardised ``x`` (N, K)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    beta = np.zeros(xb.shape[1])
    ridge = l2 * np.eye(xb.shape[1])
    ridge[-1, -1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(xb @ beta)))
        grad = xb.T @ (p - y) / len(y) + ridge @ beta
        hess = (xb * (p * (1 - p))[:, None]).T @ xb / len(y) + ridge
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return beta[:-1], float(beta[-1])


def judged(inputs, cfg: AnalysisConfig):
    """A clip's analysis and what its labels were judged by (``labels.judge`` on its baseline)."""
    res = analyze(inputs, cfg)
    j = judge(inputs.features, inputs.face, inputs.timestamp_ms, res.duration_ms, res.baseline, cfg,
              undo_foreshortening=inputs.source == "landmarks")
    return res, j


class Clip:
    """One shared clip: the analyzer's judged frames (the rule's settings), the rule's labels,
    MediaPipe's labels, and which frames are compared (``both``) and trusted per label."""

    def __init__(self, stem: str, ref: Path, cfg: AnalysisConfig, logs: Path | None = None) -> None:
        inputs, truth = bench.load_clip(stem, ref, logs)
        res, self.j = judged(inputs, cfg)
        self.stem, self.inputs = stem, inputs
        self.both = truth["have"].fillna(False).to_numpy(bool) & inputs.face
        self.rule = {n: res.labelled.flags[n].to_numpy().astype(bool) for n in MODELS}
        self.truth = {n: truth[n].fillna(False).to_numpy(bool) for n in MODELS}
        self.trusted = {n: bench.mp_trusted(stem, n, inputs.frames) for n in MODELS}

    def inputs_of(self, label: str) -> dict[str, np.ndarray]:
        return {"mouth_open": mouth_inputs}[label](self.j)

    def frames_of(self, label: str, level: np.ndarray) -> np.ndarray:
        return {"mouth_open": mouth_open_frames}[label](self.j, level)


def train(clips: list[Clip], label: str, features: tuple[str, ...]) -> LabelModel:
    """The model fitted on ``clips`` (their trusted frames), its threshold chosen on them."""
    probe = LabelModel(
        label,
        features,
        np.zeros(len(features)),
        np.ones(len(features)),
        np.zeros(len(features)),
        0.0,
        0.5,
    )
    xs, ys, keep = [], [], []
    for c in clips:
        x = probe.design(c.inputs_of(label))
        k = c.both & c.trusted[label] & np.isfinite(x).all(axis=1)
        xs.append(x[k])
        ys.append(c.truth[label][k])
        keep.append(k)
    x, y = np.vstack(xs), np.concatenate(ys).astype(np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    w, b = fit_logistic((x - mean) / scale, y)
    model = LabelModel(label, features, mean, scale, w, b, 0.5)
    probs = [model.probability(c.inputs_of(label)) for c in clips]
    truth = np.concatenate(ys)
    best = max(
        THRESHOLDS,
        key=lambda t: bench.f1(
            np.concatenate(
                [c.frames_of(label, p / t)[k] for c, p, k in zip(clips, probs, keep, strict=True)]
            ),
            truth,
        ),
    )
    return replace(model, threshold=float(best))


def pooled(rows: list[dict], key: str, label: str, trusted: bool = False) -> dict[str, float]:
    """{group: micro-F1 of ``key`` predictions} over the clips of each bench group (UNPOOLED out)."""
    out = {}
    for g, keep in bench.GROUPS.items():
        pred, ref = [], []
        for r in rows:
            if not keep(r["clip"]) or (r["clip"], label) in bench.UNPOOLED:
                continue
            m = r["_both"] & (r["_trusted"] if trusted else True)
            pred.append(r[key][m])
            ref.append(r["_truth"][m])
        out[g] = bench.f1(np.concatenate(pred), np.concatenate(ref))
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the leave-one-clip-out tables; with --write, write the models fitted on all clips."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", type=Path, default=bench.DATA / "ref")
    ap.add_argument(
        "--logs", type=Path, help="score the held-out clips on this folder of infer.py logs"
    )
    ap.add_argument("--write", action="store_true", help=f"write facemap/analysis/{MODELS_FILE}")
    args = ap.parse_args(argv)
    base_cfg = AnalysisConfig()
    stems = bench.clip_stems(args.ref)
    if not stems:
        print(f"no *_mediapipe_blendshapes.csv in {args.ref}", file=sys.stderr)
        return 3
    models = []
    for label, (features, switch) in MODELS.items():
        cfg = replace(base_cfg, **{switch: 0})
        clips = [Clip(s, args.ref, cfg) for s in stems]
        usable = [c for c in clips if (c.stem, label) not in bench.UNPOOLED]
        scored = clips if args.logs is None else [Clip(s, args.ref, cfg, args.logs) for s in stems]
        rows = []
        for c in scored:
            model = train([o for o in usable if o.stem != c.stem], label, features)
            held = c.frames_of(label, model.probability(c.inputs_of(label)) / model.threshold)
            t, m = c.truth[label], c.both
            rows.append(
                {
                    "clip": c.stem,
                    "frames": int(m.sum()),
                    "rule_f1": round(bench.f1(c.rule[label][m], t[m]), 2),
                    "heldout_f1": round(bench.f1(held[m], t[m]), 2),
                    "n rule/model/mp": f"{c.rule[label][m].sum()}/{held[m].sum()}/{t[m].sum()}",
                    "threshold": model.threshold,
                    "_rule": c.rule[label],
                    "_model": held,
                    "_truth": t,
                    "_both": m,
                    "_trusted": c.trusted[label],
                }
            )
        final = train(usable, label, features)
        for r, c in zip(rows, scored, strict=True):
            r["_insample"] = c.frames_of(
                label, final.probability(c.inputs_of(label)) / final.threshold
            )
        table = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        where = f"scored on {args.logs}" if args.logs else "the ref logs"
        print(f"\n{label}: logistic over {', '.join(features)}; held out clip by clip ({where})")
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(table.to_string(index=False))
        print(
            f"  per-clip F1 >= 0.8: rule {(table['rule_f1'] >= 0.8).sum()}/{len(table)}, "
            f"held-out model {(table['heldout_f1'] >= 0.8).sum()}/{len(table)}"
        )
        for trusted in (False, True):
            tag = " without MP_WRONG frames" if trusted else ""
            for kind, key in (
                ("rule", "_rule"),
                ("held-out model", "_model"),
                ("in-sample model", "_insample"),
            ):
                by = pooled(rows, key, label, trusted)
                print(
                    f"  pooled F1{tag}, {kind:15s}: "
                    + ", ".join(f"{g} {v:.3f}" for g, v in by.items())
                )
        print(
            f"  fitted on all {len(usable)} clips: threshold {final.threshold:g}, weights "
            + ", ".join(f"{n} {w:+.3f}" for n, w in zip(features, final.weights, strict=True))
            + f", bias {final.bias:+.3f}"
        )
        setting = {"mouth_open": "mouth_open_p"}[label]
        if getattr(base_cfg, setting) != final.threshold:
            print(
                f"  NOTE: AnalysisConfig.{setting} is {getattr(base_cfg, setting)}, the threshold chosen "
                f"on all clips {final.threshold:g}"
            )
        models.append(final)
    if args.write:
        out = REPO / "facemap" / "analysis" / MODELS_FILE
        doc = {
            "about": "Learned label models (facemap/analysis/learned.py), written by bench/train_label_models.py "
            "from the shared clips' dlib ref logs against MediaPipe's blendshapes.",
            "models": [m.as_dict() for m in models],
        }
        atomic_write_text(out, json.dumps(doc, indent=1) + "\n")  # whole or not at all: package data
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
