"""Speed of the expression analyzer against plain pandas CSV reading.

Generates one hour of synthetic logs at 30 fps (108,000 frames: landmarks + meta, infer.py's
layout), then times, best of --repeat runs (read and analyse in turns, so a busy spell on the
machine slows both):

  read:    pandas.read_csv of the two CSVs, nothing else (the yardstick);
  analyse: facemap.analysis.analyze_logs: reading and validating through facemap.io.records,
           cross-checking the logs, features, baseline, labels, events, scores;
  write:   score.txt, report.json, expressions.csv and report.html (timed apart);
  plot:    timeline.png (timed apart, once).

Prints the times and the ratio analyse / read (target <= 2), and (analyse + write) / read.
Usage: python bench/bench_analysis.py [--frames 108000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemap.analysis import analyze_logs  # noqa: E402
from facemap.analysis.plots import timeline_png  # noqa: E402
from facemap.analysis.report import write_outputs  # noqa: E402
from facemap.analysis.synth import synthetic_logs  # noqa: E402


def best_of(repeat: int, fn) -> tuple[float, object]:
    """(fastest wall time in s, last result) of ``repeat`` calls."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def interleaved(repeat: int, yardstick, fn) -> tuple[float, float, object]:
    """Best times of ``yardstick`` and ``fn``, run in turns (so a busy spell on the machine
    slows both, not one), and ``fn``'s last result."""
    t_ref, t_fn, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        t_ref = min(t_ref, best_of(1, yardstick)[0])
        t, result = best_of(1, fn)
        t_fn = min(t_fn, t)
    return t_ref, t_fn, result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=108_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore", pd.errors.DtypeWarning)  # plain read_csv of the meta log
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lm, meta = synthetic_logs(
            folder / "logs", n_frames=args.frames, fps=30.0, no_face=(600.0, 630.0)
        )
        size_mb = (lm.stat().st_size + meta.stat().st_size) / 1e6
        t_read, t_an, res = interleaved(
            args.repeat, lambda: (pd.read_csv(lm), pd.read_csv(meta)), lambda: analyze_logs(lm, meta)
        )
        t_write, _ = best_of(args.repeat, lambda: write_outputs(res, folder / "out", plots=False))
        t_plot, _ = best_of(1, lambda: timeline_png(res[0]))
    print(
        f"frames {args.frames} ({args.frames / 30 / 3600:.2f} h at 30 fps), CSVs {size_mb:.0f} MB"
    )
    print(f"pandas read_csv of the logs:        {t_read:6.2f} s")
    print(f"analyse (read, check, label, score): {t_an:6.2f} s")
    print(f"write csv/json/html (no png):        {t_write:6.2f} s")
    print(f"timeline.png alone:                  {t_plot:6.2f} s")
    print(f"ratio analyse / read: {t_an / t_read:.2f} (target <= 2)")
    print(f"ratio (analyse + write) / read: {(t_an + t_write) / t_read:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
