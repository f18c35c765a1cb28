"""The four ways the reliable queue used to lose, duplicate or mis-charge a task, each
driven through real workers and a real Redis, one round trip at a time.

Each test runs against the current worker and against the worker as it was before
(tests/queue/old_worker.py), where it must fail: ``xfail(strict=True)`` turns an old
worker that passes into a failure, so these tests are known to be able to fail.
"""

from __future__ import annotations

from typing import Callable

import pytest
import redis

from topo.agent import reliable as rq

from .driver import DIE_AFTER, LOSE_REPLY, NEW, OLD, Protocol, World, is_take

PROTOCOLS = [
    pytest.param(NEW, id="current"),
    pytest.param(OLD, id="before", marks=pytest.mark.xfail(strict=True, reason="the defect")),
]


def _run_until(world: World, name: str, done: Callable[[], bool], limit: int = 100) -> None:
    for _ in range(limit):
        if not world.alive(name) or done():
            return
        world.step(name)
        world.check()
    raise AssertionError(f"{name} never got there; it waits to send {world.workers[name].pending[:2]}")


def _held(world: World, name: str) -> list[int]:
    return [int(x) for x in world.admin.lrange(rq.processing(name), 0, -1)]


def _dies_of_poison(world: World, name: str) -> None:
    world.admin.delete(rq.REAPER_LOCK)  # the last reaper's lock has expired
    world.start(name)
    _run_until(world, name, lambda: False)
    assert not world.alive(name)
    world.admin.delete(rq.heartbeat(name))  # ... and so has its heartbeat


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_outage_during_rejoin_loses_no_task(protocol: Protocol, redis_server: int,
                                                admin: redis.Redis) -> None:
    """A take whose reply is lost leaves a task the worker does not know it holds; the
    worker gives it back. A second outage at any of the next round trips loses nothing."""
    for k in range(1, 8):
        world = World(protocol, redis_server, admin, tasks=2)
        world.start("a")
        _run_until(world, "a", lambda: is_take(world.workers["a"].pending))
        world.step("a", LOSE_REPLY)
        for _ in range(k - 1):
            world.step("a")
            world.check()
        world.step("a", LOSE_REPLY)
        world.check()
        world.drain()
        world.check()
        world.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_reaper_leaves_alone_a_worker_that_restarted(protocol: Protocol, redis_server: int,
                                                      admin: redis.Redis) -> None:
    """Worker a dies holding a task; while reaper b is somewhere in its round trips, a
    restarts and takes a task. Whatever b's progress, a keeps the task it took: its
    heartbeat lives (no duplicate run, no extra attempt)."""
    for k in range(0, 16):
        world = World(protocol, redis_server, admin, tasks=20)
        world.start("a")
        _run_until(world, "a", lambda: is_take(world.workers["a"].pending))
        world.step("a", DIE_AFTER)
        admin.delete(rq.heartbeat("a"))
        world.start("b")
        for _ in range(k):
            world.step("b")
        world.start("a")
        _run_until(world, "a", lambda: is_take(world.workers["a"].pending))
        world.step("a")  # a holds a task now, and beats
        (task,) = _held(world, "a")
        for _ in range(30):
            world.step("b")
            world.check()
        assert task in _held(world, "a"), f"b took task {task} from a (b's step {k})"
        world.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_dead_letter_keeps_its_record_when_the_reaper_dies(protocol: Protocol,
                                                             redis_server: int,
                                                             admin: redis.Redis) -> None:
    """Task 0 kills every worker that runs it. The reaper that dead-letters it on its third
    death dies at its k-th round trip; the task is still counted failed, never lost."""
    for k in range(1, 10):
        world = World(protocol, redis_server, admin, tasks=2, poison=frozenset({0}))
        for life in range(1, 4):
            _dies_of_poison(world, f"p{life}")
        admin.delete(rq.REAPER_LOCK)
        world.start("p4")
        for _ in range(k - 1):
            world.step("p4")
        if world.alive("p4"):
            world.step("p4", DIE_AFTER)
        world.check()
        world.drain()
        world.check()
        assert world.log.dead_records() == {0}, f"p4 died at its round trip {k}"
        world.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_tasks_taken_with_a_poison_task_are_not_charged(protocol: Protocol, redis_server: int,
                                                       admin: redis.Redis) -> None:
    """prefetch 3: a worker takes 0, 1, 2 and dies running 0, three times over. Only 0
    was started three times: only 0 is a dead letter; 1 and 2 complete."""
    world = World(protocol, redis_server, admin, tasks=3, prefetch=3, poison=frozenset({0}))
    _dies_of_poison(world, "p1")
    world.start("p2")
    _run_until(world, "p2", lambda: not admin.exists(rq.processing("p1")))
    charged = {int(k): int(v) for k, v in admin.hgetall(rq.ATTEMPTS).items()}
    assert charged == {0: 1}, "only task 0 was started"
    world.drain()
    world.check()
    assert world.log.dead_records() == {0}
    assert world.log.done() == {1, 2}
    world.close()
