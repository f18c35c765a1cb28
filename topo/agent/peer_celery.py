"""Celery as the queue (``multi.queue: celery``, ``single.pool: celery-prefork``).

multi: each worker container runs ``celery worker --pool solo`` (one process, like topo's
worker); single: one container runs ``celery worker --pool prefork --concurrency N``. Both
take tasks from the run's Redis with Celery's own Redis transport (kombu), configured from
the scenario:

- ``task_acks_late`` = ``multi.acks_late`` (Celery's default: false, the message is
  acknowledged just before the task starts);
- ``worker_prefetch_multiplier`` = ``multi.prefetch``;
- the transport's ``visibility_timeout`` = ``multi.visibility_timeout`` when given (kombu's
  default: 3600 s), after which an unacknowledged message is delivered again; with it, the
  sweep that finds such messages runs every second (kombu's default: every 100 s).

Everything else is Celery's default, except what a worker needs no other worker for:
no gossip, mingle or worker heartbeat (events are off), as fast Celery setups run.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from celery import Celery, signals

from topo.agent.peer import QUEUE_NAME, Recorder, broker_url
from topo.agent.protocol import AgentConfig, PoolKind

TASK = "topo.run"
RESTORE_EVERY = 1  # seconds between two sweeps for overdue messages (with visibility_timeout)


def app(cfg: AgentConfig, recorder: Recorder | None = None) -> Celery:
    """The Celery app of the run; with ``recorder``, its one task runs topo's task."""
    celery = Celery("topo", broker=broker_url(cfg), set_as_current=True)
    options: dict[str, Any] = {}
    if cfg.visibility_timeout:
        options["visibility_timeout"] = float(cfg.visibility_timeout)
        # kombu looks for overdue messages every interval x throttle seconds (10 x 10 by
        # default): with a short timeout, that sweep, not the timeout, would decide when a
        # message comes back. Once a second makes the timeout the bound users set.
        options["unacked_restore_interval"] = RESTORE_EVERY
        options["unacked_restore_throttle"] = 1
    celery.conf.update(
        task_acks_late=bool(cfg.acks_late),
        worker_prefetch_multiplier=1 if cfg.prefetch is None else cfg.prefetch,
        broker_transport_options=options,
        task_default_queue=QUEUE_NAME,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    if recorder is not None:
        def run(task: Any, task_id: int) -> None:
            if redelivered(task.request.delivery_info):
                recorder.redelivered(task_id, "celery")
            recorder.record(task_id)

        celery.task(name=TASK, bind=True)(run)
    return celery


def redelivered(delivery_info: Any) -> bool:
    """Whether Celery received this message again: kombu's Redis transport marks a message
    it restores (an unacknowledged one past its visibility timeout, or one a worker gave
    back as it stopped) with ``redelivered``, and Celery copies the mark into the task's
    ``request.delivery_info``."""
    return bool(isinstance(delivery_info, dict) and delivery_info.get("redelivered"))


def concurrency(cfg: AgentConfig) -> int:
    processes = 1 if cfg.processes is None else cfg.processes
    # "auto": what Celery itself would pick, os.cpu_count(), which ignores the CPU quota
    return (os.cpu_count() or 1) if processes == "auto" else int(processes)


def work(cfg: AgentConfig, recorder: Recorder) -> None:
    prefork = cfg.pool == PoolKind.CELERY_PREFORK
    n = concurrency(cfg) if prefork else 1

    # A prefork child says it is ready once forked; the main process says how many it runs
    # once its consumer is connected, so the harness releases the batch only then.
    def child_ready(**_: Any) -> None:
        recorder.ready()

    def consumer_ready(**_: Any) -> None:
        recorder.expect(n)
        if not prefork:
            recorder.ready()

    if prefork:
        signals.worker_process_init.connect(child_ready, weak=False)
    signals.worker_ready.connect(consumer_ready, weak=False)
    app(cfg, recorder).worker_main([
        "worker", "--pool", "prefork" if prefork else "solo", "--concurrency", str(n),
        "--loglevel", "WARNING", "--queues", QUEUE_NAME, "--hostname", f"{cfg.container}@topo",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ])


def sender(cfg: AgentConfig) -> Callable[[Iterable[int]], None]:
    """Enqueue with Celery's own publishing path (``send_task``, what ``apply_async`` calls),
    one message per task, on one producer connection."""
    celery = app(cfg)

    def send(ids: Iterable[int]) -> None:
        with celery.producer_or_acquire() as producer:
            for task_id in ids:
                celery.send_task(TASK, args=(task_id,), queue=QUEUE_NAME, producer=producer)

    return send
