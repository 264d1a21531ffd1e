#!/usr/bin/env python3
"""Analyse facial expressions in facemap (or original-layout) logs: labels, events and scores
(the parser and the call are ``facemap.cli.commands``; installed: ``facemap-analyze``)."""

from __future__ import annotations

import sys

from facemap.cli.commands import analyze_main, analyze_parser


def build_parser():
    """analyze_expressions.py's argument parser."""
    return analyze_parser()


def main(argv: list[str] | None = None) -> int:
    """Run the analyzer; returns the exit code."""
    return analyze_main(argv)


if __name__ == "__main__":
    sys.exit(main())
