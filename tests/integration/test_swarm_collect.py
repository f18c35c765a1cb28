"""The event lines collected through the engine (as from a node elsewhere), not through a
volume bound onto the run folder: on the single-node swarm the session makes, with
collection forced onto the engine path. The ledger must hold exactly the lines the volumes
hold, counted afterwards by a container of our own that reads the volume."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from topo import ledger, plan as planning, engine as run
from topo.model import RunResult
from topo.runtime.swarm import SwarmRuntime
from topo.runtime.swarm_collect import volume_name

from .conftest import kill_container_scenario, scenario, swarm_leftovers

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

# Lines, and task lines, of every event file of the volume mounted at /v.
COUNT = ("cat /v/events/*.jsonl | wc -l; "
         "cat /v/events/*.jsonl | grep -c '\"ev\":\"task\"' || true")


class CountingSwarm(SwarmRuntime):
    """Engine collection; after the final drain and before the volume goes, its lines are
    counted from outside topo: (deployment, volume options, lines, task lines)."""

    def __init__(self, client: docker.DockerClient) -> None:
        super().__init__(client, collect="engine")
        self.counted: list[tuple[str, dict[str, str], int, int]] = []

    def finish_collection(self, deployment_name: str) -> None:
        first = deployment_name in self._collectors and not self._collectors[deployment_name].drained
        super().finish_collection(deployment_name)
        if not first:
            return
        vol = volume_name(deployment_name)
        options = self.client.volumes.get(vol).attrs.get("Options") or {}
        out = self.client.containers.run(
            "topo-base:bookworm", ["sh", "-c", COUNT], remove=True, network_mode="none",
            volumes={vol: {"bind": "/v", "mode": "ro"}})
        lines, tasks = (int(x) for x in out.decode().split())
        self.counted.append((deployment_name, dict(options), lines, tasks))


def _mirrored_lines(out: Path) -> int:
    return sum(len(f.read_bytes().splitlines()) for f in out.rglob("events/*.jsonl"))


def _check_counts(rt: CountingSwarm, results: list[RunResult], out: Path) -> None:
    assert len(rt.counted) == len(results)
    for (name, options, lines, tasks), r in zip(rt.counted, results):
        assert "device" not in options, options  # not the run folder: the engine path was used
        assert len(r.records) == tasks, (name, r.topology)
    assert _mirrored_lines(out) == sum(c[2] for c in rt.counted)


def test_both_topologies_collected_through_the_engine(swarm_runtime: SwarmRuntime,
                                                      tmp_path: Path) -> None:
    rt = CountingSwarm(swarm_runtime.client)
    sc = scenario(task="cpu", tasks=40, workers=2, cpus=1.0, params={"cpu_ms": 20})
    run_id = run.new_run_id()
    results = run.compare(sc, rt, tmp_path, lambda r, complete: None, run_id=run_id)
    assert [r.topology for r in results] == ["single", "multi"]
    for r in results:
        lg = ledger.build_ledger(r.task_count, r.records, r.retried)
        assert (r.status, lg.completed, lg.failed, lg.lost) == ("ok", 40, 0, 0), r.error
        assert r.t_ready is not None and r.t_available is not None
    _check_counts(rt, results, tmp_path)
    assert swarm_leftovers(rt.client, f"{planning.RUN}={run_id}") == []


def test_killed_container_lines_are_collected(swarm_runtime: SwarmRuntime,
                                              tmp_path: Path) -> None:
    """The killed worker's lines written before the kill reach the ledger; multi's
    replacement task appends to the same volume and the batch completes."""
    rt = CountingSwarm(swarm_runtime.client)
    sc = kill_container_scenario()
    run_id = run.new_run_id()
    results = run.compare(sc, rt, tmp_path, lambda r, complete: None, run_id=run_id)
    single, multi = [r for r in results if r.fault is not None]
    for r in (single, multi):
        ev = r.fault_events[0]
        assert ev.status == "injected" and ev.t is not None, (r.status, r.error)
        before = [x for x in r.records if x.worker.partition("/")[0] == ev.target and x.end < ev.t]
        assert before, f"{r.topology}: nothing of {ev.target} from before the kill"
    m = ledger.build_ledger(80, multi.records, multi.retried)
    assert (m.completed, m.lost) == (80, 0)
    s = ledger.build_ledger(80, single.records)
    assert 0 < s.completed < 80
    _check_counts(rt, results, tmp_path)
    assert swarm_leftovers(rt.client, f"{planning.RUN}={run_id}") == []
