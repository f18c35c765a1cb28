"""Fault kinds -> actions on a running Deployment, applied symmetrically to both topologies.

| kind           | single                                   | multi                                   |
|----------------|------------------------------------------|-----------------------------------------|
| kill-worker    | SIGKILL one worker process (not PID 1)   | SIGKILL the worker process of one container |
| kill-container | SIGKILL the container's main process     | the same, to one worker container       |
| kill-redis     | not applicable                           | SIGKILL Redis' main process             |
| oom            | one task allocates past the memory limit | the same, in one worker container       |
| pause          | SIGSTOP one worker process for duration  | freeze one worker container (docker pause) |
| partition      | not applicable                           | disconnect one worker container for duration |

Kills go to the process's HOST PID: a kill through the Docker API counts as a manual stop,
after which restart policies never fire; a SIGKILL from outside does not. Every outcome,
including a fault that cannot be injected, is returned as a FaultEvent: nothing here raises
past the run loop.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from typing import Protocol

import psutil

from topo.model import Deployment, Fault, FaultEvent, FaultKind, FaultStatus, Role
from topo.plan import poison_task

NOT_APPLICABLE = {("single", FaultKind.KILL_REDIS), ("single", FaultKind.PARTITION)}


class FaultRuntime(Protocol):
    def host_pid(self, name: str) -> int | None: ...
    def pause(self, name: str) -> None: ...
    def unpause(self, name: str) -> None: ...
    def disconnect(self, deployment: Deployment, name: str) -> None: ...
    def reconnect(self, deployment: Deployment, name: str) -> None: ...


def due(fault: Fault, completed: int, task_count: int, since_available: float | None) -> bool:
    """Whether a fault's trigger point has been reached."""
    if fault.at_fraction is not None:
        return completed >= fault.at_fraction * task_count
    return since_available is not None and since_available >= (fault.at_seconds or 0.0)


def _ns_pid(host_pid: int) -> int | None:
    """The PID a host process has inside its container's PID namespace."""
    try:
        with open(f"/proc/{host_pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None


class Injector:
    """Injects one fault into one deployment and undoes the temporary ones."""

    def __init__(self, runtime: FaultRuntime, deployment: Deployment, fault: Fault) -> None:
        self.runtime = runtime
        self.deployment = deployment
        self.fault = fault
        self.event: FaultEvent | None = None
        self._undo: threading.Timer | None = None
        self._undo_fn: object = None
        self._lock = threading.Lock()

    @property
    def topology(self) -> str:
        return self.deployment.plan.topology

    def _container(self, role: Role) -> str:
        return next(c.name for c in self.deployment.containers if c.role == role)

    def _worker_container(self) -> str:
        return self._container(Role.SINGLE if self.topology == "single" else Role.WORKER)

    def inject(self, t: float | None = None) -> FaultEvent:
        """Apply the fault now (``t``: when it really began, if earlier); return what
        happened."""
        kind = self.fault.kind
        t = time.time() if t is None else t
        if (self.topology, kind) in NOT_APPLICABLE:
            self.event = self._event(FaultStatus.NOT_APPLICABLE, None, None,
                                     f"{kind} does not apply to the {self.topology} topology")
            return self.event
        try:
            target = getattr(self, "_" + kind.replace("-", "_"))()
            self.event = self._event(FaultStatus.INJECTED, t, target)
        except Exception as e:  # a fault that could not be injected is data, not a crash
            self.event = self._event(FaultStatus.FAILED, t, None, f"{type(e).__name__}: {e}"[:300])
        return self.event

    def _event(self, status: FaultStatus, t: float | None, target: str | None,
               error: str | None = None) -> FaultEvent:
        return FaultEvent(name=self.fault.name, kind=self.fault.kind, status=status, t=t,
                          target=target, error=error)

    # ------------------------------------------------------------------ kinds

    def _main_pid(self, name: str) -> int:
        pid = self.runtime.host_pid(name)
        if not pid:
            raise RuntimeError(f"{name} is not running")
        return pid

    def _worker_process(self) -> tuple[int, str]:
        """Host PID and target name of one worker process of the single container."""
        name = self._worker_container()
        children = sorted(psutil.Process(self._main_pid(name)).children(),
                          key=lambda p: p.pid)
        if not children:
            raise RuntimeError(f"{name} has no worker processes")
        pid = children[0].pid
        return pid, f"{name}/{_ns_pid(pid)}"

    def _kill_worker(self) -> str:
        if self.topology == "single":
            pid, target = self._worker_process()
            os.kill(pid, signal.SIGKILL)
            return target
        return self._kill_container()

    def _kill_container(self) -> str:
        name = self._worker_container()
        os.kill(self._main_pid(name), signal.SIGKILL)
        return name

    def _kill_redis(self) -> str:
        name = self._container(Role.REDIS)
        os.kill(self._main_pid(name), signal.SIGKILL)
        return name

    def _oom(self) -> str:
        # The poison task was planted at plan time; this marks when its turn came.
        poison = poison_task(self.fault, self.deployment.plan.task_count)
        return f"task {poison}"

    def _pause(self) -> str:
        if self.topology == "single":
            pid, target = self._worker_process()
            os.kill(pid, signal.SIGSTOP)
            self._later(lambda: os.kill(pid, signal.SIGCONT))
            return target
        name = self._worker_container()
        self.runtime.pause(name)
        self._later(lambda: self.runtime.unpause(name))
        return name

    def _partition(self) -> str:
        name = self._worker_container()
        self.runtime.disconnect(self.deployment, name)
        self._later(lambda: self.runtime.reconnect(self.deployment, name))
        return name

    # ------------------------------------------------------------------ undo

    def _later(self, fn: object) -> None:
        self._undo_fn = fn
        self._undo = threading.Timer(self.fault.duration or 0.0, self.finish)
        self._undo.daemon = True
        self._undo.start()

    def finish(self) -> None:
        """End a pause or partition (on time, or early at teardown); idempotent."""
        with self._lock:
            fn, self._undo_fn = self._undo_fn, None
        if self._undo is not None:
            self._undo.cancel()
        if fn is None or self.event is None:
            return
        error = None
        try:
            fn()  # type: ignore[operator]
        except Exception as e:  # the container may be gone already
            error = f"undo failed: {type(e).__name__}: {e}"[:300]
        self.event = replace(self.event, t_end=time.time(), error=error or self.event.error)
