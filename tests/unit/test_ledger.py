"""The ledger: every task id ends completed, failed or lost, and the counts balance.

Every expected count here comes from outside topo.ledger: written by hand from event lines
whose story is told in comments, or read off the plan a generator built the records from.
"""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from topo.events import EventLog
from topo.ledger import build_ledger, completion_times, first_completions, outcomes
from topo.model import Ledger, RunResult, TaskRecord
from topo.analysis.figures import run_figures


def ok(task: int, end: float, start: float | None = None, cpu: float = 0.0) -> TaskRecord:
    return TaskRecord(task, "w/1", True, end - 0.5 if start is None else start, end, cpu)


def fail(task: int, end: float, start: float | None = 0.0) -> TaskRecord:
    return TaskRecord(task, "w/1", False, start, end, error="boom")


# --------------------------------------------------------------------------- hand-written lines

# A multi run of 7 tasks (ids 0..6) on worker containers w0, w1, w2 (one process each, pid
# 7), as the agents write it. The batch is available at t=10; w0 runs the reaper, so the
# requeue lines of the tasks it takes back from others are in w0's file.
#   0  done by w0 at 11                                          -> completed
#   1  w1 killed mid-task (no line); requeued at 11.2; w2 does it at 12
#                                                                -> completed, 1 re-delivery
#   2  raises in w0 at 13                                        -> failed
#   3  poison: kills w1 three times; requeued twice, then dead-lettered with a never-started
#      failure record (dead=true is not a re-delivery)           -> failed, 2 re-deliveries
#   4  w2 frozen holding it; w0 requeues it at 13.5 and does it at 14; w2 wakes and
#      finishes it at 15 (read last: the earliest success counts, not the last one read)
#                                                                -> completed, duplicated,
#                                                                   1 re-delivery
#   5  no line at all: the run ended without a trace of it       -> lost
#   6  requeued from w1 at 15.2, nobody took it before the end   -> lost, 1 re-delivery
#   7  a stray id outside the batch, done at 16                  -> ignored
# By hand: completed 3 (0, 1, 4), failed 2 (2, 3), lost 2 (5, 6): 3 + 2 + 2 = 7 submitted;
# duplicated 1 (4); re-deliveries 1 + 2 + 1 + 1 = 5.
# Throughput: 3 completed over the makespan 10 -> 14 (id 4's FIRST completion; failures, the
# duplicate at 15 and the stray at 16 end nothing): 3 / 4.0 = 0.75 tasks/s.
HAND_WRITTEN = {
    "feeder-1.jsonl": [
        '{"ev":"avail","c":"feeder","t":10.0,"n":7}',
    ],
    "w0-7.jsonl": [
        '{"ev":"task","id":0,"w":"w0/7","ok":true,"t0":10.0,"t1":11.0,"cpu":0.5,"core":0,"err":null}',
        '{"ev":"requeue","id":1,"w":"w1","by":"w0/7","t":11.2,"dead":false}',
        '{"ev":"task","id":2,"w":"w0/7","ok":false,"t0":11.0,"t1":13.0,"cpu":0.5,"core":0,'
        '"err":"ValueError: bad row"}',
        '{"ev":"requeue","id":3,"w":"w1","by":"w0/7","t":13.1,"dead":false}',
        '{"ev":"requeue","id":4,"w":"w2","by":"w0/7","t":13.5,"dead":false}',
        '{"ev":"task","id":4,"w":"w0/7","ok":true,"t0":13.5,"t1":14.0,"cpu":0.5,"core":0,"err":null}',
        '{"ev":"requeue","id":3,"w":"w1","by":"w0/7","t":14.1,"dead":false}',
        '{"ev":"requeue","id":3,"w":"w1","by":"w0/7","t":14.8,"dead":true}',
        '{"ev":"task","id":3,"w":"w0/7","ok":false,"t0":null,"t1":14.8,"cpu":0.0,"core":null,'
        '"err":"dead-lettered after 3 deliveries"}',
        '{"ev":"requeue","id":6,"w":"w1","by":"w0/7","t":15.2,"dead":false}',
    ],
    "w2-7.jsonl": [
        '{"ev":"task","id":1,"w":"w2/7","ok":true,"t0":11.5,"t1":12.0,"cpu":0.5,"core":1,"err":null}',
        '{"ev":"task","id":4,"w":"w2/7","ok":true,"t0":12.2,"t1":15.0,"cpu":0.5,"core":1,"err":null}',
        '{"ev":"task","id":7,"w":"w2/7","ok":true,"t0":15.5,"t1":16.0,"cpu":0.5,"core":1,"err":null}',
    ],
}


def read_hand_written(folder: Path) -> EventLog:
    for name, lines in HAND_WRITTEN.items():
        (folder / name).write_text("".join(line + "\n" for line in lines))
    log = EventLog(folder, task_count=7)
    log.poll()
    assert log.errors == []
    return log


def test_a_ledger_from_hand_written_event_lines(tmp_path: Path) -> None:
    log = read_hand_written(tmp_path)
    ledger = build_ledger(7, log.records, log.requeues)
    assert ledger == Ledger(submitted=7, completed=3, failed=2, lost=2, duplicated=1, retried=5)
    assert outcomes(7, log.records) == {
        0: "completed", 1: "completed", 2: "failed", 3: "failed", 4: "completed",
        5: "lost", 6: "lost"}
    assert first_completions(log.records, 7) == {0: 11.0, 1: 12.0, 4: 14.0}


def test_throughput_of_the_hand_written_run_is_completions_over_a_known_makespan(
    tmp_path: Path,
) -> None:
    log = read_hand_written(tmp_path)
    result = RunResult(
        topology="multi", index=0, warmup=False, status="ok", error=None, task_count=7,
        t_deploy=8.0, t_ready=9.0, t_available=log.t_available, t_end=17.0,
        records=tuple(log.records), samples=(), workers=(), containers=(),
        retried=log.requeues,
    )
    figures = run_figures(result)
    assert figures.makespan == 4.0  # 10 -> 14, worked out above
    assert figures.throughput == 0.75  # 3 / 4.0
    assert figures.ledger.retried == 5
    assert figures.startup_first == 3.0  # deploy at 8, first completion at 11


# --------------------------------------------------------------------------- literal cases


def test_every_task_completed_once():
    records = [ok(0, 1.0), ok(1, 2.0), ok(2, 3.0)]
    assert build_ledger(3, records) == Ledger(3, 3, 0, 0, 0, 0)


def test_mixed_batch_balances_with_duplicates_failures_retries_and_stray_ids():
    records = [
        ok(0, 1.0),
        fail(1, 1.0),
        ok(1, 2.0),  # retried to success: completed, not failed
        ok(2, 1.5),
        ok(2, 3.0),  # done twice after a requeue: duplicated
        fail(3, 2.0),
        fail(3, 2.5, start=None),  # never started (broken pool): still a failure
        ok(7, 1.0),  # outside the batch of 5: ignored
        ok(-1, 1.0),
    ]
    ledger = build_ledger(5, records, retried=2)
    assert ledger == Ledger(
        submitted=5, completed=3, failed=1, lost=1, duplicated=1, retried=2
    )
    assert outcomes(5, records) == {
        0: "completed",
        1: "completed",
        2: "completed",
        3: "failed",
        4: "lost",
    }


def test_success_before_a_later_failure_still_counts_as_completed():
    assert build_ledger(1, [ok(0, 1.0), fail(0, 2.0)]) == Ledger(1, 1, 0, 0, 0, 0)


def test_no_records_means_every_task_lost():
    assert build_ledger(4, []) == Ledger(4, 0, 0, 4, 0, 0)


def test_empty_batch():
    assert build_ledger(0, [ok(0, 1.0)]) == Ledger(0, 0, 0, 0, 0, 0)


def test_accepts_a_generator():
    records = (ok(i, float(i)) for i in range(3))
    assert build_ledger(3, records).completed == 3


def test_completion_times_take_the_earliest_success_per_task_sorted():
    records = [ok(2, 5.0), ok(0, 3.0), ok(0, 1.0), fail(1, 0.5), ok(1, 4.0), ok(9, 0.1)]
    assert first_completions(records, 3) == {0: 1.0, 1: 4.0, 2: 5.0}
    assert completion_times(records, 3) == [1.0, 4.0, 5.0]
    # Without a batch size every id counts.
    assert completion_times(records) == [0.1, 1.0, 4.0, 5.0]


# --------------------------------------------------------------------------- generated batches

# A batch is generated from a plan: each id's fate and how many attempts of each kind it
# gets. The expected ledger is read off the plan, never computed by topo.ledger.
_COMPLETED = st.tuples(
    st.just("completed"),
    st.integers(0, 2),  # failed attempts before the first success
    st.integers(1, 3),  # successes (more than one: duplicated)
    st.integers(0, 2),  # failed attempts after a success (they change nothing)
)
_FAILED = st.tuples(st.just("failed"), st.integers(1, 3), st.just(0), st.just(0))
_LOST = st.tuples(st.just("lost"), st.just(0), st.just(0), st.just(0))
_PLANS = st.lists(_COMPLETED | _FAILED | _LOST, max_size=12)


def _records_of(plan: list[tuple[str, int, int, int]], strays: int, seed: int) -> list[TaskRecord]:
    """Records for ``plan`` in time order per id (failures, successes, late failures), then
    shuffled: the ledger must not depend on the order files are read in. A success of id i
    ends at 100 + i + 0.1·k for its k-th success, so its first completion is 100 + i."""
    records: list[TaskRecord] = []
    for i, (_, before, successes, after) in enumerate(plan):
        t = 50.0 + i
        records += [fail(i, t + 0.01 * k) for k in range(before)]
        records += [ok(i, 100.0 + i + 0.1 * k) for k in range(successes)]
        records += [fail(i, 200.0 + i + 0.01 * k) for k in range(after)]
    records += [ok(len(plan) + k, 1.0) for k in range(strays)] + [ok(-1, 1.0)] * min(strays, 1)
    random.Random(seed).shuffle(records)
    return records


@given(plan=_PLANS, strays=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_a_generated_batch_gets_the_ledger_its_plan_implies(plan, strays, seed):
    records = _records_of(plan, strays, seed)
    fates = [fate for fate, *_ in plan]
    expected = Ledger(
        submitted=len(plan),
        completed=fates.count("completed"),
        failed=fates.count("failed"),
        lost=fates.count("lost"),
        duplicated=sum(1 for fate, _, successes, _ in plan if successes > 1),
        retried=0,
    )
    assert build_ledger(len(plan), records) == expected
    assert outcomes(len(plan), records) == dict(enumerate(fates))
    done = [i for i, fate in enumerate(fates) if fate == "completed"]
    assert first_completions(records, len(plan)) == {i: 100.0 + i for i in done}
    assert completion_times(records, len(plan)) == [100.0 + i for i in done]
