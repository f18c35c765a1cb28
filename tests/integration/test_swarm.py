"""Both topologies as Swarm services on a single-node swarm the session makes: the same
ledger and figures, the Redis password only as a secret, Swarm's rescheduling after a
kill, and nothing of topo's left, also after a SIGKILLed ``topo compare --engine swarm``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from topo import cleanup, ledger, plan as planning, engine as run
from topo.runtime.docker import DockerRuntime
from topo.runtime.swarm import SwarmRuntime

from .conftest import kill_container_scenario, scenario, swarm_leftovers

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

TASKS = 40


def test_both_topologies_run_as_services(swarm_runtime: SwarmRuntime, tmp_path: Path) -> None:
    # The whole node's 2 cores as budget, Redis and the feeder on top: what a CPU
    # reservation made unschedulable (a worker service stayed pending).
    sc = scenario(task="cpu", tasks=TASKS, workers=4, cpus=2.0, params={"cpu_ms": 20})
    run_id = run.new_run_id()
    results = run.compare(sc, swarm_runtime, tmp_path, lambda r, complete: None, run_id=run_id)
    assert [r.topology for r in results] == ["single", "multi"]
    for r in results:
        lg = ledger.build_ledger(r.task_count, r.records, r.retried)
        assert (r.status, lg.completed, lg.failed, lg.lost) == ("ok", TASKS, 0, 0), r.error
        # CPU and memory came from the task containers' cgroups, under the planned names
        sampled = {s.container for s in r.samples if s.cpu > 0 and s.memory > 0}
        assert {c.name for c in r.containers if c.role in ("single", "worker")} <= sampled
    multi = results[1]
    # every worker container took part: the overlay network reached Redis from each
    assert len({rec.worker.partition("/")[0] for rec in multi.records}) == 4
    assert swarm_leftovers(swarm_runtime.client, f"{planning.RUN}={run_id}") == []


def test_redis_password_is_a_secret_only(swarm_runtime: SwarmRuntime, tmp_path: Path) -> None:
    sc = scenario(task="noop", tasks=4, workers=2)
    run_id = run.new_run_id()
    password = "pw-" + run_id * 4
    p = planning.plan(sc, "multi", run_id, f"topo-{run_id}-m0", swarm_runtime.ensure_image(sc),
                      password, owner=cleanup.owner_label())
    run_dir = tmp_path / "raw"
    run.lifecycle.prepare_run_dir(run_dir)
    deployment = swarm_runtime.deploy(p, str(run_dir))
    client = swarm_runtime.client
    try:
        specs = [s.attrs["Spec"] for s in client.services.list(filters={"label": f"{planning.RUN}={run_id}"})]
        assert len(specs) == len(p.containers) == 4  # redis, 2 workers, feeder
        assert password not in json.dumps(specs)
        (secret,) = client.secrets.list(filters={"label": f"{planning.RUN}={run_id}"})
        net = client.networks.get(str(deployment.network_id))
        assert (net.attrs["Driver"], net.attrs["Internal"], net.attrs["Attachable"]) == ("overlay", True, True)
        # ... and yet the workers got to Redis with it: each said it is ready
        deadline = time.monotonic() + 60
        names = {c.name for c in p.containers if c.role == "worker"}
        while not names <= _ready(run_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert names <= _ready(run_dir)
    finally:
        swarm_runtime.teardown(deployment, p.labels[planning.DEPLOYMENT])
    assert swarm_leftovers(client, f"{planning.RUN}={run_id}") == []


def _ready(run_dir: Path) -> set[str]:
    found = set()
    for f in (run_dir / "events").glob("*.jsonl"):
        for line in f.read_text().splitlines():
            ev = json.loads(line)
            if ev.get("ev") == "ready":
                found.add(ev["c"])
    return found


def test_kill_container_is_rescheduled(swarm_runtime: SwarmRuntime, tmp_path: Path) -> None:
    """multi (restart on-failure): Swarm starts a new task; the reliable queue loses nothing
    and the killed worker's name completes tasks again. single (restart none): the batch dies."""
    sc = kill_container_scenario()
    run_id = run.new_run_id()
    results = run.compare(sc, swarm_runtime, tmp_path, lambda r, complete: None, run_id=run_id)
    single, multi = [r for r in results if r.fault is not None]
    ev = multi.fault_events[0]
    assert ev.status == "injected" and ev.t is not None, (multi.status, multi.error)
    m = ledger.build_ledger(80, multi.records, multi.retried)
    assert (m.completed, m.lost) == (80, 0)
    restarts = [s for s in multi.signals if s.kind == "restart" and s.container == ev.target]
    assert restarts, multi.signals
    after = [r.end for r in multi.records if r.ok and r.worker.startswith(f"{ev.target}/")
             and r.start is not None and r.start > restarts[0].t]
    assert after, "the replacement task completed nothing"
    s = ledger.build_ledger(80, single.records)
    assert single.fault_events[0].status == "injected" and s.completed < 80
    assert swarm_leftovers(swarm_runtime.client, f"{planning.RUN}={run_id}") == []


SLOW_MULTI = """version: 1
name: swept
workload: {task: cpu, tasks: 2000, params: {cpu_ms: 50}}
workers: 2
resources: {cpus: 1, memory: 512m}
topologies:
  multi: {queue: reliable}
run: {repeat: 1, timeout: 300s}
"""


@pytest.mark.parametrize("collect", ["bind", "engine"])
def test_sigkilled_compare_is_swept(swarm_runtime: SwarmRuntime, tmp_path: Path,
                                    collect: str) -> None:
    """topo and its watchdog SIGKILLed mid-run: the next start's sweep, made with the plain
    Docker engine, removes the services, network, secret and volume (and the event reader
    when the events are collected through the engine)."""
    sc_file = tmp_path / "s.yaml"
    sc_file.write_text(SLOW_MULTI)
    proc = subprocess.Popen([sys.executable, "-m", "topo.cli", "compare", str(sc_file),
                             "--engine", "swarm", "--out", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                            env={**os.environ, "TOPO_SWARM_COLLECT": collect})
    owner = cleanup.owner_label(proc.pid)
    label = f"{planning.OWNER}={owner}"
    client = swarm_runtime.client
    try:
        deadline = time.monotonic() + 120
        while len(client.secrets.list(filters={"label": label})) == 0 or \
                len(client.services.list(filters={"label": label})) < 4:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.3)
    finally:
        for child in psutil.Process(proc.pid).children(recursive=True):
            os.kill(child.pid, signal.SIGKILL)  # the watchdog: then only the sweep is left
        proc.kill()
        proc.wait()
    made = set(swarm_leftovers(client, label))
    prefix = next(iter(made)).split("-m0")[0] + "-m0"
    assert {prefix, f"{prefix}-redis", f"{prefix}-w0", f"{prefix}-redis-password"} <= made
    if collect == "engine":  # made before the services: there by now
        assert {f"{prefix}-collect", f"{prefix}-run"} <= made
    swept = cleanup.sweep(DockerRuntime.connect())
    assert len(swept) == 1
    assert swarm_leftovers(client, label) == []
