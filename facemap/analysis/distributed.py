"""``--logs ... --ray``: the clips of a Batch analysed on a pool of Ray actors."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..errors import InputFileError
from ..raypool import Callbacks, Job, PoolWorker, check_pool_options, import_ray, pool_session
from .clips import Batch, ClipLogs, ClipOutcome, analyze_clip, failed_outcome
from .report import OUTPUT_NAMES
from .summary import PARQUET_NAME, SUMMARY_NAMES

log = logging.getLogger("facemap.analysis")


class ClipWorker(PoolWorker):
    """One Ray actor of ``--logs ... --ray``: the clips it is given analysed into the output
    folder, as ``Batch.analyze`` does."""

    def setup(self, out: str, plots: bool, options: dict) -> None:
        """The output folder, --no-plots, and the analysis options."""
        self.out, self.plots, self.options = Path(out), plots, dict(options)

    def work(self, clip: ClipLogs) -> ClipOutcome:
        """One clip into ``<out>/<stem>/``, with the warnings its analysis gave (the driver says
        them: a worker's own log lines do not reach the user)."""
        said = _Said()
        facemap_log = logging.getLogger("facemap")
        level = facemap_log.level
        facemap_log.addHandler(said)
        facemap_log.setLevel(logging.WARNING)  # whatever the worker's root logger lets through
        try:
            outcome = analyze_clip(self.out, clip, plots=self.plots, names=self.names, **self.options)
        finally:
            facemap_log.removeHandler(said)
            facemap_log.setLevel(level)
        return replace(outcome, warnings=tuple(said.lines))


class _Said(logging.Handler):
    """The messages of the warnings logged while it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _absolute(clip: ClipLogs) -> ClipLogs:
    """The clip with its log paths made absolute, as a worker on another node sees them."""
    return ClipLogs(clip.stem, *(Path(os.path.abspath(p)) if p is not None else None
                                 for p in (clip.meta, clip.landmarks, clip.raw)))


_TEMP = re.compile(r"\.(.+)\.[A-Za-z0-9_]{8}\.part")  # an atomic write's temp file: .<name>.<8 chars>.part


def remove_temp_files(folder: Path) -> None:
    """The temp files of atomic writes that a killed worker left in one clip's folder (only
    those of the files an analysis writes)."""
    ours = {*OUTPUT_NAMES, *SUMMARY_NAMES, PARQUET_NAME, ".facemap-output"}
    for p in Path(folder).rglob(".*.part"):
        m = _TEMP.fullmatch(p.name)
        if m and m.group(1) in ours and p.is_file():
            with contextlib.suppress(OSError):
                p.unlink()


def analyze_on_ray(
    batch: Batch,
    clips: list[ClipLogs],
    *,
    address: str | None,
    workers: int | None = None,
    cpus: float = 1.0,
    on_outcome: Callable[[ClipOutcome], None] = lambda o: None,
    on_retry: Callable[[str, str], None] = lambda stem, error: None,
    progress: bool = False,
    **options: object,
) -> None:
    """``--logs ... --ray [ADDRESS]``: the clips over a pool of Ray actors (``facemap.raypool``),
    each into ``<out>/<stem>/`` as without Ray; their outcomes go into ``batch`` in the order of
    ``clips`` (its table and index are written when the batch closes). The logs and ``out`` must
    be at the same paths on every node (a shared filesystem; paths are made absolute). A clip
    whose worker died or hit a bug is tried once more, then failed; ``on_outcome`` is called as
    each clip ends, ``on_retry(stem, error)`` before a second try. ``options``: fps, config,
    baseline_frames, basis_dir, as ``analyze_clip`` takes them."""
    ray = import_ray()
    check_pool_options(workers, cpus)
    clips = [_absolute(c) for c in clips]
    if options.get("basis_dir") is not None:
        options["basis_dir"] = Path(os.path.abspath(options["basis_dir"]))
    out = Path(os.path.abspath(batch.path))
    outcomes: dict[str, ClipOutcome] = {}
    by_stem = {c.stem: c for c in clips}
    inputs = [str(p) for c in clips for p in c.paths]
    with pool_session(
        ray, address, ClipWorker, (batch.names, str(out), batch.plots, options), workers, cpus,
        (inputs, str(out)), len(clips), progress, "clip",
    ) as session:
        bar, add = session.bar, session.add

        def finish(outcome: ClipOutcome) -> None:
            outcomes[outcome.clip.stem] = outcome
            bar.clear()
            for line in outcome.warnings:  # as the run without Ray says them
                log.warning("%s", line)
            on_outcome(outcome)
            add(sum(int(r["frames"] or 0) for r in outcome.rows) if outcome.ok else 0)

        def done(job: Job, result: dict) -> None:
            finish(result["value"])

        def retry(job: Job, result: dict) -> None:
            remove_temp_files(out / job.key)
            bar.clear()
            on_retry(job.key, result["error"])

        def failed(job: Job, result: dict) -> None:
            remove_temp_files(out / job.key)
            finish(failed_outcome(by_stem[job.key], out / job.key, InputFileError(result["error"])))

        jobs = [Job(c.stem, c.stem, (c,)) for c in clips]
        session.pool.run(session.actors, jobs, Callbacks(
            done=done, failed=failed, retry=retry, abandon=lambda job: remove_temp_files(out / job.key),
            tick=bar.refresh,
        ))
    for c in clips:
        batch.add(outcomes[c.stem])
