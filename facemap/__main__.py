"""``python -m facemap infer ...``, ``python -m facemap analyze ...`` and ``python -m facemap
fetch``: the two commands and the one that fills the caches for offline use."""

from __future__ import annotations

import sys

from .cli.commands import analyze_main, fetch_main, infer_main

USAGE = """usage: python -m facemap {infer,analyze,fetch} [options]

  infer     images, videos, folders or a webcam -> overlays and per-frame logs (infer.py)
  analyze   logs -> expression labels, events, scores and reports (analyze_expressions.py)
  fetch     download the model, the 3DMM basis and the YuNet detector into the caches, for
            offline machines (--model, --basis, --detector; no flag: all)

'python -m facemap infer --help' lists a command's options."""


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a command; returns its exit code (2 for an unknown command)."""
    args = sys.argv[1:] if argv is None else list(argv)
    commands = {"infer": infer_main, "analyze": analyze_main, "fetch": fetch_main}
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] not in commands:
        print(f"python -m facemap: error: unknown command {args[0]!r}; choose infer, analyze or fetch\n\n{USAGE}", file=sys.stderr)
        return 2
    return commands[args[0]](args[1:], prog=f"python -m facemap {args[0]}")


if __name__ == "__main__":
    sys.exit(main())
