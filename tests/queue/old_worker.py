"""The reliable queue's worker as it was before its transitions became single scripts
(topo/agent/worker.py and topo/agent/queue.py at commit df021d8), kept only so that the
queue tests can show they catch its defects: a task lost by ``rejoin`` (LREM, then RPUSH),
a reaper that checks the heartbeat outside the requeue, a dead letter's record written
after the move, and attempts charged to tasks that never started (prefetch > 1).

Not used by topo. Adapted only where the tests must drive it like the current worker:
- ``connect`` is a callable (the current worker's signature), used at reconnect too;
- the heartbeat TTL, the reaper's period and lock, and the BLMOVE timeout are attributes;
- ``begin_reliable`` is the start of ``run_reliable`` without its heartbeat thread;
- it reads an ``AgentConfig`` and writes ``topo.agent.protocol`` events, as agents now do.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import psutil
import redis

from topo.agent.common import Events, bind_task, failed, task_record
from topo.agent.protocol import AgentConfig, Error, Reconnect, Requeue

QUEUE = "topo:queue"
WORKERS = "topo:workers"
ATTEMPTS = "topo:attempts"
DEAD = "topo:dead"
REAPER_LOCK = "topo:reaper"


def processing(worker: str) -> str:
    return f"topo:processing:{worker}"


def heartbeat(worker: str) -> str:
    return f"topo:heartbeat:{worker}"


HEARTBEAT_TTL_MS = 3000
REAP_EVERY = 1.0
REQUEUE_SCRIPT = """
local raw = redis.call('LINDEX', KEYS[1], -1)
if not raw then return nil end
local attempts = redis.call('HINCRBY', KEYS[3], raw, 1)
if attempts >= tonumber(ARGV[1]) then
  redis.call('LMOVE', KEYS[1], KEYS[4], 'RIGHT', 'LEFT')
  return {raw, attempts, 1}
end
redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'RIGHT')
return {raw, attempts, 0}
"""
RECONNECT_WAIT = 120.0


class OldWorker:
    def __init__(self, cfg: AgentConfig, events: Events,
                 connect: Callable[[], redis.Redis]) -> None:
        self.cfg = cfg
        self.events = events
        self.connect = connect  # adapted
        self.client = connect()  # adapted
        self.name: str = cfg.container
        self.worker = f"{self.name}/{os.getpid()}"
        self.run_task = bind_task(cfg)
        self.core_of: Callable[[], int] = psutil.Process().cpu_num
        self.prefetch: int = cfg.prefetch or 1
        self.max_attempts: int = cfg.max_attempts
        self._last_reap = 0.0
        self._unacked: list[bytes] = []
        self.heartbeat_ttl_ms = HEARTBEAT_TTL_MS  # adapted: these four were constants
        self.reap_every = REAP_EVERY
        self.reap_lock_ms = int(REAP_EVERY * 1000)
        self.take_wait = 1

    def execute(self, raw: bytes) -> None:
        self.events.emit(task_record(int(raw), self.worker, self.run_task, self.core_of))

    def requeue(self, owner: str) -> None:
        while True:
            found = self.client.eval(REQUEUE_SCRIPT, 4, processing(owner), QUEUE, ATTEMPTS,
                                     DEAD, self.max_attempts)
            if not found:
                return
            raw, attempts, dead = found
            now = time.time()
            self.events.emit(Requeue(id=int(raw), worker=owner, by=self.worker, t=now,
                                     dead=bool(dead)))
            if dead:
                failed(self.events, self.worker, int(raw),
                       f"dead-lettered after {attempts} deliveries", now)

    def maybe_reap(self) -> None:
        now = time.monotonic()
        if now - self._last_reap < self.reap_every:
            return
        self._last_reap = now
        if not self.client.set(REAPER_LOCK, self.name, nx=True, px=self.reap_lock_ms):
            return
        for raw in self.client.smembers(WORKERS):
            owner = raw.decode()
            if owner != self.name and not self.client.exists(heartbeat(owner)):
                self.requeue(owner)
                self.client.srem(WORKERS, owner)

    def take(self) -> list[bytes]:
        mine = processing(self.name)
        first = self.client.blmove(QUEUE, mine, self.take_wait, "RIGHT", "LEFT")
        if first is None:
            return []
        if self.prefetch == 1:
            return [first]
        pipe = self.client.pipeline(transaction=False)
        for _ in range(self.prefetch - 1):
            pipe.lmove(QUEUE, mine, "RIGHT", "LEFT")
        return [first] + [raw for raw in pipe.execute() if raw is not None]

    def register(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(heartbeat(self.name), self.worker, px=self.heartbeat_ttl_ms)
        pipe.sadd(WORKERS, self.name)
        pipe.execute()

    def rejoin(self) -> None:
        self.register()
        mine = processing(self.name)
        held = set(self._unacked)
        for raw in self.client.lrange(mine, 0, -1):
            if raw not in held and self.client.lrem(mine, 1, raw):
                self.client.rpush(QUEUE, raw)
                self.events.emit(Requeue(id=int(raw), worker=self.name, by=self.worker,
                                         t=time.time()))

    def ack(self) -> None:
        if not self._unacked:
            return
        mine = processing(self.name)
        pipe = self.client.pipeline(transaction=False)
        for raw in self._unacked:
            pipe.lrem(mine, 1, raw)
        pipe.execute()
        self._unacked = []

    def begin_reliable(self) -> None:  # adapted: run_reliable without its thread
        self.register()
        self.requeue(self.name)

    def step_reliable(self) -> None:
        self.ack()
        batch = self.take()
        for raw in batch:
            self.execute(raw)
        self._unacked = batch
        self.ack()
        self.maybe_reap()

    def serve(self, step: Callable[[], None], register: Callable[[], None]) -> None:
        while True:
            try:
                step()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.reconnect(exc, register)

    def reconnect(self, exc: BaseException, register: Callable[[], None]) -> None:
        self.events.emit(Error(
            container=self.name, t=time.time(), worker=self.worker, recoverable=True,
            error=f"redis unreachable, reconnecting: {type(exc).__name__}: {exc}"[:500]))
        deadline = time.monotonic() + RECONNECT_WAIT
        while True:
            try:
                self.client = self.connect()  # adapted
                register()
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                continue
            self.events.emit(Reconnect(container=self.name, worker=self.worker, t=time.time()))
            return
