"""What made a run's outputs: the landmarker, the detector, the model file (and its SHA-256), the
3DMM basis's SHA-256 when one is used, facemap's version and the settings that differ from the
defaults. infer.py writes it beside each input's logs (``logs/<stem>_run.json``, ``io.schema``)
and in each picture's JSON; the analyzer's report shows it.

    info = run_info(fm.landmarker, fm.detector, settings={"--max-faces": 0})
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ._version import __version__
from .assets import sha256_of

# The fields of ``run_info`` but ``settings``, each with the name a report shows it under, in
# the report's order (``io.records`` reads them from a picture's JSON, ``analysis.report`` shows them).
RUN_INFO_LABELS = {
    "landmarker": "landmarker", "detector": "face detector", "model": "model file",
    "model_sha256": "model SHA-256", "model_data_sha256": "model weights SHA-256",
    "detector_model": "detector model", "detector_model_sha256": "detector model SHA-256",
    "basis_sha256": "3DMM basis SHA-256", "params": "3DMM parameters", "facemap_version": "facemap (infer.py)",
}

_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256: once a process


def file_sha256(path: Path | str) -> str | None:
    """The file's SHA-256 (hex), computed once per process for an unchanged file; None when it
    cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        try:
            _HASHES[key] = sha256_of(Path(path))
        except OSError:
            return None
    return _HASHES[key]


def basis_sha256(basis: object) -> str:
    """One SHA-256 (hex) of a 3DMM basis's arrays as float64 (mean face, identity basis,
    expression basis, in that order): the same basis gives the same hash wherever it was read."""
    digest = hashlib.sha256()
    for name in ("mean_face", "shape_basis", "blend_shape"):
        digest.update(np.ascontiguousarray(getattr(basis, name), dtype=np.float64).tobytes())
    return digest.hexdigest()


def run_info(
    landmarker: object, detector: object, settings: dict[str, object] | None = None, fitter: object = None
) -> dict[str, object]:
    """What made the outputs: ``landmarker`` (its name), ``detector`` (its name), ``model`` (the
    model or predictor file) and ``model_sha256``, ``model_data_sha256`` (the ONNX external
    weights by file name), ``detector_model`` and its ``detector_model_sha256``, ``basis_sha256``
    (FaceMap's 3DMM basis, or the one dlib's points were fitted with; then ``params``: "fitted"),
    ``facemap_version``, and ``settings`` (option -> value, those that
    differ from the defaults, as the front end names them)."""
    describe = getattr(landmarker, "describe", None)
    desc = describe() if callable(describe) else {}
    info: dict[str, object] = {
        "landmarker": desc.get("landmarker", getattr(landmarker, "name", type(landmarker).__name__)),
        "detector": getattr(detector, "name", type(detector).__name__),
    }
    model = desc.get("model") or desc.get("predictor")
    if model:
        info["model"] = str(model)
        info["model_sha256"] = file_sha256(model)
    onnx = getattr(landmarker, "model", None)
    data = [Path(e.path) for e in getattr(onnx, "external_data", ()) or () if getattr(e, "path", None)]
    if data:
        info["model_data_sha256"] = {p.name: file_sha256(p) for p in data}
    det_model = getattr(detector, "model_path", None)
    if det_model:
        info["detector_model"] = str(det_model)
        info["detector_model_sha256"] = file_sha256(det_model)
    basis = getattr(getattr(landmarker, "decoder", None), "basis", None) or getattr(fitter, "basis", None)
    if basis is not None:
        info["basis_sha256"] = basis_sha256(basis)
    if fitter is not None:  # 68 points fitted to FaceMap's 3DMM (facemap.threedmm.fit)
        info["params"] = "fitted"
    info["facemap_version"] = __version__
    info["settings"] = dict(settings or {})
    return info
