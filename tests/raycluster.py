"""A real Ray head node on 127.0.0.1 for the tests and the corpus benchmark: its own temp dir and
ports, ``ray start --block`` in a process group of its own, stopped by pid at the end (``ray stop``
would stop every Ray on the machine). Linux only (it reads /proc).

Set RAY_ENV in os.environ before ``import ray``: a driver then keeps 127.0.0.1 (not the host's
address), sends no usage statistics, and needs no token from ~/.ray.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@dataclass
class Cluster:
    """A running head node: its address (``127.0.0.1:<port>``), the pid of its ``ray start``,
    and, once stopped, the pids that were still alive then (none is expected)."""

    address: str
    pid: int
    left: list[int] = field(default_factory=list)


def free_ports(n: int) -> list[int]:
    """``n`` TCP ports free on 127.0.0.1 now."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _stats() -> dict[int, list[str]]:
    """The fields after the command name of /proc/<pid>/stat, by pid (zombies left out)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if fields and fields[0] != "Z":
                    out[int(entry.name)] = fields
    return out


def group_pids(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid``."""
    return sorted(pid for pid, f in _stats().items() if int(f[2]) == pgid)


def descendants(root: int) -> list[int]:
    """Live processes descended from ``root`` (Ray's workers leave the cluster's process group,
    not its tree)."""
    parent = {pid: int(f[1]) for pid, f in _stats().items()}
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier}
        found += sorted(frontier)
    return found


def cmdline(pid: int) -> str:
    """The command line of ``pid`` (Ray's processes set it to their title: ``ray::Class.method``)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _alive(pids: list[int]) -> list[int]:
    live = _stats()
    return [p for p in pids if p in live]


def _stop(proc: subprocess.Popen) -> list[int]:
    """SIGTERM to ``ray start`` (it drains the node and stops the processes it started; a
    SIGTERM to its whole group would stop the GCS first and leave it waiting 30 s for it), then
    to what is left of its process group, then SIGKILL (by pid) to any of the group or of its
    descendants still alive after a while; returns the pids that were still alive then."""
    ours = sorted(set(group_pids(proc.pid)) | set(descendants(proc.pid)))
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    for _ in range(60):
        if not _alive(ours):
            return []
        time.sleep(0.5)
    left = _alive(ours)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


@contextlib.contextmanager
def head_node(num_cpus: int, log_dir: Path) -> Iterator[Cluster]:
    """Start a head node with ``num_cpus`` CPUs (its log in ``log_dir/ray-start.log``), yield it
    once its GCS answers and its raylet is up, stop it at the end. RuntimeError when it does not
    come up."""
    log_path = Path(log_dir) / "ray-start.log"
    # Ray's socket paths must stay under 108 bytes: a short temp dir, not pytest's
    temp = Path(tempfile.mkdtemp(prefix="fmray", dir="/tmp"))
    gcs, client, nm, om, agent, agent_grpc, metrics, renv = free_ports(8)
    cmd = [
        shutil.which("ray") or "ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs}",
        f"--temp-dir={temp}", f"--num-cpus={num_cpus}", "--include-dashboard=false", "--disable-usage-stats",
        f"--ray-client-server-port={client}", f"--node-manager-port={nm}", f"--object-manager-port={om}",
        f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={renv}",
    ]
    env = {**os.environ, **RAY_ENV}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    cluster = Cluster(f"127.0.0.1:{gcs}", proc.pid)
    try:
        raylet = temp / "session_latest" / "sockets" / "raylet"
        for _ in range(240):  # until the head's GCS port answers and its raylet is up
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited {proc.returncode}: {log_path.read_text()[-2000:]}")
            if raylet.exists() and b"will now block" in log_path.read_bytes():
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", gcs), timeout=2):
                    break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the Ray head did not come up: {log_path.read_text()[-1500:]}")
        yield cluster
    finally:
        cluster.left = _stop(proc)
        shutil.rmtree(temp, ignore_errors=True)
