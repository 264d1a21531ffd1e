"""The command-line layer: argparse config, report lines, jobs and progress bars.

Nothing outside ``facemap.cli`` imports it; it composes the library (``facemap.open``, the
sinks, the output folder) from the flags and prints what the library returns.
"""
