#!/usr/bin/env python3
"""Decode speed: 10,000 frames at once, in microseconds per frame, against Qualcomm's per-call cost.

Qualcomm's reference (torch, one frame per call, basis reloaded each call) costs about 0.9 ms per
frame on our 2-core machines. Goal: <= 9 us per frame (100x faster). Run: python bench/bench_decode.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemap.threedmm.decode import Basis, Decoder, model_to_image  # noqa: E402
from tests.standins import synthetic_basis_arrays  # noqa: E402

REFERENCE_US = 900.0
GOAL_US = 9.0


def main(n: int = 10_000, repeats: int = 5) -> None:
    """Print decode and decode+map-to-image cost per frame, best of ``repeats``."""
    rng = np.random.default_rng(0)
    params = rng.uniform(-1, 1, (n, 265)).astype(np.float32)
    boxes = np.tile([100.0, 50.0, 299.0, 249.0], (n, 1))
    decoder = Decoder(Basis(*synthetic_basis_arrays()))
    decoder.decode(params[:10])  # warm-up
    best = best_full = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        d = decoder.decode(params)
        t1 = time.perf_counter()
        model_to_image(d.landmarks_model, boxes)
        t2 = time.perf_counter()
        best = min(best, t1 - t0)
        best_full = min(best_full, t2 - t0)
    us = best / n * 1e6
    us_full = best_full / n * 1e6
    print(f"frames: {n}")
    print(f"decode:               {us:7.2f} us/frame")
    print(f"decode + to image:    {us_full:7.2f} us/frame")
    print(f"speed-up vs Qualcomm ({REFERENCE_US:.0f} us/call): {REFERENCE_US / us_full:7.1f}x")
    print(f"goal <= {GOAL_US:.0f} us/frame: {'met' if us_full <= GOAL_US else 'NOT met'}")


if __name__ == "__main__":
    main()
