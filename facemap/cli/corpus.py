"""infer.py --video CORPUS --ray [ADDRESS]: the videos of a corpus over a pool of Ray actors
(the engine is ``facemap.raypool``).

Each actor builds the detector and landmarker once and runs ``process_video`` on the videos it
is given; inputs and ``--output`` must be at the same path on every node (a shared filesystem),
which each worker checks before any video starts. A worker writes a video into a folder of its
own under ``--output/.facemap-staging/``; once it is done, the driver renames its files into
place and writes its corpus.csv row as one step (Ctrl-C / SIGTERM held meanwhile), so a worker
that dies, or a run that is stopped, leaves nothing half-written under the final names and no
outputs without their row. A video that fails is tried once more (on any worker), then recorded
as failed; the outputs an earlier run completed for it stay until new ones are whole. A video
whose outputs are complete (listed in the manifest, in place, and ``ok`` in the earlier
corpus.csv for the same file: path, size and mtime) is skipped, so a rerun only does what is
left; files facemap wrote into ``--output`` (overlays) are never taken for inputs. ``corpus.csv`` holds one row per
video, rewritten after each.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

from ..errors import InputFileError, OutputError, UsageError
from ..io.outputs import STAGING, HoldSignals, OutputDir, atomic_write_text
from ..io.records import read_run_info
from ..io.schema import corpus_text, log_path, read_corpus
from ..io.sources import FrameRange, Source
from ..io.video import collect_videos
from ..raypool import (
    Callbacks,
    Job,
    PoolWorker,
    check_pool_options,
    check_reachable,
    import_ray,
    pool_session,
)
from .build import open_facemap
from .config import FLAGS, InferConfig
from .videos import (
    CORPUS_CSV,
    Emit,
    VideoReport,
    corpus_row,
    drop_stale,
    frame_range,
    identity,
    ok_row,
    own_outputs_left_out,
    preflight,
    probe_in_range,
    process_video,
    report_line,
    stale_line,
    summary_table,
    video_outputs,
)

log = logging.getLogger(__name__)

_ATTEMPT = re.compile(r".+\.[0-9a-f]{12}")  # a staging folder: <stem>.<12 hex digits>


def _part(out: OutputDir, rel: str) -> Path:
    """The temp file a log or overlay is written to before it is renamed into place."""
    target = out.path / rel
    return target.with_name(f".{target.name}.part")


def same_input(before: dict[str, str], path: Path, ident: dict[str, object]) -> bool:
    """True when the earlier row was made from this very file: its path, size and mtime (a row
    without them, from an older facemap, is not known to be: the video is redone)."""
    return bool(ident) and before.get("video") == str(path) and all(before.get(k) == str(v) for k, v in ident.items())


def made_alike(out: OutputDir, stem: str, cfg: InferConfig) -> bool:
    """True when the earlier outputs of ``stem`` were made as this run would make them: the same
    landmarker, model and detector model files, and settings (the detector among them), as their
    ``<stem>_run.json`` says (a trial with --max-frames, or dlib's logs, are no FaceMap run's)."""
    import json

    made = read_run_info(out.path / log_path(Path(""), stem, "meta"))
    if not made:
        return False
    # the settings name the detector, --bbox, --no-face-detect and --assume-points where they are
    # not the landmarker's defaults; the landmarker and the files as preflight found them (dlib's
    # predictor: its own) are compared here (with --assume-points the landmarker is onnx-points)
    now = {"landmarker": None if cfg.assume_points else cfg.landmarker, "model": cfg.model,
           "detector_model": cfg.detector_model}
    if any(value and made.get(key) != str(value) for key, value in now.items()):
        return False
    return made.get("settings") == json.loads(json.dumps(cfg.changed(), default=str))  # as run.json holds them


def is_complete(out: OutputDir, rels: list[str], before: dict[str, str] | None, path: Path,
                ident: dict[str, object], cfg: InferConfig, stem: str) -> bool:
    """True when the earlier corpus.csv row says ok (or skipped) for this same input file (path,
    size, mtime), made with the same landmarker, model and settings, and every file is in place,
    listed in the manifest, with no temp file beside it."""
    if not before or before.get("status") not in ("ok", "skipped") or not same_input(before, path, ident):
        return False
    return all(out.wrote(r) and not _part(out, r).exists() for r in rels) and made_alike(out, stem, cfg)


def publish(stage: Path, out_dir: Path, rels: list[str]) -> list[Path]:
    """Rename each finished file of ``stage`` into place in ``out_dir`` (one rename a file,
    within one filesystem: a reader sees the old file or the whole new one); returns them."""
    moved = []
    for rel in rels:
        src = stage / rel
        if not src.is_file():
            continue  # not written (an overlay of a video without frames)
        try:
            os.replace(src, out_dir / rel)
        except OSError as exc:
            raise OutputError(f"{out_dir / rel}: cannot write ({exc.strerror or exc}); free space or choose another {{output}}") from None
        moved.append(out_dir / rel)
    return moved


def remove_stage(out_dir: Path, name: str) -> None:
    """Remove one staging folder of this corpus (only a name the driver gave)."""
    if _ATTEMPT.fullmatch(name):
        shutil.rmtree(out_dir / STAGING / name, ignore_errors=True)


def _clear_staging(out_dir: Path) -> None:
    """Staging folders left by a run that was killed (the folder's lock is held: no other run
    writes here), then the staging root when empty."""
    root = out_dir / STAGING
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            remove_stage(out_dir, entry.name)
    with contextlib.suppress(OSError):
        root.rmdir()


class CorpusWorker(PoolWorker):
    """One Ray actor: the detector and landmarker built once, then one video per ``run``."""

    def setup(self, cfg: InferConfig) -> None:
        """Build the detector and landmarker."""
        self.cfg = cfg
        self.fm, _ = open_facemap(cfg, lambda _line: None)

    def work(self, src: Source, out_dir: str, stage: str, span: FrameRange) -> VideoReport:
        """One video into ``out_dir/.facemap-staging/<stage>`` (the driver puts it in place)."""
        info = probe_in_range(src.path, span)
        return process_video(self.fm, src, info, Path(out_dir) / STAGING / stage, self.cfg, span)


def _skipped_row(src: Source, before: dict[str, str] | None) -> dict[str, object]:
    """A video whose outputs are complete: what the earlier run's row said of it, if anything."""
    keep = ("frames", "face_pct", "fps", "node", "seconds")
    carried = {k: (before or {}).get(k) or None for k in keep}
    return corpus_row(src, "skipped", **carried)


def run_corpus(cfg: InferConfig, emit: Emit) -> int:
    """infer.py --video CORPUS --ray [ADDRESS]: returns the exit code (3 when a video failed,
    raised as InputFileError after corpus.csv is written). Ctrl-C or SIGTERM stops every
    worker; the videos not finished have no outputs, corpus.csv lists those that are (the
    KeyboardInterrupt then says so)."""
    from ..io.images import unique_stems

    ray = import_ray()
    if cfg.jobs != 1:
        raise UsageError("{jobs} runs videos in processes on this machine, {ray} on Ray workers: choose one")
    if cfg.preview:
        raise UsageError("{preview} shows one video at a time on this machine; it does not go with {ray} "
                         "(leave --preview out, or run the video without {ray})")
    check_pool_options(cfg.ray_workers, cfg.ray_cpus)
    paths = own_outputs_left_out(collect_videos(cfg.video or []), cfg, emit)
    if cfg.ray:
        check_reachable(cfg.ray)  # before anything is written: no answer is one line in seconds
    span = frame_range(cfg)
    inputs = [Source("video", stem, path=Path(os.path.abspath(p))) for p, stem in zip(paths, unique_stems(paths), strict=True)]
    idents = {s.stem: identity(s.path) for s in inputs}  # as the file is before it is read
    output = OutputDir(Path(os.path.abspath(cfg.output)), clean=cfg.clean)
    output.check()
    cfg = preflight(cfg, emit)  # a missing model is one line here, not one per worker
    rows: dict[str, dict[str, object]] = {}
    reports: list[VideoReport] = []
    with output as out:
        _clear_staging(out.path)
        before = read_corpus(out.path / CORPUS_CSV) if out.wrote(CORPUS_CSV) else {}
        todo = []
        for src in inputs:
            rels = video_outputs(src.stem, cfg)
            if is_complete(out, video_outputs(src.stem, cfg, optional=False), before.get(src.stem), src.path,
                           idents[src.stem], cfg, src.stem):
                rows[src.stem] = _skipped_row(src, before.get(src.stem))
            else:
                todo.append(src)
            for rel in rels:
                out.file(rel)
        table = out.file(CORPUS_CSV)

        def save() -> None:
            # this run's rows; a video not done yet keeps the earlier run's row (its outputs are still those)
            atomic_write_text(table, corpus_text([{**rows[s.stem], **idents[s.stem]} if s.stem in rows else before[s.stem]
                                                  for s in inputs if s.stem in rows or s.stem in before]))

        for src in inputs:
            if src.stem in rows:
                emit(f"{src.path.name}: skipped, its outputs are complete in {cfg.output}/")
        if not todo:
            save()
        # else the table is written as each video ends: a run refused before any (Ray not reached,
        # a worker that cannot load the model) keeps the earlier run's table as it was
        try:
            if todo:
                reports = _run_on_ray(ray, cfg, todo, out, span, rows, save, emit)
        except KeyboardInterrupt:
            save()
            done = sum(rows[s.stem]["status"] != "skipped" for s in todo if s.stem in rows)
            raise KeyboardInterrupt(
                f"interrupted: {done} of {len(todo)} video(s) finished (listed in {Path(cfg.output) / CORPUS_CSV}), "
                "the others left no outputs; a rerun does the rest"
            ) from None
        finally:
            _clear_staging(out.path)
    if len(reports) > 1:
        for line in summary_table(reports):
            emit(line)
    failed = [s.path.name for s in inputs if rows[s.stem]["status"] == "failed"]
    counts = {k: sum(r["status"] == k for r in rows.values()) for k in ("ok", "skipped", "failed")}
    if not cfg.quiet:
        emit(f"corpus: {counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed; "
             f"{CORPUS_CSV} and outputs in {cfg.output}/")
    if failed:
        raise InputFileError(
            f"{len(failed)} of {len(inputs)} video(s) failed: {', '.join(failed)} "
            f"(the error of each is in {Path(cfg.output) / CORPUS_CSV})"
        )
    return 0


def _run_on_ray(ray, cfg: InferConfig, todo: list[Source], out: OutputDir, span: FrameRange, rows, save, emit) -> list[VideoReport]:
    """The videos of ``todo`` over a pool of actors; fills ``rows``, saving the table after
    each video. Returns the reports of the videos done, in input order."""
    worker_cfg = replace(cfg, quiet=True)
    out_dir = out.path
    done: dict[str, VideoReport] = {}
    stage: dict[str, str] = {}
    with pool_session(
        ray, cfg.ray, CorpusWorker, (FLAGS, worker_cfg), cfg.ray_workers, cfg.ray_cpus,
        ([str(s.path) for s in todo], str(out_dir)), len(todo), not cfg.quiet, "video",
    ) as session:
        bar, add = session.bar, session.add

        def say(line: str) -> None:
            bar.clear()
            emit(line)

        def started(job: Job) -> None:
            stage[job.key] = f"{job.key}.{uuid.uuid4().hex[:12]}"
            job.args = (job.args[0], str(out_dir), stage[job.key], span)

        def ended(job: Job) -> None:
            remove_stage(out_dir, stage.pop(job.key, ""))

        def ok(job: Job, result: dict) -> None:
            rels = video_outputs(job.key, worker_cfg)
            with HoldSignals():  # its outputs in place and its row in corpus.csv, or neither
                rep = replace(result["value"], outputs=publish(out_dir / STAGING / stage[job.key], out_dir, rels))
                stale = stale_line(rep.stem, *drop_stale(out, rep, worker_cfg))
                done[job.key] = rep
                rows[job.key] = ok_row(rep, result["node"])
                save()
            ended(job)
            say(report_line(rep))
            if stale and not cfg.quiet:
                say(stale)
            add(rep.counts.frames)

        def retry(job: Job, result: dict) -> None:
            ended(job)
            say(f"{job.name}: failed, trying it once more" + (f" ({result['error']})" if result.get("died") else ""))

        def failed(job: Job, result: dict) -> None:
            if result.get("code") == OutputError.exit_code:  # the output cannot be written (a full disk): the run stops, exit 5
                said = re.sub(rf"{re.escape(str(out_dir / STAGING))}/[^/\s;]+/?", lambda _m: f"{out_dir}/", result["error"])
                ended(job)
                raise OutputError(said)
            ended(job)
            src = job.args[0]
            for rel in video_outputs(src.stem, worker_cfg):
                if not (out_dir / rel).is_file():  # what an earlier run completed stays
                    out.forget(rel)
            rows[job.key] = corpus_row(src, "failed", node=result["node"] or None, seconds=result["seconds"],
                                 error=result["error"])
            say(f"{job.name}: failed: {result['error']}")
            save()
            add(0)

        jobs = [Job(s.stem, s.path.name, (s,)) for s in todo]
        session.pool.run(session.actors, jobs, Callbacks(
            done=ok, failed=failed, retry=retry, abandon=ended, started=started, tick=bar.refresh
        ))
    return [done[s.stem] for s in todo if s.stem in done]
