"""Read a container's CPU, memory, throttling and pids counters from its cgroup, v1 or v2.

Reading the files directly is cheap enough to sample every container at 10 Hz; the Docker
stats API takes hundreds of milliseconds per call and is only the fallback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from topo.runtime.base import RawStats

CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass(frozen=True)
class CgroupPaths:
    """Folders of one process's cgroups: v2 has one; v1 one per controller."""

    v2: str | None = None
    cpuacct: str | None = None  # v1: CPU usage
    cpu: str | None = None  # v1: CFS throttling
    memory: str | None = None
    pids: str | None = None


def cgroup_version(root: str = CGROUP_ROOT) -> int:
    return 2 if os.path.exists(os.path.join(root, "cgroup.controllers")) else 1


def paths_of(pid: int, root: str = CGROUP_ROOT, proc: str = "/proc") -> CgroupPaths | None:
    """The cgroup folders of process ``pid`` (a container's main process); None if gone."""
    try:
        with open(f"{proc}/{pid}/cgroup", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    found: dict[str, str] = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            found[c] = path.lstrip("/")
    if "" in found and cgroup_version(root) == 2:
        return CgroupPaths(v2=os.path.join(root, found[""]))

    def v1(controller: str, mount: str) -> str | None:
        return os.path.join(root, mount, found[controller]) if controller in found else None

    return CgroupPaths(cpuacct=v1("cpuacct", "cpuacct"), cpu=v1("cpu", "cpu"), memory=v1("memory", "memory"),
                       pids=v1("pids", "pids"))


def _read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def _keyed(path: str) -> dict[str, int]:
    out = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def read(paths: CgroupPaths) -> RawStats | None:
    """Current counters, or None when the cgroup has gone (the container stopped)."""
    if not paths.v2 and not (paths.cpuacct and paths.memory):
        return None
    try:
        return _read_v2(paths.v2) if paths.v2 else _read_v1(paths)
    except (OSError, ValueError, KeyError):
        return None


def _read_v2(folder: str) -> RawStats:
    cpu = _keyed(os.path.join(folder, "cpu.stat"))
    mem = _keyed(os.path.join(folder, "memory.stat"))
    usage = int(_read(os.path.join(folder, "memory.current")))
    pids = int(_read(os.path.join(folder, "pids.current")))
    return RawStats(
        cpu=cpu["usage_usec"] / 1e6,
        memory=max(0, usage - mem.get("inactive_file", 0)),
        throttled_periods=cpu.get("nr_throttled", 0),
        throttled=cpu.get("throttled_usec", 0) / 1e6,
        pids=pids,
    )


def _read_v1(paths: CgroupPaths) -> RawStats:
    assert paths.cpuacct and paths.memory  # checked by read()
    usage_ns = int(_read(os.path.join(paths.cpuacct, "cpuacct.usage")))
    cpu = _keyed(os.path.join(paths.cpu, "cpu.stat")) if paths.cpu else {}
    mem = _keyed(os.path.join(paths.memory, "memory.stat"))
    usage = int(_read(os.path.join(paths.memory, "memory.usage_in_bytes")))
    pids = int(_read(os.path.join(paths.pids, "pids.current"))) if paths.pids else 0
    return RawStats(
        cpu=usage_ns / 1e9,
        memory=max(0, usage - mem.get("total_inactive_file", 0)),
        throttled_periods=cpu.get("nr_throttled", 0),
        throttled=cpu.get("throttled_time", 0) / 1e9,
        pids=pids,
    )
