"""Nothing topo starts outlives it.

- Every container and network carries ``topo.owner=<host>:<pid>:<start time>`` of the
  ``topo`` process that made it.
- A watchdog process, started in its own session so Ctrl-C and a SIGKILL of topo do not reach
  it, waits for that process to end and then removes everything labelled with its run.
- When topo starts, it sweeps what earlier runs left behind whose owner is gone (a machine
  reboot, a SIGKILL of topo and its watchdog).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

import psutil

from topo.plan import RUN


def owner_label(pid: int | None = None) -> str:
    """This process as an owner: host, PID and start time (a reused PID is not the owner)."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.2f}"


def owner_alive(owner: str) -> bool:
    """Whether the process named by an owner label still runs (on another host: assume so)."""
    try:
        host, pid_s, created = owner.rsplit(":", 2)
        pid = int(pid_s)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True
    try:
        proc = psutil.Process(pid)
        return (proc.status() != psutil.STATUS_ZOMBIE
                and f"{proc.create_time():.2f}" == created)
    except psutil.Error:
        return False


def sweep(runtime: object) -> list[str]:
    """Remove the runs whose owner is gone; return their ids. Every part of the runtime's
    (``cleanup_parts``: on a Swarm manager also topo's services, secrets, configs and
    volumes, whichever engine this run uses) is looked at."""
    found = _parts(runtime)
    runs: dict[str, str] = {}
    for part in found:
        runs.update(part.labelled_runs())
    stale = [run for run, owner in runs.items() if not owner_alive(owner)]
    for run in stale:
        for part in reversed(found):  # services first: their containers hold the network
            part.remove_labelled(f"{RUN}={run}")
    return stale


def remove_everywhere(runtime: object, label: str) -> dict[str, int]:
    """Remove what carries ``label``: Swarm's objects first (their task containers hold the
    networks), then the engine's containers and networks; how many of each kind."""
    removed: dict[str, int] = {}
    for part in reversed(_parts(runtime)):
        for kind, n in part.remove_labelled(label).items():
            removed[kind] = removed.get(kind, 0) + n
    return removed


def _parts(runtime: Any) -> list[Any]:
    parts = getattr(runtime, "cleanup_parts", None)
    return list(parts()) if parts is not None else [runtime]


def start_watchdog() -> subprocess.Popen[bytes]:
    """A process that removes every container and network we made, once we are gone."""
    return subprocess.Popen(
        [sys.executable, "-m", "topo.watchdog", owner_label()],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )
