"""A stateful test of the reliable queue: hypothesis interleaves worker starts and restarts
(the same name), round trips that run or fail (the process dies before or after one, the
connection drops before the request or before the reply), heartbeats that expire or are
renewed, connections killed by Redis (CLIENT KILL), reaper locks that expire, and poison
tasks that kill whoever runs them. After every step, and after a final drain, every task is
exactly one of: queued, held by one worker, done, dead-lettered with its record; a dead
letter was started ``max_attempts`` times; no task ran without its start mark in Redis; and
Redis charges each task between its runs and its marks (driver.World.problems). Workers
take batches (prefetch up to 4) and acknowledge them with their next take, or before each
task (the ack time bound at 0).

The workers are named a, b and c; a step on one whose process is not running starts it
(again, under the same name). The same machine run against the worker as it was (tests/queue/old_worker.py) must find a
task lost by ``rejoin``. ``TOPO_QUEUE_EXAMPLES`` sets how many examples to explore.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import redis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test,
)

from topo.agent import reliable as rq

from .driver import FAULTS, LONG_MS, LOSE_REPLY, NEW, OLD, RUN, Protocol, World

NAMES = st.sampled_from(("a", "b", "c"))
EXAMPLES = int(os.environ.get("TOPO_QUEUE_EXAMPLES", "150"))
STEPS = 40


def machine(protocol: Protocol, port: int, faults: tuple[str, ...] = FAULTS,
            expiry: bool = True, poison: bool = True) -> type[RuleBasedStateMachine]:
    """The machine for one protocol; fewer faults make a narrower search."""

    class QueueMachine(RuleBasedStateMachine):
        stats: Counter[str] = Counter()
        admin = redis.Redis(port=port)

        def __init__(self) -> None:
            super().__init__()
            self.world: World | None = None

        @initialize(tasks=st.integers(1, 7), prefetch=st.integers(1, 4),
                    bad=st.frozensets(st.integers(0, 6), max_size=1 if poison else 0),
                    flush_every=st.sampled_from((LONG_MS / 1000, 0.0)))
        def feed(self, tasks: int, prefetch: int, bad: frozenset[int],
                 flush_every: float) -> None:
            """A batch; workers take up to ``prefetch`` tasks at once and acknowledge them
            with their next take (or before each task: ``flush_every`` 0)."""
            self.world = World(protocol, port, self.admin, tasks, prefetch,
                               frozenset(i for i in bad if i < tasks), flush_every)
            self.stats["examples"] += 1

        @rule(name=NAMES, fault=st.sampled_from(faults))
        def fault(self, name: str, fault: str) -> None:
            self._step(name, fault)

        @rule(name=NAMES, n=st.integers(1, 6))
        def run(self, name: str, n: int) -> None:
            for _ in range(n):
                self._step(name, RUN)
                self.every_task_in_one_place()

        @precondition(lambda self: expiry)
        @rule(name=NAMES)
        def heartbeat_expires(self, name: str) -> None:
            assert self.world is not None
            self.stats["steps"] += 1
            self.world.expire(name)

        @rule(name=NAMES)
        def beat(self, name: str) -> None:
            assert self.world is not None
            self.stats["steps"] += 1
            if self.world.alive(name):
                protocol.beat(self.world.workers[name].worker, self.admin)

        @rule()
        def connections_killed(self) -> None:
            self.stats["steps"] += 1
            self.admin.client_kill_filter(_type="normal", skipme=True)

        @rule()
        def reaper_lock_expires(self) -> None:
            self.stats["steps"] += 1
            self.admin.delete(rq.REAPER_LOCK)

        def _step(self, name: str, order: str) -> None:
            """A round trip of ``name``'s process, started first (again) if it is not
            running: a container whose process died is restarted under the same name."""
            assert self.world is not None
            self.stats["steps"] += 1
            if not self.world.alive(name):
                self.world.start(name)
            if self.world.alive(name):
                self.world.step(name, order)

        @invariant()
        def every_task_in_one_place(self) -> None:
            if self.world is not None:
                self.stats["checks"] += 1
                self.world.check()

        def teardown(self) -> None:
            if self.world is None:
                return
            try:
                self.world.drain()
                self.world.check()
            finally:
                w = self.world
                self.stats["round trips"] += w.round_trips
                self.stats.update({f"round trips: {k}": n for k, n in w.orders.items() if k != RUN})
                self.stats["restarts"] += sum(n - 1 for k, n in w.starts.items()
                                              if not k.startswith("drain"))
                self.stats["dead letters"] += len(w.log.dead_records())
                self.stats["tasks run twice or more"] += sum(1 for n in w.entered.values() if n > 1)
                self.stats["marks"] += sum(w.delivered.values())
                w.close()

    return QueueMachine


def _settings(examples: int, **kw: object) -> settings:
    return settings(max_examples=examples, stateful_step_count=STEPS, deadline=None,
                    suppress_health_check=list(HealthCheck), **kw)  # type: ignore[arg-type]


def test_every_task_is_always_in_exactly_one_place(redis_server: int) -> None:
    m = machine(NEW, redis_server)
    run_state_machine_as_test(m, settings=_settings(EXAMPLES))
    m.admin.close()
    print(f"\nqueue machine ({NEW.name}): {dict(m.stats)}, 0 invariant breaks")
    assert m.stats["examples"] >= EXAMPLES // 2


def test_the_same_machine_finds_the_task_rejoin_lost_before(redis_server: int) -> None:
    """Only lost replies, no expiry, no poison: the one way the old worker loses a task
    here is a reply lost between rejoin's LREM and RPUSH."""
    m = machine(OLD, redis_server, faults=(LOSE_REPLY,), expiry=False, poison=False)
    with pytest.raises(AssertionError, match="is lost") as caught:
        run_state_machine_as_test(m, settings=_settings(
            300, derandomize=True, report_multiple_bugs=False,
            phases=[Phase.explicit, Phase.reuse, Phase.generate]))  # shrinking: minutes
    m.admin.close()
    print(f"\nqueue machine ({OLD.name}): {dict(m.stats)} until: {caught.value}")
