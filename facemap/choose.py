"""The backends a run gets when it names none, and the one notice when that is not the first
choice: no ``model.onnx`` anywhere it is looked for -> the model-free dlib landmarker (when
installed); the YuNet detector neither cached nor downloadable -> OpenCV's Haar cascade, which
ships with OpenCV. A backend named explicitly is never replaced: its own error stands.

Notices are templates naming options as ``{option}`` (``errors.render_options`` writes them in
a front end's spelling); the library logs them, a command prints them as one line.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DownloadError, OutputError

# needs nothing beyond opencv-python (its cv2.data ships the cascade; requirements pin < 5)
OFFLINE_DETECTOR = "haar"
FALLBACK_LANDMARKER = "dlib"


@dataclass(frozen=True)
class Choice:
    """A backend's registered name, its settings, and the notice saying why (None: the first
    choice, nothing to say)."""

    name: str
    settings: dict = field(default_factory=dict)
    notice: str | None = None


def dlib_installed() -> bool:
    """True when dlib and its predictor's package can be imported (neither is imported here)."""
    return all(importlib.util.find_spec(m) is not None for m in ("dlib", "face_recognition_models"))


def choose_landmarker(model_dir: Path | str | None = None) -> Choice:
    """``facemap`` when a model.onnx is where ``assets.find_model`` looks (``model_dir``, the
    working folder, facemap's cache); else ``dlib`` when installed, with a notice; else
    ``facemap``, whose loading then says the model is missing and how to get it."""
    from .assets import FETCH_COMMAND, model_places

    places = model_places(Path(model_dir) if model_dir else Path.cwd())
    if any(p.is_file() for p in places) or not dlib_installed():
        return Choice("facemap")
    looked = ", ".join(str(p) for p in places)
    return Choice(FALLBACK_LANDMARKER, notice=(
        f"no model.onnx found (looked at {looked}): running the model-free dlib landmarker "
        "instead (68 points, pose estimated from them, no 3DMM parameters); for FaceMap, "
        f"run `{FETCH_COMMAND} --model` with internet, or give {{model}} PATH"
    ))


def choose_detector(name: str, *, progress: bool = False) -> Choice:
    """Detector ``name``, the default for the landmarker (not one the user named). For
    ``yunet``: its file (cache, or downloaded with its checksum checked; ``$FACEMAP_YUNET_MODEL``
    wins), else -- not cached and not downloadable, or ``$FACEMAP_OFFLINE`` -- the offline
    detector with a notice. A ``$FACEMAP_YUNET_MODEL`` naming a missing file is its own error."""
    if name != "yunet":
        return Choice(name)
    from .assets import FETCH_COMMAND, find_yunet_model, yunet_cache_path, yunet_missing

    try:
        return Choice("yunet", {"model": find_yunet_model(progress=progress)})
    except (DownloadError, OutputError) as exc:
        why = getattr(exc, "reason", "") or str(exc).split(";")[0]
    where = yunet_missing(yunet_cache_path())
    return Choice(OFFLINE_DETECTOR, notice=(
        f"the YuNet face detector {where} and cannot be downloaded ({why}): "
        f"using OpenCV's Haar cascade instead ({{detector}} {OFFLINE_DETECTOR}); for YuNet, run "
        f"`{FETCH_COMMAND} --detector` with internet, or give {{yunet_path}}"
    ))
