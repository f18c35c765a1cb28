"""The feeder enqueues a batch in bounded, pipelined round trips, in order."""

from __future__ import annotations

from typing import Any

from topo.agent.queue import push
from topo.agent.reliable import QUEUE


class _Pipe:
    def __init__(self, trips: list[list[tuple[str, tuple[int, ...]]]]) -> None:
        self.trips, self.buffered = trips, []  # type: ignore[var-annotated]

    def lpush(self, key: str, *ids: int) -> None:
        self.buffered.append((key, ids))

    def __len__(self) -> int:
        return len(self.buffered)

    def execute(self) -> None:
        self.trips.append(self.buffered)
        self.buffered = []


class _Client:
    def __init__(self) -> None:
        self.trips: list[list[tuple[str, tuple[int, ...]]]] = []

    def pipeline(self, transaction: bool = True) -> Any:
        return _Pipe(self.trips)


def test_25_ids_in_chunks_of_4_three_per_trip() -> None:
    client = _Client()
    push(client, 25, chunk=4, per_trip=3)  # type: ignore[arg-type]
    # by hand: LPUSHes of 4,4,4 | 4,4,4 | 1 -> three round trips of 12, 12 and 1 ids
    assert [sum(len(ids) for _, ids in trip) for trip in client.trips] == [12, 12, 1]
    assert all(key == QUEUE for trip in client.trips for key, _ in trip)
    sent = [i for trip in client.trips for _, ids in trip for i in ids]
    assert sent == list(range(25))


def test_an_empty_batch_sends_nothing() -> None:
    client = _Client()
    push(client, 0, chunk=4, per_trip=3)  # type: ignore[arg-type]
    assert client.trips == []
