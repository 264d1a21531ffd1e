"""The FacemapError hierarchy: every user-facing failure, each with its exit code.

Exit codes (documented in the README):
0 ok, 1 bug, 2 usage or bad option, 3 bad input file, 4 model problem,
5 cannot write output, 130 interrupted.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL = 4
EXIT_OUTPUT = 5
EXIT_INTERRUPTED = 130


class FacemapError(Exception):
    """Base class: a failure the user can act on. ``str(err)`` is one line for the terminal."""

    exit_code: int = EXIT_BUG


class UsageError(FacemapError):
    """A bad option or a bad combination of options."""

    exit_code = EXIT_USAGE


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
