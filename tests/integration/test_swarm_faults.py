"""Faults and counters through the engine of the node that runs a task container, as for a
node other than topo's: on the single-node swarm the session makes, with topo's own node
reached the engine's way (``access="engine"``). The ground truth comes from outside the
code under test: the engine's own record of each task container (its exit code, whether
it runs, its networks), Swarm's own task list (the replacement's task id), the event lines
on disk, and the cgroup files of the same containers read around each stats-API read."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import docker
import psutil
import pytest

from topo import cleanup, ledger, plan as planning, engine as run
from topo.model import DeployedContainer, Deployment
from topo.runtime.base import RawStats
from topo.runtime.docker import DockerRuntime
from topo.runtime.swarm import NodeRuntime, SwarmRuntime

from .conftest import kill_container_scenario, scenario, swarm_leftovers

pytestmark = [pytest.mark.docker, pytest.mark.swarm]


class Watched(SwarmRuntime):
    """The engine path on topo's own node. Kept for the tests: each fault's task container
    (id, task id) and how the runtime said it acted; each stats-API read bracketed by two
    cgroup reads of the same container (cgroup, API, cgroup)."""

    def __init__(self, client: docker.DockerClient) -> None:
        super().__init__(client, collect="bind", access="engine")
        self.faults: list[tuple[str, str, str, str]] = []  # (service, container, task, how)
        self.bracketed: list[tuple[str, RawStats, RawStats, RawStats]] = []
        self.cgroups = DockerRuntime(client)  # the cgroup path, for the comparison only
        # a process kill seen from this host's /proc: (host PID, gone after, container runs)
        self.process_kills: list[tuple[int, bool, bool]] = []
        # service -> its tasks at teardown: (task id, state, container id, its exit code)
        self.tasks: dict[str, list[tuple[str, str, str | None, int | None]]] = {}

    def kill(self, deployment: Deployment, name: str, pid: int | None = None) -> str:
        task = self._current(name)
        assert task is not None
        cid = task["Status"]["ContainerStatus"]["ContainerID"]
        host = _host_process(self.client, cid, pid) if pid is not None else None
        how = super().kill(deployment, name, pid)
        if host is not None:
            self.process_kills.append((host.pid, _gone(host),
                                       self.client.api.inspect_container(cid)["State"]["Running"]))
        self.faults.append((name, task["Status"]["ContainerStatus"]["ContainerID"], task["ID"], how))
        return how

    def teardown(self, deployment: Deployment | None, deployment_name: str) -> None:
        """Before the services go: Swarm's tasks of each, and the engine's record of each
        task container (id, state, exit code, container exit code, container running)."""
        for sid, service in (self._services.get(deployment_name) or {}).items():
            for t in self.client.api.tasks(filters={"service": sid}):
                cid = t["Status"].get("ContainerStatus", {}).get("ContainerID")
                state = self.client.api.inspect_container(cid)["State"] if cid else {}
                self.tasks.setdefault(service, []).append(
                    (t["ID"], t["Status"]["State"], cid, state.get("ExitCode")))
        super().teardown(deployment, deployment_name)

    def stats(self, deployment: Deployment) -> dict[str, RawStats | None]:
        out = super().stats(deployment)
        for c in deployment.containers:
            if c.role not in ("single", "worker") or out.get(c.name) is None:
                continue
            try:
                cid, node = self._where(c.name)
            except Exception:  # noqa: BLE001 - replaced meanwhile: no bracket this time
                continue
            assert isinstance(node, NodeRuntime)  # the engine path, not the cgroup one
            held = DeployedContainer(name=c.name, role=c.role, id=cid)
            before = self.cgroups._stats_of(held)
            api = node._stats_of(held)
            after = self.cgroups._stats_of(held)
            if before is not None and api is not None and after is not None:
                self.bracketed.append((c.name, before, api, after))
        return out


def _host_process(client: docker.DockerClient, cid: str, ns_pid: int) -> psutil.Process | None:
    """The host process that is ``ns_pid`` inside the container, found in /proc here (its
    NSpid line), not through topo."""
    main = psutil.Process(int(client.api.inspect_container(cid)["State"]["Pid"]))
    for p in main.children(recursive=True):
        with open(f"/proc/{p.pid}/status") as f:
            ns = [line.split()[-1] for line in f if line.startswith("NSpid:")]
        if ns and int(ns[0]) == ns_pid:
            return p
    return None


def _gone(p: psutil.Process, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


@pytest.fixture()
def no_host_signals(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every os.kill topo makes from this process: the engine path must make none."""
    sent: list[tuple[int, int]] = []
    real = os.kill

    def kill(pid: int, signo: int) -> None:
        sent.append((pid, signo))
        real(pid, signo)

    monkeypatch.setattr(os, "kill", kill)
    return sent


def _task_lines(run_dir: Path) -> int:
    """Task lines in the event files on disk, counted without topo's parser."""
    return sum(1 for f in run_dir.rglob("events/*.jsonl")
               for line in f.read_text().splitlines() if '"ev":"task"' in line)


def _lines_of(run_dir: Path, container: str) -> list[dict[str, Any]]:
    """The event lines ``container``'s processes wrote, read without topo's parser."""
    out = []
    for f in run_dir.rglob("events/*.jsonl"):
        for line in f.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if e.get("c") == container:
                out.append(e)
    return out


def test_kill_container_through_the_engine(swarm_runtime: SwarmRuntime, tmp_path: Path,
                                           no_host_signals: list[tuple[int, int]]) -> None:
    rt = Watched(swarm_runtime.client)
    sc = kill_container_scenario()
    run_id = run.new_run_id()
    results = run.compare(sc, rt, tmp_path, lambda r, complete: None, run_id=run_id)
    single, multi = [r for r in results if r.fault is not None]
    assert no_host_signals == []
    assert [(f[0], f[3]) for f in rt.faults] == [
        (single.fault_events[0].target, "engine-api"), (multi.fault_events[0].target, "engine-api")]
    client = rt.client
    for service, cid, task_id, _ in rt.faults:
        # Swarm's and the engine's own record of the killed task: failed, SIGKILLed (128 + 9)
        assert {t[0]: t for t in rt.tasks[service]}[task_id] == (task_id, "failed", cid, 137)
    # single (restart none): no other task; multi (on-failure): a replacement, a new task id
    assert [t[0] for t in rt.tasks[single.fault_events[0].target or ""]] == [rt.faults[0][2]]
    assert [t for t in rt.tasks[multi.fault_events[0].target or ""] if t[0] != rt.faults[1][2]]
    m = ledger.build_ledger(80, multi.records, multi.retried)
    assert (m.completed, m.lost) == (80, 0)
    s = ledger.build_ledger(80, single.records)
    assert 0 < s.completed < 80  # restart none: the single batch went with its container
    # Every task line on disk is in the ledger's records, and no more (both runs' folders).
    assert _task_lines(tmp_path) == len(single.records) + len(multi.records) + sum(
        len(r.records) for r in results if r.fault is None)
    # multi: Swarm replaced the killed task with a new one, which completed tasks under the
    # service's name after the kill (the replacement's id differs from the killed one's).
    ev = multi.fault_events[0]
    assert ev.t is not None
    restarts = [sg for sg in multi.signals if sg.kind == "restart" and sg.container == ev.target]
    assert restarts, multi.signals
    after = [x for x in multi.records if x.ok and x.worker.startswith(f"{ev.target}/")
             and x.start is not None and x.start > restarts[0].t]
    assert after, "the replacement task completed nothing"
    assert swarm_leftovers(client, f"{planning.RUN}={run_id}") == []


def test_kill_worker_through_the_engine(swarm_runtime: SwarmRuntime, tmp_path: Path,
                                        no_host_signals: list[tuple[int, int]]) -> None:
    """single: one pool process SIGKILLed from inside the container (exec); the container
    itself keeps running, as the engine says. multi: the worker container, by the API."""
    import dataclasses

    from topo.model import Fault

    rt = Watched(swarm_runtime.client)
    sc = dataclasses.replace(kill_container_scenario(),
                             faults=(Fault("kw", "kill-worker", at_fraction=0.3),))
    run_id = run.new_run_id()
    results = run.compare(sc, rt, tmp_path, lambda r, complete: None, run_id=run_id)
    single, multi = [r for r in results if r.fault is not None]
    assert no_host_signals == []
    (s_service, s_cid, s_task, s_how), (m_service, m_cid, m_task, m_how) = rt.faults
    assert (s_how, m_how) == ("exec", "engine-api")
    ev = single.fault_events[0]
    assert ev.status == "injected" and ev.target is not None, (single.status, single.error)
    name, _, pid = ev.target.partition("/")
    assert name == s_service and int(pid) > 1  # a pool process, not the main one
    # Seen from this host: the process of that PID died at once, its container ran on;
    # Swarm's task list: single's task container was never replaced (one task).
    ((host_pid, gone, running),) = rt.process_kills
    assert gone and running, (host_pid, gone, running)
    assert [t[0] for t in rt.tasks[s_service]] == [s_task]
    assert [x for x in single.records if x.worker == ev.target], \
        "the killed process completed nothing before the kill"
    # multi: Swarm's replacement is a new task (a new task id)
    m_tasks = {t[0]: t for t in rt.tasks[m_service]}
    assert m_tasks[m_task] == (m_task, "failed", m_cid, 137) and len(m_tasks) >= 2
    m = ledger.build_ledger(80, multi.records, multi.retried)
    assert (m.completed, m.lost) == (80, 0)
    assert swarm_leftovers(rt.client, f"{planning.RUN}={run_id}") == []


def test_cpu_through_the_stats_api_is_the_cgroup_s(swarm_runtime: SwarmRuntime,
                                                    tmp_path: Path) -> None:
    """The same container's CPU counter read through the engine's stats API lies between
    two reads of its cgroup file made just before and just after (the counter only grows);
    memory (not monotonic) within 1 MiB or 2%."""
    rt = Watched(swarm_runtime.client)
    sc = scenario(task="cpu", tasks=40, workers=2, cpus=1.0, params={"cpu_ms": 30})
    run_id = run.new_run_id()
    results = run.compare(sc, rt, tmp_path, lambda r, complete: None, run_id=run_id)
    for r in results:
        lg = ledger.build_ledger(r.task_count, r.records, r.retried)
        assert (r.status, lg.completed) == ("ok", 40), r.error
    assert len(rt.bracketed) >= 4
    busy = [b for b in rt.bracketed if b[1].cpu > 0.5]
    assert busy, "no bracket while the containers were busy"
    for name, before, api, after in rt.bracketed:
        assert before.cpu - 1e-6 <= api.cpu <= after.cpu + 1e-6, (name, before, api, after)
        assert before.throttled_periods <= api.throttled_periods <= after.throttled_periods
        low, high = min(before.memory, after.memory), max(before.memory, after.memory)
        slack = max(1 << 20, int(0.02 * high))
        assert low - slack <= api.memory <= high + slack, (name, before.memory, api.memory, after.memory)
    gaps = sorted(after.cpu - before.cpu for _, before, _, after in rt.bracketed)
    print(f"\ncgroup-API-cgroup brackets: {len(rt.bracketed)}; CPU between the two cgroup "
          f"reads: median {gaps[len(gaps) // 2] * 1e3:.2f} ms, max {gaps[-1] * 1e3:.2f} ms")
    assert swarm_leftovers(rt.client, f"{planning.RUN}={run_id}") == []


def test_partition_through_the_engine(swarm_runtime: SwarmRuntime, tmp_path: Path) -> None:
    """A worker task container disconnected from the run's overlay by its node's engine,
    then connected again. What Swarm does meanwhile is read from the engine itself: the
    container's networks and Swarm's task list for the service."""
    rt = Watched(swarm_runtime.client)
    sc = scenario(task="noop", tasks=4, workers=2)
    run_id = run.new_run_id()
    p = planning.plan(sc, "multi", run_id, f"topo-{run_id}-m0", rt.ensure_image(sc),
                      "pw-" + run_id, owner=cleanup.owner_label())
    run_dir = tmp_path / "raw"
    run.lifecycle.prepare_run_dir(run_dir)
    deployment = rt.deploy(p, str(run_dir))
    client = rt.client
    name = next(c.name for c in p.containers if c.role == "worker")
    try:
        # The cut lands on a worker that has registered: its ready line is on disk.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (rt._current(name) is None or not any(
                e["ev"] == "ready" for e in _lines_of(run_dir, name))):
            time.sleep(0.2)
        cid, node = rt._where(name)
        assert isinstance(node, NodeRuntime)
        net = str(deployment.network_id)
        assert net in _networks(client, cid)
        # Swarm's tasks before the cut: a task that failed to start earlier (the engine
        # retries one under load) is history, not a replacement of this one.
        before = {t["ID"] for t in client.api.tasks(filters={"service": name})}
        held = rt._current(name)
        assert held is not None and held["Status"]["ContainerStatus"]["ContainerID"] == cid
        rt.disconnect(deployment, name)
        assert net not in _networks(client, cid)
        time.sleep(3)  # what Swarm does with a task cut off its network
        tasks = client.api.tasks(filters={"service": name})
        seen = [(t["ID"][:8], t["Status"]["State"], t["Status"].get("Err")) for t in tasks]
        print(f"\nafter disconnect: {seen}, networks {list(_networks(client, cid))}; "
              f"the worker's lines: {[e for e in _lines_of(run_dir, name) if e['ev'] != 'procs']}")
        assert {t["ID"] for t in tasks} == before  # no new task: not replaced
        assert [t["Status"]["State"] for t in tasks if t["ID"] == held["ID"]] == ["running"]
        assert client.api.inspect_container(cid)["State"]["Running"] is True
        rt.reconnect(deployment, name)
        assert net in _networks(client, cid)
        assert rt._where(name)[0] == cid
    finally:
        rt.teardown(deployment, p.labels[planning.DEPLOYMENT])
    assert swarm_leftovers(client, f"{planning.RUN}={run_id}") == []


def _networks(client: docker.DockerClient, cid: str) -> dict[str, Any]:
    nets = client.api.inspect_container(cid)["NetworkSettings"]["Networks"] or {}
    return {v["NetworkID"]: v for v in nets.values()}


@pytest.mark.parametrize("topology", ["multi", "single"])
def test_pause_through_the_engine(swarm_runtime: SwarmRuntime, tmp_path: Path,
                                  topology: str, no_host_signals: list[tuple[int, int]]) -> None:
    """multi: the worker task container frozen and thawed by its node's engine (the engine's
    own State.Paused says so); single: one pool process stopped and continued from inside
    the container (this host's /proc says so). No signal from topo's process."""
    rt = Watched(swarm_runtime.client)
    sc = scenario(task="noop", tasks=4, workers=2)
    run_id = run.new_run_id()
    p = planning.plan(sc, topology, run_id, f"topo-{run_id}-{topology[0]}0", rt.ensure_image(sc),
                      "pw-" + run_id, owner=cleanup.owner_label())
    run_dir = tmp_path / "raw"
    run.lifecycle.prepare_run_dir(run_dir)
    deployment = rt.deploy(p, str(run_dir))
    client = rt.client
    name = next(c.name for c in p.containers if c.role in ("single", "worker"))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (rt._current(name) is None or (
                topology == "single" and not rt.workers(deployment, name))):
            time.sleep(0.2)
        cid, node = rt._where(name)
        assert isinstance(node, NodeRuntime)
        if topology == "multi":
            rt.pause(deployment, name)
            assert client.api.inspect_container(cid)["State"]["Paused"] is True
            rt.unpause(deployment, name)
            assert client.api.inspect_container(cid)["State"]["Paused"] is False
        else:
            pid = rt.workers(deployment, name)[0]
            host = _host_process(client, cid, pid)
            assert host is not None
            rt.stop_process(deployment, name, pid, True)
            assert _state_becomes(host, psutil.STATUS_STOPPED)
            rt.stop_process(deployment, name, pid, False)
            assert _state_becomes(host, psutil.STATUS_SLEEPING, psutil.STATUS_RUNNING)
        assert no_host_signals == []
    finally:
        rt.teardown(deployment, p.labels[planning.DEPLOYMENT])
    assert swarm_leftovers(client, f"{planning.RUN}={run_id}") == []


def _state_becomes(p: psutil.Process, *states: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.status() in states:
            return True
        time.sleep(0.02)
    return False
