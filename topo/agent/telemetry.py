"""In-container telemetry: every process of this container, sampled from inside with psutil.

One thread in the container's main agent process writes, at ``TELEMETRY_HZ``, a ``procs``
line (``topo.agent.protocol.Procs``): per process, its pid as seen inside the container,
ppid, name, user + system CPU seconds so far, memory in bytes, and for each live thread
its tid, CPU seconds and the host wall time it started.

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

from topo.agent.common import Events
from topo.agent.protocol import Proc, Procs

TELEMETRY_HZ = 2.0
PSS_EVERY = 2  # passes between two smaps reads
_TICK = 1.0 / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int, proc: str = "/proc") -> list[tuple[int, float, float | None]]:
    """``[(tid, CPU seconds, born), ...]`` of each live thread of ``pid``; [] if it is gone.
    ``born`` is the host wall time the thread started (None if unreadable): a thread that
    starts between two passes has used CPU before it is first seen, from 0 at ``born``."""
    folder = f"{proc}/{pid}/task"
    try:
        tids = sorted(int(t) for t in os.listdir(folder))
    except (OSError, ValueError):
        return []
    boot = _boot_time(proc)
    out: list[tuple[int, float, float | None]] = []
    for tid in tids:
        cpu, started = _one_thread(f"{folder}/{tid}")
        if cpu is not None:
            born = None if boot is None or started is None else round(boot + started * _TICK, 3)
            out.append((tid, round(cpu, 6), born))
    return out


def _boot_time(proc: str) -> float | None:
    # Host wall time of boot, the origin of a thread's start time (the container shares
    # the host's kernel and clocks); reread each pass, as the wall clock may be adjusted.
    try:
        with open(f"{proc}/uptime", encoding="ascii") as f:
            return time.time() - float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _one_thread(path: str) -> tuple[float | None, int | None]:
    """(CPU seconds, start time in clock ticks since boot) of one thread."""
    try:  # utime, stime and starttime: the 14th, 15th and 22nd fields, after "(comm)"
        with open(f"{path}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks, started = int(fields[11]) + int(fields[12]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None, None  # ended while being read
    try:  # the scheduler's own sum in ns, where the kernel keeps it; ticks are 10 ms
        with open(f"{path}/schedstat", encoding="ascii") as f:
            return int(f.read().split()[0]) / 1e9, started
    except (OSError, ValueError, IndexError):
        return ticks * _TICK, started


def snapshot(with_memory_maps: bool) -> tuple[Proc, ...]:
    """The process tree of this container (its PID namespace) right now."""
    # psutil is imported when telemetry first runs, not with this module: a multi worker
    # without telemetry does not pay for it at start-up on its small CPU share (a fifth of
    # its imports: benchmarks/scale.py --agent-cpu). ``start`` imports it before its thread.
    import psutil

    out = []
    for proc in psutil.process_iter(["pid", "ppid", "name", "cpu_times", "memory_info"]):
        info = proc.info
        if info["cpu_times"] is None or info["memory_info"] is None:
            continue  # ended while being read, or not ours to read
        uss = pss = None
        if with_memory_maps:
            try:
                full = proc.memory_full_info()
                uss, pss = full.uss, getattr(full, "pss", None)
            except (psutil.Error, OSError):
                pass
        out.append(Proc(
            pid=info["pid"], ppid=info["ppid"], name=info["name"],
            cpu=round(info["cpu_times"].user + info["cpu_times"].system, 3),
            rss=info["memory_info"].rss, uss=uss, pss=pss, threads=tuple(thread_cpu(info["pid"])),
        ))
    return tuple(out)


def start(events: Events, container: str, hz: float = TELEMETRY_HZ) -> threading.Thread:
    """Sample in a daemon thread until the process ends."""
    import psutil  # noqa: F401  (here, not in the thread: see topo.agent.common on imports)

    def loop() -> None:
        n = 0
        period = 1.0 / hz
        while True:
            t = time.time()
            try:
                procs = snapshot(with_memory_maps=n % PSS_EVERY == 0)
                events.emit(Procs(container=container, t=t, procs=procs))
            except Exception:  # telemetry must never take a worker down
                pass
            n += 1
            time.sleep(max(0.0, period - (time.time() - t)))

    thread = threading.Thread(target=loop, name="topo-telemetry", daemon=True)
    thread.start()
    return thread
