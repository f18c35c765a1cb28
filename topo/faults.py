"""Fault kinds -> actions on a running Deployment, applied symmetrically to both topologies.

| kind           | single                                   | multi                                   |
|----------------|------------------------------------------|-----------------------------------------|
| kill-worker    | SIGKILL one worker process (not PID 1)   | SIGKILL the worker process of one container |
| kill-container | SIGKILL the container's main process     | the same, to one worker container       |
| kill-redis     | not applicable                           | SIGKILL Redis' main process             |
| oom            | one task allocates past the memory limit | the same, in one worker container       |
| pause          | SIGSTOP one worker process for duration  | freeze one worker container (docker pause) |
| partition      | not applicable                           | disconnect one worker container for duration |

This module only decides WHAT to do; the Runtime does it (and knows how: a host PID where
one is visible, else from inside the container or through the engine). Every outcome,
including a fault that cannot be injected, is returned as a FaultEvent: nothing here raises
past the run loop. A temporary fault ends when the run engine calls ``tick`` past its
duration (or ``finish`` at teardown): no thread and no timer of its own, so a fake clock
drives it as well as the real one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from topo.model import Deployment, Fault, FaultEvent, FaultStatus
from topo.plan import poison_task
from topo.runtime.base import Runtime

NOT_APPLICABLE = {("single", "kill-redis"), ("single", "partition")}


def due(fault: Fault, completed: int, task_count: int, since_available: float | None) -> bool:
    """Whether a fault's trigger point has been reached."""
    if fault.at_fraction is not None:
        return completed >= fault.at_fraction * task_count
    return since_available is not None and since_available >= (fault.at_seconds or 0.0)


class Injector:
    """Injects one fault into one deployment and undoes the temporary ones."""

    def __init__(self, runtime: Runtime, deployment: Deployment, fault: Fault) -> None:
        self.runtime = runtime
        self.deployment = deployment
        self.fault = fault
        self.event: FaultEvent | None = None
        self._undo: Callable[[], None] | None = None

    @property
    def topology(self) -> str:
        return self.deployment.plan.topology

    def _container(self, role: str) -> str:
        return next(c.name for c in self.deployment.containers if c.role == role)

    def _worker_container(self) -> str:
        return self._container("single" if self.topology == "single" else "worker")

    def inject(self, t: float) -> FaultEvent:
        """Apply the fault now (``t``: when it began, by the engine's clock); return what
        happened."""
        kind = self.fault.kind
        if (self.topology, kind) in NOT_APPLICABLE:
            self.event = self._event(FaultStatus.NOT_APPLICABLE, None, None,
                                     f"{kind} does not apply to the {self.topology} topology")
            return self.event
        try:
            target = getattr(self, "_" + kind.replace("-", "_"))()
            self.event = self._event(FaultStatus.INJECTED, t, target)
        except Exception as e:  # a fault that could not be injected is data, not a crash
            self._undo = None
            self.event = self._event(FaultStatus.FAILED, t, None, f"{type(e).__name__}: {e}"[:300])
        return self.event

    def _event(self, status: FaultStatus, t: float | None, target: str | None,
               error: str | None = None) -> FaultEvent:
        return FaultEvent(name=self.fault.name, kind=self.fault.kind, status=status, t=t,
                          target=target, error=error)

    # ------------------------------------------------------------------ kinds

    def _worker_process(self) -> tuple[str, int]:
        """Container and in-container PID of one worker process of the single container."""
        name = self._worker_container()
        pids = self.runtime.workers(self.deployment, name)
        if not pids:
            raise RuntimeError(f"{name} has no worker processes")
        return name, pids[0]

    def _kill_worker(self) -> str:
        if self.topology == "single":
            name, pid = self._worker_process()
            self.runtime.kill(self.deployment, name, pid)
            return f"{name}/{pid}"
        return self._kill_container()

    def _kill_container(self) -> str:
        name = self._worker_container()
        self.runtime.kill(self.deployment, name)
        return name

    def _kill_redis(self) -> str:
        name = self._container("redis")
        self.runtime.kill(self.deployment, name)
        return name

    def _oom(self) -> str:
        # The poison task was planted at plan time; this marks when its turn came.
        poison = poison_task(self.fault, self.deployment.plan.task_count)
        return f"task {poison}"

    def _pause(self) -> str:
        rt, dep = self.runtime, self.deployment
        if self.topology == "single":
            name, pid = self._worker_process()
            rt.stop_process(dep, name, pid, True)
            self._undo = lambda: rt.stop_process(dep, name, pid, False)
            return f"{name}/{pid}"
        name = self._worker_container()
        rt.pause(dep, name)
        self._undo = lambda: rt.unpause(dep, name)
        return name

    def _partition(self) -> str:
        rt, dep = self.runtime, self.deployment
        name = self._worker_container()
        rt.disconnect(dep, name)
        self._undo = lambda: rt.reconnect(dep, name)
        return name

    # ------------------------------------------------------------------ undo

    @property
    def active(self) -> bool:
        """A pause or partition is in force."""
        return self._undo is not None

    def tick(self, now: float) -> None:
        """End a pause or partition once its duration has passed."""
        ev = self.event
        if self._undo is not None and ev is not None and ev.t is not None \
                and now >= ev.t + (self.fault.duration or 0.0):
            self.finish(now)

    def finish(self, now: float) -> None:
        """End a pause or partition (on time, or early at teardown); idempotent."""
        undo, self._undo = self._undo, None
        if undo is None or self.event is None:
            return
        error = None
        try:
            undo()
        except Exception as e:  # the container may be gone already
            error = f"undo failed: {type(e).__name__}: {e}"[:300]
        self.event = replace(self.event, t_end=now, error=error or self.event.error)
