"""The one process of a ``multi`` worker container.

``reliable`` (at-least-once): BLMOVE each task into this worker's processing list, record the
result, then acknowledge (LREM). A heartbeat key expires when the worker stops; a reaper,
run by whichever worker holds a short lock, moves a dead worker's unacknowledged tasks back
to the head of the queue and dead-letters a task delivered ``max_attempts`` times. A
restarted worker first requeues what it held before it died.

``simple`` (at-most-once): BRPOP; a task taken by a worker that dies is lost.

A Redis outage (Redis killed, maybe restarted empty) does not end the worker: it writes one
``error`` line per outage, reconnects (waiting for Redis as at start), registers again and
carries on with whatever the queue then holds. The heartbeat thread keeps running across it.

Usage: ``python3 -m topo.agent.worker`` with ``TOPO_CONFIG`` set.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

import psutil
import redis

from topo.agent import queue as q
from topo.agent import telemetry
from topo.agent.common import (
    Events, announce_ready, bind_task, config, failed, fatal, task_record,
)

HEARTBEAT_EVERY = 0.5  # seconds
HEARTBEAT_TTL_MS = 3000  # a worker silent this long is dead
REAP_EVERY = 1.0
# KEYS: processing list, queue, attempts hash, dead letters; ARGV: max attempts.
# Takes the oldest unacknowledged task, counts the delivery, and moves it back to the head
# of the queue or, at the cap, to the dead letters. Returns nil or {id, attempts, dead}.
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
RECONNECT_WAIT = 120.0  # seconds an outage may last before the worker gives up (exit 1)


class Worker:
    def __init__(self, cfg: dict[str, Any], events: Events, client: redis.Redis) -> None:
        self.cfg = cfg
        self.events = events
        self.client = client
        self.name: str = cfg["container"]
        self.worker = f"{self.name}/{os.getpid()}"
        self.run_task = bind_task(cfg)
        self.core_of: Callable[[], int] = psutil.Process().cpu_num
        self.prefetch: int = cfg["prefetch"]
        self.max_attempts: int = cfg["max_attempts"]
        self._last_reap = 0.0
        self._unacked: list[bytes] = []  # done, but the LREM did not reach Redis yet

    def execute(self, raw: bytes) -> None:
        self.events.emit(**task_record(int(raw), self.worker, self.run_task, self.core_of))

    # ----------------------------------------------------------------- reliable

    def beat_forever(self) -> None:
        """Beat, and stay registered: a Redis that restarted empty (the client may reconnect
        without the main loop ever seeing an error) or a reaper that declared this worker
        dead while it was frozen would otherwise leave it out of the reaper's list."""
        while True:
            try:
                self.register()
            except redis.RedisError:
                pass  # Redis away: the main loop notices and reconnects
            time.sleep(HEARTBEAT_EVERY)

    def requeue(self, owner: str) -> None:
        """Move ``owner``'s unacknowledged tasks back to the head of the queue; a task
        delivered ``max_attempts`` times goes to the dead letters instead.

        Counting and moving are one atomic step (a script): with a move first and a
        dead-letter check after it, a worker blocked on the queue took the poison task in
        between, and the cap never applied (an endless OOM loop)."""
        while True:
            found = self.client.eval(REQUEUE_SCRIPT, 4, q.processing(owner), q.QUEUE, q.ATTEMPTS,
                                     q.DEAD, self.max_attempts)
            if not found:
                return
            raw, attempts, dead = found
            now = time.time()
            # a dead letter is not a re-delivery: the line still says the worker lost it
            self.events.emit(ev="requeue", id=int(raw), w=owner, by=self.worker, t=now,
                             dead=bool(dead))
            if dead:
                failed(self.events, self.worker, int(raw),
                       f"dead-lettered after {attempts} deliveries", now)

    def maybe_reap(self) -> None:
        now = time.monotonic()
        if now - self._last_reap < REAP_EVERY:
            return
        self._last_reap = now
        if not self.client.set(q.REAPER_LOCK, self.name, nx=True, px=int(REAP_EVERY * 1000)):
            return
        for raw in self.client.smembers(q.WORKERS):
            owner = raw.decode()
            if owner != self.name and not self.client.exists(q.heartbeat(owner)):
                self.requeue(owner)
                self.client.srem(q.WORKERS, owner)

    def take(self) -> list[bytes]:
        mine = q.processing(self.name)
        first = self.client.blmove(q.QUEUE, mine, 1, "RIGHT", "LEFT")
        if first is None:
            return []
        if self.prefetch == 1:
            return [first]
        pipe = self.client.pipeline(transaction=False)
        for _ in range(self.prefetch - 1):
            pipe.lmove(q.QUEUE, mine, "RIGHT", "LEFT")
        return [first] + [raw for raw in pipe.execute() if raw is not None]

    def register(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(q.heartbeat(self.name), self.worker, px=HEARTBEAT_TTL_MS)
        pipe.sadd(q.WORKERS, self.name)
        pipe.execute()

    def rejoin(self) -> None:
        """After an outage: register again, and give back what this worker holds without
        knowing it (a BLMOVE whose reply was lost). Only this worker takes from its own
        processing list while its heartbeat lives, so the look and the moves need no lock."""
        self.register()
        mine = q.processing(self.name)
        held = set(self._unacked)  # done already; acknowledged by the next step
        for raw in self.client.lrange(mine, 0, -1):
            if raw not in held and self.client.lrem(mine, 1, raw):
                self.client.rpush(q.QUEUE, raw)  # the head: workers take from the right
                self.events.emit(ev="requeue", id=int(raw), w=self.name, by=self.worker,
                                 t=time.time(), dead=False)

    def ack(self) -> None:
        if not self._unacked:
            return
        mine = q.processing(self.name)
        pipe = self.client.pipeline(transaction=False)
        for raw in self._unacked:
            pipe.lrem(mine, 1, raw)
        pipe.execute()
        self._unacked = []

    def run_reliable(self) -> None:
        self.register()
        self.requeue(self.name)  # what this worker held when it last died
        threading.Thread(target=self.beat_forever, daemon=True).start()
        announce_ready(self.events, self.worker, self.name)
        self.serve(self.step_reliable, self.rejoin)

    def step_reliable(self) -> None:
        self.ack()  # what an outage kept from being acknowledged
        batch = self.take()
        for raw in batch:
            self.execute(raw)
        self._unacked = batch
        self.ack()
        self.maybe_reap()

    # ----------------------------------------------------------------- simple

    def run_simple(self) -> None:
        announce_ready(self.events, self.worker, self.name)
        self.serve(self.step_simple, lambda: None)

    def step_simple(self) -> None:
        item = self.client.brpop(q.QUEUE, timeout=1)
        if item is not None:
            self.execute(item[1])

    # ----------------------------------------------------------------- outages

    def serve(self, step: Callable[[], None], register: Callable[[], None]) -> None:
        """Run ``step`` forever; a Redis outage costs one ``error`` line and a reconnect."""
        while True:
            try:
                step()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.reconnect(exc, register)

    def reconnect(self, exc: BaseException, register: Callable[[], None]) -> None:
        self.events.emit(ev="error", c=self.name, w=self.worker, t=time.time(),
                         err=f"redis unreachable, reconnecting: {type(exc).__name__}: {exc}"[:500],
                         recoverable=True)
        deadline = time.monotonic() + RECONNECT_WAIT
        while True:
            try:
                self.client = q.connect(self.cfg)  # waits for Redis; raises after a minute
                register()
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                continue  # gone again already: wait once more, no second line
            self.events.emit(ev="reconnect", c=self.name, w=self.worker, t=time.time())
            return


def main() -> None:
    cfg = config()
    events = None
    try:
        events = Events(f"{cfg['container']}-{os.getpid()}")
        events.emit(ev="expect", c=cfg["container"], n=1, t=time.time())
        if cfg.get("telemetry", True):
            telemetry.start(events, cfg["container"])
        worker = Worker(cfg, events, q.connect(cfg))
        worker.run_reliable() if cfg["queue"] == "reliable" else worker.run_simple()
    except Exception as exc:  # recorded for the harness, then a non-zero exit
        fatal(events, cfg.get("container", "?"), exc)


if __name__ == "__main__":
    main()
