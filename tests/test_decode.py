"""The numpy decode equals Qualcomm's reference (golden vectors) and is sane for any params."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from facemap.threedmm.decode import Basis, Decoder, model_to_image
from tests.standins import synthetic_basis_arrays


@pytest.fixture(scope="module")
def decoder(golden_vectors) -> Decoder:
    g = golden_vectors
    return Decoder(Basis(g["mean_face"], g["shape_basis"], g["blend_shape"]))


@pytest.mark.parametrize("suffix", ["", "_special"])
def test_matches_reference_on_every_row(decoder, golden_vectors, suffix):
    g = golden_vectors
    dec = decoder.decode(g["params" + suffix])
    lm_image = model_to_image(dec.landmarks_model, g["bboxes" + suffix])
    err_model = np.abs(dec.landmarks_model - g["lm_model" + suffix]).max(axis=(1, 2))
    err_image = np.abs(lm_image - g["lm_image" + suffix]).max(axis=(1, 2))
    assert err_model.shape == (g["params" + suffix].shape[0],)
    assert (err_model <= 1e-3).all(), err_model.max()
    assert (err_image <= 1e-3).all(), err_image.max()


def test_batch_equals_one_by_one(decoder, golden_vectors):
    params = golden_vectors["params"][:5]
    batch = decoder.decode(params)
    for i in range(5):
        one = decoder.decode(params[i])
        np.testing.assert_allclose(one.landmarks_model[0], batch.landmarks_model[i], atol=1e-9)
        np.testing.assert_allclose(one.pose_deg[0], batch.pose_deg[i], atol=1e-9)


def test_denormalisation(decoder):
    p = np.zeros(265, dtype=np.float32)
    p[258:261] = [0.5, -0.25, 1.0]
    p[261:264] = [1.0, -0.5, 1.0]
    p[219:258] = 1.0
    d = decoder.decode(p)
    np.testing.assert_allclose(d.pose_deg[0], [45.0, -22.5, 90.0], atol=1e-9)
    np.testing.assert_allclose(d.translation[0], [60.0, -30.0])
    assert d.focal[0] == pytest.approx(600.0)
    np.testing.assert_allclose(d.expression[0], np.ones(39))


def test_canonical_vertices_are_pose_free(decoder):
    rng = np.random.default_rng(3)
    base = rng.uniform(-1, 1, 265)
    posed = np.repeat(base[None], 4, axis=0)
    posed[:, 258:261] = [[0, 0, 0], [0.4, 0, 0], [0, -0.4, 0], [0.1, 0.2, 0.3]]
    d = decoder.decode(posed)
    np.testing.assert_allclose(d.vertices_canonical, np.repeat(d.vertices_canonical[:1], 4, 0))
    assert np.abs(d.landmarks_model[1] - d.landmarks_model[0]).max() > 1.0


def test_zero_pose_projection_flips_y(decoder):
    """With no rotation the reference's P matrix flips y: landmark y = -vertex y * f / 500."""
    p = np.zeros(265)
    d = decoder.decode(p)
    v = d.vertices_canonical[0]
    np.testing.assert_allclose(d.landmarks_model[0, :, 0], v[:, 0] * 450 / 500, atol=1e-9)
    np.testing.assert_allclose(d.landmarks_model[0, :, 1], -v[:, 1] * 450 / 500, atol=1e-9)


def test_rejects_wrong_shape(decoder):
    with pytest.raises(ValueError, match="params must have shape"):
        decoder.decode(np.zeros((2, 10)))


def test_basis_shape_checked():
    mean, shape, blend = synthetic_basis_arrays()
    with pytest.raises(ValueError, match="shape_basis must have shape"):
        Basis(mean, shape[:, :10], blend)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, (3, 265), elements=st.floats(-1, 1, width=32)))
def test_random_params_never_give_nan(params):
    dec = Decoder(Basis(*synthetic_basis_arrays()))
    d = dec.decode(params)
    boxes = np.array([[0, 0, 127, 127], [10, 20, 300, 310], [-50, -40, 60, 90]])
    assert np.isfinite(model_to_image(d.landmarks_model, boxes)).all()
    assert np.isfinite(d.pose_deg).all() and np.isfinite(d.vertices_posed).all()
