"""Drive real multi workers against a real Redis, one round trip at a time.

Each worker process is a thread running the worker's own loop (``begin_reliable`` then
``serve``) with a Redis client that stops before every round trip (a command, a script, a
pipeline) until the test says what happens to it: it runs; the process dies before or
after it; or the connection is lost before the request reached Redis or before its reply
came back (the command ran, the worker never learns it). Only one thread runs at a time, so
every interleaving is chosen by the test and replays exactly.

The event files are one in-memory ``Log`` shared by every worker: like the bind-mounted
folder, it outlives the processes that write to it.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry

from topo.agent import reliable
from topo.agent.protocol import AgentConfig, Event
from topo.agent.worker import Worker

from .old_worker import OldWorker

RUN = "run"
DIE_BEFORE = "die before it"
DIE_AFTER = "die after it"
LOSE_REQUEST = "lose the request"
LOSE_REPLY = "lose the reply"
FAULTS = (DIE_BEFORE, DIE_AFTER, LOSE_REQUEST, LOSE_REPLY)
LONG_MS = 600_000  # heartbeats and the reaper lock only end when a test says so
MAX_ATTEMPTS = 3
TAKE_WAIT = 0.001  # seconds a worker blocks on an empty queue


class Killed(BaseException):
    """The worker process died here (not an Exception: nothing in the worker catches it)."""


class Gate:
    """Lockstep between the test and one worker thread."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._order: str | None = None
        self.parks = 0  # round trips the worker has reached
        self.pending: tuple[Any, ...] = ()  # the one it waits to make
        self.finished = False

    def wait_for_order(self, args: tuple[Any, ...]) -> str:  # worker thread
        with self._cv:
            self.pending = args
            self.parks += 1
            self._cv.notify_all()
            self._cv.wait_for(lambda: self._order is not None)
            order, self._order = self._order, None
            return order  # type: ignore[return-value]

    def finish(self) -> None:  # worker thread
        with self._cv:
            self.finished = True
            self._cv.notify_all()

    def wait_parked(self, parks: int = 0, timeout: float = 20.0) -> None:  # test thread
        with self._cv:
            if not self._cv.wait_for(lambda: self.parks > parks or self.finished, timeout):
                raise AssertionError(f"worker hung after {self.pending!r}")

    def give(self, order: str) -> None:  # test thread
        with self._cv:
            parks = self.parks
            self._order = order
            self._cv.notify_all()
        self.wait_parked(parks)


class GatedRedis(redis.Redis):
    """A client whose every round trip waits for the test's order. Like the agent's own
    client (``topo.agent.queue.connect``) it never sends a command twice by itself."""

    def __init__(self, gate: Gate, lost_reply: Callable[[tuple[Any, ...], Any], None],
                 port: int) -> None:
        super().__init__(port=port, retry=Retry(NoBackoff(), 0))
        self._gate = gate
        self._lost_reply = lost_reply

    def execute_command(self, *args: Any, **options: Any) -> Any:
        return self.through_gate(args, lambda: redis.Redis.execute_command(self, *args, **options))

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        return GatedPipeline(self, self.connection_pool, self.response_callbacks, transaction,
                             shard_hint)

    def through_gate(self, args: tuple[Any, ...], call: Callable[[], Any]) -> Any:
        order = self._gate.wait_for_order(args)
        if order == DIE_BEFORE:
            raise Killed()
        if order == LOSE_REQUEST:
            self.connection_pool.disconnect()
            raise redis.ConnectionError("connection lost before the request reached Redis")
        result = call()
        if order == RUN:
            return result
        self._lost_reply(args, result)
        self.connection_pool.disconnect()
        if order == DIE_AFTER:
            raise Killed()
        raise redis.ConnectionError("connection lost before the reply came back")


class GatedPipeline(Pipeline):
    def __init__(self, owner: GatedRedis, *args: Any) -> None:
        super().__init__(*args)
        self._owner = owner

    def execute(self, raise_on_error: bool = True) -> Any:
        args = ("PIPELINE", *(c[0][0] for c in self.command_stack))
        return self._owner.through_gate(args, lambda: Pipeline.execute(self, raise_on_error))


class Log:
    """The event files of every worker process (one list: they outlive the processes)."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def emit(self, event: Event) -> None:
        self.lines.append(event.to_wire())

    def done(self) -> set[int]:
        return {e["id"] for e in self.lines if e["ev"] == "task" and e["ok"]}

    def dead_records(self) -> set[int]:
        return {e["id"] for e in self.lines if e["ev"] == "task" and not e["ok"]
                and str(e["err"]).startswith("dead-lettered")}


# --------------------------------------------------------------------------- protocols

@dataclass(frozen=True)
class Protocol:
    """A worker implementation and how the tests set its clocks and beat for it."""

    name: str
    make: Callable[..., Any]
    configure: Callable[[Any], None]
    beat: Callable[[Any, redis.Redis], None]  # the heartbeat thread's beat, on its own client


def _configure_new(w: Worker) -> None:
    w.reap_every, w.reap_lock_ms, w.take_wait = 0.0, LONG_MS, TAKE_WAIT
    w.queue.heartbeat_ttl_ms = LONG_MS


def _beat_new(w: Worker, client: redis.Redis) -> None:
    q = copy.copy(w.queue)
    q.client = client
    q.beat()


def _configure_old(w: OldWorker) -> None:
    w.reap_every, w.reap_lock_ms, w.take_wait = 0.0, LONG_MS, TAKE_WAIT
    w.heartbeat_ttl_ms = LONG_MS


def _beat_old(w: OldWorker, client: redis.Redis) -> None:
    o = copy.copy(w)
    o.client = client
    o.register()


NEW = Protocol("current", Worker, _configure_new, _beat_new)
OLD = Protocol("before (df021d8)", OldWorker, _configure_old, _beat_old)


# --------------------------------------------------------------------------- the world

# Where every task id is, read in one round trip (an invariant is checked after every step).
PLACES = reliable.Script(f"""
local found = {{{{'the queue', redis.call('LRANGE', '{reliable.QUEUE}', 0, -1)}}}}
for _, key in ipairs(redis.call('KEYS', '{reliable.PROCESSING_PREFIX}*')) do
  found[#found + 1] = {{key, redis.call('LRANGE', key, 0, -1)}}
end
found[#found + 1] = {{'the dead letters', redis.call('LRANGE', '{reliable.DEAD}', 0, -1)}}
found[#found + 1] = {{'the dead letters owed a record', redis.call('HKEYS', '{reliable.OWED}')}}
return found
""")

class World:
    """One Redis, one event log, the workers and what the test knows about tasks: how often
    each one was entered (the task function called) and how often a start was charged
    without the worker seeing the reply (it cannot know whether it ran)."""

    def __init__(self, protocol: Protocol, port: int, admin: redis.Redis, tasks: int,
                 prefetch: int = 1, poison: frozenset[int] = frozenset()) -> None:
        self.protocol, self.port, self.admin = protocol, port, admin
        self.tasks, self.prefetch, self.poison = tasks, prefetch, poison
        self.log = Log()
        self.entered: Counter[int] = Counter()
        self.unconfirmed: Counter[int] = Counter()
        self.workers: dict[str, Driven] = {}
        self.round_trips = 0
        self.orders: Counter[str] = Counter()  # what happened to each round trip
        self.starts: Counter[str] = Counter()  # processes started per worker name
        admin.flushall()
        for script in (rq_script for rq_script in vars(reliable).values()
                       if isinstance(rq_script, reliable.Script)):
            admin.script_load(script.source)  # as a running Redis knows them: one round trip
        if tasks:
            admin.lpush(reliable.QUEUE, *range(tasks))  # the feeder's order

    def run_task(self, task_id: int) -> None:
        self.entered[task_id] += 1
        if task_id in self.poison:
            raise Killed()  # the OOM killer ends the process mid-task

    def lost_reply(self, args: tuple[Any, ...], result: Any) -> None:
        if args[0] not in ("EVALSHA", "EVAL"):
            return
        if args[1] in (reliable.TAKE.sha, reliable.TAKE.source) and result:
            self.unconfirmed[int(result[0])] += 1
        if args[1] in (reliable.START.sha, reliable.START.source) and result is not None:
            self.unconfirmed[int(args[7])] += 1

    def start(self, name: str) -> Driven:
        """A worker process named ``name`` starts (again) and stops at its first round trip."""
        assert not self.alive(name)
        self.starts[name] += 1
        self.workers[name] = Driven(self, name)
        return self.workers[name]

    def alive(self, name: str) -> bool:
        return name in self.workers and self.workers[name].alive

    def step(self, name: str, order: str = RUN) -> None:
        self.round_trips += 1
        self.orders[order] += 1
        self.workers[name].step(order)

    def kill_all(self) -> None:
        for name in list(self.workers):
            if self.alive(name):
                self.workers[name].step(DIE_BEFORE)  # the end of the test, not a round trip

    # ----------------------------------------------------------------- what Redis holds

    def places(self) -> dict[int, list[str]]:
        where: dict[int, list[str]] = defaultdict(list)
        for place, ids in PLACES(self.admin, [], []):  # type: ignore[union-attr]
            for raw in ids:
                where[int(raw)].append(place.decode())
        return where

    def quiet(self) -> bool:
        """Nothing queued, held or owed a record."""
        return not any(p in ("the queue", "the dead letters owed a record")
                       or p.startswith(reliable.PROCESSING_PREFIX)
                       for ps in self.places().values() for p in ps)

    def problems(self) -> list[str]:
        """Every task is exactly one of: queued, held by one worker, done, dead-lettered
        with its record (or owed one); a dead letter was started MAX_ATTEMPTS times."""
        where, done, recorded = self.places(), self.log.done(), self.log.dead_records()
        found = []
        for i in range(self.tasks):
            w = where.get(i, [])
            starts = self.entered[i] + self.unconfirmed[i]
            if len(w) > 1:
                found.append(f"task {i} is in {len(w)} places: {', '.join(w)}")
            elif not w and i not in done:
                found.append(f"task {i} is lost: in no list, not done, no dead letter")
            elif w == ["the dead letters"] and i not in recorded:
                found.append(f"task {i} is a dead letter without its record")
            if any(p.startswith("the dead letters") for p in w) and starts < MAX_ATTEMPTS:
                found.append(f"task {i} is dead-lettered after {starts} start(s)")
        return found

    def check(self) -> None:
        found = self.problems()
        assert not found, "; ".join(found)

    def drain(self, lives: int = 12, round_trips: int = 300) -> None:
        """Every process dies and its heartbeat ends; then fresh workers run until nothing
        is queued, held or owed (a poison task kills some of them on the way)."""
        self.kill_all()
        for life in range(lives):
            keys = list(self.admin.scan_iter(match="topo:heartbeat:*"))
            self.admin.delete(reliable.REAPER_LOCK, *keys)
            name = f"drain{life}"
            self.start(name)
            for _ in range(round_trips):
                if not self.alive(name) or self.quiet():
                    break
                self.step(name)
                self.check()
            self.kill_all()
            if self.quiet():
                return
        raise AssertionError(f"never drained: {dict(self.places())}")

    def close(self) -> None:
        self.kill_all()
        for w in self.workers.values():
            w.close()


class Driven:
    """One worker process in a thread, parked before each of its round trips."""

    def __init__(self, world: World, name: str) -> None:
        self.gate = Gate()
        self.clients: list[GatedRedis] = []
        self.crash: BaseException | None = None
        cfg = AgentConfig(container=name, task="noop", params={}, seed=0, tasks=0,
                          prefetch=world.prefetch, max_attempts=MAX_ATTEMPTS)
        self.worker = world.protocol.make(cfg, world.log, self._connect(world))
        world.protocol.configure(self.worker)
        self.worker.run_task = world.run_task
        threading.Thread(target=self._main, daemon=True, name=f"worker {name}").start()
        self.gate.wait_parked()

    def _connect(self, world: World) -> Callable[[], GatedRedis]:
        def connect() -> GatedRedis:  # a new connection (the pool's old one is closed)
            if not self.clients:
                self.clients.append(GatedRedis(self.gate, world.lost_reply, world.port))
            self.clients[0].connection_pool.disconnect()
            return self.clients[0]
        return connect

    def _main(self) -> None:
        try:
            self.worker.begin_reliable()
            self.worker.serve(self.worker.step_reliable, self.worker.rejoin)
        except (Killed, redis.ConnectionError, redis.TimeoutError):
            pass  # died, or gave up on Redis at start (as main() does: exit 1)
        except BaseException as exc:  # a bug in the worker: the test reports it
            self.crash = exc
        finally:
            self.gate.finish()

    @property
    def alive(self) -> bool:
        return not self.gate.finished

    @property
    def pending(self) -> tuple[Any, ...]:
        return self.gate.pending

    def step(self, order: str) -> None:
        self.gate.give(order)
        if self.crash is not None:
            raise AssertionError(f"the worker crashed: {self.crash!r}") from self.crash
        if not self.alive:
            self.close()  # a dead process's connections close

    def close(self) -> None:
        for c in self.clients:
            c.connection_pool.disconnect()
