"""Reading a container's counters from fake cgroup v1 and v2 trees built in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from topo.runtime import cgroup
from topo.runtime.base import RawStats
from topo.runtime.cgroup import CgroupPaths

PID = 4242
DOCKER = "docker/0123abcd"

# cgroup v1 as on this machine: cpu and cpuacct mounted apart, plus a cgroup2 line for the
# unified hierarchy that hybrid systems add (it must not make the tree look like v2).
PROC_V1 = f"""12:pids:/{DOCKER}
9:name=systemd:/{DOCKER}
7:blkio:/{DOCKER}
4:memory:/{DOCKER}
3:cpuset:/{DOCKER}
2:cpuacct:/{DOCKER}
1:cpu:/{DOCKER}
0::/system.slice/containerd.service
"""

MEMORY_STAT_V1 = """cache 8388608
rss 20971520
inactive_file 1000
active_file 4096
total_cache 8388608
total_rss 20971520
total_inactive_file 6291456
total_active_file 2097152
"""

CPU_STAT_V1 = """nr_periods 420
nr_throttled 17
throttled_time 1250000000
nr_bursts 0
burst_time 0
"""

SCOPE = "system.slice/docker-0123abcd.scope"
CPU_STAT_V2 = """usage_usec 2750000
user_usec 2500000
system_usec 250000
nr_periods 300
nr_throttled 12
throttled_usec 375000
"""

MEMORY_STAT_V2 = """anon 20971520
file 8388608
active_file 2097152
inactive_file 4194304
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def proc_file(tmp_path: Path, text: str, pid: int = PID) -> str:
    proc = tmp_path / "proc"
    write(proc / str(pid) / "cgroup", text)
    return str(proc)


def v1_tree(root: Path, *, cpu: bool = True, pids: bool = True) -> None:
    write(root / "cpuacct" / DOCKER / "cpuacct.usage", "3500000000\n")  # 3.5 s in ns
    if cpu:
        write(root / "cpu" / DOCKER / "cpu.stat", CPU_STAT_V1)
    write(root / "memory" / DOCKER / "memory.usage_in_bytes", "33554432\n")  # 32 MiB
    write(root / "memory" / DOCKER / "memory.stat", MEMORY_STAT_V1)
    if pids:
        write(root / "pids" / DOCKER / "pids.current", "5\n")


def v2_tree(root: Path) -> None:
    write(root / "cgroup.controllers", "cpuset cpu io memory pids\n")
    folder = root / SCOPE
    write(folder / "cpu.stat", CPU_STAT_V2)
    write(folder / "memory.current", "29360128\n")  # 28 MiB
    write(folder / "memory.stat", MEMORY_STAT_V2)
    write(folder / "pids.current", "9\n")


# --------------------------------------------------------------------------- v1


def test_v1_paths_one_folder_per_controller(tmp_path):
    root = tmp_path / "cg"
    v1_tree(root)
    paths = cgroup.paths_of(PID, root=str(root), proc=proc_file(tmp_path, PROC_V1))
    assert paths == CgroupPaths(
        v2=None,
        cpuacct=str(root / "cpuacct" / DOCKER),
        cpu=str(root / "cpu" / DOCKER),
        memory=str(root / "memory" / DOCKER),
        pids=str(root / "pids" / DOCKER),
    )
    assert cgroup.cgroup_version(str(root)) == 1


def test_v1_read_gives_exact_counters(tmp_path):
    root = tmp_path / "cg"
    v1_tree(root)
    paths = cgroup.paths_of(PID, root=str(root), proc=proc_file(tmp_path, PROC_V1))
    assert cgroup.read(paths) == RawStats(
        cpu=3.5,
        memory=33554432 - 6291456,  # usage minus total_inactive_file (not inactive_file)
        throttled_periods=17,
        throttled=1.25,
        pids=5,
    )


def test_v1_joint_cpu_cpuacct_line(tmp_path):
    root = tmp_path / "cg"
    v1_tree(root)
    text = f"5:cpu,cpuacct:/{DOCKER}\n4:memory:/{DOCKER}\n12:pids:/{DOCKER}\n"
    paths = cgroup.paths_of(PID, root=str(root), proc=proc_file(tmp_path, text))
    assert (paths.cpu, paths.cpuacct) == (str(root / "cpu" / DOCKER), str(root / "cpuacct" / DOCKER))
    assert cgroup.read(paths).cpu == 3.5


def test_v1_without_cpu_or_pids_controllers_reads_zero_for_them(tmp_path):
    root = tmp_path / "cg"
    v1_tree(root, cpu=False, pids=False)
    text = f"4:memory:/{DOCKER}\n2:cpuacct:/{DOCKER}\n"
    paths = cgroup.paths_of(PID, root=str(root), proc=proc_file(tmp_path, text))
    assert (paths.cpu, paths.pids) == (None, None)
    assert cgroup.read(paths) == RawStats(cpu=3.5, memory=33554432 - 6291456)


def test_v1_memory_never_below_zero(tmp_path):
    root = tmp_path / "cg"
    v1_tree(root)
    write(root / "memory" / DOCKER / "memory.usage_in_bytes", "4096\n")
    paths = cgroup.paths_of(PID, root=str(root), proc=proc_file(tmp_path, PROC_V1))
    assert cgroup.read(paths).memory == 0


# --------------------------------------------------------------------------- v2


def test_v2_path_is_the_single_unified_folder(tmp_path):
    root = tmp_path / "cg"
    v2_tree(root)
    paths = cgroup.paths_of(PID, root=str(root), proc=proc_file(tmp_path, f"0::/{SCOPE}\n"))
    assert paths == CgroupPaths(v2=str(root / SCOPE))
    assert cgroup.cgroup_version(str(root)) == 2


def test_v2_read_gives_exact_counters(tmp_path):
    root = tmp_path / "cg"
    v2_tree(root)
    paths = cgroup.paths_of(PID, root=str(root), proc=proc_file(tmp_path, f"0::/{SCOPE}\n"))
    assert cgroup.read(paths) == RawStats(
        cpu=2.75,  # usage_usec
        memory=29360128 - 4194304,
        throttled_periods=12,
        throttled=0.375,
        pids=9,
    )


# --------------------------------------------------------------------------- gone


def test_a_process_that_is_gone_has_no_paths(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    assert cgroup.paths_of(999, root=str(tmp_path / "cg"), proc=str(proc)) is None


@pytest.mark.parametrize("version", [1, 2])
def test_a_missing_folder_reads_none(tmp_path, version):
    root = tmp_path / "cg"
    if version == 1:
        v1_tree(root)
        paths = cgroup.paths_of(PID, root=str(root), proc=proc_file(tmp_path, PROC_V1))
        missing = CgroupPaths(cpuacct=str(root / "cpuacct" / "gone"),
                              memory=str(root / "memory" / "gone"))
    else:
        v2_tree(root)
        paths = cgroup.paths_of(PID, root=str(root), proc=proc_file(tmp_path, f"0::/{SCOPE}\n"))
        missing = CgroupPaths(v2=str(root / "gone.scope"))
    assert cgroup.read(paths) is not None
    assert cgroup.read(missing) is None


def test_a_container_that_stopped_after_its_paths_were_found_reads_none(tmp_path):
    root = tmp_path / "cg"
    v2_tree(root)
    paths = cgroup.paths_of(PID, root=str(root), proc=proc_file(tmp_path, f"0::/{SCOPE}\n"))
    for f in (root / SCOPE).iterdir():
        f.unlink()
    (root / SCOPE).rmdir()
    assert cgroup.read(paths) is None


def test_a_garbled_counter_reads_none(tmp_path):
    root = tmp_path / "cg"
    v2_tree(root)
    write(root / SCOPE / "memory.current", "max\n")
    paths = cgroup.paths_of(PID, root=str(root), proc=proc_file(tmp_path, f"0::/{SCOPE}\n"))
    assert cgroup.read(paths) is None
