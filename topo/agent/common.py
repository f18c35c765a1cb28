"""What every agent process shares: its configuration, the event files, the start signal.

Agents run inside the containers with the standard library, redis and psutil only.

Every process appends JSON lines to its own file under ``<run dir>/events/``, a folder that
is bind-mounted from the host. The harness builds its ledger from these files, never from
Redis or from a process that a fault may kill, and every line is flushed as soon as it is
written, so a SIGKILL loses at most the line being written. Times are ``time.time()``:
containers share the host's clock, so they are host wall-clock seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

RUN_DIR = os.environ.get("TOPO_RUN_DIR", "/run/topo")
GO_FILE = "go"
EVENTS = "events"


def config() -> dict[str, Any]:
    """The agent's configuration, passed by the harness as JSON in ``TOPO_CONFIG``."""
    return json.loads(os.environ["TOPO_CONFIG"])


class Events:
    """Append-only JSON-lines file of one process. Each write is flushed at once."""

    def __init__(self, name: str) -> None:
        path = os.path.join(RUN_DIR, EVENTS, f"{name}.jsonl")
        self._file = open(path, "a", encoding="utf-8")

    def emit(self, **fields: Any) -> None:
        self._file.write(json.dumps(fields, separators=(",", ":")) + "\n")
        self._file.flush()


def cpu_quota() -> float | None:
    """CPUs allowed by this container's CFS quota (cgroup v2 or v1); None if unlimited."""
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as f:
            quota, period = f.read().split()
        return None if quota == "max" else int(quota) / int(period)
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", encoding="ascii") as f:
            quota_us = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us", encoding="ascii") as f:
            period_us = int(f.read())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 else quota_us / period_us


def announce_ready(events: Events, worker: str, container: str) -> None:
    """Say this worker process is ready, with what it sees of its CPUs (the cpu_count trap)."""
    events.emit(
        ev="ready",
        w=worker,
        c=container,
        t=time.time(),
        cpu_count=os.cpu_count(),
        affinity=len(os.sched_getaffinity(0)),
        quota=cpu_quota(),
    )


def wait_for_go(poll: float = 0.002) -> float:
    """Block until the harness releases the batch; return the time it was seen."""
    path = os.path.join(RUN_DIR, GO_FILE)
    while not os.path.exists(path):
        time.sleep(poll)
    return time.time()


def task_record(task_id: int, worker: str, fn: Any, core_of: Any) -> dict[str, Any]:
    """Run ``fn(task_id)`` and describe the attempt; an exception is a failed attempt."""
    cpu0 = time.process_time()
    t0 = time.time()
    err = None
    try:
        fn(task_id)
    except Exception as e:  # a task's own failure is data, not a crash of the worker
        err = f"{type(e).__name__}: {e}"[:300]
    t1 = time.time()
    return {
        "ev": "task",
        "id": task_id,
        "w": worker,
        "ok": err is None,
        "t0": t0,
        "t1": t1,
        "cpu": time.process_time() - cpu0,
        "core": core_of(),
        "err": err,
    }


def fatal(events: Events | None, container: str, exc: BaseException) -> None:
    """Record why an agent is dying, then exit non-zero."""
    msg = f"{type(exc).__name__}: {exc}"[:500]
    if events is not None:
        events.emit(ev="error", c=container, t=time.time(), err=msg)
    print(f"topo agent: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)
