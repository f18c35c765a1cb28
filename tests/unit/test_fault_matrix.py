"""Every fault kind x topology (and pool / queue kind) end to end on the fake runtime and its
clock: the engine injects the fault, the fake has the effect the real engine and agents
have, and the ledger comes out as computed here by hand.

The timeline all cases share (fake clock; 10 tasks of 1 s; 2 workers; fault at 30%): at
t=0 (the batch's release) worker A takes task 0 and worker B task 1; each takes the next
when done, A first on a tie. The fault is due once 3 tasks are done, which the engine sees
at t=2 (tasks 0-3 done): A holds task 4, B task 5, tasks 6-9 are queued. The ``oom``
poison task is int(0.3 * 10) = 3, which B takes at t=1. A reliable queue's lease runs out
3 s after its holder falls silent (fakes.LEASE).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.fakes import FakeRuntime, scenario
from topo import engine
from topo.ledger import build_ledger
from topo.model import Fault, Ledger, RunResult

AT = 0.3


@dataclass(frozen=True)
class Case:
    topology: str
    kind: str
    expected: Ledger  # submitted, completed, failed, lost, duplicated, retried
    status: str = "ok"
    injected: str = "injected"
    pool: str = "process-pool"
    queue: str = "reliable"
    restart: str = "on-failure"
    durable: bool = False
    duration: float | None = None


def L(completed: int, failed: int = 0, lost: int = 0, duplicated: int = 0,
      retried: int = 0) -> Ledger:
    return Ledger(10, completed, failed, lost, duplicated, retried)


CASES = {
    # single -----------------------------------------------------------------------------
    # process-pool: A dies holding 4; PID 1 fails 4, 5 and the queued 6-9.
    "single kill-worker process-pool": Case("single", "kill-worker", L(4, failed=6)),
    # mp-pool: 4 never comes back (lost); a new process does 6-9 with B. PID 1 would wait
    # 20 task times (20 s) before its stall line; the engine's 15 s without a task line
    # come first: stalled.
    "single kill-worker mp-pool": Case("single", "kill-worker", L(9, lost=1),
                                       status="stalled", pool="mp-pool"),
    # supervisor: 4 is requeued once and done by the respawned process.
    "single kill-worker supervisor": Case("single", "kill-worker", L(10, retried=1),
                                          pool="supervisor"),
    # the only container dies with 4 and 5 in hand; nobody takes 6-9 (single has no restart).
    "single kill-container": Case("single", "kill-container", L(4, lost=6),
                                  status="workers-exited"),
    "single kill-redis": Case("single", "kill-redis", L(10), injected="not-applicable"),
    # process-pool: B is OOM-killed with 3 at t=1, A holds 2: 2, 3 and 4-9 fail.
    "single oom process-pool": Case("single", "oom", L(2, failed=8)),
    "single oom mp-pool": Case("single", "oom", L(9, lost=1), status="stalled",
                               pool="mp-pool"),
    # supervisor: 3 kills three processes, is requeued twice, then given up.
    "single oom supervisor": Case("single", "oom", L(9, failed=1, retried=2),
                                  pool="supervisor"),
    # A is stopped for 5 s holding 4, finishes it after; nothing is lost or repeated.
    "single pause": Case("single", "pause", L(10), duration=5.0),
    "single partition": Case("single", "partition", L(10), injected="not-applicable",
                             duration=5.0),
    # multi ------------------------------------------------------------------------------
    # A's container dies holding 4 and restarts; its lease runs out at t=5, 4 is run again.
    "multi kill-worker reliable": Case("multi", "kill-worker", L(10, retried=1)),
    "multi kill-worker reliable no restart": Case("multi", "kill-worker", L(10, retried=1),
                                                  restart="no"),
    # BRPOP: the task in hand of the killed worker is gone.
    "multi kill-worker simple": Case("multi", "kill-worker", L(9, lost=1),
                                     status="workers-exited", queue="simple"),
    "multi kill-container reliable": Case("multi", "kill-container", L(10, retried=1)),
    # Redis comes back empty: 4 and 5 (in hand) finish; 6-9 are forgotten.
    "multi kill-redis": Case("multi", "kill-redis", L(6, lost=4), status="workers-exited"),
    "multi kill-redis durable": Case("multi", "kill-redis", L(10), durable=True),
    # no restart: 4 and 5 finish at t=3, then the workers wait for Redis (120 s) and no
    # task line comes: the engine calls it stalled 15 s later, before the 30 s timeout.
    "multi kill-redis no restart": Case("multi", "kill-redis", L(6, lost=4),
                                        status="stalled", restart="no"),
    # B dies with 3 at t=1 (and restarts); the lease gives 3 back at t=4 and t=7, each
    # delivery kills its worker; after the third it is dead-lettered at t=10.
    "multi oom reliable": Case("multi", "oom", L(9, failed=1, retried=2)),
    "multi oom simple": Case("multi", "oom", L(9, lost=1), status="workers-exited",
                             queue="simple"),
    # A is frozen 5 s holding 4: its lease runs out at t=5, B runs 4 again, and A finishes
    # it when thawed: one duplicate.
    "multi pause reliable": Case("multi", "pause", L(10, duplicated=1, retried=1),
                                 duration=5.0),
    "multi pause simple": Case("multi", "pause", L(10), queue="simple", duration=5.0),
    # A, cut off, finishes 4 but cannot acknowledge it; the lease runs out, B runs it again.
    "multi partition reliable": Case("multi", "partition", L(10, duplicated=1, retried=1),
                                     duration=5.0),
    "multi partition simple": Case("multi", "partition", L(10), queue="simple", duration=5.0),
}


def run_case(case: Case, tmp_path) -> RunResult:  # type: ignore[no-untyped-def]
    fault = Fault(name="f", kind=case.kind, at_fraction=AT, duration=case.duration)
    sc = scenario(tasks=10, workers=2, repeat=1, timeout=30.0, topologies=(case.topology,),
                  faults=(fault,), pool=case.pool, queue=case.queue, restart=case.restart)
    if case.durable:
        import dataclasses

        assert sc.multi is not None
        redis = dataclasses.replace(sc.multi.redis, appendonly="everysec")
        sc = dataclasses.replace(sc, multi=dataclasses.replace(sc.multi, redis=redis))
    runtime = FakeRuntime(task_seconds=1.0)
    clean, faulty = engine.compare(sc, runtime, tmp_path, lambda r, complete: None,
                                   run_id="m1", clock=runtime.clock)
    assert build_ledger(10, clean.records, clean.retried) == L(10) and clean.status == "ok"
    return faulty


@pytest.mark.parametrize("name", list(CASES))
def test_fault_kind_x_topology(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    case = CASES[name]
    r = run_case(case, tmp_path)
    [event] = r.fault_events
    assert event.status == case.injected, event
    assert build_ledger(r.task_count, r.records, r.retried) == case.expected
    assert r.status == case.status


def test_every_fault_kind_is_covered_on_both_topologies() -> None:
    from topo.model import FaultKind

    covered = {(c.topology, c.kind) for c in CASES.values()}
    assert covered == {(t, k) for t in ("single", "multi") for k in FaultKind}
