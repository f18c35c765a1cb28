"""Both topologies deployed on the real engine: ledger, CPU figures, cleanup."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from topo import ledger, engine as run
from topo.analysis import figures as figures_of
from topo.engine.config import EngineConfig
from topo.model import RunResult
from topo.runtime.docker import DockerRuntime

from .conftest import leftovers, scenario

pytestmark = pytest.mark.docker

CPU_MS = 40.0  # a task of known CPU cost: it spins until its thread used this much CPU


def _compare(runtime: DockerRuntime, tmp_path: Path, sc) -> list[RunResult]:  # type: ignore[no-untyped-def]
    saved: list[bool] = []
    run_id = run.new_run_id()
    results = run.compare(sc, runtime, tmp_path, lambda r, complete: saved.append(complete),
                          run_id=run_id)
    assert saved[-1] is True and len(saved) == len(results) + 2  # first, after each, final
    assert leftovers(runtime, run_id) == []
    return results


def test_both_topologies_complete_every_task_once(runtime: DockerRuntime, tmp_path: Path) -> None:
    sc = scenario(task="cpu", tasks=60, workers=3, cpus=1.5, params={"cpu_ms": 5})
    results = _compare(runtime, tmp_path, sc)
    assert [r.topology for r in results] == ["single", "multi"]
    for r in results:
        assert r.status == "ok", r.error
        lg = ledger.build_ledger(r.task_count, r.records, r.retried)
        assert (lg.completed, lg.failed, lg.lost, lg.duplicated) == (60, 0, 0, 0)
        assert sorted(rec.id for rec in r.records) == list(range(60))
        # every attempt was timed where it ran, inside the batch window
        assert all(r.t_available <= rec.start <= rec.end for rec in r.records)
        workers = {rec.worker for rec in r.records}
        assert len(workers) == 3, workers  # the work was shared by all three workers
        assert len(r.workers) == 3 and all(w.quota is not None for w in r.workers)


def test_cgroup_cpu_is_the_known_task_cost_plus_the_measured_agent_threads(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    """The truth is the cgroup's CPU of the worker containers (cpuacct, read by the
    harness from outside), in the makespan window; it must be the tasks' cost known by
    construction plus the agents' own threads as the telemetry measured them, within 3%.
    A task that spun on a clock the telemetry and heartbeat threads also advance would do
    less than it claims, and the cgroup would fall short of this sum."""
    tasks, cost = 150, CPU_MS / 1000
    sc = scenario(task="cpu", tasks=tasks, workers=2, cpus=1.0, params={"cpu_ms": CPU_MS})
    for r in _compare(runtime, tmp_path, sc):
        f = figures_of.run_figures(r)
        assert (f.ledger.completed, f.ledger.duplicated) == (tasks, 0), (r.status, r.error)
        assert f.cpu_agents is not None and f.cpu_agents > 0, r.topology  # telemetry, at least
        predicted = tasks * cost + f.cpu_agents
        assert f.cpu_workers == pytest.approx(predicted, rel=0.03), (
            r.topology, f.cpu_workers, tasks * cost, f.cpu_agents)
        # what each task recorded is its own thread's CPU: the cost it was asked to spend
        assert f.task_cpu == pytest.approx(tasks * cost, rel=0.01)
        # a 1-CPU budget cannot give more than one core, whatever the topology
        assert f.mean_cores is not None and f.mean_cores <= 1.05
        per = {c.role for c in f.containers}
        assert ("redis" in per) == (r.topology == "multi")


def test_single_cpu_counts_to_the_end_of_its_batch(runtime: DockerRuntime,
                                                   tmp_path: Path) -> None:
    """single's container used to leave with its last task, and its cgroup (its CPU counter)
    with it: whether the harness's last pass still found it was a race between PID 1's
    exit and the harness noticing the batch's end (on a quiet machine the pass came 10-50
    ms after the last task, before the exit). Here the harness is slow on purpose: it reads
    the event files once a second and the cgroups once every 10 s, so the container had
    long gone, and its CPU read as the deploy-time sample's ~0. PID 1 now stays, idle,
    until teardown, after the last pass. The truth: the known cost of the tasks (each
    spins until its own thread has used 100 ms of CPU)."""
    tasks, cost = 20, 100 / 1000
    sc = scenario(task="cpu", tasks=tasks, workers=2, cpus=1.0, params={"cpu_ms": 100},
                  multi=None)
    results = run.compare(sc, runtime, tmp_path, lambda r, complete: None,
                          config=EngineConfig(sample_hz=0.1, poll=1.0))
    (r,) = results
    f = figures_of.run_figures(r)
    assert (r.status, f.ledger.completed) == ("ok", tasks), r.error
    (single,) = [c for c in f.containers if c.role == "single"]
    assert single.cpu_total >= 0.97 * tasks * cost, (single.cpu_total, tasks * cost)
    assert single.cpu_total <= 1.5 * tasks * cost  # the agent's own part is small


NEIGHBOUR = """
import threading
import time

from topo import workloads

_started = []


def _burn():
    while True:  # about 3 ms of CPU in every 10 ms, as long as the process lives
        stop = time.thread_time() + 0.003
        while time.thread_time() < stop:
            pass
        time.sleep(0.007)


def run(seed=0, cpu_ms=0.0):
    if not _started:  # once per worker process, at its first task
        _started.append(threading.Thread(target=_burn, daemon=True))
        _started[0].start()
    return workloads.cpu(seed=seed, cpu_ms=cpu_ms)
"""


def test_a_busy_thread_beside_the_task_is_not_task_cpu(runtime: DockerRuntime,
                                                       tmp_path: Path) -> None:
    """The agents' own threads cost too little to show a bias on this scale, so a neighbour
    thread that burns ~30% of a core sits beside every task (the role telemetry and
    heartbeat play, louder). Its CPU must come out as agent threads, not task CPU, and each
    task must still do its full known cost: the cgroup says whether it did."""
    import dataclasses

    folder = tmp_path / "workload"
    folder.mkdir()
    (folder / "neighbour.py").write_text(NEIGHBOUR)
    tasks, cost = 100, CPU_MS / 1000
    sc = scenario(task="neighbour:run", tasks=tasks, workers=2, cpus=1.0,
                  params={"cpu_ms": CPU_MS})
    sc = dataclasses.replace(sc, workload=dataclasses.replace(sc.workload, path=str(folder)))
    for r in _compare(runtime, tmp_path, sc):
        f = figures_of.run_figures(r)
        assert f.ledger.completed == tasks, (r.status, r.error)
        assert f.cpu_agents is not None and f.cpu_agents > 0.1 * tasks * cost, (
            r.topology, f.cpu_agents)  # the neighbour really ran beside the tasks
        assert f.task_cpu == pytest.approx(tasks * cost, rel=0.01)
        assert f.cpu_workers == pytest.approx(tasks * cost + f.cpu_agents, rel=0.03), (
            r.topology, f.cpu_workers, tasks * cost, f.cpu_agents)


def test_cpu_quota_is_what_the_workers_see(runtime: DockerRuntime, tmp_path: Path) -> None:
    sc = scenario(task="noop", tasks=10, workers=2, cpus=1.0)
    single, multi = _compare(runtime, tmp_path, sc)
    assert [w.quota for w in single.workers] == [pytest.approx(1.0)] * 2
    assert [w.quota for w in multi.workers] == [pytest.approx(0.5)] * 2
    # the cpu_count trap: the quota does not change what os.cpu_count() says
    import os
    assert {w.cpu_count for w in single.workers + multi.workers} == {os.cpu_count()}


def test_throughput_agrees_with_an_external_count(runtime: DockerRuntime, tmp_path: Path) -> None:
    sc = scenario(task="io", tasks=40, workers=4, cpus=1.0, params={"ms": 20})
    for r in _compare(runtime, tmp_path, sc):
        f = figures_of.run_figures(r)
        # read the raw event files the agents wrote, independently of topo.events/ledger:
        # when the batch became available, and each task's first successful end
        available: list[float] = []
        first_end: dict[int, float] = {}
        for p in (tmp_path / "raw").glob(f"*-{r.topology[0]}0/events/*.jsonl"):
            for line in p.read_text().splitlines():
                ev = json.loads(line)
                if ev["ev"] == "avail":
                    available.append(ev["t"])
                elif ev["ev"] == "task" and ev["ok"]:
                    first_end[ev["id"]] = min(ev["t1"], first_end.get(ev["id"], ev["t1"]))
        assert sorted(first_end) == list(range(40)) and f.ledger.completed == 40
        makespan = max(first_end.values()) - min(available)
        assert f.makespan == pytest.approx(makespan, abs=1e-6)
        assert f.throughput == pytest.approx(40 / makespan, rel=1e-6)


def test_cores_reported_match_the_cpuset(runtime: DockerRuntime, tmp_path: Path) -> None:
    import dataclasses

    sc = scenario(task="cpu", tasks=30, workers=2, cpus=1.0, params={"cpu_ms": 5})
    sc = dataclasses.replace(sc, resources=dataclasses.replace(sc.resources, cpuset="1"))
    for r in _compare(runtime, tmp_path, sc):
        assert {rec.core for rec in r.records} == {1}, r.topology
        assert {w.affinity for w in r.workers} == {1}  # sched_getaffinity follows the cpuset


def test_stats_api_fallback_agrees_with_the_cgroup_files(runtime: DockerRuntime) -> None:
    from topo.runtime import cgroup
    from topo.runtime.docker import stats_from_api

    image = runtime.ensure_image(scenario())
    c = runtime.client.containers.run(
        image, ["python3", "-c", "import time; x = sum(range(3 * 10**7)); time.sleep(60)"],
        detach=True, network_mode="none", labels={"topo.managed": "true", "topo.run": "apifb"},
        user="10001:10001",
    )
    try:
        paths = None
        for _ in range(100):  # until the busy part is over and the counters stand still
            c.reload()
            paths = paths or cgroup.paths_of(int(c.attrs["State"]["Pid"]))
            a = cgroup.read(paths) if paths else None
            time.sleep(0.2)
            b = cgroup.read(paths) if paths else None
            if a and b and a.cpu > 0.3 and b.cpu - a.cpu < 0.001:
                break
        assert paths is not None and b is not None
        api = stats_from_api(runtime.client.api.stats(c.id, stream=False, one_shot=True))
        assert api is not None
        assert api.cpu == pytest.approx(b.cpu, abs=0.01)
        assert api.memory == pytest.approx(b.memory, rel=0.2)
        assert api.pids == b.pids == 1
    finally:
        c.remove(force=True)
