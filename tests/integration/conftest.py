"""Integration tests run the real Docker engine and real Redis. They fail, never skip, when
no engine answers: CI starts one (scripts/bootstrap.sh), so a missing engine is a failure."""

from __future__ import annotations

from pathlib import Path

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
