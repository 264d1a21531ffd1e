"""The FacemapError hierarchy: every user-facing failure, each with its exit code.

Exit codes (documented in the README):
0 ok, 1 bug, 2 usage or bad option, 3 bad input file, 4 model problem,
5 cannot write output, 130 interrupted.

Messages speak in library terms. Where one names an option it writes the option's Python name
in braces, ``"{every} must be >= 1, got 0"``: ``str(err)`` shows ``every must be >= 1, got 0``,
and a command-line front end shows its own spelling with ``err.render({"every": "--every"})``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePath

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL = 4
EXIT_OUTPUT = 5
EXIT_INTERRUPTED = 130

_OPTION_REF = re.compile(r"\{([a-z][a-z0-9_]*)\}")
# The options that library messages name (as ``{name}``); a front end maps each to its spelling.
# Braces around any other word (a path like ``/data/{a}/x.mp4``) are left as they are.
OPTION_NAMES = frozenset(
    {
        "analyze",
        "preview",
        "baseline_frames",
        "basis_dir",
        "assume_norm",
        "assume_points",
        "bbox",
        "beta",
        "camera",
        "clean",
        "compare",
        "config",
        "detector",
        "detector_model",
        "dump_csv",
        "dump_landmarks_csv",
        "dump_npy",
        "end_s",
        "every",
        "fallback_center",
        "face_margin",
        "fetch_model",
        "force",
        "fps",
        "gt",
        "image",
        "jobs",
        "jump_threshold",
        "landmarker",
        "landmarks",
        "line_width",
        "logs",
        "max_faces",
        "max_frames",
        "meta",
        "min_cutoff",
        "model",
        "no_preview",
        "normalize",
        "output",
        "output_name",
        "point_size",
        "provider",
        "raw",
        "ray",
        "ray_cpus",
        "ray_workers",
        "redetect_every",
        "lost_detect_every",
        "skip_if_no_face",
        "smooth",
        "start_s",
        "video",
    }
)


# Words of a message that are not an option's name, as the Python API (no front end) reads them;
# a front end gives its own (infer.py in a checkout: its requirements file).
DEFAULT_WORDING = {
    "install_dlib": 'pip install "facemap-3dmm[dlib]"',
    "yunet_path": 'detector=DetectorOptions("yunet", {"model": PATH})',
}


def render_options(template: str, names: Mapping[str, str] | None = None) -> str:
    """``template`` with each ``{option}`` written as ``names[option]`` (default: its name, or
    ``DEFAULT_WORDING``'s); for error messages and the notices a front end shows in its own
    flag names."""
    names = names or {}

    def one(m: re.Match) -> str:
        name = m.group(1)
        if name in DEFAULT_WORDING:
            return names.get(name, DEFAULT_WORDING[name])
        return names.get(name, name) if name in OPTION_NAMES else m.group(0)

    return _OPTION_REF.sub(one, template)


class FacemapError(Exception):
    """Base class: a failure the user can act on. ``str(err)`` is one line for the terminal."""

    exit_code: int = EXIT_BUG

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.template = message

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each ``{option}`` written as ``names[option]`` (default: its name)."""
        text = render_options(self.template, names)
        lost = self.__dict__.get("lost")
        return f"{text}; not kept: {', '.join(lost)}" if lost else text

    def not_kept(self, paths: object) -> None:
        """Name files the failure cost (outputs removed or never put in place): the message ends
        ``; not kept: <name>, <name>`` (file names, each once)."""
        names = self.__dict__.setdefault("lost", [])
        for path in paths:  # type: ignore[attr-defined]
            name = PurePath(str(path)).name
            if name not in names:
                names.append(name)

    def __str__(self) -> str:
        return self.render()


class UsageError(FacemapError):
    """A bad option or a bad combination of options."""

    exit_code = EXIT_USAGE


class ClosedError(UsageError, RuntimeError):
    """A closed FaceMap used again (a RuntimeError too, as it was before it was a UsageError)."""


class InputFileError(FacemapError):
    """An input file (image, video, CSV, basis) is missing or unreadable."""

    exit_code = EXIT_INPUT


class BasisError(InputFileError):
    """The 3DMM basis files are missing, corrupt or of the wrong shape."""


class ModelError(FacemapError):
    """The ONNX model is missing, corrupt, or not the model we expect."""

    exit_code = EXIT_MODEL


class DownloadError(FacemapError):
    """A download failed (offline, HTTP error, refused archive)."""

    exit_code = EXIT_MODEL


class OutputError(FacemapError):
    """An output folder or file cannot be written, or must not be touched."""

    exit_code = EXIT_OUTPUT


def number(value: object, name: str, *, whole: bool = False, unit: str = "") -> float:
    """``value`` when it is a finite real number (a whole number with ``whole``), else a
    UsageError naming ``name`` (``"{every}"`` for an option a front end spells its own way)."""
    import math
    import numbers

    kind = numbers.Integral if whole else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "a whole number" if whole else "a number"
        raise UsageError(f"{name} must be {what}{unit}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number{unit}, got {value}")
    return value
