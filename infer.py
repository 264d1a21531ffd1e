#!/usr/bin/env python3
"""infer.py: run FaceMap 3DMM on images, videos, folders or a webcam (the parser and the call
are ``facemap.cli.commands``; installed, the same command is ``facemap-infer``)."""

from __future__ import annotations

import sys
from pathlib import Path

from facemap.cli.commands import infer_main, infer_parser


def build_parser():
    """infer.py's argument parser."""
    return infer_parser()


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run; returns the exit code (``--model`` also looks beside this file)."""
    return infer_main(argv, script_dir=Path(__file__).resolve().parent)


if __name__ == "__main__":
    sys.exit(main())
