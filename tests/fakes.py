"""A Runtime without Docker, and a scenario builder, for fast tests of the whole pipeline.

``FakeRuntime.deploy`` starts one thread per agent container (role single, worker or
feeder) that behaves like the real agents (``topo.agent``): it WRITES the same JSON lines to
``<run dir>/events/<container>-<pid>.jsonl``, so the harness reads it exactly as it reads a
real run.

- every agent container first writes ``expect`` (single: its processes; worker: 1;
  feeder: 0), from its PID 1 file ``<container>-1.jsonl``;
- every simulated worker process writes ``ready`` to its own file, then waits;
- once the harness creates ``<run dir>/go``, the feeder (multi) or the single container's
  PID 1 writes ``avail``, and only then do the simulated workers take task ids 0..n-1 from
  one shared queue, each task lasting ``task_seconds`` and writing one ``task`` record.

Counters are known by construction: a container's CPU grows by ``cpu_per_task`` for every
attempt it records (and each record carries ``cpu=cpu_per_task``), and its memory is fixed
(``memory_per_process`` per worker process, ``REDIS_MEMORY`` / ``FEEDER_MEMORY`` for the
others). Unlike Docker, a container that has exited keeps its counters readable until
teardown, so the sampler's last pass sees every attempt and CPU totals are exact.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from topo import plan as planning
from topo.model import (
    DeployedContainer, Deployment, Fault, MultiSpec, RedisSpec, Resources, RunSpec, Scenario,
    SingleSpec, TopologyPlan, Workload,
)
from topo.runtime.base import ContainerState, RawStats

MIB = 1024 * 1024
IMAGE = "fake:1"
REDIS_MEMORY = 4 * MIB
FEEDER_MEMORY = 2 * MIB
MAIN_PID = 1  # the agent's own process: expect and avail lines
FIRST_POOL_PID = 101  # simulated pool processes of a single container: 101, 102, ...
WORKER_PID = 7  # the one process of a multi worker container
EXIT_LOG = "topo agent: ModuleNotFoundError: No module named 'fake_task'"
GO_POLL = 0.002  # as topo.agent.common.wait_for_go


def scenario(
    *, tasks: int = 20, workers: int = 2, repeat: int = 2, warmup: int = 0,
    timeout: float = 10.0, topologies: Iterable[str] = ("single", "multi"),
    processes: int | str | None = None, faults: tuple[Fault, ...] = (),
) -> Scenario:
    """A small scenario built in code: noop tasks, 2 CPUs and 512 MiB for the workers."""
    wanted = set(topologies)
    return Scenario(
        name="fake",
        workload=Workload(task="noop", tasks=tasks, params={"size": 3}, seed=7),
        workers=workers,
        resources=Resources(cpus=2.0, memory=512 * MIB),
        single=SingleSpec(processes=processes) if "single" in wanted else None,  # type: ignore[arg-type]
        multi=MultiSpec(redis=RedisSpec(cpus=0.5, memory=128 * MIB)) if "multi" in wanted else None,
        faults=faults,
        run=RunSpec(repeat=repeat, warmup=warmup, timeout=timeout),
        description="built by tests.fakes.scenario",
    )


class _Events:
    """One simulated process's event file, in the agents' format (one flushed line each)."""

    def __init__(self, folder: Path, container: str, pid: int) -> None:
        self._file = open(folder / f"{container}-{pid}.jsonl", "a", encoding="utf-8")

    def emit(self, **fields: Any) -> None:
        self._file.write(json.dumps(fields, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class _Box:
    """What the fake engine knows of one container."""

    name: str
    role: str
    cpus: float
    processes: int  # simulated worker processes (0 for redis and feeder)
    memory: int
    running: bool = True
    frozen: bool = False  # paused, or cut off the network: its workers take no task
    exit_code: int | None = None
    cpu: float = 0.0
    attempts: int = 0
    log: str = ""

    def exit(self, code: int) -> None:
        self.running, self.exit_code = False, code


@dataclass
class _Live:
    """One deployment while it exists."""

    plan: TopologyPlan
    events: Path
    go: Path
    boxes: dict[str, _Box]
    queue: deque[int]
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def take(self, box: _Box) -> int | None:
        """The next task id for a worker of ``box``, once it is not frozen; None when the
        queue is empty or the deployment is torn down."""
        while box.frozen:
            if self.stop.wait(GO_POLL):
                return None
        with self.lock:
            return self.queue.popleft() if self.queue else None

    def wait_released(self) -> bool:
        """Wait until the batch is available; False when torn down first."""
        while not self.released.wait(GO_POLL):
            if self.stop.is_set():
                return False
        return True

    def wait_go(self) -> bool:
        while not self.go.exists():
            if self.stop.wait(GO_POLL):
                return False
        return True


class FakeRuntime:
    """The Runtime protocol (topo.runtime.base.Runtime) with threads instead of containers.

    Behaviours: ``fail_ids`` are recorded ok=false; ``lose_ids`` are never recorded;
    ``duplicate_ids`` are recorded ok twice (in a multi worker, after a ``requeue`` line, as
    a reliable queue would); ``never_ready`` agents announce ``expect`` but no worker ever
    says ``ready``; ``exit_before_ready`` makes every single/worker container exit with code
    1 at once, before writing anything, with ``EXIT_LOG`` as its log.

    Faults: ``host_pid`` is None (there is no process to signal, so kill faults are
    recorded as failed); ``pause`` and ``disconnect`` stop a container's workers from taking
    tasks until ``unpause`` / ``reconnect``. Every such call is logged in ``calls``.
    """

    def __init__(
        self, *, task_seconds: float = 0.002, cpu_per_task: float = 0.01,
        memory_per_process: int = 8 * MIB, cpu_count: int = 2,
        fail_ids: Iterable[int] = (), lose_ids: Iterable[int] = (),
        duplicate_ids: Iterable[int] = (), never_ready: bool = False,
        exit_before_ready: bool = False, engine: dict[str, Any] | None = None,
    ) -> None:
        self.task_seconds = task_seconds
        self.cpu_per_task = cpu_per_task
        self.memory_per_process = memory_per_process
        self.cpu_count = cpu_count  # what os.cpu_count() "says" inside a container
        self.fail_ids = frozenset(fail_ids)
        self.lose_ids = frozenset(lose_ids)
        self.duplicate_ids = frozenset(duplicate_ids)
        self.never_ready = never_ready
        self.exit_before_ready = exit_before_ready
        self.images: list[str] = []  # scenario names ensure_image was asked for
        self.deployed: list[str] = []  # deployment names, in order
        self.torn_down: list[str] = []  # deployment names, in order
        self.plans: list[TopologyPlan] = []
        self.calls: list[tuple[str, str]] = []  # (pause | unpause | ..., container)
        self._live: dict[str, _Live] = {}
        # What info() reports: a local 2-CPU, 4 GiB cgroup v1 engine, overridable per key.
        self.engine = {"cpus": 2, "memory": 4 * 1024 * MIB, "cgroup_version": "1",
                       "cpu_quota": True, "memory_limit": True, "cpuset": True,
                       "freezer": True, "local": True, **(engine or {})}

    # ----------------------------------------------------------------- Runtime protocol

    def info(self) -> dict[str, Any]:
        return dict(self.engine)

    def ensure_image(self, scenario: Scenario) -> str:
        self.images.append(scenario.name)
        return IMAGE

    def redis_image(self, scenario: Scenario) -> str | None:
        return None

    def deploy(self, plan: TopologyPlan, run_dir: str) -> Deployment:
        t_deploy = time.time()
        name = plan.labels[planning.DEPLOYMENT]
        events = Path(run_dir) / "events"
        events.mkdir(parents=True, exist_ok=True)
        boxes = {c.name: self._box(c.name, c.role, c.cpus, c.processes, c.env) for c in plan.containers}
        live = _Live(plan, events, Path(run_dir) / "go", boxes, deque(range(plan.task_count)))
        self._live[name] = live
        self.deployed.append(name)
        self.plans.append(plan)
        for box in boxes.values():
            if self.exit_before_ready and box.role in ("single", "worker"):
                box.log = EXIT_LOG
                box.exit(1)
            elif box.role in ("single", "worker", "feeder"):
                self._start(live, self._agent, live, box)
        return Deployment(
            plan=plan, run_dir=run_dir,
            containers=tuple(DeployedContainer(c.name, c.role, f"fake-{c.name}") for c in plan.containers),
            network_id=f"fake-net-{name}" if plan.network else None, t_deploy=t_deploy,
        )

    def stats(self, deployment: Deployment) -> dict[str, RawStats | None]:
        live = self._live.get(deployment.plan.labels[planning.DEPLOYMENT])
        if live is None:
            return {c.name: None for c in deployment.containers}
        with live.lock:
            return {
                n: RawStats(cpu=b.cpu, memory=b.memory, pids=b.processes + 1 if b.running else 0)
                for n, b in live.boxes.items()
            }

    def states(self, deployment: Deployment) -> dict[str, ContainerState]:
        live = self._live.get(deployment.plan.labels[planning.DEPLOYMENT])
        if live is None:
            return {}
        return {
            n: ContainerState(name=n, running=b.running, exit_code=b.exit_code,
                              oom_killed=False, restarts=0)
            for n, b in live.boxes.items()
        }

    def logs(self, deployment: Deployment, name: str, tail: int = 5) -> str:
        live = self._live.get(deployment.plan.labels[planning.DEPLOYMENT])
        box = live.boxes.get(name) if live else None
        return "\n".join(box.log.splitlines()[-tail:]) if box else ""

    def host_pid(self, name: str) -> int | None:
        self.calls.append(("host_pid", name))
        return None

    def pause(self, name: str) -> None:
        self._freeze("pause", name, True)

    def unpause(self, name: str) -> None:
        self._freeze("unpause", name, False)

    def disconnect(self, deployment: Deployment, name: str) -> None:
        self._freeze("disconnect", name, True)

    def reconnect(self, deployment: Deployment, name: str) -> None:
        self._freeze("reconnect", name, False)

    def _freeze(self, call: str, name: str, frozen: bool) -> None:
        self.calls.append((call, name))
        box = next((live.boxes[name] for live in self._live.values() if name in live.boxes), None)
        if box is None:
            raise RuntimeError(f"no such container: {name}")
        box.frozen = frozen

    def teardown(self, deployment: Deployment | None, deployment_name: str) -> None:
        self.torn_down.append(deployment_name)
        live = self._live.pop(deployment_name, None)
        if live is None:
            return
        live.stop.set()
        for thread in live.threads:
            thread.join(timeout=5)
            assert not thread.is_alive(), f"fake agent thread {thread.name} did not stop"

    # ----------------------------------------------------------------- the fake agents

    def _box(self, name: str, role: str, cpus: float, processes: int, env: Any) -> _Box:
        if role == "single" and processes == 0:  # "auto": resolved inside, as the agent does
            wanted = json.loads(env["TOPO_CONFIG"])["processes"]
            processes = self.cpu_count if wanted == "auto" else int(wanted)
        memory = {"redis": REDIS_MEMORY, "feeder": FEEDER_MEMORY}.get(
            role, self.memory_per_process * processes)
        return _Box(name, role, cpus, processes if role in ("single", "worker") else 0, memory)

    def _start(self, live: _Live, target: Any, *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"fake-{getattr(args[-1], 'name', args[-1])}")
        with live.lock:
            live.threads.append(thread)
        thread.start()
        return thread

    def _agent(self, live: _Live, box: _Box) -> None:
        main = _Events(live.events, box.name, MAIN_PID)
        try:
            main.emit(ev="expect", c=box.name, n=box.processes, t=time.time())
            if box.role == "feeder":
                self._release(live, box, main)
                if not live.stop.is_set():
                    main.emit(ev="fed", c=box.name, t=time.time(), n=live.plan.task_count)
                    box.exit(0)
                return
            first = FIRST_POOL_PID if box.role == "single" else WORKER_PID
            procs = [self._start(live, self._process, live, box, first + i)
                     for i in range(box.processes)]
            if box.role == "single":
                self._release(live, box, main)
            for proc in procs:
                proc.join()
            if not live.stop.is_set():
                box.exit(0)
        finally:
            main.close()

    def _release(self, live: _Live, box: _Box, main: _Events) -> None:
        if self.never_ready or not live.wait_go():
            live.stop.wait()
            return
        main.emit(ev="avail", c=box.name, t=time.time(), n=live.plan.task_count)
        live.released.set()

    def _process(self, live: _Live, box: _Box, pid: int) -> None:
        if self.never_ready:
            live.stop.wait()
            return
        worker = f"{box.name}/{pid}"
        out = _Events(live.events, box.name, pid)
        try:
            out.emit(ev="ready", w=worker, c=box.name, t=time.time(), cpu_count=self.cpu_count,
                     affinity=self.cpu_count, quota=box.cpus)
            if not live.wait_released():
                return
            while (task_id := live.take(box)) is not None:
                if task_id in self.lose_ids:
                    continue
                if not self._attempt(live, box, out, worker, pid, task_id):
                    return
                if task_id in self.duplicate_ids:
                    if box.role == "worker":
                        out.emit(ev="requeue", id=task_id, w=worker, by=worker, t=time.time())
                    if not self._attempt(live, box, out, worker, pid, task_id):
                        return
        finally:
            out.close()

    def _attempt(self, live: _Live, box: _Box, out: _Events, worker: str, pid: int,
                 task_id: int) -> bool:
        """One attempt at one task; False when torn down mid-task (the attempt is lost)."""
        t0 = time.time()
        if live.stop.wait(self.task_seconds):
            return False
        failed = task_id in self.fail_ids
        with live.lock:
            box.cpu += self.cpu_per_task
            box.attempts += 1
        out.emit(ev="task", id=task_id, w=worker, ok=not failed, t0=t0, t1=time.time(),
                 cpu=self.cpu_per_task, core=pid % self.cpu_count,
                 err=f"RuntimeError: fake failure of task {task_id}" if failed else None)
        return True


def event_lines(run_dir: Path) -> list[dict[str, Any]]:
    """Every event line the fake wrote under ``run_dir`` (for assertions on the format)."""
    return [json.loads(line) for path in sorted((run_dir / "events").glob("*.jsonl"))
            for line in path.read_text().splitlines()]


