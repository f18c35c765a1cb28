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
import select
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry

from topo.agent import reliable, resp
from topo.agent.protocol import AgentConfig, Event, decode
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


def is_take(args: tuple[Any, ...]) -> bool:
    """A worker's pending round trip takes tasks (the take script, or a blocking wait)."""
    return args[0] == "BLMOVE" or (args[0] in ("EVALSHA", "EVAL")
                                   and args[1] in (reliable.TAKE.sha, reliable.TAKE.source))


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


class _Gated:
    """A client whose every round trip waits for the test's order. Like the agents' own
    client (``topo.agent.resp``) it never sends a command twice by itself."""

    _gate: Gate
    _lost_reply: Callable[[tuple[Any, ...], Any], None]
    lost: type[Exception]  # what the worker takes for a lost connection

    def drop(self) -> None:
        """Close the client's connections."""
        raise NotImplementedError

    def through_gate(self, args: tuple[Any, ...], call: Callable[[], Any]) -> Any:
        order = self._gate.wait_for_order(args)
        if order == DIE_BEFORE:
            raise Killed()
        if order == LOSE_REQUEST:
            self.drop()
            raise self.lost("connection lost before the request reached Redis")
        result = call()
        if order == RUN:
            return result
        self._lost_reply(args, result)
        self.drop()
        if order == DIE_AFTER:
            raise Killed()
        raise self.lost("connection lost before the reply came back")


class GatedRedis(_Gated, resp.Redis):
    """The current worker's client (``topo.agent.resp``), gated."""

    lost = resp.ConnectionError

    def __init__(self, gate: Gate, lost_reply: Callable[[tuple[Any, ...], Any], None],
                 port: int) -> None:
        super().__init__(port=port)
        self._gate, self._lost_reply = gate, lost_reply

    def drop(self) -> None:
        self.disconnect()

    def execute_command(self, *args: Any) -> Any:
        return self.through_gate(args, lambda: resp.Redis.execute_command(self, *args))

    def pipeline(self) -> resp.Pipeline:
        return GatedPipeline(self)


class GatedPipeline(resp.Pipeline):
    client: GatedRedis

    def execute(self) -> Any:
        args = ("PIPELINE", *(c[0] for c in self.commands))
        return self.client.through_gate(args, lambda: resp.Pipeline.execute(self))


class GatedRedisPy(_Gated, redis.Redis):
    """The old worker's client (redis-py, as it had), gated the same way."""

    lost = redis.ConnectionError

    def __init__(self, gate: Gate, lost_reply: Callable[[tuple[Any, ...], Any], None],
                 port: int) -> None:
        super().__init__(port=port, retry=Retry(NoBackoff(), 0))
        self._gate, self._lost_reply = gate, lost_reply

    def drop(self) -> None:
        self.connection_pool.disconnect()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        return self.through_gate(args, lambda: redis.Redis.execute_command(self, *args, **options))

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        return GatedPipelinePy(self, self.connection_pool, self.response_callbacks, transaction,
                               shard_hint)


class GatedPipelinePy(Pipeline):
    def __init__(self, owner: GatedRedisPy, *args: Any) -> None:
        super().__init__(*args)
        self._owner = owner

    def execute(self, raise_on_error: bool = True) -> Any:
        args = ("PIPELINE", *(c[0][0] for c in self.command_stack))
        return self._owner.through_gate(args, lambda: Pipeline.execute(self, raise_on_error))


class GatedLink(reliable.Link):
    """The worker's own connection (``reliable.Link``), its every write stopped for the
    test's order. A ``send`` (a start mark, which gets no reply) is its own step: the
    process dies before or after writing it, or the connection is lost before the write
    (the worker sees the error) or after it (the worker carries on and learns it at its
    next round trip). A mark is pushed out of the cork and waited for until Redis has it,
    so every interleaving replays exactly."""

    def __init__(self, client: resp.Redis, gate: Gate, world: World) -> None:
        super().__init__(client)
        self._gate, self._world = gate, world
        self._broken = False

    def send_hset(self, key: str, field: bytes, value: bytes) -> None:
        self.send("HSET", key, field, value)  # the worker's mark: gated as any send

    def send(self, *args: object) -> None:
        order = self._before(("SEND", *args))
        self._world.late_mark(str(args[1]), args[2])  # type: ignore[arg-type]
        super().send(*args)
        if self._closed_by_redis():  # CLIENT KILL: the mark went nowhere, silently
            self._world.lost_mark(int(args[2]))  # type: ignore[call-overload]
            self._broken = True
        else:
            self.push()
            self._world.wait_for_mark(str(args[1]), args[2], args[3])
            self._world.marked(int(args[2]))  # type: ignore[call-overload]
        if order == LOSE_REPLY:
            self._broken = True  # the worker runs the task, then finds the link dead
        elif order == DIE_AFTER:
            self._after(order)

    def call(self, *args: object) -> Any:
        order = self._before(args)
        result = super().call(*args)
        self._world.called(args, result)
        self._after(order)
        return result

    def _closed_by_redis(self) -> bool:
        """Readable while marks get no reply: only the end of the connection is to read."""
        sock = self._conn.sock
        return sock is None or bool(select.select([sock], [], [], 0)[0])

    def _before(self, args: tuple[object, ...]) -> str:
        order = self._gate.wait_for_order(args)
        if order == DIE_BEFORE:
            raise Killed()
        if self._broken or order == LOSE_REQUEST:
            self.close()
            raise resp.ConnectionError("connection lost before the request reached Redis")
        return order

    def _after(self, order: str) -> None:
        if order == RUN:
            return
        self.close()
        if order == DIE_AFTER:
            raise Killed()
        raise resp.ConnectionError("connection lost before the reply came back")


class Log:
    """The event files of every worker process (one list: they outlive the processes)."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def emit(self, event: Event) -> None:
        self.lines.append(event.to_wire())

    def write(self, line: bytes) -> None:
        """A ready-made line (the worker's task lines): read back as the harness would."""
        self.lines.append(decode(line).to_wire())

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
    configure: Callable[[Any, World], None]
    beat: Callable[[Any, redis.Redis], None]  # the heartbeat thread's beat, on its own client
    client: type[_Gated]  # the gated client the worker connects with
    exact: bool = False  # its attempts are checked against the starts (reliable.py's claim)


def _configure_new(w: Worker, world: World) -> None:
    w.reap_every, w.reap_lock_ms, w.take_wait = 0.0, LONG_MS, TAKE_WAIT
    w.flush_every = world.flush_every
    w.queue.heartbeat_ttl_ms = LONG_MS


def _beat_new(w: Worker, client: redis.Redis) -> None:
    q = copy.copy(w.queue)
    q.client = client
    q.beat()


def _configure_old(w: OldWorker, world: World) -> None:
    w.reap_every, w.reap_lock_ms, w.take_wait = 0.0, LONG_MS, TAKE_WAIT
    w.heartbeat_ttl_ms = LONG_MS


def _beat_old(w: OldWorker, client: redis.Redis) -> None:
    o = copy.copy(w)
    o.client = client
    o.register()


NEW = Protocol("current", Worker, _configure_new, _beat_new, GatedRedis, exact=True)
OLD = Protocol("before (df021d8)", OldWorker, _configure_old, _beat_old, GatedRedisPy)


# --------------------------------------------------------------------------- the world

# Where every task id is, read in one round trip (an invariant is checked after every step).
PLACES = (f"""
local found = {{{{'the queue', redis.call('LRANGE', '{reliable.QUEUE}', 0, -1)}}}}
for _, key in ipairs(redis.call('KEYS', '{reliable.PROCESSING_PREFIX}*')) do
  found[#found + 1] = {{key, redis.call('LRANGE', key, 0, -1)}}
end
found[#found + 1] = {{'the dead letters', redis.call('LRANGE', '{reliable.DEAD}', 0, -1)}}
found[#found + 1] = {{'the dead letters owed a record', redis.call('HKEYS', '{reliable.OWED}')}}
return found
""")

# What Redis charges, read in one round trip: the attempts hash, the held tasks marked
# started (a mark of a task not held is stale), the owed and recorded dead letters.
CHARGES = (f"""
local marked = {{}}
for _, key in ipairs(redis.call('KEYS', '{reliable.PROCESSING_PREFIX}*')) do
  local marks = '{reliable.STARTED_PREFIX}'
    .. string.sub(key, {len(reliable.PROCESSING_PREFIX) + 1})
  for _, id in ipairs(redis.call('LRANGE', key, 0, -1)) do
    if redis.call('HEXISTS', marks, id) == 1 then marked[#marked + 1] = id end
  end
end
return {{redis.call('HGETALL', '{reliable.ATTEMPTS}'), marked,
        redis.call('HGETALL', '{reliable.OWED}'), redis.call('LRANGE', '{reliable.DEAD}', 0, -1)}}
""")


class World:
    """One Redis, one event log, the workers and what the test knows about tasks: how often
    each one was entered (the task function called) and how often a start was charged
    without the worker seeing the reply (it cannot know whether it ran)."""

    def __init__(self, protocol: Protocol, port: int, admin: redis.Redis, tasks: int,
                 prefetch: int = 1, poison: frozenset[int] = frozenset(),
                 flush_every: float = LONG_MS / 1000) -> None:
        self.protocol, self.port, self.admin = protocol, port, admin
        self.tasks, self.prefetch, self.poison = tasks, prefetch, poison
        self.flush_every = flush_every  # the workers' ack time bound (never, by default)
        self.log = Log()
        self.entered: Counter[int] = Counter()
        self.delivered: Counter[int] = Counter()  # start marks that reached Redis
        self.frozen: Counter[int] = Counter()  # marks written by a worker declared dead
        self.void: Counter[int] = Counter()  # marks written into a connection Redis closed
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
        """A command outside the worker's link ran, its reply lost: the reaper's and the
        old worker's commands, none of which starts a task."""

    def wait_for_mark(self, key: str, raw: Any, mark: Any) -> None:
        """Until Redis holds the mark just written (Redis runs a connection's commands in
        order, so everything written before it has run too)."""
        want = mark if isinstance(mark, bytes) else str(mark).encode()
        for _ in range(2000):
            if self.admin.hget(key, raw) == want:
                return
            time.sleep(0.001)
        raise AssertionError(f"the mark {raw!r} never reached Redis")

    def lost_mark(self, task_id: int) -> None:
        """A mark written into a connection Redis had closed: the worker runs the task and
        learns at its next round trip; dying first, that run is the start reliable.py says
        goes uncharged."""
        self.void[task_id] += 1

    def marked(self, task_id: int) -> None:
        self.delivered[task_id] += 1

    def called(self, args: tuple[Any, ...], result: Any) -> None:
        """A script of the worker's link ran in Redis (its reply seen or not)."""
        if args[:2] in (("EVALSHA", reliable.TAKE.sha), ("EVAL", reliable.TAKE.source)) \
                and isinstance(result, list) and result:
            self.delivered[int(result[0])] += 1  # take marks the first task it takes

    def expire(self, name: str) -> None:
        """``name``'s heartbeat ends: it was silent (frozen) that long, so its clock moved
        on. A worker without a heartbeat may be reaped between any two of its round trips
        (``late_mark`` sees what that does to a mark)."""
        self.admin.delete(reliable.heartbeat(name))
        if self.alive(name):
            self.workers[name].worker._flushed = -float("inf")

    def late_mark(self, started_key: str, raw: bytes) -> None:
        """A mark about to be written: if a reaper gave its task back since this worker's
        last ack check, the worker marks and runs a task that is no longer its own, the one
        start reliable.py says is not charged (a worker frozen past its heartbeat between its
        ack check and a mark). Told by Redis itself, before the mark goes out."""
        name = started_key.rsplit(":", 1)[1]
        if self.admin.lpos(reliable.processing(name), raw) is None:
            self.frozen[int(raw)] += 1

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
        for place, ids in self.admin.eval(PLACES, 0):  # type: ignore[union-attr]
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
            starts = max(self.entered[i], self.delivered[i])
            if len(w) > 1:
                found.append(f"task {i} is in {len(w)} places: {', '.join(w)}")
            elif not w and i not in done:
                found.append(f"task {i} is lost: in no list, not done, no dead letter")
            elif w == ["the dead letters"] and i not in recorded:
                found.append(f"task {i} is a dead letter without its record")
            if any(p.startswith("the dead letters") for p in w) and starts < MAX_ATTEMPTS:
                found.append(f"task {i} is dead-lettered after {starts} start(s)")
        return found + (self.charge_problems(where) if self.protocol.exact else [])

    def charge_problems(self, where: dict[int, list[str]]) -> list[str]:
        """Attempts against starts, for every task not acknowledged: each run was preceded
        by its mark in Redis (entered <= marks), and what Redis charges lies between the
        runs and the marks: a mark is a start even if the process died before entering the
        task; one whose task this process never ran is uncharged by its rejoin."""
        charged = self.charges()
        found = []
        for i in range(self.tasks):
            if not where.get(i):
                continue  # acknowledged: its attempts are forgotten
            runs, marks = self.entered[i] - self.frozen[i] - self.void[i], self.delivered[i]
            if self.entered[i] > marks + self.void[i]:
                found.append(f"task {i} ran {self.entered[i]} time(s) after {marks} mark(s)")
            if not runs <= charged[i] <= marks + self.void[i]:  # a rejoin records a void one
                found.append(f"task {i} is charged {charged[i]} attempt(s) after {runs} "
                             f"run(s) and {marks} mark(s)")
        return found

    def charges(self) -> Counter[int]:
        """Attempts Redis charges each task: given back after a start, plus the start of
        its current holding (its mark), or the count a dead letter carries."""
        attempts, marked, owed, dead = self.admin.eval(CHARGES, 0)  # type: ignore[misc]
        charged: Counter[int] = Counter()
        charged.update({int(k): int(v) for k, v in zip(attempts[::2], attempts[1::2])})
        charged.update(int(x) for x in marked)
        charged.update({int(k): int(v.split()[-1]) for k, v in zip(owed[::2], owed[1::2])})
        charged.update({int(x): MAX_ATTEMPTS for x in dead})
        return charged

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
        self.clients: list[_Gated] = []
        self.crash: BaseException | None = None
        cfg = AgentConfig(container=name, task="noop", params={}, seed=0, tasks=0,
                          prefetch=world.prefetch, max_attempts=MAX_ATTEMPTS)
        self.worker = world.protocol.make(cfg, world.log, self._connect(world))
        world.protocol.configure(self.worker, world)
        if isinstance(self.worker, Worker):  # its own connection, gated like the rest
            self.worker.queue.make_link = lambda c: GatedLink(c, self.gate, world)
            self.worker.queue.use(self.clients[0])
        self.worker.run_task = world.run_task
        threading.Thread(target=self._main, daemon=True, name=f"worker {name}").start()
        self.gate.wait_parked()

    def _connect(self, world: World) -> Callable[[], _Gated]:
        def connect() -> _Gated:  # a new connection (the old one is closed)
            if not self.clients:
                self.clients.append(world.protocol.client(self.gate, world.lost_reply,
                                                          world.port))
            self.clients[0].drop()
            return self.clients[0]
        return connect

    def _main(self) -> None:
        try:
            self.worker.begin_reliable()
            self.worker.serve(self.worker.step_reliable, self.worker.rejoin)
        except (Killed, redis.ConnectionError, redis.TimeoutError, resp.ConnectionError,
                resp.TimeoutError):
            pass  # died, or gave up on Redis (as main() does after RECONNECT_WAIT: exit 1)
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
            c.drop()
