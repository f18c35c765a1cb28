"""In-container telemetry: every process of this container, sampled from inside from /proc.

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

The figures are psutil's (name, ppid, cpu_times user + system, memory_info rss,
memory_full_info uss and pss), read from the same files with the same arithmetic, with the
standard library alone: ``import psutil`` is a large part of a multi worker's start-up CPU,
and 64 of them start at 2/64 CPU each (benchmarks/scale.py --import-cost). Where psutil
versions differ, this follows the image's (Debian bookworm's 5.9.4): a zombie, whose
smaps_rollup answers ESRCH, has no USS and PSS (psutil 7 reads its empty smaps instead: 0
and 0). psutil reads cmdline as text with universal newlines: a "\\r" in the first argument
is a "\\n" to it, and kept here.
"""

from __future__ import annotations

import os
import threading
import time

from topo.agent.common import Events, read_stat
from topo.agent.protocol import Proc, Procs

TELEMETRY_HZ = 2.0
PSS_EVERY = 2  # passes between two smaps reads
_HZ = os.sysconf("SC_CLK_TCK")  # /proc's CPU times are in these ticks
_TICK = 1.0 / _HZ
_PAGE = os.sysconf("SC_PAGE_SIZE")  # statm counts pages
# One summary where the kernel has it (Linux 4.14+); per mapping before, as psutil does.
_SMAPS = "smaps_rollup" if os.path.exists("/proc/self/smaps_rollup") else "smaps"


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
    try:  # utime, stime and starttime: the 14th, 15th and 22nd fields
        fields = read_stat(f"{path}/stat")[1]
        ticks, started = int(fields[11]) + int(fields[12]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None, None  # ended while being read
    try:  # the scheduler's own sum in ns, where the kernel keeps it; ticks are 10 ms
        with open(f"{path}/schedstat", encoding="ascii") as f:
            return int(f.read().split()[0]) / 1e9, started
    except (OSError, ValueError, IndexError):
        return ticks * _TICK, started


def snapshot(with_memory_maps: bool, proc: str = "/proc") -> tuple[Proc, ...]:
    """The process tree of this container (its PID namespace) right now, in pid order.
    A process that ends while being read, or whose stat is not ours to read, is left out."""
    pids = sorted(int(d) for d in os.listdir(proc) if d.isdigit())
    found = (_one_process(pid, proc, with_memory_maps) for pid in pids)
    return tuple(p for p in found if p is not None)


def children(pid: int, proc: str = "/proc") -> list[tuple[int, str]]:
    """``pid``'s children and the state letter of each ("R", "S", "Z" for a zombie...),
    from their stat files, as psutil's ``Process(pid).children()`` finds them (every
    process whose parent is ``pid``). A child that ends while being read is left out."""
    out = []
    for d in os.listdir(proc):
        if not d.isdigit():
            continue
        try:
            fields = read_stat(f"{proc}/{d}/stat")[1]  # from the 3rd field, state
            if int(fields[1]) == pid:
                out.append((int(d), fields[0].decode("ascii", "replace")))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(out)


def _one_process(pid: int, proc: str, with_memory_maps: bool) -> Proc | None:
    """What psutil's name(), ppid(), cpu_times() and memory_info().rss (and, with memory
    maps, memory_full_info()'s uss and pss) give for ``pid``, read as psutil reads them."""
    path = f"{proc}/{pid}"
    try:
        comm, fields = read_stat(f"{path}/stat")  # fields from the 3rd, state
        with open(f"{path}/statm", "rb") as f:
            rss = int(f.read().split()[1]) * _PAGE
        ppid, cpu = int(fields[1]), int(fields[11]) / _HZ + int(fields[12]) / _HZ
        name = _long_name(path, os.fsdecode(comm))
    except (OSError, ValueError, IndexError):
        return None  # ended while being read, or not ours to read
    uss, pss = _smaps(path) if with_memory_maps else (None, None)
    return Proc(pid=pid, ppid=ppid, name=name, cpu=round(cpu, 3), rss=rss, uss=uss, pss=pss,
                threads=tuple(thread_cpu(pid, proc)))


def _long_name(path: str, comm: str) -> str:
    """psutil's name(): the kernel cuts a process's name to 15 characters; where the base
    name of the first word of its command line starts with the cut one, that whole name."""
    if len(comm) < 15:
        return comm
    try:
        with open(f"{path}/cmdline", "rb") as f:
            data = os.fsdecode(f.read())
    except PermissionError:
        return comm  # as psutil: the cut name is better than none
    # psutil's reading: arguments end in NULs, unless the process rewrote them with spaces
    # (setproctitle); one argument that holds spaces is taken as space-separated too
    args = data[:-1].split("\0") if data.endswith("\0") else [data]
    whole = os.path.basename(args[0] if len(args) > 1 else args[0].split(" ")[0])
    return whole if whole.startswith(comm) else comm


def _smaps(path: str) -> tuple[int | None, int | None]:
    """(USS, PSS) in bytes as psutil's memory_full_info() sums them: USS the Private_Clean,
    Private_Dirty and Private_Hugetlb lines, PSS the Pss line(s); (None, None) where
    unreadable (a zombie has no memory maps: the kernel answers ESRCH)."""
    uss = pss = 0
    try:
        with open(f"{path}/{_SMAPS}", "rb") as f:
            for line in f:
                if line.startswith(b"Private_"):
                    uss += int(line.split()[1]) * 1024
                elif line.startswith(b"Pss:"):
                    pss += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None, None
    return uss, pss


def start(events: Events, container: str, hz: float = TELEMETRY_HZ) -> threading.Thread:
    """Sample in a daemon thread until the process ends."""

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
