"""FaceMap's 3DMM in one place: the basis and decode (``decode``), the fit of 68 points to the
265 parameters (``fit``), and the fit as a stage of the chain (``stage``)."""

from __future__ import annotations

from pathlib import Path

from .decode import Basis, Decoded, Decoder, model_to_image
from .fit import Fit, FitOptions, Fitter

__all__ = ["Basis", "Decoded", "Decoder", "Fit", "FitOptions", "Fitter", "fitter_for", "model_to_image"]


def fitter_for(landmarker: object, basis_dir: str | Path | None = None) -> tuple[Fitter | None, str | None]:
    """The 3DMM fit a landmarker's faces need, and a notice when it cannot be had.

    A landmarker that gives FaceMap's parameters itself, or other than 68 points, needs none:
    (None, None). For 68 points without parameters (dlib, ``--assume-points 68``) the basis comes
    from ``basis_dir`` (a bad folder raises its one-line BasisError) or the cache, never the
    network; when it is absent, (None, why: a clause for the caller's one line) and the run goes
    on without them.
    """
    if getattr(landmarker, "gives_params", True) or getattr(landmarker, "n_points", 68) != 68:
        return None, None
    from ..assets import load_basis, qaihm_cache_dir  # noqa: PLC0415  (assets imports decode)
    from ..errors import BasisError  # noqa: PLC0415

    try:
        basis = load_basis(Path(basis_dir) if basis_dir else None, download=False, progress=False)
    except BasisError:
        if basis_dir:
            raise
        return None, (
            f"no 3DMM basis in {qaihm_cache_dir()} to fit its 68 points to (give {{basis_dir}} DIR "
            "or run `python -m facemap fetch --basis` once)"
        )
    return Fitter(basis), None
