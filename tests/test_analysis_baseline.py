"""The person's reference face: low-activity frames, and the cap at a typical neutral mouth."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facemap.analysis import AnalysisConfig, Inputs, analyze
from facemap.analysis.baseline import compute_baseline
from facemap.analysis.features import canonical_features, landmark_features
from facemap.analysis.inputs import mean_face_features
from facemap.analysis.synth import Expression, faces_3d, project
from facemap.threedmm.decode import Basis, Decoder
from tests.standins import synthetic_basis_arrays

FPS = 30.0


def _inputs(smile: np.ndarray, mouth_width_shift: float = 0.0) -> Inputs:
    """A frontal synthetic face (template mouth 0.583 IOD wide) smiling where ``smile`` is 1."""
    n = smile.size
    zero = np.zeros(n)
    rng = np.random.default_rng(1)
    expr = Expression(smile, zero, zero, zero, rng.normal(0, 0.3, n), zero, zero)
    feats = landmark_features(project(faces_3d(expr), np.zeros((n, 3)), 100.0, (300, 300)))
    feats["mouth_width"] += mouth_width_shift
    frames = np.arange(1, n + 1)
    return Inputs(frames, (frames - 1) * 1000.0 / FPS, np.ones(n, bool), feats, "landmarks")


def _mostly_smiling(n: int = 300) -> np.ndarray:
    smile = np.ones(n)
    smile[:30] = 0.0  # neutral for the first 1 s only: most of the quietest 30% are smiles
    return smile


def test_someone_smiling_most_of_the_clip_is_seen_smiling():
    smile = _mostly_smiling()
    res = analyze(_inputs(smile))
    flags = res.labelled.flags["smile"].to_numpy().astype(bool)
    assert res.baseline.median["mouth_width"] == pytest.approx(0.55)
    assert res.baseline.median["lip_corner_lift"] == pytest.approx(0.0, abs=1e-9)
    assert flags[smile == 1].mean() > 0.95
    assert not flags[smile == 0].any()
    # without the cap, the smiling frames are this person's "neutral" and the smile is lost
    uncapped = replace(AnalysisConfig(), typical_mouth_width=9.0, typical_lip_corner_lift=9.0)
    lost = analyze(_inputs(smile), uncapped).labelled.flags["smile"].to_numpy()
    assert lost[smile == 1].mean() < 0.1


def test_a_narrow_mouth_keeps_its_own_reference():
    """A mouth 0.15 IOD narrower than the template (reference 0.433 < 0.55) is judged from its
    own neutral: its smile is found where it is, and nowhere else."""
    smile = np.zeros(300)
    smile[100:160] = 1.0
    wide = analyze(_inputs(smile))
    narrow = analyze(_inputs(smile, mouth_width_shift=-0.15))
    assert narrow.baseline.median["mouth_width"] == pytest.approx(0.583 - 0.15, abs=1e-3)
    got = narrow.labelled.flags["smile"].to_numpy()
    np.testing.assert_array_equal(got[101:159], 1)  # edges: smoothing
    assert got[:100].sum() == 0 and got[161:].sum() == 0
    # the template's own neutral (0.583) is capped to 0.55: only the reference moves
    assert wide.baseline.median["mouth_width"] == pytest.approx(0.55)
    # (the first smiling frame is averaged with the neutral one before it: mouth smoothing)
    np.testing.assert_array_equal(wide.labelled.flags["smile"].to_numpy()[101:160], 1)


def test_frames_named_by_the_user_are_not_capped():
    inp = _inputs(_mostly_smiling())
    typical = {"mouth_width": 0.55, "lip_corner_lift": 0.0}
    named = compute_baseline(
        inp.features, inp.frames, inp.face, frame_range=(100, 200), typical=typical
    )
    auto = compute_baseline(inp.features, inp.frames, inp.face, typical=typical)
    smiling_width = inp.features["mouth_width"].iloc[100:200].median()
    assert smiling_width > 0.7
    assert named.median["mouth_width"] == pytest.approx(smiling_width)
    assert named.typical == {} and auto.typical == typical
    assert auto.as_dict()["typical_neutral_cap"] == typical


def test_raw_params_take_the_typical_face_from_the_basis_mean_face():
    """mean_face_features equals the features of a decoded face with no identity and no
    expression (expression coefficients of -1 decode to weight 0)."""
    basis = Basis(*synthetic_basis_arrays())
    params = np.zeros(265)
    params[219:258] = -1.0
    dec = Decoder(basis).decode(params)
    want = canonical_features(dec.vertices_canonical, dec.pose_deg).iloc[0]
    got = mean_face_features(basis)
    assert set(got) == {
        "ear_left",
        "ear_right",
        "ear",
        "mar",
        "mouth_width",
        "lip_corner_lift",
        "brow_raise",
        "jaw_open",
    }
    for name, value in got.items():
        assert value == pytest.approx(want[name], abs=1e-9)


def _held_inputs(n: int, mouth_open: np.ndarray, brow_raise: np.ndarray) -> Inputs:
    """A frontal synthetic face (jitter in pitch) with per-frame mouth and brow amounts."""
    zero = np.zeros(n)
    rng = np.random.default_rng(2)
    expr = Expression(zero, mouth_open, zero, brow_raise, rng.normal(0, 0.3, n), zero, zero)
    feats = landmark_features(project(faces_3d(expr), np.zeros((n, 3)), 100.0, (300, 300)))
    feats["mar"] += rng.normal(0, 0.005, n)  # a little measurement noise, as real lips have
    frames = np.arange(1, n + 1)
    return Inputs(frames, (frames - 1) * 1000.0 / FPS, np.ones(n, bool), feats, "landmarks")


def test_a_mouth_held_open_through_most_of_the_clip_is_seen_open():
    """Funny faces: the mouth open for 90% of a 10 s clip, so every quiet frame is an open mouth.
    The mouth's reference is the clip's most closed frames (the closed-mouth reference, no held
    expression to correct) and the open mouth is seen; with the low-activity frames as its
    reference and without the held-expression check it is this person's "neutral" and lost."""
    n = 300
    held = np.full(n, 0.6)
    held[100:130] = 0.0  # closed for 1 s only
    res = analyze(_held_inputs(n, held, np.zeros(n)))
    flags = res.labelled.flags["mouth_open"].to_numpy().astype(bool)
    assert res.baseline.held == {}
    assert res.baseline.median["mar"] < 0.05
    assert flags[held > 0].mean() > 0.9
    assert not flags[105:125].any()
    # the held-expression check alone (the low-activity reference) finds it too
    old = analyze(_held_inputs(n, held, np.zeros(n)), replace(AnalysisConfig(), mouth_closed_quantile=0.0))
    assert set(old.baseline.held) == {"mar"} and old.baseline.median["mar"] < 0.05
    off = replace(AnalysisConfig(), held_mar_excess=9.0, mouth_closed_quantile=0.0)
    lost = analyze(_held_inputs(n, held, np.zeros(n)), off).labelled.flags["mouth_open"].to_numpy()
    assert lost[held > 0].mean() < 0.1


def test_a_mouth_open_through_the_whole_clip_is_judged_against_the_typical_face():
    n = 300
    res = analyze(_held_inputs(n, np.full(n, 0.6), np.zeros(n)))
    assert res.baseline.held["mar"].startswith("the typical neutral face")
    assert res.baseline.median["mar"] == pytest.approx(AnalysisConfig().typical_mar)
    assert res.labelled.flags["mouth_open"].to_numpy().mean() > 0.9


def test_brows_held_raised_with_the_mouth_open_read_as_surprise():
    """Brows up and mouth open through 90% of the clip: surprise there, judged against the
    clip's frames with the lowest brows (and most closed mouth)."""
    n = 300
    held = np.ones(n)
    held[200:230] = 0.0
    res = analyze(_held_inputs(n, 0.6 * held, held))
    surprise = res.labelled.flags["surprise"].to_numpy().astype(bool)
    assert set(res.baseline.held) == {"brow_raise"}  # the mouth: the closed-mouth reference
    assert surprise[held > 0].mean() > 0.9
    assert not surprise[205:225].any()
    off = replace(AnalysisConfig(), held_mar_excess=9.0, held_brow_excess=9.0, mouth_closed_quantile=0.0)
    assert (
        not analyze(_held_inputs(n, 0.6 * held, held), off)
        .labelled.flags["surprise"]
        .to_numpy()
        .any()
    )


def test_high_set_brows_that_lower_now_and_then_do_not_read_as_raised():
    """Brows set high (above the neutral range) that drop for 15% of the clip: the reference
    moves only to the top of the neutral range, not down to the dropped frames, so the
    person's rest is not a raise (the frames nearest typical would have made it one)."""
    n = 300
    brows = np.full(n, 0.4)  # the template's 0.31 IOD + 0.033: above typical + held_brow_excess
    brows[50:95] = -0.5
    res = analyze(_held_inputs(n, np.zeros(n), brows))
    cfg = AnalysisConfig()
    assert res.baseline.held["brow_raise"].startswith("the top of the neutral range")
    assert res.baseline.median["brow_raise"] == pytest.approx(
        cfg.typical_brow_raise + cfg.held_brow_excess
    )
    delta = res.labelled.signals["brow_delta"].to_numpy()
    assert np.abs(delta[brows > 0]).max() < cfg.brow_raise_on


def test_a_short_clip_reports_no_held_reference():
    """Under min_baseline_ms the reference is the typical face whatever the clip holds, and
    report.json says so (no held_expression note from the clip's own frames)."""
    n = 45  # 1.5 s
    res = analyze(_held_inputs(n, np.full(n, 0.6), np.zeros(n)))
    assert res.baseline.against_typical and res.baseline.held == {}
    assert res.baseline.median["mar"] == pytest.approx(AnalysisConfig().typical_mar)
