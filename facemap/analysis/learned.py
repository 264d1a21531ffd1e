"""Learned label rules: a logistic model per label over a handful of per-frame features.

A model is a weighted sum of standardised features passed through the logistic function: the
probability that MediaPipe's blendshape would call the frame that label. Its weights are package
data (``label_models.json``), written by ``bench/train_label_models.py``, which retrains them on
the shared clips and prints the leave-one-clip-out tables. Every feature is a per-frame value
judged against the face's own reference (``labels.Judged``): a change from the person's
baseline or a ratio, never a clip-specific constant. Loaded once per process, on first use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from ..errors import ModelError

MODELS_FILE = "label_models.json"


@dataclass(frozen=True)
class LabelModel:
    """p = 1 / (1 + exp(-(bias + sum_k weights_k (x_k - mean_k) / scale_k))) over ``features``
    (names; ``a*b`` is the product of features a and b); ``threshold`` is the probability it
    was chosen at (AnalysisConfig holds the one in use)."""

    label: str
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    threshold: float

    def __post_init__(self) -> None:
        k = len(self.features)
        for name in ("mean", "scale", "weights"):
            arr = np.array(getattr(self, name), dtype=np.float64)  # its own copy, made read-only
            if arr.shape != (k,) or not np.isfinite(arr).all():
                raise ModelError(
                    f"label model {self.label!r}: {name} must be {k} finite numbers, got shape {arr.shape}"
                )
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if not np.all(self.scale > 0):
            raise ModelError(f"label model {self.label!r}: every scale must be above 0")

    def design(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """(N, K) the model's features from ``values`` (name -> (N,) array)."""
        cols = []
        for name in self.features:
            parts = name.split("*")
            col = np.asarray(values[parts[0]], dtype=np.float64)
            for p in parts[1:]:
                col = col * np.asarray(values[p], dtype=np.float64)
            cols.append(col)
        return np.column_stack(cols) if cols else np.zeros((0, 0))

    def probability(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """(N,) probability of the label per frame; NaN where a feature is NaN (no face)."""
        z = self.bias + ((self.design(values) - self.mean) / self.scale) @ self.weights
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-z))

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dict (the layout of ``label_models.json``)."""
        return {
            "label": self.label,
            "features": list(self.features),
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
            "weights": [float(v) for v in self.weights],
            "bias": float(self.bias),
            "threshold": float(self.threshold),
        }

    @classmethod
    def from_dict(cls, d: dict) -> LabelModel:
        """The model of one entry of ``label_models.json``."""
        return cls(
            str(d["label"]),
            tuple(d["features"]),
            np.asarray(d["mean"], float),
            np.asarray(d["scale"], float),
            np.asarray(d["weights"], float),
            float(d["bias"]),
            float(d["threshold"]),
        )


@cache
def label_models() -> dict[str, LabelModel]:
    """label -> its shipped model (package data, read once per process)."""
    where = resources.files(__package__).joinpath(MODELS_FILE)
    try:
        return {m["label"]: LabelModel.from_dict(m) for m in json.loads(where.read_text(encoding="utf-8"))["models"]}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(
            f"{where}: facemap's label models cannot be read ({type(exc).__name__}: {exc}); reinstall facemap"
        ) from None
