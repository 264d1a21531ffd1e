"""Shared fixtures: a stand-in model, a synthetic basis, and the ../shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.standins import DATA, GOLDEN, golden, make_standin_model, write_basis


def need_shared(path: Path) -> Path:
    """Skip when ../shared is absent; with FACEMAP_REQUIRE_SHARED=1 (set by .ci/run), fail."""
    if not path.exists():
        if os.environ.get("FACEMAP_REQUIRE_SHARED") == "1":
            pytest.fail(f"needs ../shared: {path} is absent (FACEMAP_REQUIRE_SHARED=1)")
        pytest.skip(f"needs ../shared: {path} is absent")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (skips when absent)."""
    return need_shared(DATA)


@pytest.fixture(scope="session")
def golden_vectors() -> dict[str, np.ndarray]:
    """The golden decode vectors (skips when ../shared is absent)."""
    need_shared(GOLDEN)
    return golden()


@pytest.fixture(scope="session")
def basis_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a synthetic meanFace/shapeBasis/blendShape.npy."""
    return write_basis(tmp_path_factory.mktemp("basis"))


@pytest.fixture(scope="session")
def standin_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in model.onnx (+ model.data) whose output follows the image's mean colour."""
    return make_standin_model(tmp_path_factory.mktemp("model"), weight_scale=0.5)


@pytest.fixture(scope="session")
def constant_params() -> np.ndarray:
    """A fixed, plausible parameter vector (frontal, mild expression)."""
    rng = np.random.default_rng(7)
    p = rng.uniform(-0.3, 0.3, 265).astype(np.float32)
    p[258:261] = [0.05, -0.1, 0.02]
    return p


@pytest.fixture(scope="session")
def constant_model(tmp_path_factory: pytest.TempPathFactory, constant_params: np.ndarray) -> Path:
    """A stand-in model that always outputs ``constant_params``."""
    return make_standin_model(tmp_path_factory.mktemp("constmodel"), bias=constant_params)


YUNET = DATA.parent / "models" / "face_detection_yunet.onnx"


@pytest.fixture(autouse=True, scope="session")
def _offline_detector_model(tmp_path_factory: pytest.TempPathFactory):
    """The YuNet detector (the default) reads ../shared's copy, never the network or the user's
    cache; without ../shared, the cache is an empty temp folder (a test that needs the detector
    then fails with the one-line download error)."""
    with pytest.MonkeyPatch.context() as mp:
        if YUNET.is_file():
            mp.setenv("FACEMAP_YUNET_MODEL", str(YUNET))
        else:
            mp.delenv("FACEMAP_YUNET_MODEL", raising=False)
        mp.setenv("FACEMAP_CACHE_DIR", str(tmp_path_factory.mktemp("facemap-cache")))
        yield


@pytest.fixture()
def no_yunet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No YuNet anywhere: no FACEMAP_YUNET_MODEL, an empty cache."""
    from facemap import assets

    monkeypatch.delenv(assets.YUNET_MODEL_ENV, raising=False)
    cache = tmp_path / "empty-cache"
    monkeypatch.setenv(assets.CACHE_ENV, str(cache))
    return cache
