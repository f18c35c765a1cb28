"""The ledger: what became of every task of a batch (metrics.md, "Ledger").

Pure and stdlib-only: it reads the TaskRecords a run collected and nothing else. It works
on the records' columns (``topo.records.TaskRecords``) with one byte or one float per task
id, so a batch of a million tasks costs a few MB here, not a dict entry per task.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable

from topo.model import Ledger, TaskRecord
from topo.records import TaskRecords

COMPLETED = "completed"
FAILED = "failed"
LOST = "lost"
_LOST, _FAILED, _COMPLETED = 0, 1, 2  # one byte per task id
_NAMES = {_LOST: LOST, _FAILED: FAILED, _COMPLETED: COMPLETED}


def columns(records: Iterable[TaskRecord]) -> TaskRecords:
    """The records as columns (themselves when they already are)."""
    return records if isinstance(records, TaskRecords) else TaskRecords(records)


def _states(task_count: int, cols: TaskRecords) -> tuple[bytearray, bytearray]:
    """Per id 0..task_count-1: its outcome, and its number of ok records capped at 2.

    A record for an id outside the batch (a stale queue entry, a buggy task) says nothing
    about this batch; counting it would break submitted = completed + failed + lost."""
    state = bytearray(task_count)
    oks = bytearray(task_count)
    for i, ok in zip(cols.ids, cols.ok):
        if 0 <= i < task_count:
            if ok:
                state[i] = _COMPLETED
                if oks[i] < 2:
                    oks[i] += 1
            elif state[i] == _LOST:
                state[i] = _FAILED
    return state, oks


def outcomes(task_count: int, records: Iterable[TaskRecord]) -> dict[int, str]:
    """Map every id 0..task_count-1 to "completed", "failed" or "lost".

    One ok record makes a task completed whatever failures came before or after it (a retry
    that succeeded); failures alone make it failed; no record at all makes it lost.
    """
    state, _ = _states(max(task_count, 0), columns(records))
    return {i: _NAMES[s] for i, s in enumerate(state)}


def build_ledger(task_count: int, records: Iterable[TaskRecord], retried: int = 0) -> Ledger:
    """Count the batch's tasks by outcome; ``retried`` is passed through as observed.

    ``duplicated`` is the number of ids with more than one ok record (work done twice, e.g.
    after a requeue of a task whose first run had in fact finished).
    """
    task_count = max(task_count, 0)
    state, oks = _states(task_count, columns(records))
    return Ledger(
        submitted=task_count,
        completed=state.count(_COMPLETED),
        failed=state.count(_FAILED),
        lost=state.count(_LOST),
        duplicated=oks.count(2),
        retried=retried,
    )


def first_completions(
    records: Iterable[TaskRecord], task_count: int | None = None
) -> dict[int, float]:
    """Map each completed id to the end time of its earliest ok record.

    A duplicate completion adds no throughput: the task was already done. With
    ``task_count`` given, ids outside 0..task_count-1 are left out.
    """
    cols = columns(records)
    first: dict[int, float] = {}
    for i, ok, end in zip(cols.ids, cols.ok, cols.ends):
        if ok and (task_count is None or 0 <= i < task_count) and end < first.get(i, math.inf):
            first[i] = end
    return first


def completion_times(records: Iterable[TaskRecord], task_count: int | None = None) -> list[float]:
    """End times of the first ok record of every task, sorted ascending."""
    if task_count is None:
        return sorted(first_completions(records, None).values())
    cols = columns(records)
    first = array("d", [math.inf]) * max(task_count, 0)
    for i, ok, end in zip(cols.ids, cols.ok, cols.ends):
        if ok and 0 <= i < task_count and end < first[i]:
            first[i] = end
    return sorted(t for t in first if t != math.inf)


def latencies(records: Iterable[TaskRecord], task_count: int) -> tuple[array[float], array[float]]:
    """Per task id 0..task_count-1 that started: its earliest start; and per completed id,
    the service time (end - start) of its first ok record read that has a start. Arrays,
    in id order: a million floats are 8 MB here, 32 MB as a list."""
    cols = columns(records)
    first = array("d", [math.inf]) * max(task_count, 0)
    service = array("d", [math.nan]) * max(task_count, 0)
    for i, ok, start, end in zip(cols.ids, cols.ok, cols.starts, cols.ends):
        if math.isnan(start) or not 0 <= i < task_count:
            continue
        if start < first[i]:
            first[i] = start
        if ok and math.isnan(service[i]):
            service[i] = end - start
    return (array("d", (t for t in first if t != math.inf)),
            array("d", (s for s in service if not math.isnan(s))))
