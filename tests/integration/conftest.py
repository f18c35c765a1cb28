"""Integration tests run the real Docker engine and real Redis. They fail, never skip, when
no engine answers: CI starts one (scripts/bootstrap.sh), so a missing engine is a failure."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from topo.model import (
    MultiSpec, Resources, RunSpec, Scenario, SingleSpec, Workload,
)
from topo import cleanup
from topo.plan import RUN
from topo.runtime.docker import DockerRuntime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def runtime() -> DockerRuntime:
    rt = DockerRuntime.connect()
    # What an earlier, killed test session left behind (its owner is gone), as topo does
    # at every start: the tests then count only what they make themselves.
    cleanup.sweep(rt)
    return rt


@pytest.fixture(scope="session")
def docker_client(runtime: DockerRuntime):  # type: ignore[no-untyped-def]
    return runtime.client


def leftovers(runtime: DockerRuntime, run_id: str) -> list[str]:
    """Names of containers and networks a run left behind."""
    label = f"{RUN}={run_id}"
    c = runtime.client.containers.list(all=True, filters={"label": label})
    n = runtime.client.networks.list(filters={"label": label})
    return [x.name for x in c] + [x.name for x in n]


def scenario(task: str = "cpu", tasks: int = 40, workers: int = 2, cpus: float = 1.0,
             params: dict | None = None, **kw) -> Scenario:  # type: ignore[type-arg]
    return Scenario(
        name="it",
        workload=Workload(task=task, tasks=tasks, params=params or {}, seed=3),
        workers=workers,
        resources=Resources(cpus=cpus, memory=512 * 2**20),
        single=kw.get("single", SingleSpec()),
        multi=kw.get("multi", MultiSpec()),
        run=RunSpec(repeat=kw.get("repeat", 1), warmup=0, timeout=kw.get("timeout", 120.0)),
    )


def kill_container_scenario() -> Any:
    """80 CPU tasks of 50 ms on 2 workers and 1 CPU, one container SIGKILLed at 30%: the
    Swarm tests' recovery case (multi rescheduled, single's batch gone)."""
    from topo.model import Fault

    sc = scenario(task="cpu", tasks=80, workers=2, cpus=1.0, params={"cpu_ms": 50}, timeout=90.0)
    return dataclasses.replace(sc, faults=(Fault("kc", "kill-container", at_fraction=0.3),))


# ------------------------------------------------------------------ a single-node swarm
# Swarm mode changes the shared engine: run these tests under the Docker lock, e.g.
#   flock /tmp/topo-docker.lock .venv/bin/python -m pytest -m swarm tests/integration
# The swarm is made on loopback only (nothing listens beyond 127.0.0.1) and left when the
# session ends, also when it fails (atexit covers an interrupted session); a swarm that
# existed before is left joined.

SWARM_INIT = {"advertise_addr": "127.0.0.1", "listen_addr": "127.0.0.1:2377"}


def _swarm_state(client) -> str:  # type: ignore[no-untyped-def]
    return str(client.info().get("Swarm", {}).get("LocalNodeState", ""))


@pytest.fixture(scope="session")
def swarm_runtime(runtime: DockerRuntime):  # type: ignore[no-untyped-def]
    import atexit

    from topo.runtime.swarm import SwarmRuntime

    client = runtime.client
    made = _swarm_state(client) == "inactive"
    # swarm init creates the docker_gwbridge network and leaving keeps it: ours to remove
    had_gwbridge = bool(client.networks.list(names=["docker_gwbridge"]))

    def leave() -> None:
        if made and _swarm_state(client) != "inactive":
            client.swarm.leave(force=True)
        if made and not had_gwbridge:
            for net in client.networks.list(names=["docker_gwbridge"]):
                net.remove()

    if made:
        client.swarm.init(**SWARM_INIT)
        atexit.register(leave)
    try:
        rt = SwarmRuntime.connect()
        cleanup.sweep(rt)
        yield rt
    finally:
        leave()


def swarm_leftovers(client, label: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Names of services, networks, secrets, configs, volumes and containers carrying
    ``label``, asked of the engine (not of topo's bookkeeping)."""
    f = {"label": label}
    found = [*client.services.list(filters=f), *client.secrets.list(filters=f),
             *client.configs.list(filters=f), *client.networks.list(filters=f),
             *client.volumes.list(filters=f), *client.containers.list(all=True, filters=f)]
    return [str(x.name) for x in found]
