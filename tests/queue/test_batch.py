"""The batched reliable queue under a fault at every step of its protocol: a worker takes
batches (prefetch 3), marks each task started just before it runs, and acknowledges with the
next take, or before each task when the ack time bound is 0 (``flush``). At its k-th round
trip or mark, for every k, the process dies (before or after it reached Redis) or the
connection drops (before the request, or after it ran); then the batch drains. After every
step (driver.World.problems): every task is in one place; no task ran without its mark in
Redis; Redis charges each task between its runs and its marks. At the end every task is in
the ledger as completed or dead-lettered, never both.

Broken variants (tests/queue/broken.py) must fail here: ``xfail(strict=True)``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import redis

from topo.agent import reliable as rq

from .broken import MarkAfterRun, MarkBatchAtTake, SplitRejoin
from .driver import (
    DIE_AFTER, FAULTS, LONG_MS, LOSE_REPLY, MAX_ATTEMPTS, NEW, RUN, Protocol, World,
    _beat_new, _configure_new,
)

MARK_AFTER = Protocol("mark after the run", MarkAfterRun, _configure_new, _beat_new, True)
MARK_BATCH = Protocol("batch marked at take", MarkBatchAtTake, _configure_new, _beat_new, True)
SPLIT_REJOIN = Protocol("rejoin in steps", SplitRejoin, _configure_new, _beat_new, True)
NEVER, ALWAYS = LONG_MS / 1000, 0.0  # the ack time bound
TASKS, PREFETCH = 7, 3


def broken(protocol: Protocol) -> Any:
    return pytest.param(protocol, id=protocol.name,
                        marks=pytest.mark.xfail(strict=True, reason="the defect"))


def kind(pending: tuple[Any, ...]) -> str:
    """What a worker's next round trip (or mark) is, in the protocol's words."""
    if pending[:2] == ("SEND", "HSET"):
        return "mark"
    scripts = {s.sha: n for n, s in (("take", rq.TAKE), ("flush", rq.FLUSH),
                                     ("rejoin", rq.REJOIN), ("reap", rq.REAP),
                                     ("recorded", rq.RECORDED))}
    if pending[:1] == ("EVALSHA",):
        return scripts.get(pending[1], "script")
    return str(pending[0]).lower()


def _finish(world: World, name: str, limit: int = 200) -> None:
    for _ in range(limit):
        if not world.alive(name) or world.quiet():
            break
        world.step(name)
        world.check()
    world.drain()
    world.check()


def _ledger_problems(world: World) -> list[str]:
    done, dead = world.log.done(), world.log.dead_records()
    found = [f"task {i} is neither completed nor dead-lettered"
             for i in range(world.tasks) if i not in done | dead]
    return found + [f"task {i} is both completed and dead-lettered" for i in done & dead]


def _one_fault(port: int, admin: redis.Redis, flush_every: float, fault: str,
               k: int) -> str | None:
    """Worker a runs the batch; its k-th step gets ``fault``. Returns the step's kind, or
    None when a finished before its k-th step."""
    world = World(NEW, port, admin, tasks=TASKS, prefetch=PREFETCH, flush_every=flush_every)
    try:
        world.start("a")
        for _ in range(k - 1):
            if world.quiet() or not world.alive("a"):
                return None
            world.step("a")
            world.check()
        if world.quiet() or not world.alive("a"):
            return None
        hit = kind(world.workers["a"].pending)
        world.step("a", fault)
        world.check()
        _finish(world, "a")
        found = _ledger_problems(world)
        assert not found, f"{fault} at step {k} ({hit}): " + "; ".join(found)
        return hit
    finally:
        world.close()


@pytest.mark.parametrize("flush_every", [NEVER, ALWAYS], ids=["ack with take", "ack each task"])
@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_at_any_step_loses_nothing_and_charges_the_starts(
        fault: str, flush_every: float, redis_server: int, admin: redis.Redis) -> None:
    hit: Counter[str] = Counter()
    for k in range(1, 200):
        step = _one_fault(redis_server, admin, flush_every, fault, k)
        if step is None:
            break
        hit[step] += 1
    expected = {"rejoin", "take", "mark"} | ({"flush"} if flush_every == ALWAYS else set())
    assert expected <= set(hit), f"the fault never hit {expected - set(hit)}: {dict(hit)}"
    print(f"\n{fault}, {flush_every}: steps hit {dict(hit)}")


@pytest.mark.parametrize("protocol", [NEW, broken(MARK_AFTER), broken(MARK_BATCH)],
                         ids=lambda p: p.name)
def test_a_poison_task_in_a_batch_is_charged_alone(protocol: Protocol, redis_server: int,
                                                   admin: redis.Redis) -> None:
    """Task 1, the second of the first batch, kills whoever runs it. It is dead-lettered
    after MAX_ATTEMPTS runs; every other task completes; every task was charged exactly
    the times it ran (its marks: no fault touched one), never more."""
    world = World(protocol, redis_server, admin, tasks=TASKS, prefetch=PREFETCH,
                  poison=frozenset({1}))
    try:
        world.drain(lives=8)
        world.check()
        assert world.log.dead_records() == {1}
        assert world.log.done() == set(range(TASKS)) - {1}
        assert world.entered[1] == MAX_ATTEMPTS
        assert world.delivered == world.entered, "marks (attempts charged) != runs"
    finally:
        world.close()


@pytest.mark.parametrize("protocol", [NEW, broken(SPLIT_REJOIN)], ids=lambda p: p.name)
@pytest.mark.parametrize("first", ["take", "mark"])
def test_a_death_during_the_rejoin_after_an_outage_loses_nothing(
        protocol: Protocol, first: str, redis_server: int, admin: redis.Redis) -> None:
    """The connection drops after a take (or a mark) reached Redis; the worker rejoins and
    dies at its k-th round trip after the drop, for every k."""
    for k in range(1, 12):
        world = World(protocol, redis_server, admin, tasks=TASKS, prefetch=PREFETCH)
        try:
            world.start("a")
            while world.alive("a") and kind(world.workers["a"].pending) != first:
                world.step("a")
            world.step("a", LOSE_REPLY)
            for _ in range(k - 1):
                if world.alive("a"):
                    world.step("a", RUN)
                    world.check()
            if world.alive("a"):
                world.step("a", DIE_AFTER)
            world.check()
            world.drain()
            world.check()
            assert not _ledger_problems(world), f"k={k}: {_ledger_problems(world)}"
        finally:
            world.close()
