"""RQ as the queue (``multi.queue: rq``).

Each worker container runs one ``rq.SimpleWorker``: it runs every job in its own process, as
topo's workers do (RQ's default ``Worker`` forks a work horse for each job, a second process
per container and a fork per task). Jobs are enqueued with ``Queue.enqueue``; everything
else is RQ's default (job timeout 180 s, results kept 500 s, no retries).
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

import redis
from rq import Queue, SimpleWorker

from topo.agent.peer import QUEUE_NAME, Recorder, broker_url
from topo.agent.protocol import AgentConfig

JOB = "topo.agent.peer_rq.run"  # RQ finds a job's function by this import path
_recorder: list[Recorder] = []  # set by work(): the job function runs in this process


def run(task_id: int) -> None:
    _recorder[0].record(task_id)


def work(cfg: AgentConfig, recorder: Recorder) -> None:
    _recorder.append(recorder)
    connection = redis.Redis.from_url(broker_url(cfg))
    # A restarted container must not take the name its killed predecessor registered.
    name = f"{cfg.container}-{os.getpid()}-{os.urandom(3).hex()}"
    worker = SimpleWorker([Queue(QUEUE_NAME, connection=connection)], name=name,
                          connection=connection)
    recorder.expect(1)
    recorder.ready()
    worker.work(logging_level="WARNING")


def sender(cfg: AgentConfig) -> Callable[[Iterable[int]], None]:
    queue = Queue(QUEUE_NAME, connection=redis.Redis.from_url(broker_url(cfg)))

    def send(ids: Iterable[int]) -> None:
        for task_id in ids:
            queue.enqueue(JOB, task_id)

    return send
