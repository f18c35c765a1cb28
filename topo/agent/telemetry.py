"""In-container telemetry: every process of this container, sampled from inside with psutil.

One thread in the container's main agent process writes, at ``TELEMETRY_HZ``, a line
``{"ev":"procs","c":..,"t":..,"procs":[{pid, ppid, name, cpu, rss, uss, pss, thr}, ...]}``
(pid as seen inside the container; cpu = user + system CPU seconds so far; memory in bytes;
thr = ``[[tid, cpu seconds], ...]`` for each live thread of the process).

Per-thread CPU is what lets the harness split a process's CPU into its task thread's (the
one its ``ready`` line names) and the agent's other threads': this telemetry thread, a
multi worker's heartbeat, single's PID 1 dispatching. It is read from
/proc/<pid>/task/<tid>/schedstat (nanoseconds, the scheduler's own sum) where the kernel has
it, else from the thread's stat (clock ticks). A thread that has ended is no longer listed.

USS and PSS (from /proc/<pid>/smaps_rollup) are what make copy-on-write sharing visible: N
forked workers have a large RSS each, but the pages they share count once in PSS. Summed RSS
double-counts them. Reading smaps costs far more than the rest, so it is read every
``PSS_EVERY``-th pass only; its cost is measured by benchmarks/telemetry_cost.py.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psutil

from topo.agent.common import Events

TELEMETRY_HZ = 2.0
PSS_EVERY = 2  # passes between two smaps reads
_TICK = 1.0 / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int, proc: str = "/proc") -> list[list[float]]:
    """``[[tid, CPU seconds], ...]`` of each live thread of ``pid``; [] if it is gone."""
    folder = f"{proc}/{pid}/task"
    try:
        tids = sorted(int(t) for t in os.listdir(folder))
    except (OSError, ValueError):
        return []
    out = []
    for tid in tids:
        cpu = _one_thread(f"{folder}/{tid}")
        if cpu is not None:
            out.append([tid, round(cpu, 6)])
    return out


def _one_thread(path: str) -> float | None:
    try:
        with open(f"{path}/schedstat", encoding="ascii") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:  # no schedstat in this kernel: utime + stime, in ticks, after the "(comm)" field
        with open(f"{path}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * _TICK
    except (OSError, ValueError, IndexError):
        return None  # ended while being read


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
            "thr": thread_cpu(info["pid"]),
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
