"""infer.py --video CORPUS --ray ADDRESS on a real local Ray cluster (started here on 127.0.0.1,
its own temp dir and ports, stopped at the end): the logs match a single-machine run byte for
byte, a corrupt file is one failed row, a rerun does no work, a killed worker's video is redone."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import infer
from facemap.io.outputs import MARKER
from facemap.io.schema import CORPUS_COLUMNS
from tests.conftest import need_shared
from tests.raycluster import RAY_ENV, cmdline, descendants, head_node
from tests.standins import DATA

# Read by Ray when it is imported: set first, so a driver keeps 127.0.0.1 (not the host's address)
# and nothing is sent; no token from ~/.ray is needed (the cluster listens on 127.0.0.1 only). They stay set for this test process (they concern only Ray).
os.environ.update(RAY_ENV)
ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[1]
CLIPS = ("lp_d0.mp4", "dpe_s.mp4", "dagan_driving.mp4")
ARGS = ("--landmarker", "dlib", "--dump-landmarks-csv", "-q")
CLUSTER_PID: dict[str, int] = {}  # address -> the pid of the `ray start` of the cluster this module started


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node on 127.0.0.1 with 2 CPUs, its own temp dir and ports (tests/raycluster.py);
    yields its address; at the end only its processes are stopped, and none may be left."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the cluster fixture reads /proc")
    need_shared(DATA / "videos" / CLIPS[0])
    try:
        with head_node(2, tmp_path_factory.mktemp("raylog")) as head:
            CLUSTER_PID[head.address] = head.pid
            yield head.address
    except RuntimeError as exc:
        pytest.fail(str(exc))
    assert head.left == [], f"processes of the test's Ray cluster were still running: {head.left}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A folder of the shared clips (symlinks) and one corrupt file (a cut copy of a clip)."""
    folder = tmp_path_factory.mktemp("corpus")
    for name in CLIPS:
        (folder / name).symlink_to(need_shared(DATA / "videos" / name))
    (folder / "broken.mp4").write_bytes((DATA / "videos" / CLIPS[1]).read_bytes()[:3000])
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory, corpus) -> Path:
    """The logs of a single-machine run of the clips (no --ray)."""
    out = tmp_path_factory.mktemp("single")
    assert infer.main(["--video", *(str(corpus / n) for n in CLIPS), *ARGS, "-o", str(out)]) == 0
    return out


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "corpus.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == CORPUS_COLUMNS
        return {r["stem"]: r for r in reader}


def _logs(out: Path) -> dict[str, bytes]:
    """Every log in ``out/logs`` by name; none when a run that finished no video left no logs/."""
    return {p.name: p.read_bytes() for p in sorted((out / "logs").glob("*"))}


@pytest.fixture(scope="module")
def first_run(cluster, corpus, tmp_path_factory):
    """The corpus through --ray ADDRESS --ray-workers 2: (exit code, stdout, stderr, out)."""
    out = tmp_path_factory.mktemp("ray") / "out"
    mp = pytest.MonkeyPatch()
    so, se = io.StringIO(), io.StringIO()
    mp.setattr(sys, "stdout", so)
    mp.setattr(sys, "stderr", se)
    try:
        code = infer.main(["--video", str(corpus), *ARGS, "-o", str(out), "--ray", cluster, "--ray-workers", "2"])
    finally:
        mp.undo()
    return code, so.getvalue(), se.getvalue(), out


def test_the_cluster_is_on_localhost(cluster):
    ray.init(address=cluster, logging_level="ERROR", log_to_driver=False)
    try:
        nodes = ray.nodes()
    finally:
        ray.shutdown()
    assert [n["NodeManagerAddress"] for n in nodes if n["Alive"]] == ["127.0.0.1"]
    assert [n["Resources"]["CPU"] for n in nodes if n["Alive"]] == [2.0]


def test_logs_match_a_single_machine_run(first_run, reference):
    code, _out, _err, out = first_run
    ours = _logs(out)
    theirs = _logs(reference)
    assert set(ours) == set(theirs) and len(theirs) == 12  # meta, summary, landmarks, run.json of 3 clips
    for name, data in theirs.items():
        assert ours[name] == data, name
    assert not list(out.rglob("*.part"))


def test_a_corrupt_file_is_one_failed_row(first_run, corpus):
    code, stdout, stderr, out = first_run
    assert code == 3
    assert stderr.strip().splitlines()[-1] == (
        f"infer.py: error: 1 of 4 video(s) failed: broken.mp4 (the error of each is in {out / 'corpus.csv'})"
    )
    rows = _rows(out)
    assert list(rows) == ["broken", "dagan_driving", "dpe_s", "lp_d0"]
    bad = rows.pop("broken")
    assert bad["status"] == "failed" and bad["frames"] == "" and bad["node"] == "127.0.0.1"
    assert bad["error"].startswith(f"{corpus / 'broken.mp4'}: not a readable video")
    assert "broken.mp4: failed, trying it once more" in stdout
    frames = {"lp_d0": "78", "dpe_s": "228", "dagan_driving": "184"}
    for stem, row in rows.items():
        assert (row["status"], row["frames"], row["face_pct"], row["node"], row["error"]) == (
            "ok", frames[stem], "100.0", "127.0.0.1", "")
        assert row["video"] == str(corpus / f"{stem}.mp4")
        assert float(row["fps"]) > 0 and float(row["seconds"]) > 0
    listed = (out / MARKER).read_text().splitlines()
    assert "corpus.csv" in listed and not any(ln.startswith("logs/broken") for ln in listed)
    assert not list((out / "logs").glob("broken*"))


def test_a_rerun_skips_what_is_done(first_run, corpus, cluster):
    _code, _stdout, _stderr, out = first_run
    before = {p: p.stat().st_mtime_ns for p in (out / "logs").iterdir()}
    code = infer.main(["--video", *(str(corpus / n) for n in CLIPS), *ARGS, "-o", str(out),
                       "--ray", cluster, "--ray-workers", "2"])
    assert code == 0
    rows = _rows(out)
    assert {s: r["status"] for s, r in rows.items()} == dict.fromkeys(("lp_d0", "dpe_s", "dagan_driving"), "skipped")
    assert rows["dpe_s"]["frames"] == "228"  # carried from the run that made the outputs
    assert {p: p.stat().st_mtime_ns for p in (out / "logs").iterdir()} == before


def test_a_failed_rerun_keeps_the_outputs_an_earlier_run_completed(cluster, corpus, reference, tmp_path):
    """A corpus done with --ray; then its video is damaged and the corpus rerun with --save-video
    added: the video fails twice (one failed row), and its complete logs from the first run stay
    as they were (they cannot be remade from the damaged file)."""
    clips = tmp_path / "clips"
    clips.mkdir()
    video = clips / "lp_d0.mp4"
    video.write_bytes((corpus / "lp_d0.mp4").read_bytes())
    out = tmp_path / "out"
    argv = ["--video", str(clips), *ARGS, "-o", str(out), "--ray", cluster, "--ray-workers", "1"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert infer.main(argv) == 0
    first = _logs(out)
    assert first == {k: v for k, v in _logs(reference).items() if k.startswith("lp_d0_")}
    video.write_bytes(video.read_bytes()[:3000])
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert infer.main([*argv, "--save-video"]) == 3
    assert _rows(out)["lp_d0"]["status"] == "failed"
    assert _logs(out) == first
    assert not (out / "lp_d0_overlay.mp4").exists() and not (out / ".facemap-staging").exists()


def test_a_relative_output_is_the_same_folder_on_the_workers(cluster, corpus, reference, tmp_path, monkeypatch):
    """--output and --video as relative paths: the workers (in another working folder) get them
    made absolute."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / CLIPS[0]).symlink_to(corpus / CLIPS[0])
    code = infer.main(["--video", "clips", *ARGS, "-o", "rel", "--ray", cluster, "--ray-workers", "1"])
    assert code == 0
    rows = _rows(tmp_path / "rel")
    assert [(r["video"], r["status"]) for r in rows.values()] == [(str(tmp_path / "clips" / CLIPS[0]), "ok")]
    stem = CLIPS[0].removesuffix(".mp4")
    assert _logs(tmp_path / "rel") == {k: v for k, v in _logs(reference).items() if k.startswith(stem + "_")}


def test_without_ray_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = infer.main(["--video", str(tmp_path), "--ray", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["infer.py: error: --ray needs Ray, an optional extra: pip install -r requirements-ray.txt "
                   "(or pip install '.[ray]')"]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--ray", "--jobs", "2"], "--jobs runs videos in processes on this machine, --ray on Ray workers: choose one"),
        (["--ray", "--preview"], "--preview shows one video at a time on this machine; it does not go with --ray "
                                 "(leave --preview out, or run the video without --ray)"),
        (["--ray", "--ray-workers", "0"], "--ray-workers must be >= 1, got 0"),
        (["--ray", "--ray-cpus", "0"], "--ray-cpus must be > 0, got 0"),
    ],
)
def test_bad_ray_options(argv, line, capsys, tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"")
    code = infer.main(["--video", str(tmp_path / "a.mp4"), *argv, "-o", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"infer.py: error: {line}"


def test_more_ray_workers_than_videos_asks_the_cluster_for_the_videos_only():
    """--ray-workers 5 for 2 videos on a 2-CPU cluster starts 2 actors (as --jobs 8 for 2 files
    starts 2 processes); it was refused as needing 5 CPUs. More than the cluster has for as many
    videos is still one line."""
    from facemap.errors import UsageError
    from facemap.raypool import pool_size

    class TwoCpus:
        @staticmethod
        def cluster_resources():
            return {"CPU": 2.0}

    assert pool_size(TwoCpus, 5, 1.0, 2) == 2
    assert pool_size(TwoCpus, None, 1.0, 9) == 2
    with pytest.raises(UsageError, match="needs 3 CPUs; the Ray cluster has 2"):
        pool_size(TwoCpus, 5, 1.0, 3)


def _infer_against(server, host: str, tmp_path: Path) -> tuple[int, int]:
    """infer.py --ray HOST:PORT against ``server`` (a gRPC server, started here on ``host`` and
    stopped after): (exit code, port)."""
    try:
        port = server.add_insecure_port(f"{host}:0")
    except RuntimeError:
        pytest.skip(f"cannot listen on {host} here")
    server.start()
    try:
        (tmp_path / "a.mp4").write_bytes(b"")
        return infer.main(["--video", str(tmp_path / "a.mp4"), "--landmarker", "dlib", "-o", str(tmp_path / "out"),
                           "--ray", f"{host}:{port}"]), port
    finally:
        server.stop(None)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_a_cluster_asking_for_a_token_is_one_line_at_once(host, monkeypatch, capsys, tmp_path):
    """A head with Ray's token authentication (RAY_AUTH_MODE=token when it started), this side
    without: ray.init failed after some 20 s of Ray's own log lines, "cannot start or reach Ray
    (Failed to connect ...)". A gRPC server on 127.0.0.1 that answers as such a head does
    (UNAUTHENTICATED) stands in for it."""
    from concurrent import futures

    import grpc

    class Refuse(grpc.GenericRpcHandler):
        def service(self, details):
            def deny(request, context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "InvalidAuthToken: Authentication token is missing or incorrect")
            return grpc.unary_unary_rpc_method_handler(deny)

    code, port = _infer_against(grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[Refuse()]), host, tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == (
        f"infer.py: error: --ray {host}:{port}: the Ray cluster there asks for a token (Ray's token "
        "authentication); set RAY_AUTH_MODE=token here, with the cluster's token in RAY_AUTH_TOKEN, "
        "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, and run again")
    assert not (tmp_path / "out").exists()


def test_the_ray_client_port_without_its_scheme_is_one_line_at_once(capsys, tmp_path):
    """--ray HOST:10001 (Ray Client's port, given without ray://): ray.init failed there after
    some 20 s of Ray's log lines. A gRPC server on 127.0.0.1 without Ray's GCS (UNIMPLEMENTED,
    as the client server answers) stands in for it."""
    from concurrent import futures

    import grpc

    code, port = _infer_against(grpc.server(futures.ThreadPoolExecutor(max_workers=2)), "127.0.0.1", tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == (
        f"infer.py: error: --ray 127.0.0.1:{port}: what answers there is no Ray head's address (a gRPC service "
        f"without Ray's GCS); if it is the Ray Client port (10001 by default), give ray://127.0.0.1:{port}; else "
        "give the address `ray start --head` printed (host:port, 6379 by default)")


@pytest.mark.parametrize("options", [["--bbox", "1,2,300,400"], ["--no-face-detect"], ["--detector", "yunet"], [],
                                     ["--assume-points", "68", "--model", "m.onnx"]])
def test_outputs_made_as_this_run_would_make_them_count_as_done(options, tmp_path):
    """made_alike reads run.json as the worker writes it: with --bbox it names the detector
    'bbox', with --no-face-detect 'whole-image', with --assume-points the landmarker
    'onnx-points'; each rerun with the same options redid every video (the names differ from
    the options'), and one with other options must."""
    import json

    from facemap.cli.commands import infer_parser
    from facemap.cli.config import InferConfig
    from facemap.cli.corpus import made_alike
    from facemap.io.outputs import OutputDir
    from facemap.provenance import run_info

    def config(argv):
        cfg = InferConfig.from_namespace(infer_parser().parse_args(["--video", "x.mp4", *argv]))
        return cfg if cfg.model is None else __import__("dataclasses").replace(cfg, model=str(tmp_path / cfg.model))

    landmarker = "onnx-points" if "--assume-points" in options else "dlib"
    detector = {"--bbox": "bbox", "--no-face-detect": "whole-image"}.get(options[0] if options else "", "dlib-hog")

    class Made:  # what the worker's landmarker and detector call themselves
        name = landmarker

        def describe(self):
            return {"landmarker": landmarker, **({"model": str(tmp_path / "m.onnx")} if "--model" in options else {})}

    (tmp_path / "m.onnx").write_bytes(b"onnx")
    argv = ([] if "--assume-points" in options else ["--landmarker", "dlib"]) + options
    (tmp_path / "logs").mkdir()
    info = run_info(Made(), type("Det", (), {"name": detector})(), config(argv).changed())
    (tmp_path / "logs" / "x_run.json").write_text(json.dumps(info))
    assert made_alike(OutputDir(tmp_path), "x", config(argv))
    assert not made_alike(OutputDir(tmp_path), "x", config([*argv, "--max-frames", "3"]))


OUT_OF_RANGE = [
    (["--ray-cpus", "1e-9"], "--ray-cpus must be at least 0.0001 (Ray's smallest share of a CPU), got 1e-09"),
    (["--ray-cpus", "nan"], "--ray-cpus must be a finite number, got nan"),
    (["--ray-cpus", "inf"], "--ray-cpus must be a finite number, got inf"),
    (["--ray-cpus=-inf"], "--ray-cpus must be a finite number, got -inf"),
    (["--ray-cpus", "1e300"], "--ray-cpus must be at most 100000, got 1e+300"),
    (["--ray-cpus", "-1"], "--ray-cpus must be > 0, got -1"),
    (["--ray-workers", "-3"], "--ray-workers must be >= 1, got -3"),
    (["--ray-workers", "10000000000000000000000"], "--ray-workers must be at most 100000, got 10000000000000000000000"),
]


@pytest.mark.parametrize("script", ["infer.py", "analyze_expressions.py"])
@pytest.mark.parametrize(("argv", "line"), OUT_OF_RANGE)
def test_every_ray_number_is_checked_in_one_line(script, argv, line, capsys, tmp_path):
    """--ray-workers and --ray-cpus out of range, not finite, or below Ray's resolution: one line,
    exit 2, before Ray is started and before anything is written."""
    import analyze_expressions

    if script == "infer.py":
        (tmp_path / "a.mp4").write_bytes(b"")
        code = infer.main(["--video", str(tmp_path / "a.mp4"), "--ray", *argv, "-o", str(tmp_path / "out")])
    else:
        (tmp_path / "logs").mkdir()
        (tmp_path / "logs" / "a_meta.csv").write_text("frame\n")
        code = analyze_expressions.main(["--logs", str(tmp_path / "logs"), "--ray", *argv, "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"{script}: error: {line}"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("what", ["input", "output"])
def test_a_worker_refuses_what_it_cannot_reach(what, tmp_path, monkeypatch):
    """The check each worker runs before any video: the first input it cannot read, or an
    --output it cannot write, in one line naming its node and the path."""
    from facemap.cli.config import FLAGS
    from facemap.cli.corpus import CorpusWorker

    monkeypatch.setattr(CorpusWorker, "node", staticmethod(lambda: "10.0.0.7"))
    worker = object.__new__(CorpusWorker)  # the check needs no landmarker
    worker.error, worker.names = None, FLAGS
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x")
    missing = tmp_path / "gone" / "b.mp4"
    if what == "input":
        got = worker.check([str(clip), str(missing)], str(tmp_path))
        assert got == ("10.0.0.7", 3, f"the Ray worker on node 10.0.0.7 cannot read {missing} (No such file or "
                       "directory); every node needs the inputs at the same path (a shared filesystem)")
    else:
        got = worker.check([str(clip)], str(tmp_path / "nowhere"))
        assert got == ("10.0.0.7", 5, f"the Ray worker on node 10.0.0.7 cannot write {tmp_path / 'nowhere'} (No "
                       "such file or directory); every node needs --output at the same path (a shared filesystem)")
    assert worker.check([str(clip)], str(tmp_path)) == ("10.0.0.7", 0, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]  # the write check left nothing


def _busy_workers(address: str, kind: str = "CorpusWorker") -> list[int]:
    """The pids of the test cluster's actors of class ``kind`` running a job (Ray titles such
    a process ``ray::<Class>.run``); only processes of the cluster this module started."""
    return [pid for pid in descendants(CLUSTER_PID[address]) if cmdline(pid).startswith(f"ray::{kind}.run")]


# a log being written: a video is mid-way (not corpus.csv's or the manifest's temp file)
MID_VIDEO = "**/logs/.*_meta.csv.part"


def _kill_one_mid_job(address: str, out: Path, killed: list[int], kind: str = "CorpusWorker", pattern: str = MID_VIDEO):
    """In a thread: once a job has started writing under ``out`` (a file matching ``pattern``),
    SIGKILL one busy actor of the test cluster; its pid goes into ``killed``."""
    import threading

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if any(p.stat().st_size > 0 for p in out.glob(pattern) if p.is_file()):
                busy = _busy_workers(address, kind)
                if busy:
                    os.kill(busy[0], signal.SIGKILL)
                    killed.append(busy[0])
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_worker_killed_mid_video_is_replaced_and_its_video_redone(cluster, corpus, reference, tmp_path):
    """SIGKILL of one worker actor while it writes a video: the corpus completes on the others
    and a replacement, every log matches the single-machine run, nothing half-written is left,
    and a rerun does no work."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in CLIPS:
        (clips / name).symlink_to(corpus / name)
    out = tmp_path / "out"
    killed: list[int] = []
    watcher = _kill_one_mid_job(cluster, out, killed)
    argv = ["--video", str(clips), *ARGS, "-o", str(out), "--ray", cluster, "--ray-workers", "2"]
    so = io.StringIO()
    with contextlib.redirect_stdout(so):
        code = infer.main(argv)
    watcher.join(5)
    assert len(killed) == 1, "no worker was caught mid-video"
    assert code == 0, so.getvalue()
    assert "failed, trying it once more (the Ray worker on node 127.0.0.1 died" in so.getvalue()
    rows = _rows(out)
    assert {s: r["status"] for s, r in rows.items()} == dict.fromkeys(("dagan_driving", "dpe_s", "lp_d0"), "ok")
    assert _logs(out) == _logs(reference)
    assert not list(out.rglob("*.part")) and not (out / ".facemap-staging").exists()
    assert sorted((out / MARKER).read_text().splitlines()[1:]) == sorted(
        ["corpus.csv", *(f"logs/{s}_{k}.csv" for s in rows for k in ("meta", "summary", "landmarks")),
         *(f"logs/{s}_run.json" for s in rows)])
    before = {p: p.stat().st_mtime_ns for p in (out / "logs").iterdir()}
    with contextlib.redirect_stdout(io.StringIO()):
        assert infer.main(argv) == 0
    assert {r["status"] for r in _rows(out).values()} == {"skipped"}
    assert {p: p.stat().st_mtime_ns for p in (out / "logs").iterdir()} == before


def test_sigterm_stops_the_corpus_cleanly(cluster, corpus, reference, tmp_path):
    """SIGTERM to a running `infer.py --ray` (as a user's shell or a scheduler sends it): exit
    130 with one line, the workers stopped, each video either complete (its row ok, its logs
    those of the single-machine run) or without any output; a rerun does the rest."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in CLIPS:
        (clips / name).symlink_to(corpus / name)
    out = tmp_path / "out"
    argv = ["--video", str(clips), *ARGS, "-o", str(out), "--ray", cluster, "--ray-workers", "2"]
    proc = subprocess.Popen([sys.executable, str(REPO / "infer.py"), *argv], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 0 for p in out.glob(MID_VIDEO) if p.is_file()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    rows = _rows(out)
    finished = [s for s, r in rows.items() if r["status"] == "ok"]
    assert set(rows) == set(finished) and len(finished) < 3
    assert stderr.strip().splitlines()[-1] == (
        f"infer.py: interrupted: {len(finished)} of 3 video(s) finished (listed in {out / 'corpus.csv'}), "
        "the others left no outputs; a rerun does the rest")
    theirs = _logs(reference)
    assert _logs(out) == {k: v for k, v in theirs.items() if k.rpartition("_")[0] in finished}
    assert not list(out.rglob("*.part")) and not (out / ".facemap-staging").exists()
    assert not (out / ".facemap.lock").exists()
    for _ in range(100):  # the workers were killed with the run (they go once Ray has noticed)
        if not [p for p in descendants(CLUSTER_PID[cluster]) if cmdline(p).startswith("ray::CorpusWorker")]:
            break
        time.sleep(0.1)
    else:
        pytest.fail("a CorpusWorker of the stopped run is still alive")
    with contextlib.redirect_stdout(io.StringIO()):
        assert infer.main(argv) == 0
    rows = _rows(out)
    assert {s: r["status"] for s, r in rows.items()} == {
        s: "skipped" if s in finished else "ok" for s in ("dagan_driving", "dpe_s", "lp_d0")}
    assert _logs(out) == theirs


def test_the_analyzer_over_ray_says_the_warnings_a_run_without_it_says(cluster, tmp_path, caplog):
    """A clip without a face analysed over Ray: its "no frame has a face" warning stayed in
    the worker (the run without Ray says it). Checked on the driver's log records (the CLI
    prints them as analyze_expressions: WARNING: ...)."""
    import analyze_expressions

    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "nf_meta.csv").write_text("frame,timestamp_ms,status\n1,0.0,no_face\n2,40.0,no_face\n")
    header = "frame," + ",".join(f"x{i},y{i}" for i in range(68))
    (logs / "nf_landmarks.csv").write_text(header + "\n")
    said = {}
    for how, extra in (("plain", []), ("ray", ["--ray", cluster, "--ray-workers", "1"])):
        caplog.clear()
        with contextlib.redirect_stdout(io.StringIO()):
            assert analyze_expressions.main(["--logs", str(logs), "--out", str(tmp_path / how), "--no-plots", *extra]) == 0
        said[how] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("facemap")]
    assert said["ray"] == said["plain"] == [f"{logs / 'nf_meta.csv'}: no frame has a face; every frame is labelled no_face"]


def test_the_analyzer_over_ray_matches_a_run_without_it(cluster, reference, tmp_path, capsys):
    """analyze_expressions.py --logs DIR --ray ADDRESS --ray-workers 2: each clip's outputs are
    byte for byte those of the run without Ray, and the table (CSV, Parquet) holds each clip's
    report.json numbers."""
    import json

    import pandas as pd

    import analyze_expressions

    logs = reference / "logs"
    plain, spread = tmp_path / "plain", tmp_path / "ray"
    assert analyze_expressions.main(["--logs", str(logs), "--out", str(plain)]) == 0
    capsys.readouterr()
    code = analyze_expressions.main(["--logs", str(logs), "--out", str(spread), "--ray", cluster, "--ray-workers", "2"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    stems = ["dagan_driving", "dpe_s", "lp_d0"]
    assert sorted(ln.split(":")[0] for ln in stdout.splitlines()[:-1]) == stems
    assert stdout.splitlines()[-1].startswith("3 clips: 3 analysed;")
    for stem in stems:
        mine = {p.name: p.read_bytes() for p in (spread / stem).iterdir()}
        theirs = {p.name: p.read_bytes() for p in (plain / stem).iterdir()}
        assert set(mine) == {"score.txt", "report.json", "expressions.csv", "timeline.png", "report.html", MARKER}
        assert mine == theirs, stem
    for name in ("summary.csv", "summary.parquet", "index.html"):
        assert (spread / name).read_bytes() == (plain / name).read_bytes(), name
    table = pd.read_parquet(spread / "summary.parquet")
    assert table["stem"].tolist() == stems and set(table["status"]) == {"ok"}
    for row in table.to_dict(orient="records"):
        rep = json.loads((spread / row["stem"] / "report.json").read_text())
        ev = rep["events"]["summary"]
        assert row == {
            "stem": row["stem"], "status": "ok", "frames": rep["inputs"]["frames"],
            "frames_with_face": rep["inputs"]["frames_with_face"], "overall_score": rep["overall_score"],
            **rep["sub_scores"], "blinks": ev["blink"]["count"], "smiles": ev["smile"]["count"],
            "yawns": ev["yawn"]["count"], "looking_away": ev["looking_away"]["count"],
            "talking": ev["talking"]["count"], "wink": ev["wink"]["count"],
            "speaking_s": rep["speaking"]["time_s"],
            "report": f"{row['stem']}/report.html", "error": "",
        }
    assert table.set_index("stem").loc["dpe_s", "frames"] == 228


@pytest.mark.parametrize(("tty", "enabled"), [(True, True), (False, True), (True, False)])
def test_the_corpus_progress_bar(tty, enabled, monkeypatch):
    """Videos done of the corpus, frames per second over the cluster and time left, on stderr;
    nothing when stderr is not a terminal or with -q."""
    from facemap.raypool import pool_bar

    class Err(io.StringIO):
        def isatty(self) -> bool:
            return tty

    err = Err()
    monkeypatch.setattr(sys, "stderr", err)
    bar, add = pool_bar(3, enabled, "video")
    add(120)
    add(0)  # a failed video: done, no frames
    bar.refresh()
    text = err.getvalue().rpartition("\r")[2]
    bar.close()
    if not (tty and enabled):
        assert err.getvalue() == ""
        return
    assert text.startswith("corpus:  67%|") and " 2/3 [" in text and "<" in text  # elapsed<left
    assert float(text.split(", ")[-1].split(" frames/s over the cluster")[0]) > 0


@contextlib.contextmanager
def _silent_listener():
    """A TCP port on 127.0.0.1 that accepts connections and never answers (not a Ray cluster)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    ("script", "kind"),
    # the silent port waits out the 10 s connect timeout: once (both scripts share raypool's check)
    [("infer.py", "nothing listens"), ("analyze_expressions.py", "nothing listens"), ("infer.py", "not Ray")],
)
def test_an_address_without_a_cluster_is_one_line_within_the_connect_timeout(script, kind, reference, tmp_path):
    """--ray ADDRESS where no Ray answers: one facemap line naming the address and what to do,
    exit 2, no Ray retry lines, well within the subprocess's own bound (Ray alone retries for
    minutes)."""
    from tests.raycluster import free_ports

    with contextlib.ExitStack() as stack:
        address = f"127.0.0.1:{free_ports(1)[0]}" if kind == "nothing listens" else stack.enter_context(_silent_listener())
        if script == "infer.py":
            argv = ["--video", str(need_shared(DATA / "videos" / CLIPS[0])), *ARGS, "-o", str(tmp_path / "out")]
        else:
            argv = ["--logs", str(reference / "logs"), "--out", str(tmp_path / "out")]
        proc = subprocess.run([sys.executable, str(REPO / script), *argv, "--ray", address], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, env={**os.environ, **RAY_ENV})
    why = "cannot reach a Ray cluster there (Connection refused)" if kind == "nothing listens" else \
        "no Ray cluster answered within 10 s"
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"{script}: error: --ray {address}: {why}; start the cluster with `ray start --head` on that machine, or "
        "give the address it printed (host:port of its head, 6379 by default), or give --ray without an address "
        "for a local Ray"]
    assert not (tmp_path / "out").exists()


def _quiet_run(argv: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return infer.main(argv)


def _of(reference: Path, stem: str, as_stem: str) -> dict[str, bytes]:
    """The single-machine logs of ``stem``, named as for ``as_stem``."""
    return {k.replace(stem, as_stem, 1): v for k, v in _logs(reference).items() if k.startswith(stem + "_")}


@pytest.mark.parametrize("change", ["another folder", "replaced in place", "an older corpus.csv"])
def test_a_rerun_redoes_a_video_that_is_not_the_one_its_row_was_made_from(change, cluster, corpus, reference, tmp_path):
    """A corpus.csv row is skipped only for the file it was made from (path, size, mtime): a
    different clip.mp4 (from another folder, or copied over the first) into the same --output is
    processed, and a row without those columns (an older facemap's) is redone."""
    for sub, clip in (("a", "lp_d0"), ("b", "dpe_s")):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "clip.mp4").write_bytes((corpus / f"{clip}.mp4").read_bytes())
    out = tmp_path / "out"
    ray_args = [*ARGS, "-o", str(out), "--ray", cluster, "--ray-workers", "1"]
    assert _quiet_run(["--video", str(tmp_path / "a" / "clip.mp4"), *ray_args]) == 0
    assert _logs(out) == _of(reference, "lp_d0", "clip")
    second = tmp_path / "a" / "clip.mp4"
    if change == "another folder":
        second = tmp_path / "b" / "clip.mp4"
    elif change == "replaced in place":
        second.write_bytes((tmp_path / "b" / "clip.mp4").read_bytes())
    else:
        text = (out / "corpus.csv").read_text().splitlines()
        old = [",".join(ln.split(",")[:9]) for ln in text]  # the columns up to error
        (out / "corpus.csv").write_text("\n".join(old) + "\n")
    assert _quiet_run(["--video", str(second), *ray_args]) == 0
    row = _rows(out)["clip"]
    assert (row["status"], row["video"]) == ("ok", str(second))
    st = second.stat()
    assert (row["video_bytes"], row["video_mtime_ns"]) == (str(st.st_size), str(st.st_mtime_ns))
    assert _logs(out) == _of(reference, "lp_d0" if change == "an older corpus.csv" else "dpe_s", "clip")
    assert _quiet_run(["--video", str(second), *ray_args]) == 0
    assert _rows(out)["clip"]["status"] == "skipped"


def test_a_rerun_with_other_options_redoes_what_a_trial_made(cluster, corpus, reference, tmp_path):
    """A trial of 10 frames, then the whole corpus into the same --output: the trial's outputs
    were skipped as complete (corpus: 0 ok, 1 skipped, exit 0; 10 frames in the logs), where a run
    without --ray redoes them. Outputs count as done only when made with the same options,
    landmarker and model (their run.json)."""
    out = tmp_path / "out"
    ray_args = ["--video", str(corpus / "lp_d0.mp4"), *ARGS, "-o", str(out), "--ray", cluster, "--ray-workers", "1"]
    assert _quiet_run([*ray_args, "--max-frames", "10"]) == 0
    assert len((out / "logs" / "lp_d0_meta.csv").read_text().splitlines()) == 11
    assert _quiet_run(ray_args) == 0
    assert _rows(out)["lp_d0"]["status"] == "ok" and _logs(out) == _of(reference, "lp_d0", "lp_d0")
    assert _quiet_run(ray_args) == 0 and _rows(out)["lp_d0"]["status"] == "skipped"


def test_a_run_refused_before_any_video_keeps_the_earlier_table(cluster, corpus, tmp_path):
    """A rerun whose workers cannot load the model (its weights cut short) ends with one line,
    exit 4, before any video: it wrote corpus.csv first, header only, so the earlier run's rows
    were lost (and the next run redid every video); into a new folder it left a marker and that
    header. Now the table is written as videos end."""
    model = need_shared(DATA.parent / "models" / "facemap_arch" / "model.onnx")
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "model.onnx").write_bytes(model.read_bytes())
    (cut / "model.data").write_bytes((model.parent / "model.data").read_bytes()[:1_000_000])
    out = tmp_path / "out"
    video = ["--video", str(corpus / "lp_d0.mp4")]
    assert _quiet_run([*video, *ARGS, "-o", str(out), "--ray", cluster, "--ray-workers", "1"]) == 0
    table = (out / "corpus.csv").read_bytes()
    refused = [*video, "--model", str(cut / "model.onnx"), "--basis-dir", str(need_shared(DATA / "basis")),
               "--detector", "dlib-hog", "-q", "--ray", cluster, "--ray-workers", "1"]
    assert _quiet_run([*refused, "-o", str(out)]) == 4
    assert (out / "corpus.csv").read_bytes() == table
    assert _quiet_run([*refused, "-o", str(tmp_path / "new")]) == 4
    assert not (tmp_path / "new").exists()


def test_a_full_disk_stops_the_corpus_with_exit_5_naming_the_output(cluster, corpus, tmp_path, capsys):
    """A full disk under --ray: each video was tried twice, then a failed row, exit 3 (a bad
    input), the error naming a staging file that no longer exists. As without --ray: the run
    stops, exit 5, the line names the output file; the videos done before stay."""
    from tests.test_hostile import _tmpfs

    with _tmpfs(tmp_path / "disk", "600k") as disk:
        out = disk / "out"
        code = infer.main(["--video", str(corpus / "lp_d0.mp4"), str(corpus / "dpe_s.mp4"), *ARGS, "--save-video",
                           "-o", str(out), "--ray", cluster, "--ray-workers", "1"])
        err = capsys.readouterr().err
        assert code == 5, err
        assert "No space left on device" in err and ".facemap-staging" not in err, err
        assert "trying it once more" not in err
        assert err.strip().splitlines()[-1].startswith(f"infer.py: error: {out}/")
        assert not list(out.rglob("*.part")) and not (out / ".facemap-staging").exists()


def test_two_clips_of_one_name_keep_their_own_logs_when_given_in_another_order(cluster, corpus, reference, tmp_path):
    """a/clip.mp4 and b/clip.mp4 (clip_mp4 and clip_mp4_2 by their order): given the other way
    round on a rerun, each stem's logs are those of the video its row names, not swapped."""
    for sub, clip in (("a", "lp_d0"), ("b", "dpe_s")):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "clip.mp4").symlink_to(corpus / f"{clip}.mp4")
    a, b = tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"
    out = tmp_path / "out"
    ray_args = [*ARGS, "-o", str(out), "--ray", cluster, "--ray-workers", "1"]
    assert _quiet_run(["--video", str(a), str(b), *ray_args]) == 0
    assert _logs(out) == {**_of(reference, "lp_d0", "clip_mp4"), **_of(reference, "dpe_s", "clip_mp4_2")}
    assert _quiet_run(["--video", str(b), str(a), *ray_args]) == 0
    rows = _rows(out)
    assert {s: (r["video"], r["status"]) for s, r in rows.items()} == {
        "clip_mp4": (str(b), "ok"), "clip_mp4_2": (str(a), "ok")}
    assert _logs(out) == {**_of(reference, "dpe_s", "clip_mp4"), **_of(reference, "lp_d0", "clip_mp4_2")}


def test_a_corpus_into_its_own_folder_skips_its_overlays(cluster, corpus, tmp_path):
    """--video D -o D --save-video --ray, twice: the second run skips the first's
    clip_overlay.mp4 (facemap's, in D's manifest) and the done clip: no work, no new files."""
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "clip.mp4").symlink_to(corpus / "lp_d0.mp4")
    argv = ["--video", str(folder), *ARGS, "-o", str(folder), "--save-video", "--ray", cluster, "--ray-workers", "1"]
    assert _quiet_run(argv) == 0
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    so = io.StringIO()
    with contextlib.redirect_stdout(so):
        assert infer.main([a for a in argv if a != "-q"]) == 0
    assert f"clip_overlay.mp4: skipped, facemap wrote it into {folder}/ (an output, not an input)" in so.getvalue()
    assert {s: r["status"] for s, r in _rows(folder).items()} == {"clip": "skipped"}
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == files
