"""dramatiq as the queue (``multi.queue: dramatiq``).

Each worker container runs one ``dramatiq.Worker`` with one worker thread in its one
process (the ``dramatiq`` command would fork worker processes under a parent). Messages are
sent with ``actor.send``; everything else is dramatiq's default: its Redis broker (a dead
worker's messages are requeued by whichever broker runs maintenance, once its heartbeat is
60 s old), its default middleware, prefetch of twice the worker threads.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from topo.agent.peer import QUEUE_NAME, Recorder, broker_url
from topo.agent.protocol import AgentConfig

ACTOR = "topo_run"


def actor(cfg: AgentConfig, recorder: Recorder | None) -> Any:
    """The run's broker and its one actor (a no-op one for the producer)."""
    broker = RedisBroker(url=broker_url(cfg))
    dramatiq.set_broker(broker)

    def run(task_id: int) -> None:
        if recorder is not None:
            recorder.record(task_id)

    return dramatiq.actor(run, actor_name=ACTOR, queue_name=QUEUE_NAME, broker=broker)


def work(cfg: AgentConfig, recorder: Recorder) -> None:
    broker = actor(cfg, recorder).broker
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    # Tasks run on the worker's own thread: the ready line names it, not this one.
    recorder.expect(1)
    recorder.ready(tid=worker.workers[0].native_id)
    while True:  # the worker's threads do the work; this one only keeps the process up
        time.sleep(3600)


def sender(cfg: AgentConfig) -> Callable[[Iterable[int]], None]:
    send_one = actor(cfg, None).send

    def send(ids: Iterable[int]) -> None:
        for task_id in ids:
            send_one(task_id)

    return send
