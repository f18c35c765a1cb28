"""A queue library a team already runs (Celery, RQ, dramatiq) as topo's worker and producer.

The library moves the tasks with its own protocol on the run's Redis; topo only wraps the
task. Every attempt still writes topo's ``task`` line from the process that ran it (through
``Recorder``, the same ``task_record`` and per-process event file as topo's own workers), so
the harness's ledger never depends on the library's bookkeeping: a task the library loses,
redelivers or runs twice shows up as such.

Usage: ``python3 -m topo.agent.peer worker|feed`` with ``TOPO_CONFIG`` set; config ``queue``
names the library (``celery``, ``rq``, ``dramatiq``). A library is imported only when it is
the one chosen: the image has only the scenario's own.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from types import ModuleType
from typing import Callable

from topo.agent import queue as q
from topo.agent import common, telemetry
from topo.agent.common import (
    Events, announce_ready, bind_task, config, fatal, task_record, wait_for_go,
)
from topo.agent.protocol import AgentConfig, Avail, Expect, Fed, QueueKind, Requeue

QUEUE_NAME = "topo"  # the library's queue the batch goes through
LIBRARIES = {QueueKind.CELERY: "topo.agent.peer_celery", QueueKind.RQ: "topo.agent.peer_rq",
             QueueKind.DRAMATIQ: "topo.agent.peer_dramatiq"}


class Recorder:
    """Runs a task the way topo's own workers do and writes its line. One per process: a
    process forked by the library's pool (Celery's prefork children) opens its own event
    file on first use, as its pid differs from the one the file was opened for."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.container = cfg.container
        self._pid = -1

    def here(self) -> None:
        """Open this process's event file (once per process)."""
        pid = os.getpid()
        if pid != self._pid:
            self.events = Events(f"{self.container}-{pid}")
            self.worker = f"{self.container}/{pid}"
            self.run_task = bind_task(self.cfg)
            self.core_of: Callable[[], int] = common.core_reader()
            self._pid = pid

    def expect(self, n: int) -> None:
        self.here()
        self.events.emit(Expect(container=self.container, n=n, t=time.time()))

    def ready(self, tid: int | None = None) -> None:
        """Say this process is ready; ``tid`` is the thread that will run the tasks, when it
        is not the calling one."""
        self.here()
        announce_ready(self.events, self.worker, self.container, tid)

    def redelivered(self, task_id: int, library: str) -> None:
        """Say the library delivered ``task_id`` to this process again: a ``requeue`` line,
        which the harness counts as a re-delivery as it counts topo's own queue's. Written
        when the task comes back, not when it was taken away (the library does not tell),
        and naming the library, not a worker, as where it came from: the library does not
        say which worker held it, so no worker is marked as hit by it."""
        self.here()
        self.events.emit(Requeue(id=int(task_id), worker=library, by=self.worker, t=time.time()))

    def record(self, task_id: int) -> None:
        self.here()
        self.events.emit(task_record(int(task_id), self.worker, self.run_task, self.core_of))


def broker_url(cfg: AgentConfig) -> str:
    password = os.environ.get("TOPO_REDIS_PASSWORD") or ""
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{cfg.redis_host}:6379/0"


def library(cfg: AgentConfig) -> ModuleType:
    if cfg.queue not in LIBRARIES:
        raise ValueError(f"queue {cfg.queue} is not a queue library topo runs")
    return importlib.import_module(LIBRARIES[cfg.queue])


def work() -> None:
    """A worker: the library's own worker loop, in this process (or its own pool)."""
    cfg = config()
    recorder = Recorder(cfg)
    try:
        q.connect(cfg).close()  # Redis first, as topo's worker does: a start is not a failure
        if cfg.telemetry:
            recorder.here()
            telemetry.start(recorder.events, cfg.container)
        library(cfg).work(cfg, recorder)
    except Exception as exc:  # recorded for the harness, then a non-zero exit
        fatal(getattr(recorder, "events", None), cfg.container, exc)


def feed() -> None:
    """The producer: once released, enqueue the batch with the library's own API, in order."""
    cfg = config()
    events = None
    try:
        events = Events(f"{cfg.container}-{os.getpid()}")
        q.connect(cfg).close()
        send = library(cfg).sender(cfg)
        events.emit(Expect(container=cfg.container, n=0, t=time.time()))
        wait_for_go()
        events.emit(Avail(container=cfg.container, t=time.time(), n=cfg.tasks))
        send(range(cfg.tasks))
        events.emit(Fed(container=cfg.container, t=time.time(), n=cfg.tasks))
    except Exception as exc:  # recorded for the harness, then a non-zero exit
        fatal(events, cfg.container, exc)


if __name__ == "__main__":
    feed() if sys.argv[1:] == ["feed"] else work()
