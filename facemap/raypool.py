"""A pool of Ray actors working through a list of jobs: the engine of ``infer.py --video CORPUS
--ray`` and ``analyze_expressions.py --logs DIR --ray``.

Each actor (a ``PoolWorker`` subclass) builds what it needs once (a landmarker, a config) and then
does one job per ``run`` call. Before any job starts every actor checks that it can read every
input and write the output folder (the same paths on every node: a shared filesystem), and the run
stops with that worker's one line when one cannot. A job that fails is tried once more, on any
actor, then given up (``failed``); an actor that dies is replaced (the new one checks too) and its
job counts as a failed try. When the run stops (Ctrl-C, SIGTERM, an error) every actor is killed
and waited for, and ``abandon`` is called for each job that was running, so the caller can remove
what it had started.

``ray`` is an optional extra, imported only when a front end asks for it (``import_ray``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import FacemapError, InputFileError, ModelError, OutputError, UsageError, number

log = logging.getLogger(__name__)

TRIES = 2  # a failed job is tried once more before it is given up
POLL_S = 0.5  # how often the driver wakes while it waits (progress, Ctrl-C)
KILL_WAIT_S = 20.0  # after a stop: how long to wait for the killed actors to be gone
MAX_WORKERS = 100_000  # --ray-workers
MIN_CPUS, MAX_CPUS = 0.0001, 100_000  # --ray-cpus: Ray counts resources in steps of 0.0001
CONNECT_TIMEOUT_S = 10.0  # --ray ADDRESS: how long the cluster has to answer before we give up
# gRPC speaks HTTP/2: a client's preface and an empty SETTINGS frame; a server answers with SETTINGS
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_H2_SETTINGS = 4
RAY_MISSING = (
    "{ray} needs Ray, an optional extra: pip install -r requirements-ray.txt "
    "(or pip install '.[ray]')"
)
_KINDS = {2: UsageError, 3: InputFileError, 4: ModelError, 5: OutputError}


def import_ray():
    """The ``ray`` module, or a UsageError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


def check_pool_options(workers: int | None, cpus: float) -> None:
    """Refuse a --ray-workers that is not a whole number from 1 to MAX_WORKERS, or a --ray-cpus
    that is not a finite number from MIN_CPUS (Ray's smallest share of a CPU) to MAX_CPUS."""
    if workers is not None:
        number(workers, "{ray_workers}", whole=True)
        if workers < 1:
            raise UsageError(f"{{ray_workers}} must be >= 1, got {workers}")
        if workers > MAX_WORKERS:
            raise UsageError(f"{{ray_workers}} must be at most {MAX_WORKERS}, got {workers}")
    number(cpus, "{ray_cpus}")
    if not cpus > 0:
        raise UsageError(f"{{ray_cpus}} must be > 0, got {cpus:g}")
    if cpus < MIN_CPUS:
        raise UsageError(f"{{ray_cpus}} must be at least {MIN_CPUS:g} (Ray's smallest share of a CPU), got {cpus:g}")
    if cpus > MAX_CPUS:
        raise UsageError(f"{{ray_cpus}} must be at most {MAX_CPUS}, got {cpus:g}")


def endpoint(address: str) -> tuple[str, int] | None:
    """The (host, port) that ``ray.init(address)`` connects to: ``host:port``, ``ray://host:port``,
    or ``auto`` (the cluster Ray recorded, or RAY_ADDRESS); None for an address Ray reads
    otherwise (it then says what is wrong itself)."""
    text = address.strip()
    if text == "auto":
        try:  # Ray's own lookup of the running cluster; when it finds none, ray.init says so
            from ray._private.services import canonicalize_bootstrap_address

            text = canonicalize_bootstrap_address("auto") or ""
        except Exception:
            return None
    text = text.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
        return None
    return host, int(port)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, within ``timeout_s``, a cluster address where no Ray answers: nothing listens
    there, the host is unknown or unreachable, or what listens does not speak gRPC (Ray's
    protocol). ``ray.init`` itself would retry for many minutes."""
    where = endpoint(address)
    if where is None:
        return
    host, port = where
    deadline = time.monotonic() + timeout_s
    fix = ("start the cluster with `ray start --head` on that machine, or give the address it printed "
           "(host:port of its head, 6379 by default), or give {ray} without an address for a local Ray")
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            if os.environ.get("RAY_USE_TLS", "0") not in ("0", ""):
                return  # a TLS cluster answers only after a handshake: reaching it is enough
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.sendall(_H2_HELLO)
            head = b""
            while len(head) < 9:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except TimeoutError:
        head = None
    except OSError as exc:
        why = "the host is unknown" if isinstance(exc, socket.gaierror) else (exc.strerror or one_line(exc))
        raise UsageError(f"{{ray}} {address}: cannot reach a Ray cluster there ({why}); {fix}") from None
    if head is None:
        raise UsageError(
            f"{{ray}} {address}: no Ray cluster answered within {timeout_s:g} s; {fix}"
        ) from None
    if len(head) < 9 or head[3] != _H2_SETTINGS:
        raise UsageError(f"{{ray}} {address}: what answers there is not a Ray cluster; {fix}")
    text = address.strip()
    if text != "auto" and not text.startswith("ray://") and os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        _check_gcs_answers(address, host, port, max(0.5, deadline - time.monotonic()))


def _check_gcs_answers(address: str, host: str, port: int, timeout_s: float) -> None:
    """Refuse a cluster that asks for Ray's token authentication when this process will not
    give one (RAY_AUTH_MODE is not ``token``), and a gRPC service that is no head's GCS (the
    Ray Client port given without ``ray://``): ``ray.init`` failed at either after some 20 s
    of Ray's own log lines with "Failed to connect". One call to the head's GCS, without a token."""
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except Exception:  # another Ray: ray.init says what it says
        return
    with grpc.insecure_channel(f"[{host}]:{port}" if ":" in host else f"{host}:{port}") as channel:  # IPv6 in brackets
        try:
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                gcs_service_pb2.GetClusterIdRequest(), timeout=timeout_s)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:  # gRPC, not a head's GCS: Ray Client's port, most often
                raise UsageError(
                    f"{{ray}} {address}: what answers there is no Ray head's address (a gRPC service without "
                    f"Ray's GCS); if it is the Ray Client port (10001 by default), give ray://{address}; else give "
                    "the address `ray start --head` printed (host:port, 6379 by default)"
                ) from None
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise UsageError(
                    f"{{ray}} {address}: the Ray cluster there asks for a token (Ray's token authentication); "
                    "set RAY_AUTH_MODE=token here, with the cluster's token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH "
                    "or ~/.ray/auth_token, and run again"
                ) from None


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's text on one line, cut to ``limit`` characters."""
    return " ".join(str(exc).split())[:limit] or type(exc).__name__


def ray_init(ray, address: str | None, local_cpus: float) -> None:
    """Connect to the cluster at ``address`` (as Ray takes it), or start a local Ray (``""`` or
    None) with ``local_cpus`` CPUs. The workers find this facemap package through PYTHONPATH.
    The front ends check the address first (``check_reachable``), before they write anything."""
    here = str(Path(__file__).resolve().parents[1])  # the folder holding this facemap package
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    kwargs = dict(
        logging_level=logging.ERROR,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    # ray.init puts a handler of its own on SIGTERM (it ends the process at once): the caller's
    # (infer.py's: a stop like Ctrl-C, outputs closed) is put back
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main else None
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", num_cpus=max(1, int(local_cpus + 0.999)), include_dashboard=False, **kwargs)
    except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError ...
        where = f" {address}" if address else ""
        raise UsageError(
            f"{{ray}}{where}: cannot start or reach Ray ({one_line(exc)}); start a cluster with `ray start --head` "
            "and give its address, or give no address for a local Ray"
        ) from None
    finally:
        if in_main and previous is not None:
            signal.signal(signal.SIGTERM, previous)


def pool_size(ray, workers: int | None, cpus: float, todo: int) -> int:
    """The number of actors: ``workers`` (--ray-workers), else as many as the cluster's CPUs
    hold; never more than the jobs to do."""
    have = float(ray.cluster_resources().get("CPU", 0))
    n = min(workers or max(1, int(have // cpus)), todo)  # no more actors than jobs, nor asked of the cluster
    if n * cpus > have:
        raise UsageError(
            f"{{ray_workers}} {n} x {{ray_cpus}} {cpus:g} needs {n * cpus:g} CPUs; "
            f"the Ray cluster has {have:g}"
        )
    return n


class PoolWorker:
    """The base of a pool's actor: ``setup`` once (its error kept and said by ``check``), then
    ``work(*args)`` per job. ``names`` spells the options in messages (a front end's flags)."""

    def __init__(self, names: Mapping[str, str], *setup_args: object) -> None:
        logging.basicConfig(level=logging.WARNING, format="facemap: %(message)s")
        self.names = dict(names)
        self.error: FacemapError | None = None
        try:
            self.setup(*setup_args)
        except FacemapError as exc:  # said once, by check(), in the driver
            self.error = exc

    def setup(self, *args: object) -> None:
        """Build what every job needs (overridden)."""

    def work(self, *args: object) -> object:
        """One job (overridden); raises FacemapError for a job that cannot be done."""
        raise NotImplementedError

    @staticmethod
    def node() -> str:
        """This worker's node address."""
        import ray

        return ray.util.get_node_ip_address()

    @staticmethod
    def pid() -> int:
        """This worker's process id."""
        return os.getpid()

    def check(self, paths: list[str], out_dir: str) -> tuple[str, int, str]:
        """(node, exit code, message) of the first input this worker cannot read, or of an
        output folder it cannot write, or of a setup that failed; (node, 0, "") when all is
        well."""
        node = self.node()
        if self.error is not None:
            return node, self.error.exit_code, self.error.render(self.names)
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
                f"every node needs {self.names.get('output', 'the output folder')} at the same path "
                "(a shared filesystem)"
            )
        return node, 0, ""

    def run(self, *args: object) -> dict:
        """One job: {"value", "node", "seconds"}, or {"error", "node", "seconds"} (the error's
        one line) when it failed, with "code" (its exit code) when it was a FacemapError."""
        t0 = time.perf_counter()
        node = self.node()
        try:
            if self.error is not None:
                raise self.error
            value = self.work(*args)
            return {"value": value, "node": node, "seconds": time.perf_counter() - t0}
        except FacemapError as exc:
            return {"error": exc.render(self.names), "code": exc.exit_code, "node": node,
                    "seconds": time.perf_counter() - t0}
        except Exception as exc:  # a bug, said in one line
            error = f"a bug in facemap ({type(exc).__name__}: {one_line(exc)})"
        return {"error": error, "node": node, "seconds": time.perf_counter() - t0}


@dataclass
class Job:
    """One unit of work: ``key`` (unique), ``name`` (for messages), the arguments of ``work``."""

    key: str
    name: str
    args: tuple
    attempt: int = 1


@dataclass
class Callbacks:
    """What the driver does as jobs end, all called in the driver's process:
    ``done(job, result)`` a job that succeeded (``result["value"]``); ``retry(job, result)``
    before a failed job is tried again; ``failed(job, result)`` after its last try;
    ``abandon(job)`` for a job that was running when the run stopped; ``started(job)`` just
    before a job is handed to an actor; ``tick()`` whenever the driver wakes."""

    done: Callable[[Job, dict], None]
    failed: Callable[[Job, dict], None]
    retry: Callable[[Job, dict], None] = lambda job, result: None
    abandon: Callable[[Job], None] = lambda job: None
    started: Callable[[Job], None] = lambda job: None
    tick: Callable[[], None] = lambda: None


class Pool:
    """Actors of one ``PoolWorker`` class on the cluster ``ray`` is connected to."""

    def __init__(self, ray, worker_cls: type, init_args: tuple, cpus: float, check_args: tuple[list[str], str]) -> None:
        self.ray = ray
        self.remote_cls = ray.remote(num_cpus=cpus, max_restarts=0)(worker_cls)
        self.init_args = init_args
        self.check_args = check_args
        self.nodes: dict = {}  # actor -> node address (from its check)

    def start(self, n: int) -> list:
        """``n`` actors, each checked (raises its refusal); returns them."""
        actors = [self.remote_cls.remote(*self.init_args) for _ in range(n)]
        try:
            results = self.ray.get([a.check.remote(*self.check_args) for a in actors])
        except self.ray.exceptions.RayActorError as exc:
            self.kill(actors)
            raise _no_start(exc) from None
        for actor, result in zip(actors, results, strict=True):
            self._checked(actor, result)
        return actors

    def _checked(self, actor, result: tuple[str, int, str]) -> None:
        node, code, message = result
        if code:
            raise _KINDS.get(code, FacemapError)(message)
        self.nodes[actor] = node

    def kill(self, actors) -> None:
        """Kill ``actors`` (no restart)."""
        for actor in actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)

    def run(self, actors: list, jobs: list[Job], on: Callbacks) -> None:
        """Hand each idle actor the next job until every job is done or given up. A dead actor
        is replaced (the replacement is checked before it gets a job). On any exception
        (Ctrl-C included) every actor is killed, the running jobs are abandoned, and the
        exception goes on."""
        ray = self.ray
        queue = deque(jobs)
        idle = list(actors)
        running: dict = {}  # ref -> (actor, job)
        starting: dict = {}  # check ref -> new actor
        try:
            while queue or running:
                while idle and queue:
                    actor, job = idle.pop(), queue.popleft()
                    on.started(job)
                    running[actor.run.remote(*job.args)] = (actor, job)
                refs = list(running) + list(starting)
                ready, _ = ray.wait(refs, num_returns=1, timeout=POLL_S)
                on.tick()
                for ref in ready:
                    if ref in starting:
                        new = starting.pop(ref)
                        try:
                            self._checked(new, ray.get(ref))
                        except ray.exceptions.RayActorError as exc:
                            raise _no_start(exc) from None
                        idle.append(new)
                        continue
                    actor, job = running.pop(ref)
                    try:
                        result = ray.get(ref)
                        idle.append(actor)
                    except ray.exceptions.RayTaskError as exc:  # not a FacemapError: said in one line
                        result = {"error": f"a bug in facemap ({one_line(exc, 160)})", "node": self.nodes.get(actor, "?"),
                                  "seconds": None}
                        idle.append(actor)
                    except ray.exceptions.RayActorError as exc:  # the worker died: a new one takes its place
                        node = self.nodes.pop(actor, "?")
                        result = {"error": f"the Ray worker on node {node} died ({one_line(exc, 160)})",
                                  "node": node, "seconds": None, "died": True}
                        new = self.remote_cls.remote(*self.init_args)
                        starting[new.check.remote(*self.check_args)] = new
                    if "value" in result:
                        on.done(job, result)
                    elif job.attempt < TRIES and result.get("code") != OutputError.exit_code:  # a full disk stays full
                        on.retry(job, result)
                        job.attempt += 1
                        queue.append(job)
                    else:
                        on.failed(job, result)
                if not queue and not running:
                    break
        except BaseException:
            self.kill([a for a, _ in running.values()] + idle + list(starting.values()))
            with contextlib.suppress(BaseException):  # a second Ctrl-C: stop waiting
                ray.wait(list(running), num_returns=len(running), timeout=KILL_WAIT_S)
            for _actor, job in running.values():
                with contextlib.suppress(Exception):
                    on.abandon(job)
            raise
        self.kill(idle + list(starting.values()))


def pool_bar(total: int, enabled: bool, unit: str, what: str = "frames"):
    """The progress bar of a pool run: jobs done of ``total`` (``unit``), the rate of ``what``
    over the cluster, time left; on stderr, only on a terminal. Returns (bar, add): ``add(n)``
    after each job, ``n`` the ``what`` it did."""
    from tqdm import tqdm

    bar = tqdm(total=total or None, desc="corpus", unit=unit, disable=None if enabled else True,
               dynamic_ncols=True, leave=False, file=sys.stderr)
    t0 = time.perf_counter()
    count = [0]

    def add(n: int) -> None:
        count[0] += n
        secs = time.perf_counter() - t0
        if secs > 0:
            bar.set_postfix_str(f"{count[0] / secs:.1f} {what}/s over the cluster", refresh=False)
        bar.update(1)

    return bar, add


@dataclass
class Session:
    """A connected pool, ready for ``pool.run(actors, jobs, ...)``; ``bar``/``add`` as
    ``pool_bar`` returns them."""

    pool: Pool
    actors: list
    bar: object
    add: Callable[[int], None]


@contextlib.contextmanager
def pool_session(
    ray,
    address: str | None,
    worker_cls: type,
    init_args: tuple,
    workers: int | None,
    cpus: float,
    check_args: tuple[list[str], str],
    total: int,
    progress: bool,
    unit: str,
):
    """Connect to Ray (``ray_init``), start and check the actors (``pool_size`` of them) and
    open the progress bar (its clock starts once the workers are ready); on leaving, close the
    bar and disconnect, whatever happened."""
    ray_init(ray, address, (workers or os.cpu_count() or 1) * cpus)
    bar = None
    try:
        n = pool_size(ray, workers, cpus, total)
        pool = Pool(ray, worker_cls, init_args, cpus, check_args)
        actors = pool.start(n)
        bar, add = pool_bar(total, progress, unit)
        yield Session(pool, actors, bar, add)
    finally:
        if bar is not None:
            bar.close()
        with contextlib.suppress(Exception):
            ray.shutdown()


def _no_start(exc: BaseException) -> UsageError:
    return UsageError(
        f"a Ray worker could not start ({one_line(exc)}); every node needs facemap and its "
        "requirements installed"
    )
