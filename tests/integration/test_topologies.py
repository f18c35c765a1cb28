"""Both topologies deployed on the real engine: ledger, CPU figures, cleanup."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from topo import ledger, run, stats
from topo.model import RunResult
from topo.runtime.docker import DockerRuntime

from .conftest import leftovers, scenario

pytestmark = pytest.mark.docker

CPU_MS = 20.0  # a task of known CPU cost: it spins until its process used this much CPU


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


def test_cpu_figures_match_a_task_of_known_cost(runtime: DockerRuntime, tmp_path: Path) -> None:
    tasks = 50
    sc = scenario(task="cpu", tasks=tasks, workers=2, cpus=1.0, params={"cpu_ms": CPU_MS})
    expected = tasks * CPU_MS / 1000
    for r in _compare(runtime, tmp_path, sc):
        f = stats.run_figures(r)
        assert f.ledger.completed == tasks
        # what the tasks report (process CPU time) is the known cost, within 5%
        assert f.task_cpu == pytest.approx(expected, rel=0.05)
        # the cgroup's count includes each process's own overhead, but not much of it
        assert expected * 0.97 <= f.cpu_workers <= expected * 1.10, f.cpu_workers
        # a 1-CPU budget cannot give more than one core, whatever the topology
        assert f.mean_cores is not None and f.mean_cores <= 1.05
        per = {c.role for c in f.containers}
        assert ("redis" in per) == (r.topology == "multi")


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
        f = stats.run_figures(r)
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
