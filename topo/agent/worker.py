"""The one process of a ``multi`` worker container.

``reliable`` (at-least-once; the protocol is ``topo.agent.reliable``): take a batch of up to
``prefetch`` tasks into this worker's processing list (acknowledging the last batch's in the
same round trip), mark each one started just before running it (a write, not a round trip),
record its result, and acknowledge it with the next take, or after ``FLUSH_EVERY`` seconds
within a long batch. A heartbeat key expires when the worker stops; a reaper, run by
whichever worker holds a short lock, gives a dead worker's tasks back to the head of the
queue and dead-letters a task started ``max_attempts`` times, writing the dead letter's
failed record. A restarted worker first gives back what it held before it died.

``simple`` (at-most-once): BRPOP; a task taken by a worker that dies is lost.

A Redis outage (Redis killed, maybe restarted empty, or the network cut) does not end the
worker, whenever it comes: it writes one ``error`` line per outage, reconnects (waiting for
Redis as at start), registers again and carries on with whatever the queue then holds. The
heartbeat thread keeps running across it. That holds from the first connection on: an
outage while the worker registers is one like any other (it gives up only after
``RECONNECT_WAIT``, exit 1).

Usage: ``python3 -m topo.agent.worker`` with ``TOPO_CONFIG`` set.
"""

from __future__ import annotations

import os
import threading
import time

from topo.agent import queue as q
from topo.agent import reliable, resp, telemetry
from topo.agent.common import (
    Events, TaskLines, announce_ready, bind_task, config, failed, fatal,
)
from topo.agent.protocol import (
    AgentConfig, Error, Expect, QueueKind, Reconnect, Requeue,
)

TYPE_CHECKING = False  # typing is for the type checker only (see topo.agent.protocol)
if TYPE_CHECKING:
    from typing import Callable

HEARTBEAT_EVERY = 0.5  # seconds
HEARTBEAT_TTL_MS = 3000  # a worker silent this long is dead
REAP_EVERY = 1.0
TAKE_WAIT = 1.0  # seconds a worker blocks on an empty queue before it reaps again
# Acknowledge within a batch after this long: bounds the tasks run again after a death, and
# a worker frozen longer (its batch given away) learns it before running the next task.
FLUSH_EVERY = 0.05  # seconds
RECONNECT_WAIT = 120.0  # seconds an outage may last before the worker gives up (exit 1)


class Worker:
    def __init__(self, cfg: AgentConfig, events: Events,
                 connect: Callable[[], resp.Redis]) -> None:
        self.cfg = cfg
        self.events = events
        self.connect = connect
        self.name = cfg.container
        self.worker = f"{self.name}/{os.getpid()}"
        self.run_task = bind_task(cfg)  # the team's imports, before Redis is reached
        self.lines = TaskLines(self.worker)
        self.prefetch = cfg.prefetch or 1
        self.max_attempts = cfg.max_attempts
        self.reap_every = REAP_EVERY
        self.reap_lock_ms = int(REAP_EVERY * 1000)
        self.take_wait = TAKE_WAIT
        self.flush_every = FLUSH_EVERY
        self._last_reap = -float("inf")
        self._done: list[bytes] = []  # recorded, but not acknowledged yet
        self._flushed = time.monotonic()
        me = f"{self.worker}/{os.urandom(4).hex()}"
        self.until_through(lambda: self.open_queue(me))

    def open_queue(self, me: str) -> None:
        """Connect, then open the queue's own connection: a second one, so Redis may be
        lost between the two."""
        self.client = self.connect()
        self.queue = reliable.ReliableQueue(self.client, self.name, me, self.max_attempts,
                                            HEARTBEAT_TTL_MS)

    def execute(self, raw: bytes) -> None:
        # Written (to the kernel) before the next task is marked started: the reaper takes a
        # dead process's marked tasks, all but the latest, as done (reliable.py).
        self.events.write(self.lines.run(int(raw), self.run_task))

    # ----------------------------------------------------------------- reliable

    def beat_forever(self) -> None:
        """Beat: a Redis that restarted empty (the client may reconnect without the main loop
        ever seeing an error) or a reaper that gave away this worker's tasks while it was
        frozen would otherwise leave it without a heartbeat."""
        while True:
            try:
                self.queue.beat()
            except resp.RedisError:
                pass  # Redis away: the main loop notices and reconnects
            time.sleep(HEARTBEAT_EVERY)

    def requeued(self, ids: list[bytes], owner: str) -> None:
        now = time.time()
        for raw in ids:
            self.events.emit(Requeue(id=int(raw), worker=owner, by=self.worker, t=now))

    def record_dead_letters(self) -> None:
        """Write the record of every dead letter that has none yet, then say so in Redis.
        Whoever reaps does this, so a reaper that died after dead-lettering a task leaves
        its record to the next one."""
        owed = self.queue.owed()
        now = time.time()
        for task_id, (owner, attempts) in sorted(owed.items()):
            # a dead letter is not a re-delivery: the line still says the worker lost it
            self.events.emit(Requeue(id=task_id, worker=owner, by=self.worker, t=now, dead=True))
            failed(self.events, self.worker, task_id,
                   f"dead-lettered after {attempts} deliveries", now)
        self.queue.recorded(owed)

    def maybe_reap(self) -> None:
        now = time.monotonic()
        if now - self._last_reap < self.reap_every:
            return
        self._last_reap = now
        if not self.queue.lock_reaper(self.reap_lock_ms):
            return
        for owner in self.queue.holders():
            if owner != self.name:
                self.requeued(self.queue.reap(owner) or [], owner)
        self.record_dead_letters()

    def rejoin(self) -> None:
        """Beat, and give back what this worker holds but has not done: after an outage, a
        take whose reply was lost or a batch cut short; at start, what it held when it last
        died. One script: a connection lost during it moves all of it or nothing."""
        self.requeued(self.queue.rejoin(self._done), self.name)

    def register(self) -> None:
        self.rejoin()
        self.record_dead_letters()  # the poison task this worker died of, at the cap

    def begin_reliable(self) -> None:
        """Register; an outage meanwhile costs an error line and a reconnect, as later."""
        try:
            self.register()
        except (resp.ConnectionError, resp.TimeoutError) as exc:
            self.reconnect(exc, self.register)

    def run_reliable(self) -> None:
        self.begin_reliable()
        threading.Thread(target=self.beat_forever, daemon=True).start()
        announce_ready(self.events, self.worker, self.name)
        self.serve(self.step_reliable, self.rejoin)

    def step_reliable(self) -> None:
        batch = self.queue.take(self.prefetch, self._done)  # the first is marked started
        self._acked()
        if batch:
            self.run_one(batch[0])
            self.run_batch(batch[1:])
        else:
            self.run_batch([raw] if (raw := self.queue.wait(self.take_wait)) else [])
        self.maybe_reap()

    def run_batch(self, batch: list[bytes]) -> None:
        """Run held tasks, each marked started first; acknowledge on the time bound."""
        for raw in batch:
            if time.monotonic() - self._flushed > self.flush_every and not self.flush(raw):
                return  # given back while this worker was frozen: others run the rest
            self.queue.mark(raw)  # nothing between the mark and the task: see reliable
            self.run_one(raw)

    def flush(self, next_raw: bytes) -> bool:
        """Acknowledge what is done; False if the batch is no longer this worker's."""
        held = self.queue.flush(self._done, next_raw)
        self._acked()
        return held

    def _acked(self) -> None:
        self._done = []
        self._flushed = time.monotonic()

    def run_one(self, raw: bytes) -> None:
        self.execute(raw)
        self._done.append(raw)

    # ----------------------------------------------------------------- simple

    def run_simple(self) -> None:
        announce_ready(self.events, self.worker, self.name)
        self.serve(self.step_simple, lambda: None)

    def step_simple(self) -> None:
        item = self.client.brpop(reliable.QUEUE, timeout=1)
        if item is not None:
            raw = item[1]
            self.execute(raw if isinstance(raw, bytes) else raw.encode())

    # ----------------------------------------------------------------- outages

    def serve(self, step: Callable[[], None], register: Callable[[], None]) -> None:
        """Run ``step`` forever; a Redis outage costs one ``error`` line and a reconnect."""
        while True:
            try:
                step()
            except (resp.ConnectionError, resp.TimeoutError) as exc:
                self.reconnect(exc, register)

    def reconnect(self, exc: BaseException, register: Callable[[], None]) -> None:
        self.events.emit(Error(
            container=self.name, t=time.time(), worker=self.worker, recoverable=True,
            error=f"redis unreachable, reconnecting: {type(exc).__name__}: {exc}"[:500]))

        def again() -> None:
            self.client = self.connect()  # waits for Redis; raises after a minute
            self.queue.use(self.client)
            register()

        self.until_through(again)
        self.events.emit(Reconnect(container=self.name, worker=self.worker, t=time.time()))

    @staticmethod
    def until_through(attempt: Callable[[], None]) -> None:
        """Run ``attempt`` (it connects first) until Redis stays for all of it; lost
        again during it, it starts over (no second error line), for ``RECONNECT_WAIT``."""
        deadline = time.monotonic() + RECONNECT_WAIT
        while True:
            try:
                attempt()
                return
            except (resp.ConnectionError, resp.TimeoutError):
                if time.monotonic() > deadline:
                    raise


def main() -> None:
    cfg = config()
    events = None
    try:
        events = Events(f"{cfg.container}-{os.getpid()}")
        events.emit(Expect(container=cfg.container, n=1, t=time.time()))
        if cfg.telemetry:
            telemetry.start(events, cfg.container)
        worker = Worker(cfg, events, lambda: q.connect(cfg))
        worker.run_reliable() if cfg.queue == QueueKind.RELIABLE else worker.run_simple()
    except Exception as exc:  # recorded for the harness, then a non-zero exit
        fatal(events, cfg.container, exc)


if __name__ == "__main__":
    main()
