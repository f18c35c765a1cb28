"""The ledger: what became of every task of a batch (metrics.md, "Ledger").

Pure and stdlib-only: it reads the TaskRecords a run collected and nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from topo.model import Ledger, TaskRecord

COMPLETED = "completed"
FAILED = "failed"
LOST = "lost"


def _in_batch(records: Iterable[TaskRecord], task_count: int | None) -> Iterator[TaskRecord]:
    # A record for an id outside the batch (a stale queue entry, a buggy task) says nothing
    # about this batch; counting it would break submitted = completed + failed + lost.
    return (r for r in records if task_count is None or 0 <= r.id < task_count)


def outcomes(task_count: int, records: Iterable[TaskRecord]) -> dict[int, str]:
    """Map every id 0..task_count-1 to "completed", "failed" or "lost".

    One ok record makes a task completed whatever failures came before or after it (a retry
    that succeeded); failures alone make it failed; no record at all makes it lost.
    """
    states = {i: LOST for i in range(task_count)}
    for record in _in_batch(records, task_count):
        if record.ok:
            states[record.id] = COMPLETED
        elif states[record.id] == LOST:
            states[record.id] = FAILED
    return states


def build_ledger(task_count: int, records: Iterable[TaskRecord], retried: int = 0) -> Ledger:
    """Count the batch's tasks by outcome; ``retried`` is passed through as observed.

    ``duplicated`` is the number of ids with more than one ok record (work done twice, e.g.
    after a requeue of a task whose first run had in fact finished).
    """
    records = tuple(records)  # read twice below; the caller may hand a generator
    task_count = max(task_count, 0)
    tally = Counter(outcomes(task_count, records).values())
    ok_per_id = Counter(r.id for r in _in_batch(records, task_count) if r.ok)
    return Ledger(
        submitted=task_count,
        completed=tally[COMPLETED],
        failed=tally[FAILED],
        lost=tally[LOST],
        duplicated=sum(1 for n in ok_per_id.values() if n > 1),
        retried=retried,
    )


def first_completions(
    records: Iterable[TaskRecord], task_count: int | None = None
) -> dict[int, float]:
    """Map each completed id to the end time of its earliest ok record.

    A duplicate completion adds no throughput: the task was already done. With
    ``task_count`` given, ids outside 0..task_count-1 are left out.
    """
    first: dict[int, float] = {}
    for record in _in_batch(records, task_count):
        if record.ok and (record.id not in first or record.end < first[record.id]):
            first[record.id] = record.end
    return first


def completion_times(records: Iterable[TaskRecord], task_count: int | None = None) -> list[float]:
    """End times of the first ok record of every task, sorted ascending."""
    return sorted(first_completions(records, task_count).values())
