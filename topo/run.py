"""deploy -> wait until ready -> release the batch -> sample and watch -> collect -> teardown.

Teardown always runs (``finally``), also on Ctrl-C; results are saved after every run, so a
later failure never loses what was already measured.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from topo import plan as planning
from topo.errors import RunError
from topo.events import EventLog
from topo.model import Deployment, RunResult, Scenario, Topology, TopologyPlan
from topo.runtime.base import Runtime
from topo.sampling import Sampler

READY_TIMEOUT = 60.0  # seconds for every worker to start and announce itself
POLL = 0.05
STATES_EVERY = 0.5
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


class Saver(Protocol):
    def __call__(self, results: list[RunResult], complete: bool) -> None: ...


def new_run_id() -> str:
    return secrets.token_hex(4)


def compare(
    scenario: Scenario, runtime: Runtime, out_dir: Path, save: Saver,
    progress: Callable[[Progress], None] = lambda p: None, run_id: str | None = None,
) -> list[RunResult]:
    """Run every topology ``warmup + repeat`` times, alternating, saving after each run."""
    image = runtime.ensure_image(scenario)
    run_id = run_id or new_run_id()
    results: list[RunResult] = []
    runs = scenario.run.warmup + scenario.run.repeat
    for i in range(runs):
        for topology in scenario.topologies:
            deployment = f"topo-{run_id}-{topology[0]}{i}"
            p = planning.plan(scenario, topology, run_id, deployment, image, secrets.token_hex(16))
            result = run_one(runtime, p, out_dir / "raw" / deployment, index=i,
                             warmup=i < scenario.run.warmup, timeout=scenario.run.timeout,
                             progress=lambda c, ph, _t=topology, _i=i, _s=time.time(): progress(
                                 Progress(_t, _i, runs, c, scenario.workload.tasks,
                                          time.time() - _s, ph)))
            results.append(result)
            save(results, complete=False)
            if result.status == "interrupted":
                raise KeyboardInterrupt
    save(results, complete=True)
    return results


def _prepare_run_dir(run_dir: Path) -> None:
    events = run_dir / "events"
    events.mkdir(parents=True, exist_ok=True)
    # Containers run as an unprivileged user: let it write its event files, nothing more.
    for path in (run_dir, events):
        if os.geteuid() == 0:
            os.chown(path, CONTAINER_UID, CONTAINER_UID)
        else:
            path.chmod(0o777)


def run_one(
    runtime: Runtime, plan: TopologyPlan, run_dir: Path, *, index: int, warmup: bool,
    timeout: float, progress: Callable[[int, str], None] = lambda c, p: None,
) -> RunResult:
    """Deploy one topology, run its batch, tear it down, and return what was measured."""
    run_dir = run_dir.resolve()
    _prepare_run_dir(run_dir)
    log = EventLog(run_dir / "events", plan.task_count)
    deployment_name = plan.labels[planning.DEPLOYMENT]
    t_deploy = time.time()
    status, error = "error", None
    sampler: Sampler | None = None
    try:
        progress(0, "deploy")
        deployment = runtime.deploy(plan, str(run_dir))
        sampler = Sampler(lambda: runtime.stats(deployment))
        sampler.start()
        _wait_ready(runtime, deployment, log, progress)
        (run_dir / "go.tmp").write_text(str(time.time()))
        os.replace(run_dir / "go.tmp", run_dir / "go")  # atomic: agents never see half a file
        status = _watch(runtime, deployment, log, timeout, progress)
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by the user"
    except RunError as e:
        status, error = "error", str(e)
    finally:
        if sampler is not None:
            sampler.stop()
        progress(len(log.completed), "teardown")
        _teardown(runtime, deployment_name)
    log.poll()
    if error is None and log.errors and status != "ok":
        error = log.errors[0]
    return RunResult(
        topology=plan.topology, index=index, warmup=warmup, status=status, error=error,
        task_count=plan.task_count, t_deploy=t_deploy, t_ready=log.t_ready,
        t_available=log.t_available, t_end=time.time(), records=tuple(log.records),
        samples=tuple(sampler.samples) if sampler else (), workers=tuple(log.workers.values()),
        containers=plan.containers, retried=log.requeues, budget_cpus=plan.budget_cpus,
        budget_memory=plan.budget_memory,
    )


def _teardown(runtime: Runtime, deployment_name: str) -> None:
    """Remove the deployment; a second Ctrl-C must not cut the cleanup short."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to shield
        previous = None
    try:
        runtime.teardown(None, deployment_name)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _agents(deployment: Deployment) -> list[str]:
    return [c.name for c in deployment.containers if c.role != "redis"]


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


def _watch(runtime: Runtime, deployment: Deployment, log: EventLog, timeout: float,
           progress: Callable[[int, str], None]) -> str:
    """Follow the run until every task has an outcome, the timeout, or no worker is left."""
    start = time.monotonic()
    next_check = 0.0
    gone_since: float | None = None
    workers = {c.name for c in deployment.containers if c.role in ("single", "worker")}
    while True:
        log.poll()
        progress(len(log.completed), "run")
        if len(log.resolved) >= deployment.plan.task_count:
            return "ok"
        now = time.monotonic()
        if now - start > timeout:
            return "timeout"
        if now >= next_check:
            next_check = now + STATES_EVERY
            states = runtime.states(deployment)
            alive = any(s.running or s.restarting for n, s in states.items() if n in workers)
            gone_since = None if alive else (gone_since or now)
            if gone_since is not None and now - gone_since >= EXITED_GRACE:
                log.poll()
                return "ok" if len(log.resolved) >= deployment.plan.task_count else "workers-exited"
        time.sleep(POLL)
