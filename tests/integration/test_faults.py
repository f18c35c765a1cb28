"""Every fault kind against every topology it applies to, injected by the harness on the real
engine: the ledger identity always holds, and each outcome is the one the design expects."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from topo import ledger, engine as run
from topo.analysis.blast import blast_radius
from topo.model import Fault, MultiSpec, RunResult, SingleSpec
from topo.runtime.docker import DockerRuntime

from .conftest import leftovers, scenario

pytestmark = pytest.mark.docker

TASKS = 80


def _run(runtime: DockerRuntime, tmp_path: Path, fault: Fault, *, single: SingleSpec | None,
         multi: MultiSpec | None, memory: int = 512 * 2**20) -> list[RunResult]:
    sc = scenario(task="cpu", tasks=TASKS, workers=4, cpus=2.0, params={"cpu_ms": 40},
                  single=single, multi=multi, timeout=90.0)
    sc = dataclasses.replace(sc, faults=(fault,),
                             resources=dataclasses.replace(sc.resources, memory=memory))
    run_id = run.new_run_id()
    results = run.compare(sc, runtime, tmp_path, lambda r, complete: None, run_id=run_id)
    assert leftovers(runtime, run_id) == []
    faulty = [r for r in results if r.fault is not None]
    for r in faulty:
        lg = ledger.build_ledger(r.task_count, r.records, r.retried)
        assert lg.submitted == TASKS == lg.completed + lg.failed + lg.lost
    return faulty


def _one(results: list[RunResult]) -> tuple[RunResult, ledger.Ledger]:
    (r,) = results
    return r, ledger.build_ledger(r.task_count, r.records, r.retried)


def test_kill_worker(runtime: DockerRuntime, tmp_path: Path) -> None:
    fault = Fault("kw", "kill-worker", at_fraction=0.3)
    single, multi = _run(runtime, tmp_path, fault, single=SingleSpec(), multi=MultiSpec())
    s = ledger.build_ledger(TASKS, single.records)
    assert single.fault_events[0].status == "injected" and "/" in single.fault_events[0].target
    assert s.failed >= (TASKS - s.completed) * 0.9 and s.failed > TASKS // 2  # the pool broke
    m = ledger.build_ledger(TASKS, multi.records, multi.retried)
    assert (m.completed, m.lost, m.failed) == (TASKS, 0, 0)  # requeued, nothing lost
    b = blast_radius(multi, 4)
    assert b.workers_affected == 1 and b.survived and b.time_to_detect is not None
    assert blast_radius(single, 4).workers_affected == 4


def test_kill_worker_simple_queue_loses_the_in_flight_task(runtime: DockerRuntime, tmp_path: Path) -> None:
    fault = Fault("kw", "kill-worker", at_fraction=0.3)
    r, lg = _one(_run(runtime, tmp_path, fault, single=None, multi=MultiSpec(queue="simple")))
    assert lg.lost == 1 and lg.completed == TASKS - 1 and lg.retried == 0


def test_kill_container(runtime: DockerRuntime, tmp_path: Path) -> None:
    fault = Fault("kc", "kill-container", at_fraction=0.3)
    single, multi = _run(runtime, tmp_path, fault, single=SingleSpec(), multi=MultiSpec())
    s = ledger.build_ledger(TASKS, single.records)
    assert single.status == "workers-exited" and s.lost == TASKS - s.completed > 0
    assert any(x.kind == "exit" and x.detail == "137" for x in single.signals)
    m = ledger.build_ledger(TASKS, multi.records, multi.retried)
    assert m.completed == TASKS and m.lost == 0
    assert any(x.kind == "restart" for x in multi.signals)  # the restart policy fired
    assert blast_radius(single, 4).workers_affected == 4
    assert blast_radius(multi, 4).workers_affected == 1


def test_kill_redis_is_multis_single_point_of_failure(runtime: DockerRuntime, tmp_path: Path) -> None:
    fault = Fault("kr", "kill-redis", at_fraction=0.3)
    single, multi = _run(runtime, tmp_path, fault, single=SingleSpec(), multi=MultiSpec())
    assert single.fault_events[0].status == "not-applicable"
    assert ledger.build_ledger(TASKS, single.records).completed == TASKS
    m = ledger.build_ledger(TASKS, multi.records, multi.retried)
    # Redis kept nothing on disk: every queued task it held is gone; the ledger still balances
    assert m.lost > 0 and not blast_radius(multi, 4).survived
    assert multi.status in ("stalled", "timeout")


def test_kill_redis_with_appendonly_everysec_loses_nothing(
    runtime: DockerRuntime, tmp_path: Path
) -> None:
    fault = Fault("kr", "kill-redis", at_fraction=0.3)
    durable = MultiSpec(redis=dataclasses.replace(MultiSpec().redis, appendonly="everysec"))
    r, lg = _one(_run(runtime, tmp_path, fault, single=None, multi=durable))
    assert r.fault_events[0].status == "injected"
    # Redis replays its append-only file after the restart: the queue is still there. A
    # write of the last second may be missing; the reliable queue then runs a task again
    # (a duplicate), never loses it.
    assert (lg.completed, lg.lost, lg.failed) == (TASKS, 0, 0), r.error
    assert blast_radius(r, 4).survived
    # the append-only file went with the run
    assert [p for p in tmp_path.glob("raw/*/redis")] == []


def test_oom(runtime: DockerRuntime, tmp_path: Path) -> None:
    fault = Fault("oom", "oom", at_fraction=0.3)
    single, multi = _run(runtime, tmp_path, fault, single=SingleSpec(pool="supervisor"),
                         multi=MultiSpec(), memory=256 * 2**20)
    poison = int(0.3 * TASKS)
    for r in (single, multi):
        lg = ledger.build_ledger(TASKS, r.records, r.retried)
        failures = [x for x in r.records if not x.ok]
        assert lg.completed == TASKS - 1 and lg.failed == 1, r.topology
        assert {x.id for x in failures} == {poison}
        assert lg.retried >= 2  # the poison task was tried again, then given up (capped)
    assert any(x.kind == "oom" for x in multi.signals)


def test_pause_turns_into_a_duplicate_in_multi(runtime: DockerRuntime, tmp_path: Path) -> None:
    fault = Fault("p", "pause", at_fraction=0.3, duration=5.0)
    single, multi = _run(runtime, tmp_path, fault, single=SingleSpec(), multi=MultiSpec())
    for r in (single, multi):
        ev = r.fault_events[0]
        assert ev.status == "injected" and ev.t_end is not None and 4.9 <= ev.t_end - ev.t <= 6
        assert ledger.build_ledger(TASKS, r.records, r.retried).completed == TASKS
    m = ledger.build_ledger(TASKS, multi.records, multi.retried)
    # frozen past its heartbeat: declared dead, its task requeued and run elsewhere, then it
    # woke up and finished it too
    assert m.retried >= 1 and m.duplicated >= 1


def test_partition(runtime: DockerRuntime, tmp_path: Path) -> None:
    fault = Fault("n", "partition", at_fraction=0.3, duration=5.0)
    single, multi = _run(runtime, tmp_path, fault, single=SingleSpec(), multi=MultiSpec())
    assert single.fault_events[0].status == "not-applicable"
    ev = multi.fault_events[0]
    assert ev.status == "injected" and ev.t_end is not None and ev.error is None
    m = ledger.build_ledger(TASKS, multi.records, multi.retried)
    # cut off past its heartbeat: what it held is requeued (and, if it had finished it but
    # could not acknowledge it, run twice)
    assert m.completed == TASKS and m.lost == 0 and m.retried >= 1
