"""Blast radius of hand-built runs whose answers are known by construction.

Every worker finishes one task every 0.1 s: tick k ends at k/10 s and started at (k-1)/10,
with the batch available at t=0. Four workers give 40 tasks/s, so the steady rate before a
fault at tf=5.05 is 40/s (0.5 s buckets of 20 completions), 90% of it is 36 completions in
the trailing second, and a bucket with one worker missing holds 15 (30/s, a 25% dip).
Faults land at x.x5 s, between ticks, so no completion sits on a bucket edge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest

from topo.analysis.blast import blast_radius, default_window, timeline
from topo.model import (
    ContainerSpec,
    Fault,
    FaultEvent,
    RunResult,
    Signal,
    TaskRecord,
    WorkerInfo,
)

TF = 5.05
BEFORE = range(1, 51)  # ticks 0.1 .. 5.0 s
AFTER = range(51, 101)  # ticks 5.1 .. 10.0 s


class Batch:
    """Task records of a hand-built run; ids are handed out in the order ticks are added."""

    def __init__(self) -> None:
        self.records: list[TaskRecord] = []
        self.next_id = 0

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def ticks(self, worker: str, ks: Iterable[int]) -> None:
        for k in ks:
            self.records.append(TaskRecord(self.new_id(), worker, True, (k - 1) / 10, k / 10))

    def add(self, task: int, worker: str, ok: bool, start: float | None, end: float) -> None:
        self.records.append(TaskRecord(task, worker, ok, start, end, error=None if ok else "x"))


def run(
    batch: Batch,
    fault: Fault,
    event: FaultEvent,
    *,
    topology: str = "single",
    workers: Iterable[str] = (),
    containers: tuple[ContainerSpec, ...] = (),
    signals: tuple[Signal, ...] = (),
    task_count: int | None = None,
    **changes: object,
) -> RunResult:
    fields: dict[str, object] = dict(
        topology=topology,
        index=0,
        warmup=False,
        status="ok",
        error=None,
        task_count=batch.next_id if task_count is None else task_count,
        t_deploy=-2.0,
        t_ready=-1.0,
        t_available=0.0,
        t_end=10.5,
        records=tuple(batch.records),
        samples=(),
        workers=tuple(WorkerInfo(w, w.split("/")[0], -1.0, 8, 8, None) for w in workers),
        containers=containers,
        fault=fault,
        fault_events=(event,),
        signals=signals,
    )
    fields.update(changes)
    return RunResult(**fields)  # type: ignore[arg-type]


def spec(name: str, role: str, processes: int) -> ContainerSpec:
    return ContainerSpec(name, role, ("run",), 1.0, 1 << 30, processes=processes)


POOL = ("s/11", "s/12", "s/13", "s/14")
CONTAINERS = ("m-w0", "m-w1", "m-w2", "m-w3")
MULTI_SPECS = tuple(spec(c, "worker", 1) for c in CONTAINERS) + (spec("m-redis", "redis", 0),)
KILL = Fault("one worker dies", "kill-worker", at_seconds=TF)


def injected(fault: Fault, target: str | None, t: float = TF, **changes: object) -> FaultEvent:
    return FaultEvent(fault.name, fault.kind, "injected", t, target=target, **changes)


# --------------------------------------------------------------------------- kill, respawn


def killed_and_respawned() -> RunResult:
    """s/11 is killed at 5.05; its in-flight task is written off at 5.3; a new process
    s/15 starts at 7.0, redoes that task first (done 7.1) and then keeps pace."""
    batch = Batch()
    for worker in POOL:
        batch.ticks(worker, BEFORE)
    in_flight = batch.new_id()
    batch.add(in_flight, "s/11", False, 5.0, 5.3)
    for worker in POOL[1:]:
        batch.ticks(worker, AFTER)
    batch.add(in_flight, "s/15", True, 7.0, 7.1)
    batch.ticks("s/15", range(72, 101))
    return run(batch, KILL, injected(KILL, "s/11"), workers=(*POOL, "s/15"),
               containers=(spec("s", "single", 4),), retried=1)


def test_a_killed_worker_that_is_replaced():
    radius = blast_radius(killed_and_respawned(), workers=4)
    assert (radius.fault, radius.kind, radius.topology, radius.status) == (
        "one worker dies", "kill-worker", "single", "injected")
    assert (radius.workers, radius.workers_affected, radius.share_affected) == (4, 1, 0.25)
    assert (radius.failed, radius.lost, radius.duplicated, radius.retried) == (0, 0, 0, 1)
    # Lowest bucket: [5.05, 5.55) holds ticks 5.1..5.5 of three workers = 15 → 30/s.
    assert radius.throughput_dip == 0.25
    assert radius.time_to_detect == pytest.approx(5.3 - TF)  # the written-off task
    # Back at 36 in (6.6, 7.6]: 30 from the three + s/15's 7.1..7.6.
    assert radius.time_to_recover == pytest.approx(7.6 - TF)
    assert radius.survived


def test_the_window_is_ten_service_times_but_at_least_five_seconds():
    assert default_window(killed_and_respawned()) == 5.0
    batch = Batch()
    batch.add(0, "s/11", True, 0.0, 1.0)
    batch.add(1, "s/11", True, 1.0, 3.0)
    batch.add(2, "s/11", True, 3.0, 3.5)
    assert default_window(run(batch, KILL, injected(KILL, None))) == 10.0  # median 1 s
    assert default_window(run(Batch(), KILL, injected(KILL, None))) == 5.0


def test_timeline_buckets_from_t_available_keep_the_last_partial_bucket():
    batch = Batch()
    for end in (0.1, 0.6, 1.0, 1.1):
        batch.add(batch.new_id(), "s/11", True, end - 0.1, end)
    assert timeline(run(batch, KILL, injected(KILL, None))) == [
        (0.0, 2.0), (0.5, 2.0), (1.0, 4.0)]
    full = timeline(killed_and_respawned())
    assert full[:2] == [(0.0, 32.0), (0.5, 40.0)]  # ticks 0.1..0.4, then 0.5..0.9
    assert sum(rate * 0.5 for _, rate in full) == 380  # every first completion, once
    assert timeline(run(Batch(), KILL, injected(KILL, None))) == []


# --------------------------------------------------------------------------- broken pool


def broken_pool(**changes: object) -> RunResult:
    """ProcessPoolExecutor: killing s/11 breaks the pool; PID 1 writes every pending task
    off under the container's name at 5.15 and exits 0."""
    batch = Batch()
    for worker in POOL:
        batch.ticks(worker, BEFORE)
    for _ in range(200):
        batch.add(batch.new_id(), "s", False, None, 5.15)
    signals = (Signal(5.2, "exit", "s", "0"),)
    return run(batch, KILL, injected(KILL, "s/11"), workers=POOL, signals=signals,
               status="workers-exited", **changes)


def test_a_broken_process_pool_takes_every_worker_with_it():
    radius = blast_radius(broken_pool(), workers=4)
    # No container spec here: the pool's size is the processes seen in the container.
    assert radius.workers_affected == 4
    assert (radius.failed, radius.lost, radius.duplicated) == (200, 0, 0)
    assert radius.throughput_dip == 1.0  # not one completion after the fault
    assert radius.time_to_detect == pytest.approx(0.1)  # the failures, not the exit 0
    assert radius.time_to_recover is None
    assert not radius.survived


def test_affected_workers_are_capped_at_n_and_a_planned_pool_counts_in_full():
    assert blast_radius(broken_pool(), workers=3).workers_affected == 3
    planned = broken_pool(containers=(spec("s", "single", 6),))
    assert blast_radius(planned, workers=6).workers_affected == 6


# --------------------------------------------------------------------------- pause


def paused_then_duplicated() -> RunResult:
    """multi: m-w1 is frozen 5.05-7.05 holding task X (started 5.0); the reaper requeues X
    at 6.45, m-w0 does it in its 6.6 slot, and m-w1 finishes its own copy at 7.1 on waking."""
    pause = Fault("freeze", "pause", at_seconds=TF, duration=2.0)
    batch = Batch()
    workers = [f"{c}/1" for c in CONTAINERS]
    for worker in workers:
        batch.ticks(worker, BEFORE)
    task_x = batch.new_id()
    batch.ticks("m-w0/1", range(51, 66))
    batch.add(task_x, "m-w0/1", True, 6.5, 6.6)
    batch.ticks("m-w0/1", range(67, 101))
    for worker in workers[2:]:
        batch.ticks(worker, AFTER)
    batch.add(task_x, "m-w1/1", True, 5.0, 7.1)
    batch.ticks("m-w1/1", range(72, 101))
    signals = (Signal(6.45, "requeue", "m-w1", str(task_x)),)
    return run(batch, pause, injected(pause, "m-w1", t_end=7.05), topology="multi",
               workers=workers, containers=MULTI_SPECS, signals=signals, retried=1)


def test_a_paused_worker_that_resumes_leaves_a_duplicate():
    radius = blast_radius(paused_then_duplicated(), workers=4)
    assert radius.workers_affected == 1
    assert (radius.failed, radius.lost, radius.duplicated, radius.retried) == (0, 0, 1, 1)
    assert radius.throughput_dip == 0.25
    assert radius.time_to_detect == pytest.approx(6.45 - TF)  # the requeue
    # m-w1's 7.1 is a duplicate and adds nothing; 36 are back in (6.7, 7.7].
    assert radius.time_to_recover == pytest.approx(7.7 - TF)
    assert radius.survived


# --------------------------------------------------------------------------- evidence


def test_each_kind_of_evidence_marks_the_worker_it_names():
    """Every worker keeps pace throughout, so silence marks nobody; the fault has no target."""
    redis_dies = Fault("redis dies", "kill-redis", at_seconds=TF)
    batch = Batch()
    workers = [f"{c}/1" for c in CONTAINERS]
    for worker in workers:
        batch.ticks(worker, range(1, 101))
    batch.add(batch.new_id(), "m-w0/1", False, 5.2, 5.25)  # m-w0 failed a task it ran
    batch.add(batch.new_id(), "m-w1/1", False, None, 5.3)  # a reaper's write-off: nobody
    signals = (
        Signal(5.1, "exit", "m-redis", "137"),  # not a worker container
        Signal(5.4, "exit", "m-w1", "0"),  # finished cleanly: no damage
        Signal(5.5, "exit", "m-w2", "137"),
        Signal(5.6, "requeue", "m-w3", "17"),
        Signal(9.0, "oom", "m-w1", ""),  # after the 1 s window
    )
    result = run(batch, redis_dies, injected(redis_dies, "m-redis"), topology="multi",
                 workers=workers, containers=MULTI_SPECS, signals=signals)
    assert blast_radius(result, workers=4, window=1.0).workers_affected == 3
    assert blast_radius(result, workers=4).workers_affected == 4  # the oom is in 5 s
    assert blast_radius(result, workers=4).time_to_detect == pytest.approx(0.05)


# --------------------------------------------------------------------------- not injected


def test_a_fault_that_does_not_apply_still_reports_its_ledger():
    redis_dies = Fault("redis dies", "kill-redis", at_fraction=0.3)
    batch = Batch()
    for worker in POOL:
        batch.ticks(worker, range(1, 101))
    event = FaultEvent("redis dies", "kill-redis", "not-applicable", None,
                       error="single has no redis")
    radius = blast_radius(run(batch, redis_dies, event, workers=POOL), workers=4)
    assert radius.status == "not-applicable"
    assert (radius.workers_affected, radius.failed, radius.lost, radius.duplicated) == (0, 0, 0, 0)
    assert (radius.throughput_dip, radius.time_to_detect, radius.time_to_recover) == (
        None, None, None)
    assert radius.survived


# --------------------------------------------------------------------------- no progress


def test_a_batch_that_stops_dead_after_the_fault():
    """multi, kill-redis: nothing completes after 5.05, the workers report errors, half
    the batch is lost and the run times out."""
    redis_dies = Fault("redis dies", "kill-redis", at_fraction=0.5)
    batch = Batch()
    workers = [f"{c}/1" for c in CONTAINERS]
    for worker in workers:
        batch.ticks(worker, BEFORE)
    signals = (Signal(5.1, "exit", "m-redis", "137"), Signal(5.25, "error", "m-w0", "conn"))
    result = run(batch, redis_dies, injected(redis_dies, "m-redis"), topology="multi",
                 workers=workers, containers=MULTI_SPECS, signals=signals, task_count=400,
                 status="timeout", t_end=300.0)
    radius = blast_radius(result, workers=4)
    assert radius.workers_affected == 4  # all silent through the window
    assert (radius.failed, radius.lost) == (0, 200)
    assert radius.throughput_dip == 1.0
    assert radius.time_to_detect == pytest.approx(0.05)  # redis's exit
    assert radius.time_to_recover is None
    assert not radius.survived
    # A 0.1 s window is too short to call anyone silent; redis is not a worker.
    assert blast_radius(result, workers=4, window=0.1).workers_affected == 0


def test_a_fault_after_the_last_completion_or_before_the_first():
    batch = Batch()
    for worker in POOL:
        batch.ticks(worker, BEFORE)
    late = blast_radius(run(batch, KILL, injected(KILL, "s/11", t=6.0), workers=POOL), 4)
    assert late.workers_affected == 1  # the target, though it had nothing left to do
    assert (late.throughput_dip, late.time_to_detect, late.time_to_recover) == (None, None, None)
    assert late.survived
    early = blast_radius(run(batch, KILL, injected(KILL, "s/11", t=0.05), workers=POOL), 4)
    assert (early.throughput_dip, early.time_to_recover) == (None, None)  # no rate before


def test_a_fault_with_no_visible_effect_recovers_at_once():
    batch = Batch()
    for worker in POOL:
        batch.ticks(worker, range(1, 101))
    radius = blast_radius(run(batch, KILL, injected(KILL, None), workers=POOL), 4)
    assert (radius.workers_affected, radius.throughput_dip, radius.time_to_recover) == (
        0, 0.0, 0.0)
    assert radius.time_to_detect is None


def test_a_run_without_a_fault_has_no_blast_radius():
    batch = Batch()
    batch.ticks("s/11", BEFORE)
    with pytest.raises(ValueError):
        blast_radius(dataclasses.replace(run(batch, KILL, injected(KILL, None)), fault=None), 4)


def test_a_supervisor_losing_one_process_affects_one_worker(tmp_path):
    """The supervisor's own lines (a process exited, its task requeued) name the process, so
    only that process counts, not its whole container."""
    from topo.events import EventLog

    events = tmp_path / "events"
    events.mkdir()
    (events / "c-1.jsonl").write_text(
        '{"ev":"exit","c":"c","w":"c/8","t":10.0,"code":-9}\n'
        '{"ev":"requeue","id":3,"w":"c/8","by":"c/1","t":10.0}\n'
    )
    log = EventLog(events, 4)
    log.poll()
    assert [(s.kind, s.container, s.detail) for s in log.signals] == [
        ("exit", "c/8", "-9"), ("requeue", "c/8", "3")]


def test_redis_killed_every_worker_goes_silent_after_its_task_in_flight() -> None:
    """Redis dies at 5.05 s: each worker still finishes the task it held (at 5.1 s), then
    nothing more comes; 100 tasks are lost. Every worker was affected, though none died."""
    batch = Batch()
    for worker in CONTAINERS:
        batch.ticks(f"{worker}/1", range(1, 52))  # the last tick, 5.1 s, is after tf
    fault = Fault("redis dies", "kill-redis", at_seconds=TF)
    r = run(batch, fault, injected(fault, "m-redis"), topology="multi",
            containers=MULTI_SPECS, task_count=batch.next_id + 100, status="stalled", t_end=25.0)
    b = blast_radius(r, 4)
    assert (b.workers_affected, b.lost, b.survived) == (4, 100, False)


# --------------------------------------------------------------------------- back at work


def killed_container_comes_back(back_at: int | None) -> RunResult:
    """Multi: m-w1 is killed at 5.05 s; its task 5.0-5.1 never ends. It restarts (or Swarm
    starts its replacement) and its first task after the kill runs from tick back_at-1 to
    back_at. The other three workers keep pace; m-w1's last record before the kill ended at
    5.0 s and started before tf, so it is not the replacement's."""
    batch = Batch()
    workers = [f"{c}/1" for c in CONTAINERS]
    for worker in workers:
        batch.ticks(worker, BEFORE)
    for worker in (workers[0], *workers[2:]):
        batch.ticks(worker, AFTER)
    if back_at is not None:
        batch.ticks("m-w1/7", range(back_at, 101))  # a new PID in the same container name
    kill = Fault("a container dies", "kill-container", at_seconds=TF)
    return run(batch, kill, injected(kill, "m-w1"), topology="multi", workers=workers,
               containers=MULTI_SPECS)


def test_a_killed_container_is_back_at_work_with_its_first_task_after_the_kill():
    radius = blast_radius(killed_container_comes_back(back_at=90), workers=4)
    # its first task after the kill started at 8.9 s and ended at 9.0 s: 9.0 - 5.05 s
    assert radius.replaced and radius.time_to_replace == pytest.approx(9.0 - TF)
    never = blast_radius(killed_container_comes_back(back_at=None), workers=4)
    assert never.replaced and never.time_to_replace is None


def test_a_killed_pool_process_has_no_replacement_figure():
    # single: the killed process's siblings go on in the same container, so "the
    # container's first task after the kill" would say nothing about a replacement
    batch = Batch()
    for worker in POOL:
        batch.ticks(worker, BEFORE)
        batch.ticks(worker, AFTER)
    radius = blast_radius(run(batch, KILL, injected(KILL, "s/12"), containers=(spec("s", "single", 4),),
                              workers=POOL), workers=4)
    assert not radius.replaced and radius.time_to_replace is None
