"""Deliberately broken variants of the batched reliable queue, kept only so that the queue
tests can show they catch each defect (``xfail(strict=True)``: a variant that passes fails
the run). Each differs from topo.agent.worker.Worker in one place:

- ``MarkAfterRun``: a task's start is recorded after it ran (as if folded into its ack): a
  task that kills its worker is never charged, so a poison task is never dead-lettered;
- ``MarkBatchAtTake``: the whole batch is marked started before the first task runs (a lease
  over the batch): a death charges the tasks it never began;
- ``SplitRejoin``: the worker gives back what it holds in separate commands (LREM, then
  RPUSH, one task at a time): a death between the two loses the task.
- ``LinesAfterAck``: task lines held in the process and written once the ack of their
  batch returned: a worker killed right after an ack leaves acknowledged tasks unrecorded;
- ``LinesBeforeAck``: the same lines written just before each ack instead: a worker killed
  mid-batch leaves tasks it marked and finished unrecorded, and the reaper takes all of a
  dead process's marked tasks but the latest as done (reliable.py), so they are lost.
"""

from __future__ import annotations

from typing import Iterable

from topo.agent import reliable
from topo.agent.worker import Worker


class MarkAfterRun(Worker):
    def run_batch(self, batch: list[bytes]) -> None:
        for raw in batch:
            self.run_one(raw)
            self.queue.mark(raw)

    def step_reliable(self) -> None:
        batch = self.queue.take(self.prefetch, self._done)
        self._acked()
        if batch:  # take's own mark of the first task undone: it is recorded after it ran
            self.queue.link.send("HDEL", reliable.started(self.name), batch[0])
        self.run_batch(batch or ([raw] if (raw := self.queue.wait(self.take_wait)) else []))
        self.maybe_reap()


class MarkBatchAtTake(Worker):
    def run_batch(self, batch: list[bytes]) -> None:
        for raw in batch:
            self.queue.mark(raw)
        for raw in batch:
            self.run_one(raw)


class _SplitQueue(reliable.ReliableQueue):
    def rejoin(self, keep: Iterable[bytes] = ()) -> list[bytes]:
        self.beat()
        kept = set(keep)
        moved = []
        for raw in self.link.call("LRANGE", reliable.processing(self.name), 0, -1):
            if raw not in kept:
                self.link.call("LREM", reliable.processing(self.name), 1, raw)
                self.link.call("HDEL", reliable.started(self.name), raw)
                self.link.call("RPUSH", reliable.QUEUE, raw)
                moved.append(raw)
        return moved


class SplitRejoin(Worker):
    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        q = self.queue
        self.queue = _SplitQueue(q.client, q.name, q.me, q.max_attempts, q.heartbeat_ttl_ms)


class _HeldLines(Worker):
    """Task lines kept in the process and written all at once (one write per batch)."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self._held: list[bytes] = []

    def execute(self, raw: bytes) -> None:
        self._held.append(self.lines.run(int(raw), self.run_task))

    def write_held(self) -> None:
        self.events.write(b"".join(self._held))
        self._held = []


class LinesAfterAck(_HeldLines):
    def _acked(self) -> None:
        super()._acked()
        self.write_held()


class LinesBeforeAck(_HeldLines):
    def step_reliable(self) -> None:
        self.write_held()
        super().step_reliable()

    def flush(self, next_raw: bytes) -> bool:
        self.write_held()
        return super().flush(next_raw)
