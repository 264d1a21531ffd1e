"""The online analyzer against the offline one, on the shared clips' dlib logs, and its cost.

For each clip with dlib reference logs (../shared/data/ref/<clip>_dlib_landmarks.csv and
_dlib_meta.csv, timed at its video's frame rate) it runs

  offline: facemap.analysis.analyze_logs on the whole clip (its baseline from every frame);
  online:  facemap.analysis.online.OnlineAnalyzer, fed the same landmarks one frame at a time;

and prints, per clip and per label, the share of frames where the two agree, counted over the
frames after the online analyzer's warm-up (its labels no longer ``provisional``: the first
``online_trust_ms`` of face time); a clip with no frame after it (less face time than the
warm-up) is listed as such, with its face time and the agreement over its provisional frames.
Then how many of the offline events after the warm-up the online analyzer reported with a
first and last frame within 2 frames, and how many of its own events match an offline one.
Both run with the current AnalysisConfig, whatever its rules. ``--whole-clip-reference`` gives
the online analyzer the offline reference face: what differs then is its mechanism (window,
lag, steps, event tracking), not the reference the first seconds give.

Then the cost: milliseconds per face per frame of ``OnlineAnalyzer.update`` (mean, median, 95th
percentile over every frame of every clip; goal < 1 ms), wall clock and the thread's CPU time;
and a ``--long`` session (a clip looped at 30 fps: 3600 s is 108,000 frames), its CPU time by
tenth and the process's peak memory every 10,000 frames (both flat once the history is full).

Measured (2-core machine shared with other jobs; docs/analysis.md#live-the-online-analyzer):
all 26 clips with frames after the warm-up agree on every label on 90% or more (the lowest
93.1%), 8 clips have no frame after it;
events 93/93 offline found online, 93/97 online found offline (79/79 and 79/83 before the brief
dips); 0.68-0.78 ms CPU per face and frame;
an hour: 0.60-0.70 ms per tenth, peak memory 172-173 MB from 20,000 frames on. With --whole-clip-reference: every clip and label 97% or more
over all face frames, events 93/93 both ways.

Usage: python bench/bench_online.py [--clips a,b,...] [--tolerance 2] [--long SEC] [--whole-clip-reference]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facemap.analysis import AnalysisConfig, analyze_logs  # noqa: E402
from facemap.analysis.labels import LABELS  # noqa: E402
from facemap.analysis.online import OnlineAnalyzer  # noqa: E402
from facemap.io.records import read_landmarks, read_meta  # noqa: E402
from facemap.types import Event, Face, Status  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_labels import video_fps  # noqa: E402  (the clip's frame rate, 30 without its video)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REF = DATA / "ref"


def clips(ref: Path = REF) -> list[str]:
    """The clips with dlib reference logs and a video (the video gives the frame rate)."""
    stems = sorted(p.name[: -len("_dlib_meta.csv")] for p in ref.glob("*_dlib_meta.csv"))
    return [s for s in stems if (ref / f"{s}_dlib_landmarks.csv").exists()
            and (ref.parent / "videos" / f"{s}.mp4").exists()]


@dataclass
class Replay:
    """One clip analysed both ways: offline and online 0/1 flags (N, len(LABELS)), the online
    warm-up mask (N,) (True once trusted), both event lists, the online cost per frame (ms)."""

    stem: str
    frames: np.ndarray
    times_ms: np.ndarray
    face: np.ndarray
    offline: pd.DataFrame
    online: pd.DataFrame
    trusted: np.ndarray
    offline_events: pd.DataFrame
    online_events: list[Event]
    cost_ms: np.ndarray  # (N, 2): wall-clock and CPU milliseconds of each update


def replay(stem: str, cfg: AnalysisConfig | None = None, ref: Path = REF, lag_ms: float | None = None,
           whole_clip_reference: bool = False) -> Replay:
    """Run ``stem``'s dlib logs through the offline and the online analyzer (with
    ``whole_clip_reference``, the online one judges against the offline reference face instead
    of its own: what differs then is the mechanism, not the reference)."""
    cfg = cfg or AnalysisConfig()
    lm_path, meta_path = ref / f"{stem}_dlib_landmarks.csv", ref / f"{stem}_dlib_meta.csv"
    fps = video_fps(ref.parent / "videos" / f"{stem}.mp4")
    a = analyze_logs(lm_path, meta_path, fps=fps, config=cfg)[0]
    lm, meta = read_landmarks(lm_path), read_meta(meta_path)
    points = dict(zip(lm.frames.tolist(), lm.landmarks, strict=True))
    status = dict(zip(meta.frames.tolist(), zip(meta.status, meta.reason, strict=True), strict=True))
    analyzer = OnlineAnalyzer(cfg, lag_ms, a.baseline if whole_clip_reference else None)
    decided = []
    n = len(a.inputs.frames)
    online = np.zeros((n, len(LABELS)), dtype=np.int8)
    trusted = np.zeros(n, dtype=bool)
    events: list[Event] = []
    cost = []
    for f, t in zip(a.inputs.frames.tolist(), a.inputs.timestamp_ms.tolist(), strict=True):
        st, reason = status.get(f, ("no_face", ""))
        faces = ()
        if f in points and st != "no_face":
            faces = (Face(f, t, Status(st), reason, None, points[f]),)
        t0, c0 = time.perf_counter(), time.thread_time()
        verdicts = analyzer.update(f, t, faces)
        cost.append(((time.perf_counter() - t0) * 1000.0, (time.thread_time() - c0) * 1000.0))
        decided += verdicts
    decided += analyzer.finish()
    row = {f: i for i, f in enumerate(a.inputs.frames.tolist())}
    for v in decided:
        events += v.events
        if v.faces and v.faces[0].labels:
            online[row[v.frame]] = [name in v.faces[0].labels for name in LABELS]
            trusted[row[v.frame]] = not v.faces[0].provisional
    return Replay(stem, a.inputs.frames, a.inputs.timestamp_ms, a.inputs.face, a.labelled.flags, pd.DataFrame(online, columns=LABELS),
                  trusted, a.events, events, np.asarray(cost))


def face_time_ms(r: Replay, cfg: AnalysisConfig) -> np.ndarray:
    """(N,) face time before each frame, as the online analyzer counts it (the gaps between
    consecutive face frames)."""
    t = np.asarray(r.times_ms)
    gaps = np.diff(t, prepend=t[:1])
    both = r.face & np.concatenate([[False], r.face[:-1]])
    return np.cumsum(np.where(both, gaps, 0.0))


def agreement(r: Replay, trusted: np.ndarray | None = None) -> dict[str, float]:
    """Per label: the share of trusted face frames where online and offline agree (NaN when
    the online analyzer never got past its warm-up)."""
    sel = (r.trusted if trusted is None else trusted) & r.face
    if not sel.any():
        return {name: float("nan") for name in LABELS}
    return {name: float(np.mean(r.online[name].to_numpy()[sel] == r.offline[name].to_numpy()[sel]))
            for name in LABELS}


def event_match(r: Replay, tolerance: int = 2) -> tuple[int, int, int, int]:
    """(offline events after the warm-up matched, their count, online events matched, their
    count): the same kind, first and last frame each within ``tolerance`` frames."""
    trusted_from = r.frames[r.trusted][0] if r.trusted.any() else np.inf
    off = r.offline_events[r.offline_events["start_frame"] >= trusted_from]
    on = [e for e in r.online_events if e.start_frame >= trusted_from]

    def close(kind, s, e, others) -> bool:
        return any(k == kind and abs(s - s2) <= tolerance and abs(e - e2) <= tolerance for k, s2, e2 in others)

    on_rows = [(e.kind, e.start_frame, e.end_frame) for e in on]
    off_rows = list(zip(off["type"], off["start_frame"], off["end_frame"], strict=True))
    hit_off = sum(close(k, s, e, on_rows) for k, s, e in off_rows)
    hit_on = sum(close(k, s, e, off_rows) for k, s, e in on_rows)
    return hit_off, len(off_rows), hit_on, len(on_rows)


def long_session_cost(stem: str, seconds: float, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) wall-clock and CPU ms of each update over a ``seconds``-long session: the clip's
    landmarks played in a loop at ``fps``, one face (the history and baseline grow as in a long
    webcam session, up to their cap); and (N // 10000 + 1,) the process's peak resident memory
    (MB) at the start and after every 10,000 frames."""
    import resource

    lm = read_landmarks(REF / f"{stem}_dlib_landmarks.csv")
    analyzer = OnlineAnalyzer()
    n = int(seconds * fps)
    cost = np.zeros((n, 2))  # allocated up front: the bench's own records do not grow the memory
    peak_mb = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0]
    for i in range(n):
        f, t = i + 1, i * 1000.0 / fps
        k = i % (2 * len(lm.frames) - 2) if len(lm.frames) > 1 else 0  # back and forth: no jump at the seam
        k = k if k < len(lm.frames) else 2 * len(lm.frames) - 2 - k
        faces = (Face(f, t, Status.OK, "", None, lm.landmarks[k]),)
        t0, c0 = time.perf_counter(), time.thread_time()
        analyzer.update(f, t, faces)
        cost[i] = (time.perf_counter() - t0) * 1000.0, (time.thread_time() - c0) * 1000.0
        if (i + 1) % 10000 == 0:
            peak_mb.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    return cost, np.asarray(peak_mb)


def main(argv: list[str] | None = None) -> int:
    """Print the agreement table, the event match and the cost."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="", help="comma-separated clip names (default: every clip)")
    ap.add_argument("--tolerance", type=int, default=2, help="frames an event's ends may differ by")
    ap.add_argument("--long", type=float, default=300.0, metavar="SEC",
                    help="also time a SEC-long session at 30 fps (a clip looped; default %(default)s, 0 = skip)")
    ap.add_argument("--whole-clip-reference", action="store_true",
                    help="the online analyzer judges against the offline (whole-clip) reference face: its mechanism alone")
    ap.add_argument("--trust-sweep", action="store_true",
                    help="also print, for warm-ups of 1 to 6 s, the lowest agreement of any clip and label")
    args = ap.parse_args(argv)
    if not REF.is_dir():
        print(f"no shared data at {REF}", file=sys.stderr)
        return 3
    names = [s for s in args.clips.split(",") if s] or clips()
    cfg = AnalysisConfig()
    shown = [n for n in LABELS if n != "neutral"]
    print(f"agreement online vs offline after the warm-up ({cfg.online_trust_ms:.0f} ms of face), per clip and label")
    print(f"{'clip':<30} {'frames':>6} {'judged':>6} {'min':>5} {'all':>5}  " + " ".join(f"{n[:7]:>7}" for n in ["neutral", *shown]))
    print(f"{'':<30} {'':>6} {'':>6} {'':>5} {'':>5}  (min: the lowest label after the warm-up; all: the lowest over every face frame)")
    hits = np.zeros(4, dtype=int)
    sweep = {t: [] for t in (1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0)}
    costs, failing, short, judged_all = [], [], [], 0
    for stem in names:
        r = replay(stem, cfg, whole_clip_reference=args.whole_clip_reference)
        agree = agreement(r)
        judged = int((r.trusted & r.face).sum())
        judged_all += judged
        low = min(agree.values()) if judged else float("nan")
        if judged and low < 0.9:
            failing.append(stem)
        every = min(agreement(r, r.face).values())
        if not judged:  # never past the warm-up: nothing to judge, said so (its face time, and
            # the agreement of its provisional labels for what it is worth)
            face_s = face_time_ms(r, cfg)[-1] / 1000.0
            short.append(stem)
            print(f"{stem:<30} {len(r.frames):>6} {judged:>6} {'-':>5} {every * 100:>5.1f}  "
                  f"no frame after the warm-up: {face_s:.2f} s of face < {cfg.online_trust_ms / 1000:.0f} s")
        else:
            cells = " ".join(f"{agree[n] * 100:7.1f}" for n in ["neutral", *shown])
            print(f"{stem:<30} {len(r.frames):>6} {judged:>6} {low * 100:>5.1f} {every * 100:>5.1f}  {cells}")
        hits += event_match(r, args.tolerance)
        if args.trust_sweep:
            face_ms = face_time_ms(r, cfg)
            for t, rows in sweep.items():
                judged_t = (face_ms >= t) & r.face
                if judged_t.any():
                    rows.append((stem, min(agreement(r, judged_t).values()), int(judged_t.sum())))
        costs.append(r.cost_ms[r.face])
    print(f"{len(names)} clips, {judged_all} frames judged; {len(names) - len(short)} clips judged, under 90% on some "
          f"label: {', '.join(failing) or 'none'}; {len(short)} clips with no frame after the warm-up (shorter): "
          f"{', '.join(short) or 'none'}")
    print(f"events within {args.tolerance} frames: offline {hits[0]}/{hits[1]} "
          f"({100.0 * hits[0] / max(hits[1], 1):.1f}%) found online; online {hits[2]}/{hits[3]} "
          f"({100.0 * hits[2] / max(hits[3], 1):.1f}%) found offline")
    for t, rows in sweep.items() if args.trust_sweep else ():
        worst = min(rows, key=lambda x: x[1]) if rows else ("-", float("nan"), 0)
        under = sum(x[1] < 0.9 for x in rows)
        print(f"warm-up {t / 1000:.0f} s: {len(rows)} clips judged, {sum(x[2] for x in rows)} frames; "
              f"{under} under 90%; lowest {worst[1] * 100:.1f}% ({worst[0]})")
    c = np.concatenate(costs)
    for i, what in enumerate(("wall clock", "CPU time")):
        print(f"cost per face per frame (OnlineAnalyzer.update, {len(c)} frames, {what}): mean {c[:, i].mean():.2f} ms "
              f"(goal < 1 ms), median {np.median(c[:, i]):.2f} ms, p95 {np.percentile(c[:, i], 95):.2f} ms, "
              f"max {c[:, i].max():.1f} ms")
    print(f"(a step, one pass over the window, every {cfg.online_step_ms:.0f} ms; CPU time is the process's "
          "own, which a busy machine does not inflate as much)")
    if args.long > 0:
        c, peak_mb = long_session_cost("lp_d19", args.long)
        print(f"a {args.long:.0f} s session at 30 fps ({len(c)} frames of lp_d19 looped), CPU ms per frame by tenth:")
        tenths = np.array_split(c[:, 1], 10)
        print("  mean " + " ".join(f"{x.mean():.2f}" for x in tenths) + "; max " + " ".join(f"{x.max():.0f}" for x in tenths))
        print(f"  wall clock mean {c[:, 0].mean():.2f} ms; the process's peak memory (MB) at the start and every "
              f"10,000 frames (the history fills at {AnalysisConfig().baseline_max_frames:,}): "
              + " ".join(f"{m:.0f}" for m in peak_mb))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
