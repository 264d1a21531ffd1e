"""``python -m facemap infer ...`` and ``python -m facemap analyze ...``: the two commands."""

from __future__ import annotations

import sys

from .cli.commands import analyze_main, infer_main

USAGE = """usage: python -m facemap {infer,analyze} [options]

  infer     images, videos, folders or a webcam -> overlays and per-frame logs (infer.py)
  analyze   logs -> expression labels, events, scores and reports (analyze_expressions.py)

'python -m facemap infer --help' lists a command's options."""


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a command; returns its exit code (2 for an unknown command)."""
    args = sys.argv[1:] if argv is None else list(argv)
    commands = {"infer": infer_main, "analyze": analyze_main}
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] not in commands:
        print(f"python -m facemap: error: unknown command {args[0]!r}; choose infer or analyze\n\n{USAGE}", file=sys.stderr)
        return 2
    return commands[args[0]](args[1:], prog=f"python -m facemap {args[0]}")


if __name__ == "__main__":
    sys.exit(main())
