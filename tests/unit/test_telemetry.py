"""The telemetry's view of a process, read from /proc by hand, against psutil's.

psutil is the oracle on the host: real processes (one holding 50 MiB it wrote, one whose
name is longer than the kernel keeps, one burning CPU in two threads, a zombie) are read by
``snapshot`` between two reads of psutil's. A fake /proc tree gives figures computed by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from topo.agent import telemetry
from topo.agent.protocol import Proc
from topo.agent.telemetry import snapshot

ROOT = Path(__file__).resolve().parents[2]
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 2**20
LONG = "topo-telemetry-long-name"  # the kernel keeps "topo-telemetry-" (15 characters)

HOLDS_50_MIB = "b = bytearray(b'x') * (50 << 20)"  # written byte by byte: every page resident
BURNS = """
import threading
def spin():
    while True:
        pass
for _ in range(2):
    threading.Thread(target=spin, daemon=True).start()
"""
WAITS = "\nprint('ready', flush=True)\nimport sys\nsys.stdin.read()"


@pytest.fixture
def children(tmp_path: Path) -> Iterator[dict[str, int]]:
    """Real processes, each ready before the test reads it: name -> pid."""
    link = tmp_path / LONG  # the kernel names a process after the file it executes
    link.symlink_to(sys.executable)
    specs = {
        "holds": ([sys.executable, "-c", HOLDS_50_MIB + WAITS], None),
        "long": ([str(link), "-c", "pass" + WAITS], None),
        # argv[0] need not name the file: then psutil keeps the cut name
        "long, other argv[0]": (["python3", "-c", "pass" + WAITS], str(link)),
        "burns": ([sys.executable, "-c", BURNS + WAITS], None),
    }
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for name, (args, exe) in specs.items():
            p = subprocess.Popen(args, executable=exe, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            procs[name] = p
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        zombie = subprocess.Popen(["true"], text=True)
        procs["zombie"] = zombie
        while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
            pass
        yield {name: p.pid for name, p in procs.items()}
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


def _psutil(pid: int) -> Proc:
    """psutil's read of the figures ``snapshot`` gives (threads aside)."""
    p = psutil.Process(pid)
    with p.oneshot():
        times, full = p.cpu_times(), p.memory_full_info()
        return Proc(pid, p.ppid(), p.name(), round(times.user + times.system, 3),
                    p.memory_info().rss, full.uss, full.pss)


def test_snapshot_gives_psutils_figures(children: dict[str, int]) -> None:
    before = {name: _psutil(pid) for name, pid in children.items()}
    mine = {p.pid: p for p in snapshot(with_memory_maps=True)}
    after = {name: _psutil(pid) for name, pid in children.items()}
    for name, pid in children.items():
        got, was, now = mine[pid], before[name], after[name]
        assert (got.pid, got.ppid, got.name) == (now.pid, now.ppid, now.name), name
        # the same ticks as psutil's, with the same arithmetic: between its two reads
        assert was.cpu <= got.cpu <= now.cpu, name
        assert abs(got.rss - now.rss) <= 4 * PAGE, name
        if name == "zombie":  # psutil 7 reads the zombie's empty smaps: 0 (see telemetry)
            assert (got.rss, got.uss, got.pss, now.uss, now.pss) == (0, None, None, 0, 0)
            continue
        assert got.uss is not None and got.pss is not None
        assert now.uss is not None and now.pss is not None
        # USS: pages of its own, as steady as RSS. PSS: each shared page divided among its
        # sharers, e.g. the interpreter's, whose count changes when a python process
        # elsewhere on the host starts or ends between the reads: ~1/N of a few MiB
        assert abs(got.uss - now.uss) <= 4 * PAGE, name
        assert abs(got.pss - now.pss) <= MIB, name
    assert (mine[children["holds"]].uss or 0) >= 50 * MIB
    assert mine[children["long"]].name == LONG
    assert mine[children["long, other argv[0]"]].name == LONG[:15]
    assert mine[children["burns"]].cpu > 0
    assert mine[children["zombie"]].name == "true"


def _fake_proc(root: Path) -> None:
    """A /proc of five pids: what each file says is what the expected figures come from."""
    def stat(pid: int, name: str, state: str, ppid: int, utime: int, stime: int) -> str:
        # utime, stime and starttime are the 14th, 15th and 22nd fields; cutime/cstime
        # (children's, the 16th and 17th: 9 and 9) are not counted, as psutil's user + system
        return (f"{pid} ({name}) {state} {ppid} {pid} {pid} 0 -1 4194560 10 0 0 0 "
                f"{utime} {stime} 9 9 20 0 1 0 100 0 0\n")

    files = {
        "uptime": "1000.00 1500.00\n",
        "self/stat": "ignored: not a pid\n",
        "1/stat": stat(1, "py) thon", "S", 0, 250, 75),  # ")" in a name is the kernel's right
        "1/statm": "5000 1200 300 1 0 800 0\n",
        "1/cmdline": "python3\0-m\0topo.agent.single\0",
        "1/smaps_rollup": ROLLUP,
        "1/task/1/stat": stat(1, "py) thon", "S", 0, 250, 75),
        "1/task/1/schedstat": "3260000000 2000 7\n",
        "7/stat": stat(7, LONG[:15], "R", 1, 3, 1),
        "7/statm": "900 300 100 1 0 200 0\n",
        "7/cmdline": f"/opt/bin/{LONG}\0--flag\0",
        "8/stat": stat(8, LONG[:15], "S", 1, 0, 0),
        "8/statm": "900 301 100 1 0 200 0\n",
        "8/cmdline": "python3\0x.py\0",  # a name that is not the command's: stays cut
        "9/stat": stat(9, "sh", "Z", 1, 1, 2),  # a zombie: no memory, no maps
        "9/statm": "0 0 0 0 0 0 0\n",
        "10/stat": stat(10, "gone", "S", 1, 1, 1),  # ended between its stat and statm
    }
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


ROLLUP = """55d0c0a00000-7ffd1b9fe000 ---p 00000000 00:00 0                  [rollup]
Rss:               10240 kB
Pss:                6144 kB
Pss_Dirty:          3000 kB
Pss_Anon:           2500 kB
Pss_File:           3644 kB
Pss_Shmem:             0 kB
Shared_Clean:       5000 kB
Shared_Dirty:        100 kB
Private_Clean:      1000 kB
Private_Dirty:      3000 kB
Referenced:        10000 kB
Anonymous:          3100 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:    2048 kB
Swap:                  0 kB
SwapPss:               0 kB
"""


def test_snapshot_of_a_fake_proc_gives_the_figures_computed_by_hand(tmp_path: Path) -> None:
    assert os.sysconf("SC_CLK_TCK") == 100  # USER_HZ, on every Linux
    _fake_proc(tmp_path)
    got = snapshot(with_memory_maps=True, proc=str(tmp_path))
    born = got[0].threads[0][2]
    assert born is not None
    # pid 1: (250 + 75) ticks = 3.25 s; 1200 pages; USS = 1000 + 3000 + 2048 kB (Private_*),
    # PSS 6144 kB (the Pss line only, not Pss_Dirty and the like); its thread: 3.26 s in ns
    # pid 7: the whole name from its command; 8: the cut one; 9: a zombie; 10: left out
    assert got == (
        Proc(1, 0, "py) thon", 3.25, 1200 * PAGE, 6048 * 1024, 6144 * 1024, ((1, 3.26, born),)),
        Proc(7, 1, LONG, 0.04, 300 * PAGE, None, None),
        Proc(8, 1, LONG[:15], 0.0, 301 * PAGE, None, None),
        Proc(9, 1, "sh", 0.03, 0, None, None),
    )
    assert [(p.uss, p.pss) for p in snapshot(with_memory_maps=False, proc=str(tmp_path))] \
        == [(None, None)] * 4


def test_without_smaps_rollup_each_mappings_lines_are_summed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a kernel older than 4.14: psutil sums every Private_* and every Pss line of smaps
    monkeypatch.setattr(telemetry, "_SMAPS", "smaps")
    _fake_proc(tmp_path)
    (tmp_path / "1/smaps").write_text(
        "00400000-00452000 r-xp 00000000 08:02 173521  /usr/bin/python3\n"
        "Pss:                 100 kB\nPss_File:            100 kB\n"
        "Private_Clean:        40 kB\nPrivate_Dirty:         0 kB\n"
        "7ffd1b9de000-7ffd1b9ff000 rw-p 00000000 00:00 0  [stack]\n"
        "Pss:                  24 kB\nPss_Anon:             24 kB\n"
        "Private_Clean:         0 kB\nPrivate_Dirty:        24 kB\nPrivate_Hugetlb:       0 kB\n")
    first = snapshot(with_memory_maps=True, proc=str(tmp_path))[0]
    assert (first.uss, first.pss) == (64 * 1024, 124 * 1024)


def test_a_multi_workers_telemetry_does_not_import_psutil() -> None:
    # Its import costs a worker's start-up at 2/64 CPU more than all telemetry reads.
    probe = ("import json, sys, topo.agent.worker, topo.agent.telemetry as t; "
             "t.snapshot(with_memory_maps=True); print(json.dumps('psutil' in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout
    assert json.loads(out) is False


def test_children_are_psutils_with_their_states(children: dict[str, int]) -> None:
    # the fixture's processes are this process's children, the zombie among them
    me = os.getpid()
    expected = sorted((c.pid, "Z" if c.status() == psutil.STATUS_ZOMBIE else "-")
                      for c in psutil.Process(me).children())
    got = [(pid, "Z" if state == "Z" else "-") for pid, state in telemetry.children(me)]
    assert got == expected
    assert {pid for pid, _ in got} >= set(children.values())
    assert [s for pid, s in telemetry.children(me) if pid == children["zombie"]] == ["Z"]


def test_children_of_a_fake_proc(tmp_path: Path) -> None:
    _fake_proc(tmp_path)
    # pids 7, 8, 9 and 10 name 1 as their parent (9 a zombie); 1's parent is 0
    assert telemetry.children(1, proc=str(tmp_path)) == [(7, "R"), (8, "S"), (9, "Z"), (10, "S")]
    assert telemetry.children(0, proc=str(tmp_path)) == [(1, "S")]
    assert telemetry.children(7, proc=str(tmp_path)) == []


def test_the_core_read_from_proc_is_the_one_the_thread_is_pinned_to() -> None:
    # the truth from outside the reader: the affinity this test sets, one CPU at a time
    from topo.agent import common

    before = os.sched_getaffinity(0)
    try:
        for cpu in sorted(before):
            os.sched_setaffinity(0, {cpu})
            assert common._core_from_proc() == cpu
            assert psutil.Process().cpu_num() == cpu
    finally:
        os.sched_setaffinity(0, before)
