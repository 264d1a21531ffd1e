"""infer.py --video CORPUS --ray [ADDRESS]: the videos of a corpus over a pool of Ray actors.

Each actor builds the detector and landmarker once and runs ``process_video`` on the videos it
is given, writing into ``--output`` as a single run does; inputs and ``--output`` must be at the
same path on every node (a shared filesystem), which each worker checks before any video starts.
A video that fails is tried once more (on any worker), then recorded as failed; a video whose
outputs are complete in ``--output`` (listed in its manifest, no temp file left) is skipped, so a
rerun only does what is left. ``corpus.csv`` holds one row per video.

``ray`` is an optional extra, imported only here and only when ``--ray`` is given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from ..errors import FacemapError, InputFileError, ModelError, OutputError, UsageError
from ..io.outputs import OutputDir, atomic_write_text
from ..io.records import corpus_text, read_corpus
from ..io.sources import FrameRange, Source
from ..io.video import collect_videos
from ..sinks import log_names, overlay_name
from .build import open_facemap
from .config import FLAGS, InferConfig, bug_line
from .videos import (
    Emit,
    VideoReport,
    frame_range,
    preflight,
    probe_in_range,
    process_video,
    progress,
    report_line,
    summary_table,
)

log = logging.getLogger(__name__)

CORPUS_CSV = "corpus.csv"
TRIES = 2  # a failed video is tried once more before it is recorded as failed
RAY_MISSING = (
    "{ray} needs Ray, an optional extra: pip install -r requirements-ray.txt "
    "(or pip install '.[ray]')"
)


def import_ray():
    """The ``ray`` module, or a UsageError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


def video_outputs(stem: str, cfg: InferConfig) -> list[str]:
    """The files (relative to --output) one video of the corpus writes."""
    names = log_names(stem, cfg.dump_csv, cfg.dump_landmarks_csv)
    return names + ([overlay_name(stem)] if cfg.save_video else [])


def _part(out: OutputDir, rel: str) -> Path:
    """The temp file a log or overlay is written to before it is renamed into place."""
    target = out.path / rel
    return target.with_name(f".{target.name}.part")


def is_complete(out: OutputDir, rels: list[str]) -> bool:
    """True when every file is in place, listed in the manifest, and none is half-written."""
    return all(out.wrote(r) and not _part(out, r).exists() for r in rels)


class CorpusWorker:
    """One Ray actor: the detector and landmarker built once, then one video per ``run``."""

    def __init__(self, cfg: InferConfig) -> None:
        logging.basicConfig(level=logging.WARNING, format="facemap: %(message)s")
        self.cfg = cfg
        self.error: FacemapError | None = None
        try:
            self.fm, _ = open_facemap(cfg, lambda _line: None)
        except FacemapError as exc:  # said once, by check(), in the driver
            self.error = exc

    @staticmethod
    def node() -> str:
        """This worker's node address."""
        import ray

        return ray.util.get_node_ip_address()

    def check(self, paths: list[str], out_dir: str) -> tuple[str, int, str]:
        """(node, exit code, message) of the first input this worker cannot read, or of an
        --output it cannot write, or of a landmarker it could not build; (node, 0, "") when
        all is well."""
        node = self.node()
        if self.error is not None:
            return node, self.error.exit_code, self.error.render(FLAGS)
        for p in paths:
            try:
                with open(p, "rb") as fh:
                    fh.read(1)
            except OSError as exc:
                return node, InputFileError.exit_code, (
                    f"the Ray worker on node {node} cannot read {p} ({exc.strerror or exc}); every "
                    "node needs the inputs at the same path (a shared filesystem)"
                )
        try:
            fd, tmp = tempfile.mkstemp(prefix=".facemap-check.", suffix=".part", dir=out_dir)
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            return node, OutputError.exit_code, (
                f"the Ray worker on node {node} cannot write {out_dir} ({exc.strerror or exc}); "
                f"every node needs {FLAGS['output']} at the same path (a shared filesystem)"
            )
        return node, 0, ""

    def run(self, src: Source, out_dir: str, span: FrameRange) -> dict:
        """One video into ``out_dir``: {"report", "node"} or {"error", "node", "seconds"}."""
        t0 = time.perf_counter()
        node = self.node()
        try:
            if self.error is not None:
                raise self.error
            info = probe_in_range(src.path, span)
            return {"report": process_video(self.fm, src, info, Path(out_dir), self.cfg, span), "node": node}
        except FacemapError as exc:
            error = exc.render(FLAGS)
        except Exception as exc:  # a bug, said in one line in its row
            error = f"a bug in facemap ({bug_line(exc)})"
        return {"error": error, "node": node, "seconds": time.perf_counter() - t0}


def _row(src: Source, status: str, **values: object) -> dict[str, object]:
    return {"video": str(src.path), "stem": src.stem, "status": status, **values}


def _ok_row(rep: VideoReport, node: str) -> dict[str, object]:
    c = rep.counts
    pct = 100.0 * c.with_face / c.frames if c.frames else 0.0
    return {"video": str(rep.path), "stem": rep.stem, "status": "ok", "frames": c.frames, "face_pct": pct,
            "fps": rep.fps, "node": node, "seconds": rep.elapsed_s, "error": rep.note or None}


def _skipped_row(src: Source, before: dict[str, str] | None) -> dict[str, object]:
    """A video whose outputs are complete: what the earlier run's row said of it, if anything."""
    keep = ("frames", "face_pct", "fps", "node", "seconds")
    carried = {k: (before or {}).get(k) or None for k in keep}
    return _row(src, "skipped", **carried)


def _ray_init(ray, cfg: InferConfig, local_cpus: float) -> None:
    """Connect to the cluster at --ray ADDRESS, or start a local Ray (no ADDRESS)."""
    here = str(Path(__file__).resolve().parents[2])  # the folder holding this facemap package
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    kwargs = dict(
        logging_level=logging.ERROR,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    try:
        if cfg.ray:
            ray.init(address=cfg.ray, **kwargs)
        else:
            ray.init(address="local", num_cpus=max(1, int(local_cpus + 0.999)), include_dashboard=False, **kwargs)
    except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError ...
        where = f" {cfg.ray}" if cfg.ray else ""
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UsageError(
            f"{{ray}}{where}: cannot start or reach Ray ({first}); start a cluster with `ray start --head` "
            "and give its address, or give no address for a local Ray"
        ) from None


def _pool_size(ray, cfg: InferConfig, todo: int) -> int:
    """The number of actors: --ray-workers, else as many as the cluster's CPUs hold."""
    cpus = float(ray.cluster_resources().get("CPU", 0))
    n = cfg.ray_workers or max(1, int(cpus // cfg.ray_cpus))
    if n * cfg.ray_cpus > cpus:
        raise UsageError(
            f"{{ray_workers}} {n} x {{ray_cpus}} {cfg.ray_cpus:g} needs {n * cfg.ray_cpus:g} CPUs; "
            f"the Ray cluster has {cpus:g}"
        )
    return min(n, todo)


def _check_workers(ray, actors: list, paths: list[str], out_dir: str) -> None:
    """Every worker reads every input and writes --output, or the run stops with its line."""
    kinds = {2: UsageError, 3: InputFileError, 4: ModelError, 5: OutputError}
    for _node, code, message in ray.get([a.check.remote(paths, out_dir) for a in actors]):
        if code:
            raise kinds.get(code, FacemapError)(message)


def run_corpus(cfg: InferConfig, emit: Emit) -> int:
    """infer.py --video CORPUS --ray [ADDRESS]: returns the exit code (3 when a video failed,
    raised as InputFileError after corpus.csv is written)."""
    from ..io.images import unique_stems

    ray = import_ray()
    if cfg.jobs != 1:
        raise UsageError("{jobs} runs videos in processes on this machine, {ray} on Ray workers: choose one")
    if cfg.ray_workers is not None and cfg.ray_workers < 1:
        raise UsageError(f"{{ray_workers}} must be >= 1, got {cfg.ray_workers}")
    if not cfg.ray_cpus > 0:
        raise UsageError(f"{{ray_cpus}} must be > 0, got {cfg.ray_cpus:g}")
    paths = collect_videos(cfg.video or [])
    span = frame_range(cfg)
    inputs = [Source("video", stem, path=Path(os.path.abspath(p))) for p, stem in zip(paths, unique_stems(paths), strict=True)]
    output = OutputDir(Path(cfg.output), clean=cfg.clean)
    output.check()
    cfg = preflight(cfg, emit)  # a missing model is one line here, not one per worker
    worker_cfg = replace(cfg, quiet=True)
    rows: dict[str, dict[str, object]] = {}
    reports: list[VideoReport] = []
    with output as out:
        before = read_corpus(out.path / CORPUS_CSV) if out.wrote(CORPUS_CSV) else {}
        todo = []
        for src in inputs:
            rels = video_outputs(src.stem, cfg)
            if is_complete(out, rels):
                rows[src.stem] = _skipped_row(src, before.get(src.stem))
            else:
                todo.append(src)
            for rel in rels:
                out.file(rel)
        table = out.file(CORPUS_CSV)

        def save() -> None:
            atomic_write_text(table, corpus_text([rows[s.stem] for s in inputs if s.stem in rows]))

        for src in inputs:
            if src.stem in rows:
                emit(f"{src.path.name}: skipped, its outputs are complete in {cfg.output}/")
        save()
        if todo:
            reports = _run_on_ray(ray, cfg, worker_cfg, todo, out, span, rows, save, emit)
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


def _run_on_ray(ray, cfg, worker_cfg, todo, out: OutputDir, span, rows, save, emit) -> list[VideoReport]:
    """The videos of ``todo`` over a pool of actors; fills ``rows``, saving the table after
    each video. Returns the reports of the videos done, in input order."""
    cpus_wanted = (cfg.ray_workers or os.cpu_count() or 1) * cfg.ray_cpus
    _ray_init(ray, cfg, cpus_wanted)
    try:
        n = _pool_size(ray, cfg, len(todo))
        Worker = ray.remote(num_cpus=cfg.ray_cpus, max_restarts=0)(CorpusWorker)
        actors = [Worker.remote(worker_cfg) for _ in range(n)]
        try:
            _check_workers(ray, actors, [str(s.path) for s in todo], os.path.abspath(out.path))
        except ray.exceptions.RayActorError as exc:
            raise UsageError(
                f"a Ray worker could not start ({' '.join(str(exc).split())[:200]}); every node needs "
                "facemap and its requirements installed"
            ) from None
        return _schedule(ray, Worker, worker_cfg, actors, todo, out, span, rows, save, emit, cfg.quiet)
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()


def _schedule(ray, Worker, worker_cfg, actors, todo, out, span, rows, save, emit, quiet) -> list[VideoReport]:
    """Give each idle actor the next video; a failure goes back in the queue once; a dead actor
    is replaced and its video tried again."""
    queue = deque((src, 1) for src in todo)
    idle = list(actors)
    running: dict = {}
    done: dict[str, VideoReport] = {}
    bar = progress(len(todo), "videos", not quiet, unit="video")
    try:
        while queue or running:
            while idle and queue:
                actor = idle.pop()
                src, attempt = queue.popleft()
                running[actor.run.remote(src, os.path.abspath(out.path), span)] = (actor, src, attempt)
            (ref,), _ = ray.wait(list(running), num_returns=1)
            actor, src, attempt = running.pop(ref)
            try:
                result = ray.get(ref)
                idle.append(actor)
            except ray.exceptions.RayActorError as exc:  # the worker died: a new one takes its place
                cause = " ".join(str(exc).split())[:160]
                result = {"error": f"the Ray worker died ({cause})", "node": "", "seconds": None}
                idle.append(Worker.remote(worker_cfg))
            bar.clear()
            if "report" in result:
                rep = result["report"]
                done[src.stem] = rep
                rows[src.stem] = _ok_row(rep, result["node"])
                emit(report_line(rep))
            elif attempt < TRIES:
                emit(f"{src.path.name}: failed, trying it once more")
                queue.append((src, attempt + 1))
                continue
            else:
                for rel in video_outputs(src.stem, worker_cfg):  # nothing half-written stays
                    out.forget(rel)
                    with contextlib.suppress(OSError):
                        _part(out, rel).unlink()
                rows[src.stem] = _row(src, "failed", node=result["node"] or None, seconds=result["seconds"],
                                      error=result["error"])
                emit(f"{src.path.name}: failed: {result['error']}")
            save()
            bar.update(1)
    except BaseException:
        for actor, _src, _attempt in running.values():
            with contextlib.suppress(Exception):
                ray.kill(actor)
        raise
    finally:
        bar.close()
    return [done[s.stem] for s in todo if s.stem in done]
