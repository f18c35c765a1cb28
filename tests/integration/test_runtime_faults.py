"""The Runtime's fault operations on the real engine, by both paths: host PIDs (the local
fast path) and, forced, from inside the container (exec) or through the engine's API, as
for a remote engine. What they did is checked from the host's own /proc, not through topo."""

from __future__ import annotations

import dataclasses
import secrets
import time
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from topo import engine, ledger
from topo import plan as planning
from topo.engine.lifecycle import prepare_run_dir
from topo.model import Deployment, Fault, MultiSpec, SingleSpec
from topo.runtime.docker import DockerRuntime

from .conftest import leftovers, scenario

pytestmark = pytest.mark.docker


def _state(host_pid: int) -> str:
    """The process state letter (R, S, T, Z, ...) the kernel reports, or "gone"."""
    try:
        with open(f"/proc/{host_pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _becomes(host_pid: int, states: tuple[str, ...]) -> str:
    """Wait (signals are delivered asynchronously) until the process is in one of ``states``."""
    deadline = time.monotonic() + 10
    while (state := _state(host_pid)) not in states and time.monotonic() < deadline:
        time.sleep(0.02)
    return state


def _ns_pid(host_pid: int) -> int:
    with open(f"/proc/{host_pid}/status", encoding="ascii") as f:
        return int(next(ln for ln in f if ln.startswith("NSpid:")).split()[-1])


def _children(runtime: DockerRuntime, name: str) -> dict[int, int]:
    """In-container PID -> host PID of the main process's children, read on the host."""
    main = runtime.host_pid(name)
    assert main, f"{name} is not running"
    return {_ns_pid(p.pid): p.pid for p in psutil.Process(main).children()}


@pytest.fixture()
def deployed(runtime: DockerRuntime, tmp_path: Path) -> Iterator[tuple[Deployment, str]]:
    """A single container with a 3-process supervisor pool (never released: it waits) and a
    multi deployment's worker with restart on-failure, both up until the test ends."""
    sc = scenario(tasks=10, workers=3, single=SingleSpec(pool="supervisor", processes=3),
                  multi=MultiSpec())
    run_id = engine.new_run_id()
    deployments = []
    try:
        for topology in ("single", "multi"):
            name = f"topo-{run_id}-{topology[0]}0"
            plan = planning.plan(sc, topology, run_id, name, runtime.ensure_image(sc),  # type: ignore[arg-type]
                                 secrets.token_hex(8))
            prepare_run_dir(tmp_path / name)
            deployments.append(runtime.deploy(plan, str(tmp_path / name)))
        single = deployments[0].containers[0].name
        deadline = time.monotonic() + 60
        while len(_children(runtime, single)) < 3:
            assert time.monotonic() < deadline, "the pool did not start"
            time.sleep(0.2)
        yield deployments[0], run_id
    finally:
        for d in deployments:
            runtime.teardown(d, d.plan.labels[planning.DEPLOYMENT])
        assert leftovers(runtime, run_id) == []


@pytest.mark.parametrize("host_signals", [True, False], ids=["host-pid", "exec"])
def test_workers_stop_cont_and_kill_one_process(runtime: DockerRuntime, deployed, host_signals: bool) -> None:
    rt = DockerRuntime(runtime.client, host_signals=host_signals)
    dep, _ = deployed
    name = dep.containers[0].name
    on_host = _children(runtime, name)
    assert rt.workers(dep, name) == sorted(on_host) and len(on_host) == 3
    victim = min(on_host)
    rt.stop_process(dep, name, victim, True)
    assert _becomes(on_host[victim], ("T",)) == "T"
    rt.stop_process(dep, name, victim, False)
    assert _becomes(on_host[victim], ("S", "R")) in ("S", "R")
    assert all(_state(on_host[p]) != "T" for p in on_host if p != victim)  # only the one
    how = rt.kill(dep, name, victim)
    assert how == ("host-pid" if host_signals else "exec")
    assert _becomes(on_host[victim], ("gone", "Z")) in ("gone", "Z")


def test_a_main_process_killed_from_outside_restarts_through_the_api_it_does_not(
        runtime: DockerRuntime, deployed) -> None:
    """The documented difference of the two paths for a container's main process: a host
    SIGKILL fires the restart policy; the engine's kill (the remote fallback) does not."""
    _, run_id = deployed
    multi = next(c for c in runtime.client.containers.list(
        all=True, filters={"label": f"{planning.RUN}={run_id}"}) if c.name.endswith("-m0-w0"))
    dep_name = multi.labels[planning.DEPLOYMENT]
    dep = Deployment(plan=None, run_dir="", containers=(), network_id=None, t_deploy=0.0)  # type: ignore[arg-type]
    assert DockerRuntime(runtime.client, host_signals=True).kill(dep, multi.name) == "host-pid"
    deadline = time.monotonic() + 20
    while int(runtime.client.api.inspect_container(multi.name)["RestartCount"]) < 1:
        assert time.monotonic() < deadline, f"{dep_name}: the restart policy did not fire"
        time.sleep(0.1)
    while not runtime.host_pid(multi.name):
        assert time.monotonic() < deadline, "it did not come back"
        time.sleep(0.1)
    assert DockerRuntime(runtime.client, host_signals=False).kill(dep, multi.name) == "engine-api"
    time.sleep(2)  # a restart would have begun within this (it did above in well under 1 s)
    state = runtime.client.api.inspect_container(multi.name)
    assert (state["RestartCount"], state["State"]["Running"]) == (1, False)


def test_a_kill_worker_fault_through_exec_breaks_the_process_pool(runtime: DockerRuntime, tmp_path: Path) -> None:
    """The whole fault path as for a remote engine: no host PID is used."""
    rt = DockerRuntime(runtime.client, host_signals=False)
    sc = scenario(task="cpu", tasks=80, workers=4, cpus=2.0, params={"cpu_ms": 40},
                  single=SingleSpec(), timeout=90.0)
    sc = dataclasses.replace(sc, multi=None, faults=(Fault("kw", "kill-worker", at_fraction=0.3),))
    run_id = engine.new_run_id()
    results = engine.compare(sc, rt, tmp_path, lambda r, complete: None, run_id=run_id)
    assert leftovers(runtime, run_id) == []
    r = results[-1]
    [ev] = r.fault_events
    assert ev.status == "injected" and ev.target and ev.target.startswith(f"topo-{run_id}-s0f1-single/")
    lg = ledger.build_ledger(r.task_count, r.records, r.retried)
    assert lg.submitted == 80 == lg.completed + lg.failed + lg.lost
    assert lg.failed > 40  # the pool broke: every pending task failed
