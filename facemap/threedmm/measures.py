"""Named expression measures from 3DMM parameters: continuous, per frame, vectorised over N.

Each measure is a length or ratio of the decoded pose-free canonical face
(``Decoded.vertices_canonical``, iBUG-68 order, seen from the front) minus the same quantity of the
basis mean face, divided by how far the basis's own expression component of that name moves it at
full strength (coefficient 1). So every measure is 0 on the basis mean face, 1 where the face has
moved as far as that component moves it, negative the other way (eyes wider than the mean, a
narrower mouth), and none depends on head pose, face size or identity scale.

Measured on the real FaceMap basis (``../shared/data/basis``; docs/analysis.md, "Named expression
measures"): component 25 opens the jaw (inner-lip MAR +1.09), 37 closes the subject's left eye and
38 the right (EAR 0.35 -> 0.04 each), 2 and 3 raise and pull out one lip corner each (mouth width
+0.10 IOD, corner +0.11 IOD), 29 raises the inner brows (+0.074 IOD), 32 and 33 lower one brow
each (-0.047 IOD). The geometry, not the component's own coefficient, is measured, because a fit
(or the network) spreads one movement over several correlated components: on the 34 shared clips
the geometry follows MediaPipe as well as or better than the coefficients (e.g. jaw open r 0.71
against component 25's 0.61).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..types import N_EXP, N_ID, N_LANDMARKS
from .decode import Basis, Decoded, Decoder

log = logging.getLogger(__name__)

# The components whose full strength is each measure's unit (real basis; see the module docstring).
JAW_OPEN_COMPONENT = 25
EYE_CLOSE_LEFT_COMPONENT = 37  # the subject's left eye, iBUG points 42-47
EYE_CLOSE_RIGHT_COMPONENT = 38  # the subject's right eye, iBUG points 36-41
SMILE_COMPONENTS = (2, 3)  # one lip corner each; the smile's unit is both at full strength
BROW_INNER_UP_COMPONENT = 29
BROW_DOWN_COMPONENTS = (32, 33)  # one brow each; brow_lower's unit is both at full strength
# The smile is mouth widening + this x corner lift (the analyzer's smile index, whose weight was
# chosen leave-one-clip-out against MediaPipe: the corners rise about half as far as the mouth
# widens).
SMILE_LIFT_WEIGHT = 2.0

MEASURES = ("smile", "jaw_open", "eye_closure_left", "eye_closure_right")
"""The shipped measures, those whose Pearson r against MediaPipe's blendshape of the same meaning
holds on the 34 shared clips (pooled r >= 0.6 and per-clip median r >= 0.6; docs/analysis.md)."""
UNVALIDATED = ("brow_raise", "brow_lower")
"""Measured but not shipped: their r against MediaPipe's brows holds pooled (0.62, 0.73) but not
clip by clip (median 0.54, 0.49); ask for them by name."""


def _geometry(vertices: np.ndarray) -> dict[str, np.ndarray]:
    """(N, 68, 3) canonical vertices (y up) -> the raw quantities the measures are made of, each
    (N,); lengths in inter-ocular distances (outer eye corners 36-45)."""
    v = np.asarray(vertices, dtype=np.float64)
    x, y = v[..., 0], v[..., 1]
    iod = np.hypot(x[:, 45] - x[:, 36], y[:, 45] - y[:, 36])

    def dist(a: int, b: int) -> np.ndarray:
        return np.hypot(x[:, a] - x[:, b], y[:, a] - y[:, b])

    def ear(p: tuple[int, ...]) -> np.ndarray:
        return (dist(p[1], p[5]) + dist(p[2], p[4])) / (2.0 * dist(p[0], p[3]))

    with np.errstate(divide="ignore", invalid="ignore"):
        gap = (dist(61, 67) + dist(62, 66) + dist(63, 65)) / 3.0
        lip_mid = (y[:, 62] + y[:, 66]) / 2.0
        return {
            "mar": gap / dist(60, 64),
            "smile": (
                dist(48, 54) + SMILE_LIFT_WEIGHT * ((y[:, 48] + y[:, 54]) / 2.0 - lip_mid)
            )
            / iod,
            "ear_left": ear(tuple(range(42, 48))),
            "ear_right": ear(tuple(range(36, 42))),
            # inner brow ends (21, 22) above the inner eye corners (39, 42)
            "brow_inner": ((y[:, 21] + y[:, 22]) - (y[:, 39] + y[:, 42])) / (2.0 * iod),
            # the whole brow (17-26) above the whole eye (36-47)
            "brow_height": (y[:, 17:27].mean(axis=1) - y[:, 36:48].mean(axis=1)) / iod,
        }


# measure -> (geometry quantity, sign: +1 when the measure grows with it, the unit's components)
_DEFINITIONS: dict[str, tuple[str, float, tuple[int, ...]]] = {
    "smile": ("smile", 1.0, SMILE_COMPONENTS),
    "jaw_open": ("mar", 1.0, (JAW_OPEN_COMPONENT,)),
    "eye_closure_left": ("ear_left", -1.0, (EYE_CLOSE_LEFT_COMPONENT,)),
    "eye_closure_right": ("ear_right", -1.0, (EYE_CLOSE_RIGHT_COMPONENT,)),
    "brow_raise": ("brow_inner", 1.0, (BROW_INNER_UP_COMPONENT,)),
    "brow_lower": ("brow_height", -1.0, BROW_DOWN_COMPONENTS),
}


@dataclass(frozen=True)
class MeasureScale:
    """Per measure: the basis mean face's raw quantity (``zero``) and the change (signed as the
    measure) that its components at full strength make (``unit``); build with ``from_basis``."""

    zero: dict[str, float]
    unit: dict[str, float]

    @classmethod
    def from_basis(cls, basis: Basis) -> MeasureScale:
        """Measure each unit on ``basis``: its mean face, then the mean face plus the measure's
        components at coefficient 1. A basis where a component does not move its quantity the
        measure's way (a basis of another layout) is refused."""
        mean = basis.mean_face.reshape(1, N_LANDMARKS, 3)
        blend = basis.blend_shape.reshape(N_LANDMARKS, 3, N_EXP)
        base = _geometry(mean)
        zero, unit = {}, {}
        for name, (quantity, sign, comps) in _DEFINITIONS.items():
            moved = _geometry(mean + blend[None, :, :, list(comps)].sum(axis=-1))
            zero[name] = float(base[quantity][0])
            unit[name] = float(sign * (moved[quantity][0] - base[quantity][0]))
            if not np.isfinite(unit[name]) or unit[name] <= 0:
                raise ValueError(
                    f"expression component(s) {list(comps)} do not move {quantity} as {name} "
                    f"expects (change {unit[name]:+.4g}); is this FaceMap's 3DMM basis?"
                )
        return cls(zero, unit)


class Measurer:
    """Holds one basis (its decoder and measure scales) and measures batches. Build once."""

    def __init__(self, basis: Basis) -> None:
        self.scale = MeasureScale.from_basis(basis)
        self._decoder = Decoder(basis)

    def __call__(
        self, decoded_or_params: Decoded | np.ndarray, names: tuple[str, ...] = MEASURES
    ) -> dict[str, np.ndarray]:
        """``names`` (default ``MEASURES``) -> (N,) float64 of a ``Decoded`` or (N, 265) raw
        params (NaN rows stay NaN)."""
        unknown = [n for n in names if n not in _DEFINITIONS]
        if unknown:
            raise ValueError(f"unknown measure(s) {unknown}; valid: {', '.join(_DEFINITIONS)}")
        if isinstance(decoded_or_params, Decoded):
            vertices = decoded_or_params.vertices_canonical
        else:
            p = np.asarray(decoded_or_params, dtype=np.float64)
            if p.ndim == 1:
                p = p[None]
            if p.ndim != 2 or p.shape[1] < N_ID + N_EXP:
                raise ValueError(f"params must have shape (N, 265), got {p.shape}")
            vertices = self._decoder.decode(p).vertices_canonical
        geo = _geometry(vertices)
        out = {}
        for name in names:
            quantity, sign, _ = _DEFINITIONS[name]
            out[name] = sign * (geo[quantity] - self.scale.zero[name]) / self.scale.unit[name]
        return out


def measurer_or_none(basis: Basis) -> Measurer | None:
    """A Measurer of ``basis``, or None when its components do not move the face as FaceMap's
    basis does (a stand-in or another 3DMM: the named measures would mean nothing)."""
    try:
        return Measurer(basis)
    except ValueError as exc:
        log.info("no named expression measures: %s", exc)
        return None


def measures(
    decoded_or_params: Decoded | np.ndarray, basis: Basis, names: tuple[str, ...] = MEASURES
) -> dict[str, np.ndarray]:
    """The named expression measures (``names``, default ``MEASURES``) of N frames: {name: (N,)
    float64}, 0 on the basis mean face, 1 as far as the basis's own component of that name moves
    it (for many batches, build a ``Measurer`` once)."""
    return Measurer(basis)(decoded_or_params, names)
