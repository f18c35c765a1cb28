"""deploy -> wait until ready -> release the batch -> sample and watch -> collect -> teardown.

Teardown always runs (``finally``), also on Ctrl-C; results are saved after every run, so a
later failure never loses what was already measured.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from topo import cleanup
from topo import plan as planning
from topo import results
from topo.errors import RunError, TopoError
from topo.events import EventLog
from topo.faults import Injector, due
from topo.model import (
    WORKER_ROLES, Deployment, Fault, FaultEvent, FaultKind, FaultStatus, Role, RunResult,
    RunStatus, Scenario, Signal, SignalKind, Topology, TopologyPlan,
)
from topo.runtime.base import ContainerState, Runtime
from topo.sampling import Sampler

INTERRUPTED = threading.Event()  # a signal arrived while a deployment was being cleaned up
READY_TIMEOUT = 60.0  # seconds for every worker to start and announce itself
POLL = 0.05
STATES_EVERY = 0.25  # how often container states are polled (exit and restart signals)
STALL_AFTER = 15.0  # seconds without any task line: the run has stalled
SETTLE = 2.0  # after a fault run's batch is done and the fault is over, watch this much longer
EXITED_GRACE = 2.0  # no worker running this long (and none restarting): the run is over
CONTAINER_UID = 10001


@dataclass(frozen=True)
class Progress:
    topology: Topology
    index: int
    runs: int
    completed: int
    total: int
    elapsed: float
    phase: str  # deploy | ready | run | teardown
    fault: str | None = None


class Saver(Protocol):
    def __call__(self, results: list[RunResult], complete: bool) -> None: ...


def new_run_id() -> str:
    return secrets.token_hex(4)


def compare(
    scenario: Scenario, runtime: Runtime, out_dir: Path, save: Saver,
    progress: Callable[[Progress], None] = lambda p: None, run_id: str | None = None,
    owner: str | None = None, image: str | None = None,
) -> list[RunResult]:
    """Run every topology ``warmup + repeat`` times without a fault and once per repeat with
    each fault, topologies alternating, saving after each run. Every container and network
    carries ``owner`` (by default this process), so that whatever a killed caller leaves
    behind is found and removed by the next start's sweep."""
    owner = cleanup.owner_label() if owner is None else owner
    image = image or runtime.ensure_image(scenario)
    redis_image = runtime.redis_image(scenario)
    run_id = run_id or new_run_id()
    results: list[RunResult] = []
    runs = scenario.run.warmup + scenario.run.repeat
    variants: list[Fault | None] = [None, *scenario.faults]
    save(results, complete=False)  # a result file exists from the start, however we end
    for i in range(runs):
        for f, fault in enumerate(variants):
            if fault is not None and i < scenario.run.warmup:
                continue  # warm-ups only warm: no fault in them
            for topology in scenario.topologies:
                deployment = f"topo-{run_id}-{topology[0]}{i}" + (f"f{f}" if fault else "")
                p = planning.plan(scenario, topology, run_id, deployment, image,
                                  secrets.token_hex(16), fault, owner, redis_image)
                result = run_one(
                    runtime, p, out_dir / "raw" / deployment, index=i,
                    warmup=i < scenario.run.warmup, timeout=scenario.run.timeout, fault=fault,
                    progress=lambda c, ph, _t=topology, _i=i, _s=time.time(), _f=fault: progress(
                        Progress(_t, _i, runs, c, scenario.workload.tasks, time.time() - _s, ph,
                                 _f.name if _f else None)))
                results.append(result)
                save(results, complete=False)
                if result.status == RunStatus.INTERRUPTED or INTERRUPTED.is_set():
                    INTERRUPTED.clear()
                    raise KeyboardInterrupt
    save(results, complete=True)
    return results


def plans(scenario: Scenario, run_id: str, image: str, redis_image: str | None = None) -> list[TopologyPlan]:
    """One plan per topology as the runs deploy them (the Redis password left empty), for
    the Compose files a report ships."""
    return [planning.plan(scenario, t, run_id, f"topo-{run_id}-{t[0]}", image, "",
                          redis_image=redis_image)
            for t in scenario.topologies]


def _prepare_run_dir(run_dir: Path) -> None:
    events = run_dir / "events"
    events.mkdir(parents=True, exist_ok=True)
    redis = run_dir / planning.REDIS_FOLDER  # a durable Redis' append-only file
    redis.mkdir(exist_ok=True)
    # Containers run as an unprivileged user: let it write its event files, nothing more.
    for path in (run_dir, events, redis):
        if os.geteuid() == 0:
            os.chown(path, CONTAINER_UID, CONTAINER_UID)
        else:
            path.chmod(0o777)


def run_one(
    runtime: Runtime, plan: TopologyPlan, run_dir: Path, *, index: int, warmup: bool,
    timeout: float, progress: Callable[[int, str], None] = lambda c, p: None,
    fault: Fault | None = None,
) -> RunResult:
    """Deploy one topology, run its batch (injecting ``fault``), tear it down, and return
    what was measured."""
    run_dir = run_dir.resolve()
    _prepare_run_dir(run_dir)
    log = EventLog(run_dir / "events", plan.task_count)
    deployment_name = plan.labels[planning.DEPLOYMENT]
    t_deploy = time.time()
    # What is needed to rebuild this run from its raw files if topo itself dies mid-run.
    results.write_manifest(run_dir, plan, index=index, warmup=warmup, fault=fault,
                           t_deploy=t_deploy)
    status, error = RunStatus.ERROR, None
    t_finished: float | None = None  # what teardown causes afterwards is not the run's
    sampler: Sampler | None = None
    watch: Watch | None = None
    try:
        progress(0, "deploy")
        deployment = runtime.deploy(plan, str(run_dir))
        sampler = Sampler(lambda: runtime.stats(deployment), sink=run_dir / "samples.jsonl")
        sampler.start()
        _wait_ready(runtime, deployment, log, progress)
        (run_dir / "go.tmp").write_text(str(time.time()))
        os.replace(run_dir / "go.tmp", run_dir / "go")  # atomic: agents never see half a file
        watch = Watch(runtime, deployment, log, timeout, fault)
        status = watch.follow(progress)
        t_finished = time.time()
    except KeyboardInterrupt:
        status, error = RunStatus.INTERRUPTED, "interrupted by the user"
    except TopoError as e:  # the engine failed us mid-run: keep what was measured
        status, error = RunStatus.ERROR, str(e)
    finally:
        with _Shield():  # a Ctrl-C now is honoured after the cleanup, not instead of it
            try:
                if watch is not None:
                    watch.end_fault()
                if sampler is not None:
                    sampler.stop()
                progress(len(log.completed), "teardown")
            finally:  # whatever failed above, the containers go
                try:
                    runtime.teardown(None, deployment_name)
                except TopoError as e:
                    error = error or f"teardown incomplete: {e}"
                # The append-only file is Redis' state, not a result: it goes with the run.
                shutil.rmtree(run_dir / planning.REDIS_FOLDER, ignore_errors=True)
    log.poll()
    if error is None and log.errors and status != RunStatus.OK:
        error = log.errors[0]
    return RunResult(
        topology=plan.topology, index=index, warmup=warmup, status=status, error=error,
        task_count=plan.task_count, t_deploy=t_deploy, t_ready=log.t_ready,
        t_available=log.t_available, t_end=time.time(), records=tuple(log.records),
        samples=tuple(sampler.samples) if sampler else (), workers=tuple(log.workers.values()),
        containers=plan.containers, retried=log.requeues, budget_cpus=plan.budget_cpus,
        budget_memory=plan.budget_memory, fault=fault,
        fault_events=_fault_events(fault, watch),
        processes=tuple(log.processes),
        host=tuple(sampler.host) if sampler else (),
        signals=tuple(sorted(
            (x for x in log.signals + (watch.signals if watch else [])
             if t_finished is None or x.t <= t_finished),
            key=lambda x: x.t)),
    )


def _fault_events(fault: Fault | None, watch: Watch | None) -> tuple[FaultEvent, ...]:
    if fault is None:
        return ()
    if watch is not None and watch.injector is not None and watch.injector.event is not None:
        return (watch.injector.event,)
    return (FaultEvent(name=fault.name, kind=fault.kind, status=FaultStatus.NOT_REACHED, t=None,
                       error="the run ended before the fault's trigger point"),)


class _Shield:
    """Defers SIGINT and SIGTERM while a deployment is cleaned up; what arrived is kept in
    ``INTERRUPTED`` for ``compare`` to act on once the run's result is saved."""

    def __enter__(self) -> _Shield:
        self._previous: dict[int, object] = {}
        try:
            for signo in (signal.SIGINT, signal.SIGTERM):
                self._previous[signo] = signal.signal(signo, lambda *_: INTERRUPTED.set())
        except ValueError:  # not the main thread: nothing to shield
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        for signo, handler in self._previous.items():
            signal.signal(signo, handler)  # type: ignore[arg-type]


def _agents(deployment: Deployment) -> list[str]:
    return [c.name for c in deployment.containers if c.role != Role.REDIS]


def _wait_ready(runtime: Runtime, deployment: Deployment, log: EventLog,
                progress: Callable[[int, str], None]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    next_check = 0.0
    progress(0, "ready")
    while True:
        log.poll()
        if log.all_ready(_agents(deployment)):
            return
        now = time.monotonic()
        if log.errors:
            raise RunError(f"a container failed while starting: {log.errors[0]}")
        if now >= next_check:
            next_check = now + STATES_EVERY
            for name, state in runtime.states(deployment).items():
                if not state.running and not state.restarting and state.exit_code not in (None, 0):
                    tail = runtime.logs(deployment, name, tail=3).replace("\n", " | ")
                    raise RunError(f"{name} exited with code {state.exit_code} before it was ready: {tail}")
        if now > deadline:
            raise RunError(f"workers not ready after {READY_TIMEOUT:.0f}s")
        time.sleep(POLL)


class Watch:
    """Follows a running deployment: progress, the fault's trigger, container state changes,
    and the end of the run (every task has an outcome, timeout, stall, or no worker left)."""

    def __init__(self, runtime: Runtime, deployment: Deployment, log: EventLog, timeout: float,
                 fault: Fault | None) -> None:
        self.runtime = runtime
        self.deployment = deployment
        self.log = log
        self.timeout = timeout
        self.fault = fault
        self.injector: Injector | None = None
        self.signals: list[Signal] = []
        self._states: dict[str, ContainerState] = {}
        self._workers = {c.name for c in deployment.containers if c.role in WORKER_ROLES}

    def follow(self, progress: Callable[[int, str], None]) -> RunStatus:
        start = time.monotonic()
        next_check = 0.0
        gone_since: float | None = None
        task_count = self.deployment.plan.task_count
        settle_until: float | None = None
        while True:
            self.log.poll()
            progress(len(self.log.completed), "run")
            now = time.monotonic()
            if len(self.log.resolved) >= task_count:
                if self.injector is None or self.injector.event is None:
                    return RunStatus.OK
                # A fault's damage can outlast the batch: a frozen or cut-off worker that
                # comes back and finishes a task that was already run again elsewhere. Wait
                # for the fault to end, then a little, so duplicates are counted.
                if self._fault_active():
                    settle_until = None
                elif settle_until is None:
                    settle_until = now + SETTLE
                elif now >= settle_until:
                    return RunStatus.OK
            if now - start > self.timeout:
                return RunStatus.TIMEOUT
            self._maybe_inject()
            if self._stalled():
                return RunStatus.STALLED
            if now >= next_check:
                next_check = now + STATES_EVERY
                alive = self._check_states()
                gone_since = None if alive else (gone_since or now)
                if gone_since is not None and now - gone_since >= EXITED_GRACE:
                    self.log.poll()
                    return (RunStatus.OK if len(self.log.resolved) >= task_count
                            else RunStatus.WORKERS_EXITED)
            time.sleep(POLL)

    def _maybe_inject(self) -> None:
        if self.fault is None or self.injector is not None:
            return
        if self.fault.kind == FaultKind.OOM:
            # The poison task was planted at plan time; the fault begins when a worker
            # starts it, which the worker says itself.
            if self.log.poisoned:
                self.injector = Injector(self.runtime, self.deployment, self.fault)  # type: ignore[arg-type]
                self.injector.inject(t=min(self.log.poisoned))
            return
        t_av = self.log.t_available
        since = None if t_av is None else time.time() - t_av
        if due(self.fault, len(self.log.completed), self.deployment.plan.task_count, since):
            self.injector = Injector(self.runtime, self.deployment, self.fault)  # type: ignore[arg-type]
            self.injector.inject()

    def _fault_active(self) -> bool:
        ev = self.injector.event if self.injector else None
        return bool(ev and ev.status == FaultStatus.INJECTED and ev.t_end is None
                    and self.fault and self.fault.duration)

    def _stalled(self) -> bool:
        """Tasks were completing, then no task line came for much longer than the longest
        task took (pauses excluded): nothing more will come. Before the first task line a
        slow start is not a stall; the run's timeout covers it."""
        last = self.log.last_record
        if last is None or self._fault_active():
            return False
        ev = self.injector.event if self.injector else None
        quiet_since = max(x for x in (last, ev.t_end if ev else None) if x is not None)
        quiet_for = max(STALL_AFTER, 3 * self.log.longest_service)
        return time.time() - quiet_since > quiet_for

    def _check_states(self) -> bool:
        """Record exits, OOM kills and restarts; return whether any worker still runs."""
        now = time.time()
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
            self.injector.finish()
