"""Task attempts stored as columns, so that a million of them fit in a few tens of MB.

``TaskRecords`` reads like a sequence of ``TaskRecord`` (iterate, index, ``len``), building
each record only when it is read; the harness appends to it as it reads the event files.
One attempt costs 41 bytes here against about 250 as a frozen dataclass with its floats
(measured with tracemalloc); the ledger and the figures read the columns directly.

Stdlib only; nothing here imports docker, redis or typer.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from topo.model import TaskRecord

NO_CORE = -1  # the core column's "not known"


class TaskRecords(Sequence[TaskRecord]):
    """Attempts in the order they were added. A start of None is kept as NaN, a core of
    None as -1, each worker name once (rows hold its index), errors only where there is
    one. Only ``add``/``append`` change it, and only while the run is read."""

    __slots__ = ("ids", "ok", "starts", "ends", "cpus", "cores", "_worker_of", "_workers",
                 "_worker_index", "_errors")

    def __init__(self, records: Iterable[TaskRecord] = ()) -> None:
        self.ids = array("q")
        self.ok = bytearray()
        self.starts = array("d")
        self.ends = array("d")
        self.cpus = array("d")
        self.cores = array("i")
        self._worker_of = array("I")
        self._workers: list[str] = []
        self._worker_index: dict[str, int] = {}
        self._errors: dict[int, str] = {}
        for r in records:
            self.append(r)

    def add(self, id: int, worker: str, ok: bool, start: float | None, end: float,
            cpu: float = 0.0, core: int | None = None, error: str | None = None) -> None:
        w = self._worker_index.get(worker)
        if w is None:
            w = self._worker_index[worker] = len(self._workers)
            self._workers.append(worker)
        n = len(self.ids)
        try:
            self.ids.append(id)
            self.cores.append(NO_CORE if core is None else core)
            self.starts.append(math.nan if start is None else start)
            self.ends.append(end)
            self.cpus.append(cpu)
        except (OverflowError, TypeError) as e:  # the columns stay of one length
            for col in (self.ids, self.cores, self.starts, self.ends, self.cpus):
                del col[n:]
            raise ValueError(f"task record out of range: {e}") from e
        self.ok.append(1 if ok else 0)
        self._worker_of.append(w)
        if error is not None:
            self._errors[n] = error

    def append(self, r: TaskRecord) -> None:
        self.add(r.id, r.worker, r.ok, r.start, r.end, r.cpu, r.core, r.error)

    def __len__(self) -> int:
        return len(self.ids)

    def _row(self, i: int) -> TaskRecord:
        start, core = self.starts[i], self.cores[i]
        return TaskRecord(
            id=self.ids[i], worker=self._workers[self._worker_of[i]], ok=bool(self.ok[i]),
            start=None if math.isnan(start) else start, end=self.ends[i], cpu=self.cpus[i],
            core=None if core == NO_CORE else core, error=self._errors.get(i))

    @overload
    def __getitem__(self, i: int) -> TaskRecord: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[TaskRecord]: ...

    def __getitem__(self, i: int | slice) -> TaskRecord | Sequence[TaskRecord]:
        if isinstance(i, slice):
            return tuple(self._row(j) for j in range(*i.indices(len(self))))
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("task record index out of range")
        return self._row(i)

    def __iter__(self) -> Iterator[TaskRecord]:
        workers, errors = self._workers, self._errors
        rows = zip(self.ids, self.ok, self.starts, self.ends, self.cpus, self.cores, self._worker_of)
        for n, (i, ok, start, end, cpu, core, w) in enumerate(rows):
            yield TaskRecord(i, workers[w], bool(ok), None if math.isnan(start) else start, end,
                             cpu, None if core == NO_CORE else core, errors.get(n))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # it grows while a run is read

    def __repr__(self) -> str:
        return f"TaskRecords({len(self)} attempts)"

    def __deepcopy__(self, memo: dict[int, Any]) -> TaskRecords:
        return self  # never changed once a run is over; dataclasses.asdict copies fields

    def nbytes(self) -> int:
        """Bytes the columns hold (not counting worker names and errors)."""
        cols = (self.ids, self.starts, self.ends, self.cpus, self.cores, self._worker_of)
        return sum(c.itemsize * len(c) for c in cols) + len(self.ok)
