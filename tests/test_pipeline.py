"""The landmarker and its guard: batches, non-finite outputs, off-box landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from facemap.backends import FaceMapLandmarker, check_landmarks
from facemap.io.records import read_meta
from facemap.model import FaceMapModel
from facemap.preprocess import Preprocessor
from facemap.threedmm.decode import Basis, Decoder
from facemap.types import BBox, Status
from tests.standins import make_standin_model, synthetic_basis_arrays


@pytest.fixture(scope="module")
def decoder():
    return Decoder(Basis(*synthetic_basis_arrays()))


def test_two_faces_in_one_batch(standin_model, decoder):
    lm = FaceMapLandmarker(FaceMapModel(standin_model), decoder, Preprocessor())
    img = np.zeros((300, 400, 3), np.uint8)
    img[:, 200:] = 255
    faces = [BBox(20, 20, 150, 160), BBox(240, 30, 380, 170)]
    res = lm.landmark(img, faces, frame=5, timestamp_ms=200.0)
    assert [r.frame for r in res] == [5, 5] and res[1].timestamp_ms == 200.0
    assert all(r.has_face and r.box == f for r, f in zip(res, faces, strict=True))
    assert not np.allclose(res[0].params, res[1].params)  # the stand-in follows the pixels
    assert lm.landmark(img, []) == []


def test_nan_output_is_unstable_not_a_crash(tmp_path, decoder, capsys, basis_dir):
    import infer

    bias = np.zeros(265, np.float32)
    bias[10] = np.nan
    model = make_standin_model(tmp_path / "m", bias=bias)
    res = FaceMapLandmarker(FaceMapModel(model), decoder, Preprocessor()).landmark(
        np.zeros((100, 100, 3), np.uint8), [BBox(10, 10, 80, 80)]
    )[0]
    assert res.status is Status.UNSTABLE and res.reason == "non_finite_output"
    assert not res.has_face and res.pose is None
    img = tmp_path / "x.png"
    import cv2

    cv2.imwrite(str(img), np.zeros((64, 64, 3), np.uint8))
    code = infer.main(["--image", str(img), "--no-face-detect", "--model", str(model),
                       "--basis-dir", str(basis_dir), "-o", str(tmp_path / "out")])
    assert code == 0
    assert "[unstable]" in capsys.readouterr().out
    meta = read_meta(tmp_path / "out" / "logs" / "x_meta.csv")
    assert meta.status.tolist() == ["unstable"] and meta.reason.tolist() == ["non_finite_output"]


def test_guard_flags_landmarks_far_from_the_box():
    face = BBox(100, 100, 199, 199)
    t = np.linspace(0, 2 * np.pi, 68)
    good = np.stack([150 + 45 * np.cos(t), 150 + 45 * np.sin(t)], -1)
    assert check_landmarks(good, face, np.zeros(265)) == (Status.OK, "")
    assert check_landmarks(good * 0.05, face, np.zeros(265)) == (Status.WARN, "landmarks_off_box")
    assert check_landmarks(good + 500, face, np.zeros(265)) == (Status.WARN, "landmarks_off_box")
    p = np.zeros(265)
    p[3] = np.inf
    assert check_landmarks(good, face, p)[0] is Status.UNSTABLE
