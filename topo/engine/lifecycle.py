"""One deployment's life: deploy -> wait until ready -> release the batch -> watch ->
teardown (always, in ``finally``, shielded from Ctrl-C) -> what was measured.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Callable

from topo import defaults, results
from topo import plan as planning
from topo.engine.config import Clock, EngineConfig, SystemClock
from topo.engine.watch import Watch
from topo.errors import RunError, TopoError
from topo.events import EventLog
from topo.model import (
    Deployment, Fault, FaultEvent, FaultStatus, RunResult, RunStatus, TopologyPlan,
)
from topo.runtime.base import Runtime
from topo.sampling import Sampler

INTERRUPTED = threading.Event()  # a signal arrived while a deployment was being cleaned up


def prepare_run_dir(run_dir: Path) -> None:
    events = run_dir / "events"
    events.mkdir(parents=True, exist_ok=True)
    redis = run_dir / planning.REDIS_FOLDER  # a durable Redis' append-only file
    redis.mkdir(exist_ok=True)
    # Containers run as an unprivileged user: let it write its event files, nothing more.
    for path in (run_dir, events, redis):
        if os.geteuid() == 0:
            os.chown(path, defaults.CONTAINER_UID, defaults.CONTAINER_UID)
        else:
            path.chmod(0o777)


class _Run:
    """What one run has gathered so far; whatever ends it, ``result`` says what was seen."""

    def __init__(self, plan: TopologyPlan, run_dir: Path, clock: Clock) -> None:
        self.plan = plan
        self.run_dir = run_dir
        self.clock = clock
        self.log = EventLog(run_dir / "events", plan.task_count)
        self.t_deploy = clock.now()
        self.status = RunStatus.ERROR
        self.error: str | None = None
        self.t_finished: float | None = None  # what teardown causes afterwards is not the run's
        self.sampler: Sampler | None = None
        self.watch: Watch | None = None

    def result(self, index: int, warmup: bool, fault: Fault | None) -> RunResult:
        log, sampler, watch, plan = self.log, self.sampler, self.watch, self.plan
        log.poll()
        error = self.error
        if error is None and log.errors and self.status != "ok":
            error = log.errors[0]
        signals = [x for x in log.signals + (watch.signals if watch else [])
                   if self.t_finished is None or x.t <= self.t_finished]
        return RunResult(
            topology=plan.topology, index=index, warmup=warmup, status=self.status,
            error=error, task_count=plan.task_count, t_deploy=self.t_deploy,
            t_ready=log.t_ready, t_available=log.t_available, t_end=self.clock.now(),
            records=log.records, samples=tuple(sampler.samples) if sampler else (),
            workers=tuple(log.workers.values()), containers=plan.containers,
            retried=log.requeues, budget_cpus=plan.budget_cpus,
            budget_memory=plan.budget_memory, fault=fault,
            fault_events=fault_events(fault, watch), processes=tuple(log.processes),
            host=tuple(sampler.host) if sampler else (),
            signals=tuple(sorted(signals, key=lambda x: x.t)),
        )


def run_one(
    runtime: Runtime, plan: TopologyPlan, run_dir: Path, *, index: int, warmup: bool,
    timeout: float, progress: Callable[[int, str], None] = lambda c, p: None,
    fault: Fault | None = None, config: EngineConfig = EngineConfig(),
    clock: Clock | None = None,
) -> RunResult:
    """Deploy one topology, run its batch (injecting ``fault``), tear it down, and return
    what was measured."""
    clock = clock or SystemClock()
    run_dir = run_dir.resolve()
    prepare_run_dir(run_dir)
    run = _Run(plan, run_dir, clock)
    # What is needed to rebuild this run from its raw files if topo itself dies mid-run.
    results.write_manifest(run_dir, plan, index=index, warmup=warmup, fault=fault,
                           t_deploy=run.t_deploy)
    try:
        _live(runtime, run, timeout, fault, config, progress)
    except KeyboardInterrupt:
        run.status, run.error = RunStatus.INTERRUPTED, "interrupted by the user"
    except TopoError as e:  # the engine failed us mid-run: keep what was measured
        run.status, run.error = RunStatus.ERROR, str(e)
    finally:
        with Shield():  # a Ctrl-C now is honoured after the cleanup, not instead of it
            _teardown(runtime, run, progress)
    return run.result(index, warmup, fault)


def _live(runtime: Runtime, run: _Run, timeout: float, fault: Fault | None,
          config: EngineConfig, progress: Callable[[int, str], None]) -> None:
    clock = run.clock
    progress(0, "deploy")
    deployment = runtime.deploy(run.plan, str(run.run_dir))
    run.sampler = Sampler(lambda: runtime.stats(deployment), hz=config.sample_hz,
                          sink=run.run_dir / "samples.jsonl", now=clock.now)
    run.sampler.start()
    wait_ready(runtime, deployment, run.log, progress, config, clock)
    (run.run_dir / "go.tmp").write_text(str(clock.now()))
    os.replace(run.run_dir / "go.tmp", run.run_dir / "go")  # atomic: agents never see half a file
    run.watch = Watch(runtime, deployment, run.log, timeout, fault, config, clock)
    run.status = run.watch.follow(progress)
    run.t_finished = clock.now()


def _teardown(runtime: Runtime, run: _Run, progress: Callable[[int, str], None]) -> None:
    try:
        if run.watch is not None:
            run.watch.end_fault()
        if run.sampler is not None:
            run.sampler.stop()
        progress(len(run.log.completed), "teardown")
    finally:  # whatever failed above, the containers go
        try:
            runtime.teardown(None, run.plan.labels[planning.DEPLOYMENT])
        except TopoError as e:
            run.error = run.error or f"teardown incomplete: {e}"
        # The append-only file is Redis' state, not a result: it goes with the run.
        shutil.rmtree(run.run_dir / planning.REDIS_FOLDER, ignore_errors=True)


def fault_events(fault: Fault | None, watch: Watch | None) -> tuple[FaultEvent, ...]:
    if fault is None:
        return ()
    if watch is not None and watch.injector is not None and watch.injector.event is not None:
        return (watch.injector.event,)
    return (FaultEvent(name=fault.name, kind=fault.kind, status=FaultStatus.NOT_REACHED, t=None,
                       error="the run ended before the fault's trigger point"),)


class Shield:
    """Defers SIGINT and SIGTERM while a deployment is cleaned up; what arrived is kept in
    ``INTERRUPTED`` for ``compare`` to act on once the run's result is saved."""

    def __enter__(self) -> Shield:
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
    return [c.name for c in deployment.containers if c.role != "redis"]


def wait_ready(runtime: Runtime, deployment: Deployment, log: EventLog,
               progress: Callable[[int, str], None], config: EngineConfig,
               clock: Clock) -> None:
    """Return once every agent's workers said ready; RunError when one exits first or the
    ready timeout passes."""
    deadline = clock.now() + config.ready_timeout
    next_check = 0.0
    progress(0, "ready")
    while True:
        log.poll()
        if log.all_ready(_agents(deployment)):
            return
        now = clock.now()
        if log.errors:
            raise RunError(f"a container failed while starting: {log.errors[0]}")
        if now >= next_check:
            next_check = now + config.states_every
            _exited_early(runtime, deployment)
        if now > deadline:
            raise RunError(f"workers not ready after {config.ready_timeout:.0f}s")
        clock.sleep(config.poll)


def _exited_early(runtime: Runtime, deployment: Deployment) -> None:
    for name, state in runtime.states(deployment).items():
        if not state.running and not state.restarting and state.exit_code not in (None, 0):
            tail = runtime.logs(deployment, name, tail=3).replace("\n", " | ")
            raise RunError(f"{name} exited with code {state.exit_code} before it was ready: {tail}")
