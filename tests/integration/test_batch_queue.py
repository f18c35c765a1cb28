"""The reliable queue with batches (prefetch > 1) on the real engine and a real Redis: a
worker container SIGKILLed mid-batch loses nothing; the tasks it had finished but not yet
acknowledged are not run again (its marks say they were done), so at most one task, the
one whose record was written just before the kill, runs twice; and an oom poison task in a
batch is dead-lettered alone, the tasks taken with it completing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from topo import ledger, engine as run
from topo.model import Fault, MultiSpec, RunResult
from topo.runtime.docker import DockerRuntime

from .conftest import leftovers, scenario

pytestmark = pytest.mark.docker

TASKS = 200
PREFETCH = 25


def _faulty(runtime: DockerRuntime, tmp_path: Path, fault: Fault) -> RunResult:
    sc = scenario(task="cpu", tasks=TASKS, workers=2, cpus=2.0, params={"cpu_ms": 10},
                  single=None, multi=MultiSpec(prefetch=PREFETCH), timeout=120.0)
    sc = dataclasses.replace(sc, faults=(fault,),
                             resources=dataclasses.replace(sc.resources, memory=512 * 2**20))
    run_id = run.new_run_id()
    results = run.compare(sc, runtime, tmp_path, lambda r, complete: None, run_id=run_id)
    assert leftovers(runtime, run_id) == []
    (r,) = [r for r in results if r.fault is not None]
    return r


def test_a_worker_killed_mid_batch_loses_nothing_and_reruns_at_most_one(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    r = _faulty(runtime, tmp_path, Fault("kw", "kill-worker", at_fraction=0.3))
    lg = ledger.build_ledger(TASKS, r.records, r.retried)
    assert r.fault_events[0].status == "injected"
    assert (lg.completed, lg.lost, lg.failed) == (TASKS, 0, 0)
    assert lg.duplicated <= 1, f"{lg.duplicated} tasks ran twice (batch of {PREFETCH})"


def test_an_oom_task_in_a_batch_is_dead_lettered_alone(runtime: DockerRuntime,
                                                      tmp_path: Path) -> None:
    r = _faulty(runtime, tmp_path, Fault("o", "oom", at_fraction=0.3))
    lg = ledger.build_ledger(TASKS, r.records, r.retried)
    failed = {x.id for x in r.records if not x.ok}
    assert failed == {int(0.3 * TASKS)}, failed
    assert (lg.completed, lg.failed, lg.lost) == (TASKS - 1, 1, 0)
