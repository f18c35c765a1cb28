"""The Redis side of the ``multi`` topology: connecting, the feeder.

Queue layout (task ids as decimal strings):
- ``topo:queue``: pending tasks; the producer LPUSHes, workers take from the right end.
- reliable queue only (``topo.agent.reliable`` owns these and every move between them):
  ``topo:processing:<worker>``, what a worker has taken and not yet acknowledged;
  ``topo:heartbeat:<worker>``, expires when the worker stops beating;
  ``topo:started:<worker>``, which held task that worker's process marked started (and in
  which order); ``topo:attempts``, how often a task was started and given back; ``topo:dead:owed``
  and ``topo:dead``, tasks started too many times (dead letters) before and after their
  record was written.
"""

from __future__ import annotations

import os
import time

from topo.agent import resp
from topo.agent.common import Events, config, fatal, wait_for_go
from topo.agent.protocol import AgentConfig, Avail, Expect, Fed
from topo.agent.reliable import QUEUE


def redis_password() -> str | None:
    """The run's Redis password: from the file TOPO_REDIS_PASSWORD_FILE names (a Swarm
    secret, which keeps it out of the service's environment), else TOPO_REDIS_PASSWORD."""
    path = os.environ.get("TOPO_REDIS_PASSWORD_FILE")
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read().strip() or None
    return os.environ.get("TOPO_REDIS_PASSWORD") or None


def connect(cfg: AgentConfig, wait: float = 60.0) -> resp.Redis:
    """Connect to the run's Redis, retrying while it starts (or restarts).

    A command is never sent again by the client itself (``topo.agent.resp``): a script
    whose reply was lost may have run, and running it twice takes a second task the worker
    would not know it holds. The worker sees the error instead and gives back what it holds
    (``rejoin``)."""
    client = resp.Redis(
        host=cfg.redis_host or "",  # the plan always names it; "" fails to connect
        port=6379,
        password=redis_password(),
        socket_connect_timeout=2,
        socket_timeout=10,
    )
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        try:
            client.ping()
            return client
        except (resp.ConnectionError, resp.TimeoutError):
            # A connect timeout is no ConnectionError: on a network that is still being set
            # up (a Swarm overlay under load) the first SYNs go unanswered.
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


FEED_CHUNK = 10_000  # task ids per LPUSH
FEED_PIPELINE = 4  # LPUSHes per round trip: the feeder never holds more than these ids


def push(client: resp.Redis, tasks: int, chunk: int = FEED_CHUNK,
         per_trip: int = FEED_PIPELINE) -> None:
    """Enqueue ids 0..tasks-1 in order, ``chunk`` per LPUSH and ``per_trip`` LPUSHes per
    round trip: a million ids are never all built at once (in the feeder or in Redis'
    input buffer), yet the pushes are still pipelined."""
    pipe = client.pipeline()
    for start in range(0, tasks, chunk):
        pipe.lpush(QUEUE, *range(start, min(start + chunk, tasks)))
        if len(pipe) >= per_trip:
            pipe.execute()
    if len(pipe):
        pipe.execute()


def feed() -> None:
    """The producer: once released, push the whole batch, in order, then exit."""
    cfg = config()
    events = None
    try:
        events = Events(f"{cfg.container}-{os.getpid()}")
        client = connect(cfg)
        events.emit(Expect(container=cfg.container, n=0, t=time.time()))
        wait_for_go()
        events.emit(Avail(container=cfg.container, t=time.time(), n=cfg.tasks))
        push(client, cfg.tasks)
        events.emit(Fed(container=cfg.container, t=time.time(), n=cfg.tasks))
    except Exception as exc:  # recorded for the harness, then a non-zero exit
        fatal(events, cfg.container, exc)


if __name__ == "__main__":
    feed()
