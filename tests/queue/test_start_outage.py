"""A worker that loses Redis while it starts carries on, as after any later outage.

Its start is a first connection, then its queue's own connection, then its registration
(a rejoin script, then the dead letters owed a record). A network cut between any two of
them (a Swarm task container disconnected seconds after it started) used to end the worker
with exit 1, so its orchestrator replaced it: a start-up blip looked like a crash. Now it
writes one error line, reconnects and registers again, then runs its tasks.

The expected counts are by hand: 3 tasks, one outage, so one error line, one reconnect, and
every task done once.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from topo.agent import reliable as rq
from topo.agent import resp
from topo.agent.protocol import AgentConfig
from topo.agent.worker import Worker

from .driver import LOSE_REPLY, LOSE_REQUEST, NEW, World, is_take

TASKS = 3


def _start_trips(redis_server: int, admin: redis.Redis) -> list[tuple[Any, ...]]:
    """The round trips of a worker's registration, up to its first take, as it makes them."""
    world = World(NEW, redis_server, admin, tasks=TASKS)
    a = world.start("a")
    trips = []
    while not is_take(a.pending):
        trips.append(a.pending)
        world.step("a")
    world.close()
    return trips


def test_registration_is_two_round_trips_or_more(redis_server: int,
                                                 admin: redis.Redis) -> None:
    trips = _start_trips(redis_server, admin)
    assert trips[0][:2] in (("EVALSHA", rq.REJOIN.sha), ("EVAL", rq.REJOIN.source)), trips
    assert ("HGETALL", rq.OWED) in trips, trips


@pytest.mark.parametrize("fault", [LOSE_REQUEST, LOSE_REPLY])
def test_an_outage_while_registering_does_not_end_the_worker(
        fault: str, redis_server: int, admin: redis.Redis) -> None:
    for k in range(len(_start_trips(redis_server, admin))):
        world = World(NEW, redis_server, admin, tasks=TASKS)
        world.start("a")
        for _ in range(k):
            world.step("a")
        world.step("a", fault)  # the k-th round trip of its start
        assert world.alive("a"), f"the worker ended at start round trip {k} ({fault})"
        for _ in range(200):
            if world.log.done() == set(range(TASKS)) or not world.alive("a"):
                break
            world.step("a")
            world.check()
        assert world.log.done() == set(range(TASKS)), (k, fault, world.log.lines)
        kinds = [e["ev"] for e in world.log.lines if e["ev"] in ("error", "reconnect")]
        assert kinds == ["error", "reconnect"], (k, fault, world.log.lines)
        assert world.starts["a"] == 1  # the same process all along
        world.close()


class _CutAfterFirst(resp.Redis):
    """The network cut right after the first connection: the second one fails."""

    made = 0  # connections attempted, by every client of this class

    def connection(self) -> resp.Connection:
        _CutAfterFirst.made += 1
        if _CutAfterFirst.made == 2:
            raise resp.ConnectionError("Error 101 connecting to redis:6379. Network is "
                                       "unreachable.")
        return super().connection()


def test_a_cut_between_the_first_connection_and_the_queue_s_is_waited_out(
        redis_server: int, admin: redis.Redis) -> None:
    admin.flushall()
    _CutAfterFirst.made = 0
    clients: list[resp.Redis] = []

    def connect() -> resp.Redis:
        client = _CutAfterFirst(port=redis_server)
        client.ping()  # the first connection: Redis answers
        clients.append(client)
        return client

    cfg = AgentConfig(container="a", task="noop", params={}, seed=0, tasks=0)
    events: list[Any] = []

    class Log:
        def emit(self, event: Any) -> None:
            events.append(event)

    w = Worker(cfg, Log(), connect)  # type: ignore[arg-type]
    assert len(clients) == 2 and w.client is clients[1]  # connected again, once
    assert w.queue.link.call("PING") == b"PONG"  # the queue's connection works
    w.queue.link.close()
    for c in clients:
        c.disconnect()
