"""Sixteen worker containers on the real engine: all started, all ready, all removed. The
counts come from the engine (containers listed by label through the Docker API) and from
the workers' own ready lines, not from topo's list of what it deployed."""

from __future__ import annotations

from pathlib import Path

import pytest

from topo import ledger, engine as run
from topo import plan as planning
from topo.runtime.docker import DockerRuntime

from .conftest import scenario

pytestmark = pytest.mark.docker

WORKERS = 16


def test_sixteen_workers_all_ready_and_all_removed(runtime: DockerRuntime, tmp_path: Path) -> None:
    sc = scenario(task="noop", tasks=64, workers=WORKERS, cpus=2.0)
    run_id = run.new_run_id()
    name = f"topo-{run_id}-m0"
    image = runtime.ensure_image(sc)
    p = planning.plan(sc, "multi", run_id, name, image, "pw-" + run_id)
    label = f"{planning.DEPLOYMENT}={name}"
    seen: dict[str, list[str]] = {}

    def at(done: int, phase: str) -> None:
        if phase == "run" and "run" not in seen:  # every worker said it was ready
            seen["run"] = [c.name for c in runtime.client.containers.list(filters={"label": label})]

    result = run.run_one(runtime, p, tmp_path / name, index=0, warmup=False, timeout=120.0,
                         progress=at)
    assert result.status == "ok", result.error
    running = seen["run"]
    assert sorted(running) == sorted([f"{name}-redis", f"{name}-feeder"]
                                     + [f"{name}-w{i}" for i in range(WORKERS)])
    # each worker container announced its one process, by the agents' own lines
    assert sorted(w.container for w in result.workers) == sorted(f"{name}-w{i}" for i in range(WORKERS))
    lg = ledger.build_ledger(result.task_count, result.records)
    assert (lg.completed, lg.lost) == (64, 0)
    # gone from the engine: containers (running or not) and the network, by label
    assert runtime.client.containers.list(all=True, filters={"label": label}) == []
    assert runtime.client.networks.list(filters={"label": label}) == []
