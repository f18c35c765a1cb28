"""Celery, RQ and dramatiq as the queue, on the real engine and a real Redis: every library
completes a batch in each topology it applies to, and a killed worker's task meets the fate
the library's own semantics give it (measured here; docs/peers.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from topo import ledger, engine as run
from topo import plan as planning
from topo.model import Fault, MultiSpec, RunResult, Scenario, SingleSpec
from topo.runtime.docker import DockerRuntime

from .conftest import leftovers, scenario

pytestmark = pytest.mark.docker

TASKS = 60
KILL = Fault(name="kill-worker", kind="kill-worker", at_fraction=0.3)
VISIBILITY = 4.0  # seconds: Celery's visibility timeout in the acks-late case


def _run(runtime: DockerRuntime, tmp_path: Path, sc: Scenario, topology: str,
         fault: Fault | None = None) -> RunResult:
    run_id = run.new_run_id()
    image = runtime.ensure_image(sc)
    p = planning.plan(sc, topology, run_id, f"topo-{run_id}-{topology[0]}0", image,  # type: ignore[arg-type]
                      "pw" + run_id, fault, redis_image=runtime.redis_image(sc))
    result = run.run_one(runtime, p, tmp_path / run_id, index=0, warmup=False,
                         timeout=sc.run.timeout, fault=fault)
    assert leftovers(runtime, run_id) == []
    return result


BATCHES = [
    ("celery solo", "multi", dict(single=None, multi=MultiSpec(queue="celery"))),
    ("celery prefork", "single", dict(single=SingleSpec(pool="celery-prefork"), multi=None)),
    ("rq", "multi", dict(single=None, multi=MultiSpec(queue="rq"))),
    ("dramatiq", "multi", dict(single=None, multi=MultiSpec(queue="dramatiq"))),
]


@pytest.mark.parametrize("label, topology, specs", BATCHES, ids=[b[0] for b in BATCHES])
def test_each_library_completes_the_batch_once_per_task(
        runtime: DockerRuntime, tmp_path: Path, label: str, topology: str, specs: dict) -> None:  # type: ignore[type-arg]
    sc = scenario(task="cpu", tasks=TASKS, workers=2, params={"cpu_ms": 5}, **specs)
    r = _run(runtime, tmp_path, sc, topology)
    assert r.status == "ok", r.error
    # TASKS is what this test fed; every id from 0 to TASKS-1 ran exactly once, and ok
    assert sorted(rec.id for rec in r.records) == list(range(TASKS))
    assert all(rec.ok for rec in r.records)
    # both workers took part: the library shared the batch, it was not one process alone
    assert len({rec.worker for rec in r.records}) == 2, {rec.worker for rec in r.records}


def _killed(runtime: DockerRuntime, tmp_path: Path, topology: str, **specs: object) -> tuple[RunResult, ledger.Ledger]:
    # 100 ms tasks: the kill lands inside a task, not in the gap between two
    sc = scenario(task="cpu", tasks=40, workers=2, params={"cpu_ms": 100}, timeout=90.0, **specs)
    r = _run(runtime, tmp_path, sc, topology, KILL)
    assert r.fault_events and r.fault_events[0].status == "injected", r.fault_events
    return r, ledger.build_ledger(r.task_count, r.records, r.retried)


@pytest.mark.parametrize("label, topology, specs", [
    ("celery solo, early ack", "multi", dict(single=None, multi=MultiSpec(queue="celery"))),
    ("celery prefork, early ack", "single",
     dict(single=SingleSpec(pool="celery-prefork"), multi=None)),
    # acks_late does not save a prefork child's task: Celery acknowledges it as failed
    # (WorkerLostError) because task_reject_on_worker_lost is off by default
    ("celery prefork, acks late", "single",
     dict(single=SingleSpec(pool="celery-prefork"),
          multi=MultiSpec(queue="celery", acks_late=True, visibility_timeout=VISIBILITY))),
    ("rq", "multi", dict(single=None, multi=MultiSpec(queue="rq"))),
    # dramatiq would requeue it once the dead worker's heartbeat is 60 s old and some
    # broker runs maintenance: later than the run's stall detection (15 s of silence)
    ("dramatiq", "multi", dict(single=None, multi=MultiSpec(queue="dramatiq"))),
])
def test_a_killed_workers_task_is_lost(runtime: DockerRuntime, tmp_path: Path, label: str,
                                       topology: str, specs: dict) -> None:  # type: ignore[type-arg]
    r, lg = _killed(runtime, tmp_path, topology, **specs)
    if lg.lost == 0 and r.status == "ok" and lg.completed == r.task_count:
        # seen in CI: the kill landed between two tasks, so the killed process held none
        pytest.skip(f"{label}: the kill landed between two tasks; nothing was held to lose")
    # dramatiq's worker holds up to 2 messages (prefetch = 2 x its one thread): the running
    # one and the next are both lost (measured: 1 in one run, 2 in another)
    most = 2 if label == "dramatiq" else 1
    assert 1 <= lg.lost <= most and (lg.duplicated, lg.failed) == (0, 0), (label, r.status, lg)
    assert lg.retried == 0, (label, lg)  # nothing came back, so nothing was delivered again
    assert r.status == "stalled"  # the library never gave the task back within the run


def test_celery_acks_late_redelivers_after_the_visibility_timeout(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    r, lg = _killed(runtime, tmp_path, "multi",
                    single=None, multi=MultiSpec(queue="celery", acks_late=True,
                                                 visibility_timeout=VISIBILITY))
    assert (lg.lost, lg.duplicated, lg.failed) == (0, 0, 0), (r.status, lg)
    t_kill = r.fault_events[0].t
    assert t_kill is not None
    # Tasks are delivered in id order: the one the killed worker held is the task with an id
    # below those already started at the kill that completed well after it, and it must
    # have started again only once the visibility timeout had passed.
    started = max(rec.id for rec in r.records if rec.start is not None and rec.start < t_kill)
    back = [rec for rec in r.records if rec.id < started and rec.end > t_kill + 1.0]
    if not back:
        # seen in CI: the kill landed between two tasks, so there was nothing to redeliver
        pytest.skip("the kill landed between two tasks: the killed worker held no task")
    assert len(back) == 1, back
    assert back[0].start is not None and back[0].start - t_kill >= VISIBILITY
    # Counted as the one re-delivery it was (the count above comes from the records' times,
    # the one here from the wrapper's reading of Celery's own "redelivered" mark).
    assert lg.retried == 1, lg
    assert [s.detail for s in r.signals if s.kind == "requeue"] == [str(back[0].id)]
