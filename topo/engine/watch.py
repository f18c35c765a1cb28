"""Following a running deployment: progress, the fault's trigger and end, container state
changes, and the end of the run (every task has an outcome, timeout, stall, or no worker
left)."""

from __future__ import annotations

from typing import Callable

from topo.engine.config import Clock, EngineConfig
from topo.events import EventLog
from topo.faults import Injector, due
from topo.model import Deployment, Fault, RunStatus, Signal, SignalKind
from topo.runtime.base import ContainerState, Runtime


class Watch:
    """Follows one deployment from the moment its batch is released."""

    def __init__(self, runtime: Runtime, deployment: Deployment, log: EventLog, timeout: float,
                 fault: Fault | None, config: EngineConfig, clock: Clock) -> None:
        self.runtime = runtime
        self.deployment = deployment
        self.log = log
        self.timeout = timeout
        self.fault = fault
        self.config = config
        self.clock = clock
        self.injector: Injector | None = None
        self.signals: list[Signal] = []
        self._states: dict[str, ContainerState] = {}
        self._workers = {c.name for c in deployment.containers if c.role in ("single", "worker")}
        self._last_line: object = None  # the log's latest task line, as last seen
        self._quiet_since: float | None = None  # when that line was first seen

    def follow(self, progress: Callable[[int, str], None]) -> RunStatus:
        """Watch until the run is over; return its status."""
        cfg, clock = self.config, self.clock
        start = clock.now()
        next_check = start
        gone_since: float | None = None
        settle_until: float | None = None
        task_count = self.deployment.plan.task_count
        while True:
            self.log.poll()
            progress(len(self.log.completed), "run")
            now = clock.now()
            done = len(self.log.resolved) >= task_count
            self._maybe_inject(now, batch_done=done)
            if done:
                # A fault's damage can outlast the batch: a frozen or cut-off worker that
                # comes back and finishes a task that was already run again elsewhere. Wait
                # for the fault to end, then a little, so duplicates are counted.
                if self.injector is None or self.injector.event is None:
                    return RunStatus.OK
                if self._fault_active():
                    settle_until = None
                elif settle_until is None:
                    settle_until = now + cfg.settle
                elif now >= settle_until:
                    return RunStatus.OK
            if now - start > self.timeout:
                return RunStatus.TIMEOUT
            if self._stalled(now):
                return RunStatus.STALLED
            if now >= next_check:
                next_check = now + cfg.states_every
                alive = self._check_states(now)
                gone_since = None if alive else (gone_since or now)
                if gone_since is not None and now - gone_since >= cfg.exited_grace:
                    self.log.poll()
                    return RunStatus.OK if len(self.log.resolved) >= task_count else RunStatus.WORKERS_EXITED
            clock.sleep(cfg.poll)

    def _maybe_inject(self, now: float, batch_done: bool) -> None:
        """Trigger the fault when due; end a temporary one when its time is up. Once the
        batch is done no fault is started, but an OOM that happened is still recorded: a
        broken pool fails every pending task at once, so the poison line may be read in
        the same pass as the batch's last record."""
        if self.injector is not None:
            self.injector.tick(now)
            return
        if self.fault is None:
            return
        if self.fault.kind == "oom":
            # The poison task was planted at plan time; the fault begins when a worker
            # starts it, which the worker says itself.
            if self.log.poisoned:
                self.injector = Injector(self.runtime, self.deployment, self.fault)
                self.injector.inject(t=min(self.log.poisoned))
            return
        if batch_done:
            return
        t_av = self.log.t_available
        since = None if t_av is None else now - t_av
        if due(self.fault, len(self.log.completed), self.deployment.plan.task_count, since):
            self.injector = Injector(self.runtime, self.deployment, self.fault)
            self.injector.inject(t=now)

    def _fault_active(self) -> bool:
        return self.injector is not None and self.injector.active

    def _stalled(self, now: float) -> bool:
        """Tasks were completing, then no task line came for much longer than the longest
        task took (pauses excluded): nothing more will come. Before the first task line a
        slow start is not a stall; the run's timeout covers it."""
        if self.log.last_record is None:
            return False
        if self.log.last_record != self._last_line or self._quiet_since is None:
            self._last_line, self._quiet_since = self.log.last_record, now
        if self._fault_active():
            return False
        ev = self.injector.event if self.injector else None
        quiet_since = max(x for x in (self._quiet_since, ev.t_end if ev else None) if x is not None)
        quiet_for = max(self.config.stall_after, 3 * self.log.longest_service)
        return now - quiet_since > quiet_for

    def _check_states(self, now: float) -> bool:
        """Record exits, OOM kills and restarts; return whether any worker still runs."""
        states = self.runtime.states(self.deployment)
        for name, st in states.items():
            before = self._states.get(name)
            # The engine knows when the container exited; polling only notices it later.
            t = min(st.finished_at or now, now)
            if before is not None and before.running and not st.running:
                self.signals.append(Signal(t, SignalKind.EXIT, name, str(st.exit_code)))
                if st.oom_killed:
                    self.signals.append(Signal(t, SignalKind.OOM, name, ""))
            if before is not None and st.restarts > before.restarts:
                self.signals.append(Signal(t, SignalKind.RESTART, name, str(st.restarts)))
                if st.oom_killed and not (before.oom_killed and before.restarts == st.restarts):
                    self.signals.append(Signal(t, SignalKind.OOM, name, ""))
        self._states = states
        return any(s.running or s.restarting for n, s in states.items() if n in self._workers)

    def end_fault(self) -> None:
        if self.injector is not None:
            self.injector.finish(self.clock.now())
