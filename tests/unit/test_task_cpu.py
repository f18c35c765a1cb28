"""A task's CPU is its own thread's: other threads of the agent's process (telemetry, a
heartbeat) neither inflate it nor shorten the known-cost task."""

from __future__ import annotations

import os
import threading
import time

import pytest

from topo import workloads
from topo.agent.common import task_record

COST = 0.060  # seconds of CPU the cpu_ms task is asked to spend


class Burner(threading.Thread):
    """A second thread that burns CPU in pure Python (it competes for the GIL like the
    telemetry thread does) and publishes its own CPU clock as it goes."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.used = 0.0
        self.running = threading.Event()
        self.halt = threading.Event()

    def run(self) -> None:
        x = 1
        while not self.halt.is_set():
            for _ in range(500):
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            self.used = time.thread_time()
            self.running.set()


@pytest.fixture
def burner():  # type: ignore[no-untyped-def]
    b = Burner()
    b.start()
    assert b.running.wait(5)
    yield b
    b.halt.set()
    b.join(5)


def test_task_cpu_is_the_task_threads_own_while_another_thread_burns(burner: Burner) -> None:
    run = workloads.bind("cpu", {"cpu_ms": COST * 1000}, seed=1)
    b0, p0 = burner.used, time.process_time()
    record = task_record(7, "w", run, lambda: None)
    p1, b1 = time.process_time(), burner.used
    # The work this thread did, from a clock the task does not read: the process's CPU
    # minus what the other thread says it used meanwhile.
    done_here = (p1 - p0) - (b1 - b0)
    assert b1 - b0 > 0.3 * COST, "the burner did not run beside the task; the test proves nothing"
    assert done_here == pytest.approx(COST, rel=0.10), (done_here, b1 - b0, record.cpu)
    assert record.ok and record.cpu == pytest.approx(COST, abs=0.003)


def test_cpu_ms_spends_that_much_of_its_own_threads_cpu(burner: Burner) -> None:
    b0, p0 = burner.used, time.process_time()
    workloads.cpu(cpu_ms=COST * 1000)
    p1, b1 = time.process_time(), burner.used
    assert b1 - b0 > 0.3 * COST
    assert (p1 - p0) - (b1 - b0) == pytest.approx(COST, rel=0.10)


# --------------------------------------------------------------------------- telemetry


def test_thread_cpu_gives_each_thread_its_own_clock(burner: Burner) -> None:
    from topo.agent.telemetry import thread_cpu

    here = threading.get_native_id()
    mine0, b0 = time.thread_time(), burner.used
    threads = {tid: cpu for tid, cpu, _ in thread_cpu(os.getpid())}
    mine1, b1 = time.thread_time(), burner.used
    assert burner.native_id in threads and here in threads
    # Each thread's figure lies between what that thread itself read just before and after;
    # the burner publishes its clock every few hundred loop steps, hence the slack.
    assert b0 - 0.002 <= threads[burner.native_id] <= b1 + 0.005
    assert mine0 - 0.001 <= threads[here] <= mine1 + 0.001


def test_thread_cpu_reads_ticks_where_there_is_no_schedstat(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from topo.agent.telemetry import thread_cpu

    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    (tmp_path / "uptime").write_text("1000.00 1500.00\n")  # booted 1000 s ago
    (tmp_path / "42/task/42").mkdir(parents=True)
    (tmp_path / "42/task/43").mkdir()
    # utime 150, stime 50 and starttime are the 14th, 15th and 22nd fields; a ")" in the
    # name is fine
    stat = "{tid} (py) thon) S 1 1 1 0 -1 4194560 10 0 0 0 150 50 0 0 20 0 2 0 {start} 0 0\n"
    (tmp_path / "42/task/42/stat").write_text(stat.format(tid=42, start=0))
    (tmp_path / "42/task/42/schedstat").write_text("1500000000 2000 7\n")  # 1.5 s in ns
    (tmp_path / "42/task/43/stat").write_text(stat.format(tid=43, start=int(900 / tick)))
    now = time.time()
    [(t42, cpu42, born42), (t43, cpu43, born43)] = thread_cpu(42, proc=str(tmp_path))
    assert (t42, cpu42, t43, cpu43) == (42, 1.5, 43, round(200 * tick, 6))
    # born at boot, and 900 s after it: 1000 s and 100 s ago
    assert born42 == pytest.approx(now - 1000, abs=0.5)
    assert born43 == pytest.approx(now - 100, abs=0.5)
    assert thread_cpu(41, proc=str(tmp_path)) == []  # a process that is gone


# --------------------------------------------------------------------------- harness


def _proc(t: float, container: str, pid: int, *threads: tuple):  # type: ignore[no-untyped-def]
    """A telemetry pass's view of one process; threads are (tid, cpu[, born])."""
    from topo.model import ProcSample

    full = tuple((x[0], x[1], x[2] if len(x) > 2 else None) for x in threads)
    return ProcSample(t, container, pid, 0, "python3", sum(x[1] for x in full), 1, threads=full)


def _worker(container: str, pid: int, tid: int | None):  # type: ignore[no-untyped-def]
    from topo.model import WorkerInfo

    return WorkerInfo(f"{container}/{pid}", container, 95.0, 2, 2, 1.0, tid=tid)


def test_agent_threads_are_every_thread_but_the_task_thread_in_the_window() -> None:
    from topo.analysis.figures import run_figures

    from .test_stats import result, spec

    # window [100, 105]. PID 1 announced no task thread: its dispatching (tid 1) and
    # telemetry (tid 5) threads count whole; worker 7's task thread (tid 7) does not, its
    # other thread (tid 9) does. Redis is not a worker container.
    procs = []
    for t, main, tel, task, other in ((98.0, 0.5, 0.10, 0.0, 0.0), (100.0, 0.6, 0.12, 0.0, 0.0),
                                      (105.0, 1.1, 0.17, 4.0, 0.03), (107.0, 1.3, 0.20, 4.0, 0.03)):
        procs += [_proc(t, "single", 1, (1, main), (5, tel)),
                  _proc(t, "single", 7, (7, task), (9, other)),
                  _proc(t, "redis", 1, (1, 50.0 * t))]
    r = result(processes=tuple(procs), workers=(_worker("single", 7, 7),),
               containers=(spec("single", "single", 2.0, 1), spec("redis", "redis")))
    # by hand: (1.1 - 0.6) + (0.17 - 0.12) + (0.03 - 0) = 0.58
    assert run_figures(r).cpu_agents == pytest.approx(0.58)


def test_agent_threads_survive_a_restart_and_interpolate_between_passes() -> None:
    from topo.analysis.figures import run_figures

    from .test_stats import result, spec

    # w0's heartbeat (tid 3) used 0.2 s at 99 and 0.4 s at 101; the container restarted,
    # and the new process's heartbeat had used 0.05 s at 103 and 0.35 s at 106.
    procs = [_proc(t, "w0", 1, (1, 9.0), (3, hb))
             for t, hb in ((99.0, 0.2), (101.0, 0.4), (103.0, 0.05), (106.0, 0.35))]
    r = result(topology="multi", processes=tuple(procs), workers=(_worker("w0", 1, 1),),
               containers=(spec("w0"),))
    # by hand: 100..101 at 0.1 s/s = 0.1; the new process's first 0.05; 103..105 at 0.1 s/s
    # = 0.2; total 0.35
    assert run_figures(r).cpu_agents == pytest.approx(0.35)


def test_agent_threads_are_not_measured_without_thread_figures_or_a_task_thread() -> None:
    from topo.analysis.comparison import compare
    from topo.analysis.figures import run_figures

    from .test_stats import result, scenario, spec

    containers = (spec("single", "single", 2.0, 1),)
    no_threads = result(processes=(_proc(101.0, "single", 7),), containers=containers)
    assert run_figures(no_threads).cpu_agents is None
    procs = (_proc(100.0, "single", 7, (7, 1.0)), _proc(105.0, "single", 7, (7, 2.0)))
    unnamed = result(processes=procs, workers=(_worker("single", 7, None),),
                     containers=containers)
    assert run_figures(unnamed).cpu_agents is None  # the task thread would count as agent
    named = result(processes=procs, workers=(_worker("single", 7, 7),), containers=containers)
    assert run_figures(named).cpu_agents == 0.0
    rows = {row.key: row for row in compare(scenario(), [named, result(
        topology="multi", processes=procs, workers=(_worker("single", 7, 7),),
        containers=containers)]).rows}
    assert rows["cpu_agents"].label == "agent threads CPU (s)"
    assert rows["cpu_agents"].single is not None and rows["cpu_agents"].single.median == 0.0


def test_event_lines_carry_the_task_thread_and_per_thread_cpu(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from topo.events import EventLog

    lines = [
        {"ev": "ready", "w": "single/7", "c": "single", "t": 1.0, "cpu_count": 2,
         "affinity": 2, "quota": 1.0, "tid": 7},
        {"ev": "procs", "c": "single", "t": 2.0, "procs": [
            {"pid": 7, "ppid": 1, "name": "python3", "cpu": 0.5, "rss": 10,
             "thr": [[7, 0.25, 1.5], [9, 0.125, None], [11, 0.5]]}]},
    ]
    (tmp_path / "single-7.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    log = EventLog(tmp_path, 1)
    log.poll()
    assert log.workers["single/7"].tid == 7
    assert log.processes[0].threads == ((7, 0.25, 1.5), (9, 0.125, None), (11, 0.5, None))


def test_per_thread_cpu_survives_the_result_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from topo import results

    from .test_stats import result, scenario

    r = result(processes=(_proc(101.0, "single", 7, (7, 1.5, 99.5), (9, 0.25)),),
               workers=(_worker("single", 7, 7),))
    path = tmp_path / "result.json"
    results.save(path, results.to_json(scenario(), [r], {}, complete=True))
    _, [loaded], _ = results.load(path)
    assert loaded == r


def test_a_thread_born_in_the_window_counts_from_zero_when_it_was_born() -> None:
    from topo.analysis.figures import run_figures

    from .test_stats import result, spec

    # the worker's process was seen at 99 and 101 with its task thread only; tid 9, born at
    # 102, appears at 103 having used 0.3 s, and has used 0.6 s at 106
    procs = [_proc(99.0, "w0", 1, (1, 0.0)), _proc(101.0, "w0", 1, (1, 0.1)),
             _proc(103.0, "w0", 1, (1, 0.2), (9, 0.3, 102.0)),
             _proc(106.0, "w0", 1, (1, 0.3), (9, 0.6, 102.0))]
    r = result(topology="multi", processes=tuple(procs), workers=(_worker("w0", 1, 1),),
               containers=(spec("w0"),))
    # by hand: 0.3 s by 103, then 0.1 s/s until the window ends at 105: 0.5
    assert run_figures(r).cpu_agents == pytest.approx(0.5)


def test_a_thread_whose_container_ended_goes_on_at_its_rate_to_the_window_end() -> None:
    from topo.analysis.figures import run_figures

    from .test_stats import result, spec

    # window [100, 105]; PID 1's telemetry (tid 5) ran at 0.1 s/s; its last pass was at 104
    # (the container ended with the batch): 0.1 s/s over the 5 s window is 0.5 s
    containers = (spec("single", "single", 2.0, 1),)
    procs = (_proc(99.0, "single", 1, (1, 0.0), (5, 0.0)),
             _proc(104.0, "single", 1, (1, 0.0), (5, 0.5)))
    assert run_figures(result(processes=procs, containers=containers)).cpu_agents == (
        pytest.approx(0.5))
    # seen again at 104.5 without tid 5: it had ended by then, so its rate goes on to 104.5
    ended = procs + (_proc(104.5, "single", 1, (1, 0.0)),)
    assert run_figures(result(processes=ended, containers=containers)).cpu_agents == (
        pytest.approx(0.45))
