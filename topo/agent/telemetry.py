"""In-container telemetry: every process of this container, sampled from inside with psutil.

One thread in the container's main agent process writes, at ``TELEMETRY_HZ``, a line
``{"ev":"procs","c":..,"t":..,"procs":[{pid, ppid, name, cpu, rss, uss, pss}, ...]}`` (pid
as seen inside the container; cpu = user + system CPU seconds so far; memory in bytes).

USS and PSS (from /proc/<pid>/smaps_rollup) are what make copy-on-write sharing visible: N
forked workers have a large RSS each, but the pages they share count once in PSS. Summed RSS
double-counts them. Reading smaps costs far more than the rest, so it is read every
``PSS_EVERY``-th pass only; its cost is measured by benchmarks/telemetry_cost.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psutil

from topo.agent.common import Events

TELEMETRY_HZ = 2.0
PSS_EVERY = 2  # passes between two smaps reads


def snapshot(with_memory_maps: bool) -> list[dict[str, Any]]:
    """The process tree of this container (its PID namespace) right now."""
    out = []
    for proc in psutil.process_iter(["pid", "ppid", "name", "cpu_times", "memory_info"]):
        info = proc.info
        if info["cpu_times"] is None or info["memory_info"] is None:
            continue  # ended while being read, or not ours to read
        row: dict[str, Any] = {
            "pid": info["pid"],
            "ppid": info["ppid"],
            "name": info["name"],
            "cpu": round(info["cpu_times"].user + info["cpu_times"].system, 3),
            "rss": info["memory_info"].rss,
        }
        if with_memory_maps:
            try:
                full = proc.memory_full_info()
                row["uss"], row["pss"] = full.uss, getattr(full, "pss", None)
            except (psutil.Error, OSError):
                pass
        out.append(row)
    return out


def start(events: Events, container: str, hz: float = TELEMETRY_HZ) -> threading.Thread:
    """Sample in a daemon thread until the process ends."""

    def loop() -> None:
        n = 0
        period = 1.0 / hz
        while True:
            t = time.time()
            try:
                procs = snapshot(with_memory_maps=n % PSS_EVERY == 0)
                events.emit(ev="procs", c=container, t=t, procs=procs)
            except Exception:  # telemetry must never take a worker down
                pass
            n += 1
            time.sleep(max(0.0, period - (time.time() - t)))

    thread = threading.Thread(target=loop, name="topo-telemetry", daemon=True)
    thread.start()
    return thread
