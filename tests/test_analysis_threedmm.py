"""The analyzer's 3DMM path on real faces: dlib's points of shared clips fitted with the real
basis (facemap.threedmm.fit), written as raw logs and analysed as FaceMap's own logs are."""

from __future__ import annotations

import pytest

from facemap.analysis import AnalysisConfig
from facemap.assets import load_basis
from tests.conftest import need_shared
from tests.standins import DATA
from tests.test_analysis_shared import _bench

CLIPS = ["lp_d0", "lp_d3", "lp_d18"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """{clip: bench row} for CLIPS through the 3DMM path with the default settings."""
    ref = need_shared(DATA / "ref")
    basis = load_basis(need_shared(DATA / "basis"))
    bench = _bench()
    logs = bench.fitted_raw_logs(ref, CLIPS, tmp_path_factory.mktemp("raw"), basis)
    cfg = AnalysisConfig()
    rows = {}
    for clip in CLIPS:
        inputs, truth = bench.load_fitted_clip(clip, ref, logs, basis)
        assert inputs.source == "raw+basis"
        rows[clip] = bench.compare(clip, inputs, truth, cfg)
    return rows


@pytest.mark.parametrize(
    ("clip", "label", "floor"),
    # measured: lp_d0 smile 0.99; lp_d3 eyes 0.82, mouth 0.99; lp_d18 smile 0.99, mouth 0.84
    [
        ("lp_d0", "smile", 0.95),
        ("lp_d3", "eyes_closed", 0.78),
        ("lp_d3", "mouth_open", 0.95),
        ("lp_d18", "smile", 0.95),
        ("lp_d18", "mouth_open", 0.8),
    ],
)
def test_the_3dmm_path_labels_shared_clips_as_mediapipe_does(fitted, clip, label, floor):
    assert fitted[clip][f"{label}_f1"] >= floor, fitted[clip][f"{label}_n"]


def test_the_3dmm_path_typical_face_is_the_basis_mean_moved_to_a_face_at_rest():
    basis = load_basis(need_shared(DATA / "basis"))
    from facemap.analysis.config import threedmm_typical
    from facemap.analysis.inputs import mean_face_features

    mean = mean_face_features(basis)
    typical = threedmm_typical(mean, AnalysisConfig())
    # the basis mean: mouth closed, eyes open as a face at rest; brows 0.078 IOD lower
    assert mean["mar"] == pytest.approx(0.021, abs=0.002)
    assert mean["ear"] == pytest.approx(0.349, abs=0.002)
    assert typical["brow_raise"] == pytest.approx(0.236, abs=0.002)
    assert typical["jaw_open"] == pytest.approx(0.795, abs=0.002)
    assert typical["lip_corner_lift"] == pytest.approx(-0.026, abs=0.002)
