"""The one process of a ``multi`` worker container.

``reliable`` (at-least-once): BLMOVE each task into this worker's processing list, record the
result, then acknowledge (LREM). A heartbeat key expires when the worker stops; a reaper,
run by whichever worker holds a short lock, moves a dead worker's unacknowledged tasks back
to the head of the queue and dead-letters a task delivered ``max_attempts`` times. A
restarted worker first requeues what it held before it died.

``simple`` (at-most-once): BRPOP; a task taken by a worker that dies is lost.

Usage: ``python3 -m topo.agent.worker`` with ``TOPO_CONFIG`` set.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

import psutil
import redis

from topo import workloads
from topo.agent import queue as q
from topo.agent.common import Events, announce_ready, config, fatal, task_record

HEARTBEAT_EVERY = 0.5  # seconds
HEARTBEAT_TTL_MS = 3000  # a worker silent this long is dead
REAP_EVERY = 1.0


class Worker:
    def __init__(self, cfg: dict[str, Any], events: Events, client: redis.Redis) -> None:
        self.cfg = cfg
        self.events = events
        self.client = client
        self.name: str = cfg["container"]
        self.worker = f"{self.name}/{os.getpid()}"
        self.run_task = workloads.bind(cfg["task"], cfg["params"], cfg["seed"])
        self.core_of: Callable[[], int] = psutil.Process().cpu_num
        self.prefetch: int = cfg["prefetch"]
        self.max_attempts: int = cfg["max_attempts"]
        self._last_reap = 0.0

    def execute(self, raw: bytes) -> None:
        self.events.emit(**task_record(int(raw), self.worker, self.run_task, self.core_of))

    # ----------------------------------------------------------------- reliable

    def beat_forever(self) -> None:
        while True:
            try:
                self.client.set(q.heartbeat(self.name), self.worker, px=HEARTBEAT_TTL_MS)
            except redis.RedisError:
                pass  # Redis away: the main loop notices and reconnects
            time.sleep(HEARTBEAT_EVERY)

    def requeue(self, owner: str) -> None:
        """Move ``owner``'s unacknowledged tasks back to the head of the queue."""
        while True:
            raw = self.client.lmove(q.processing(owner), q.QUEUE, "RIGHT", "RIGHT")
            if raw is None:
                return
            attempts = self.client.hincrby(q.ATTEMPTS, raw, 1)
            now = time.time()
            self.events.emit(ev="requeue", id=int(raw), w=owner, by=self.worker, t=now)
            if attempts >= self.max_attempts and self.client.lrem(q.QUEUE, 1, raw):
                self.client.lpush(q.DEAD, raw)
                self.events.emit(
                    ev="task", id=int(raw), w=self.worker, ok=False, t0=None, t1=now,
                    cpu=0.0, core=None, err=f"dead-lettered after {attempts} deliveries",
                )

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

    def run_reliable(self) -> None:
        self.client.set(q.heartbeat(self.name), self.worker, px=HEARTBEAT_TTL_MS)
        self.client.sadd(q.WORKERS, self.name)
        self.requeue(self.name)  # what this worker held when it last died
        threading.Thread(target=self.beat_forever, daemon=True).start()
        announce_ready(self.events, self.worker, self.name)
        mine = q.processing(self.name)
        while True:
            batch = self.take()
            for raw in batch:
                self.execute(raw)
            if batch:
                pipe = self.client.pipeline(transaction=False)
                for raw in batch:
                    pipe.lrem(mine, 1, raw)
                pipe.execute()
            self.maybe_reap()

    # ----------------------------------------------------------------- simple

    def run_simple(self) -> None:
        announce_ready(self.events, self.worker, self.name)
        while True:
            item = self.client.brpop(q.QUEUE, timeout=1)
            if item is not None:
                self.execute(item[1])


def main() -> None:
    cfg = config()
    events = None
    try:
        events = Events(f"{cfg['container']}-{os.getpid()}")
        events.emit(ev="expect", c=cfg["container"], n=1, t=time.time())
        worker = Worker(cfg, events, q.connect(cfg))
        worker.run_reliable() if cfg["queue"] == "reliable" else worker.run_simple()
    except Exception as exc:  # recorded for the harness, then a non-zero exit
        fatal(events, cfg.get("container", "?"), exc)


if __name__ == "__main__":
    main()
