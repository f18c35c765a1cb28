"""Container states on the real engine, as the run engine polls them: what the engine itself
says (``docker inspect``, read here directly) is the truth."""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

import pytest

from topo import engine
from topo import plan as planning
from topo.engine.lifecycle import prepare_run_dir
from topo.model import MultiSpec
from topo.runtime.docker import DockerRuntime

from .conftest import leftovers, scenario

pytestmark = pytest.mark.docker


def _inspect(runtime: DockerRuntime, name: str) -> tuple[str, int]:
    attrs = runtime.client.api.inspect_container(name)  # "restarting" is Running too
    return str(attrs["State"]["Status"]), int(attrs["RestartCount"])


def test_a_restart_between_two_looks_is_seen(runtime: DockerRuntime, tmp_path: Path) -> None:
    """A worker's main process SIGKILLed and restarted by its policy between two looks: the
    listing says "running" both times, so only the engine's events can tell; then a worker
    stopped for good. Each look must say what docker inspect says."""
    sc = scenario(task="noop", tasks=4, workers=2, multi=MultiSpec(), single=None)
    run_id = engine.new_run_id()
    name = f"topo-{run_id}-m0"
    plan = planning.plan(sc, "multi", run_id, name, runtime.ensure_image(sc), secrets.token_hex(8))
    prepare_run_dir(tmp_path / name)
    dep = runtime.deploy(plan, str(tmp_path / name))
    try:
        w0, w1 = (c.name for c in dep.containers if c.role == "worker")
        first = runtime.states(dep)
        assert {n: (s.running, s.restarts) for n, s in first.items()} == {
            c.name: (True, 0) for c in dep.containers}
        pid = runtime.host_pid(w0)
        assert pid
        os.kill(pid, signal.SIGKILL)  # on-failure: the engine starts it again
        deadline = time.monotonic() + 20
        while _inspect(runtime, w0) != ("running", 1):
            assert time.monotonic() < deadline, "the restart policy did not fire"
            time.sleep(0.05)
        assert runtime.client.api.containers(all=True, filters={"name": w0})[0]["State"] == "running"
        second = runtime.states(dep)
        assert (second[w0].running, second[w0].restarts) == (True, 1)
        assert (second[w1].running, second[w1].restarts) == (True, 0)
        runtime.client.api.stop(w1, timeout=0)  # SIGKILL now: exit code 137, no restart
        third = runtime.states(dep)
        assert (third[w1].running, third[w1].exit_code, third[w1].restarts) == (False, 137, 0)
        assert third[w1].finished_at is not None and abs(third[w1].finished_at - time.time()) < 30
        assert (third[w0].running, third[w0].restarts) == (True, 1)
    finally:
        runtime.teardown(dep, name)
    assert leftovers(runtime, run_id) == []
