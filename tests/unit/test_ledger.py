"""The ledger: every task id ends completed, failed or lost, and the counts balance."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from topo.ledger import build_ledger, completion_times, first_completions, outcomes
from topo.model import Ledger, TaskRecord


def ok(task: int, end: float, start: float | None = None, cpu: float = 0.0) -> TaskRecord:
    return TaskRecord(task, "w/1", True, end - 0.5 if start is None else start, end, cpu)


def fail(task: int, end: float, start: float | None = 0.0) -> TaskRecord:
    return TaskRecord(task, "w/1", False, start, end, error="boom")


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


record_lists = st.lists(
    st.builds(
        TaskRecord,
        id=st.integers(-2, 12),
        worker=st.just("w/1"),
        ok=st.booleans(),
        start=st.none() | st.floats(0, 10),
        end=st.floats(0, 10),
    ),
    max_size=40,
)


@given(task_count=st.integers(0, 10), records=record_lists, retried=st.integers(0, 5))
def test_ledger_always_balances_and_agrees_with_outcomes(task_count, records, retried):
    ledger = build_ledger(task_count, records, retried)
    states = list(outcomes(task_count, records).values())
    assert ledger.submitted == ledger.completed + ledger.failed + ledger.lost == task_count
    assert ledger.completed == states.count("completed")
    assert ledger.completed == len(completion_times(records, task_count))
    assert ledger.duplicated <= ledger.completed
    assert ledger.retried == retried
