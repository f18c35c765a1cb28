"""A Runtime without Docker, a clock that advances at once, and a scenario builder, for fast
and exact tests of the whole pipeline.

``FakeRuntime`` simulates every container of a deployment in the time of a ``FakeClock``:
nothing runs between the engine's ``clock.sleep`` calls, and each call advances the
simulation to the new time, in order of events. The simulated agents WRITE the same JSON
lines as the real ones (``topo.agent``) to ``<run dir>/events/<container>-<pid>.jsonl``, so
the harness reads a fake run exactly as it reads a real one. Nothing sleeps for real.

- every agent container first writes ``expect`` (single: its processes; worker: 1;
  feeder: 0), from its PID 1 file ``<container>-1.jsonl``; every worker process writes
  ``ready`` to its own file;
- once the harness creates ``<run dir>/go``, the feeder (multi) or the single container's
  PID 1 writes ``avail``, and the workers take task ids 0..n-1 from one queue, each task
  lasting ``task_seconds`` and ending in one ``task`` record.

Faults have the effects the real engine and agents have (topo.agent, docs/faults):

- single, one pool process killed (``kill`` with a PID, or an OOM kill of the process that
  runs the poison task): ``process-pool`` breaks: PID 1 fails its in-flight and queued tasks
  (BrokenProcessPool records, no start) and the pool is gone; ``mp-pool`` replaces the
  process (a new one says ready) and the killed task never comes back: once the rest is done
  and the agent's ``stall_after`` passed, PID 1 writes ``stall`` and exits; ``supervisor`` respawns it and
  requeues the task (``requeue`` by PID 1), giving it up after ``max_attempts`` deliveries;
- a container's main process killed: every process in it dies with its task; the restart
  policy of its spec brings it back at once (a kill from outside, as topo does it);
- multi, ``reliable`` queue: a task whose holder is dead, frozen or cut off for ``LEASE``
  seconds is requeued by another worker (``requeue``); a frozen or cut-off holder that
  comes back finishes it too (a duplicate); after ``max_attempts`` deliveries it is
  dead-lettered (a failed record). ``simple``: the task of a killed worker is lost;
- Redis killed: without ``appendonly`` it comes back (restart policy) empty: every queued
  task and every lease is forgotten; without a restart policy, workers that cannot reach it
  give up after ``RECONNECT_WAIT`` (exit 1);
- pause (container) or SIGSTOP (process): no progress at all until thawed; partition: the
  task in hand finishes (the run folder is not on the network), nothing is taken or
  acknowledged until reconnected.

Counters are known by construction: a container's CPU grows by ``cpu_per_task`` for every
finished attempt, its memory is fixed (``memory_per_process`` per worker process,
``REDIS_MEMORY`` / ``FEEDER_MEMORY`` for the others). Unlike Docker, a container that has
exited keeps its counters readable until teardown, so CPU totals are exact.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from topo import plan as planning
from topo.agent.protocol import AgentConfig
from topo.agent.single import stall_after
from topo.agent.worker import HEARTBEAT_TTL_MS, RECONNECT_WAIT
from topo.model import (
    ContainerSpec, DeployedContainer, Deployment, Fault, MultiSpec, RedisSpec, Resources, RunSpec, Scenario,
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
KILLED = 137  # exit code of a container whose main process got SIGKILL
LEASE = HEARTBEAT_TTL_MS / 1000  # seconds: a silent holder's task is requeued
BROKEN = ("BrokenProcessPool: A process in the process pool was terminated abruptly while"
          " the future was running or pending.")
START = 1_800_000_000.0  # the fake clock's epoch time at start


def scenario(
    *, tasks: int = 20, workers: int = 2, repeat: int = 2, warmup: int = 0,
    timeout: float = 10.0, topologies: Iterable[str] = ("single", "multi"),
    processes: int | str | None = None, faults: tuple[Fault, ...] = (),
    pool: str = "process-pool", queue: str = "reliable", restart: str = "on-failure",
) -> Scenario:
    """A small scenario built in code: noop tasks, 2 CPUs and 512 MiB for the workers."""
    wanted = set(topologies)
    return Scenario(
        name="fake",
        workload=Workload(task="noop", tasks=tasks, params={"size": 3}, seed=7),
        workers=workers,
        resources=Resources(cpus=2.0, memory=512 * MIB),
        single=SingleSpec(processes=processes, pool=pool) if "single" in wanted else None,  # type: ignore[arg-type]
        multi=(MultiSpec(redis=RedisSpec(cpus=0.5, memory=128 * MIB), queue=queue,
                         restart=restart) if "multi" in wanted else None),
        faults=faults,
        run=RunSpec(repeat=repeat, warmup=warmup, timeout=timeout),
        description="built by tests.fakes.scenario",
    )


class FakeClock:
    """The engine's Clock, in simulated time: ``sleep`` advances at once and lets every
    listener (the fake runtime) catch up to the new time."""

    def __init__(self, start: float = START) -> None:
        self._now = start
        self._listeners: list[Callable[[float], None]] = []

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self._now += max(0.0, seconds)
        for listener in list(self._listeners):
            listener(self._now)

    def listen(self, listener: Callable[[float], None]) -> None:
        self._listeners.append(listener)


class _Events:
    """One simulated process's event file, in the agents' format (one flushed line each)."""

    def __init__(self, folder: Path, stem: str) -> None:
        self._file = open(folder / f"{stem}.jsonl", "a", encoding="utf-8")

    def emit(self, **fields: Any) -> None:
        self._file.write(json.dumps(fields, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class _Proc:
    """One simulated worker process, simulated up to time ``at``."""

    pid: int
    worker: str  # "<container>/<pid>"
    out: _Events
    at: float
    task: int | None = None
    t0: float = 0.0
    left: float = 0.0  # seconds of work left on ``task`` at ``at``
    again: bool = False  # a duplicate_ids task: run it a second time
    alive: bool = True
    stopped: bool = False  # SIGSTOP


@dataclass
class _Box:
    """What the fake engine knows of one container."""

    name: str
    role: str
    cpus: float
    processes: int  # simulated worker processes (0 for redis and feeder)
    memory: int
    restart: str
    config: dict[str, Any]
    main: _Events | None = None
    procs: list[_Proc] = field(default_factory=list)
    running: bool = True
    exit_code: int | None = None
    finished_at: float | None = None
    restarts: int = 0
    oom_killed: bool = False
    frozen: bool = False  # paused: no process makes progress
    cut: bool = False  # off the network: cannot reach Redis
    durable: bool = False  # Redis with an append-only file: a restart keeps what it held
    unacked: set[int] = field(default_factory=set)  # finished while cut off Redis
    life: int = 0  # incarnation; a restart starts a new one
    next_pid: int = 0
    cpu: float = 0.0
    attempts: int = 0
    log: str = ""

    def exit(self, code: int, t: float) -> None:
        self.running, self.exit_code, self.finished_at = False, code, t
        for p in self.procs:
            p.alive = False


@dataclass
class _Lease:
    """A task a reliable-queue worker holds: who, in which life, silent since when."""

    box: _Box
    life: int
    silent_since: float | None = None


@dataclass
class _Live:
    """One deployment while it exists."""

    plan: TopologyPlan
    events: Path
    go: Path
    boxes: dict[str, _Box]
    queue: deque[int]
    now: float
    released: bool = False
    redis_up: bool = True
    redis_down_since: float | None = None
    leases: dict[int, _Lease] = field(default_factory=dict)
    deliveries: Counter[int] = field(default_factory=Counter)
    lost: set[int] = field(default_factory=set)  # mp-pool: tasks of killed processes
    last_done: float = 0.0

    @property
    def topology(self) -> str:
        return self.plan.topology

    def box(self, role: str) -> _Box | None:
        return next((b for b in self.boxes.values() if b.role == role), None)

    def workers(self) -> list[_Box]:
        return [b for b in self.boxes.values() if b.role in ("single", "worker")]


class FakeRuntime:
    """The Runtime protocol (topo.runtime.base.Runtime), simulated in a FakeClock's time.

    Behaviours: ``fail_ids`` are recorded ok=false; ``lose_ids`` are never recorded;
    ``duplicate_ids`` are recorded ok twice (in a multi worker, after a ``requeue`` line, as
    a reliable queue would); ``never_ready`` agents announce ``expect`` but no worker ever
    says ``ready``; ``exit_before_ready`` makes every single/worker container exit with code
    1 at once, before writing anything, with ``EXIT_LOG`` as its log. Every fault call is
    logged in ``calls`` as (operation, container[, pid]).
    """

    def __init__(
        self, *, task_seconds: float = 0.1, cpu_per_task: float = 0.01,
        memory_per_process: int = 8 * MIB, cpu_count: int = 2,
        fail_ids: Iterable[int] = (), lose_ids: Iterable[int] = (),
        duplicate_ids: Iterable[int] = (), never_ready: bool = False,
        exit_before_ready: bool = False, engine: dict[str, Any] | None = None,
        clock: FakeClock | None = None,
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
        self.clock = clock or FakeClock()
        self.clock.listen(self._advance)
        self.images: list[str] = []  # scenario names ensure_image was asked for
        self.deployed: list[str] = []  # deployment names, in order
        self.torn_down: list[str] = []  # deployment names, in order
        self.plans: list[TopologyPlan] = []
        self.calls: list[tuple[Any, ...]] = []  # (kill | pause | ..., container[, pid])
        self._live: dict[str, _Live] = {}
        self._lock = threading.RLock()  # the engine's sampler thread reads stats meanwhile
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
        now = self.clock.now()
        name = plan.labels[planning.DEPLOYMENT]
        events = Path(run_dir) / "events"
        events.mkdir(parents=True, exist_ok=True)
        boxes = {c.name: self._box(c) for c in plan.containers}
        live = _Live(plan, events, Path(run_dir) / "go", boxes, deque(), now)
        with self._lock:
            self._live[name] = live
            self.deployed.append(name)
            self.plans.append(plan)
            for box in boxes.values():
                if self.exit_before_ready and box.role in ("single", "worker"):
                    box.log = EXIT_LOG
                    box.exit(1, now)
                elif box.role in ("single", "worker", "feeder"):
                    self._boot(live, box)
        return Deployment(
            plan=plan, run_dir=run_dir,
            containers=tuple(DeployedContainer(c.name, c.role, f"fake-{c.name}") for c in plan.containers),
            network_id=f"fake-net-{name}" if plan.network else None, t_deploy=now,
        )

    def stats(self, deployment: Deployment) -> dict[str, RawStats | None]:
        with self._lock:
            live = self._find(deployment)
            if live is None:
                return {c.name: None for c in deployment.containers}
            return {n: RawStats(cpu=b.cpu, memory=b.memory,
                                pids=sum(p.alive for p in b.procs) + 1 if b.running else 0)
                    for n, b in live.boxes.items()}

    def states(self, deployment: Deployment) -> dict[str, ContainerState]:
        with self._lock:
            live = self._find(deployment)
            if live is None:
                return {}
            return {n: ContainerState(name=n, running=b.running, exit_code=b.exit_code,
                                      oom_killed=b.oom_killed, restarts=b.restarts,
                                      finished_at=b.finished_at)
                    for n, b in live.boxes.items()}

    def logs(self, deployment: Deployment, name: str, tail: int = 5) -> str:
        live = self._find(deployment)
        box = live.boxes.get(name) if live else None
        return "\n".join(box.log.splitlines()[-tail:]) if box else ""

    def workers(self, deployment: Deployment, name: str) -> list[int]:
        self.calls.append(("workers", name))
        _, box = self._target(deployment, name)
        return sorted(p.pid for p in box.procs if p.alive)

    def kill(self, deployment: Deployment, name: str, pid: int | None = None) -> str:
        self.calls.append(("kill", name) if pid is None else ("kill", name, pid))
        with self._lock:
            live, box = self._target(deployment, name)
            if pid is None:
                self._crash(live, box, live.now, oom=False)
            else:
                self._kill_process(live, box, self._proc(box, pid), live.now)
        return "host-pid"

    def stop_process(self, deployment: Deployment, name: str, pid: int, stopped: bool) -> None:
        self.calls.append(("stop" if stopped else "cont", name, pid))
        with self._lock:
            live, box = self._target(deployment, name)
            self._proc(box, pid).stopped = stopped
            self._silence(live, box)

    def exec(self, deployment: Deployment, name: str, argv: tuple[str, ...]) -> tuple[int, str]:
        self.calls.append(("exec", name, *argv))
        self._target(deployment, name)  # a container that is not running refuses, as Docker's
        return 0, ""

    def pause(self, deployment: Deployment, name: str) -> None:
        self._set(deployment, "pause", name, frozen=True)

    def unpause(self, deployment: Deployment, name: str) -> None:
        self._set(deployment, "unpause", name, frozen=False)

    def disconnect(self, deployment: Deployment, name: str) -> None:
        self._set(deployment, "disconnect", name, cut=True)

    def reconnect(self, deployment: Deployment, name: str) -> None:
        self._set(deployment, "reconnect", name, cut=False)

    def teardown(self, deployment: Deployment | None, deployment_name: str) -> None:
        self.torn_down.append(deployment_name)
        with self._lock:
            live = self._live.pop(deployment_name, None)
        for box in live.boxes.values() if live else ():
            for p in box.procs:
                p.out.close()
            if box.main is not None:
                box.main.close()

    # ----------------------------------------------------------------- containers

    def _find(self, deployment: Deployment) -> _Live | None:
        return self._live.get(deployment.plan.labels[planning.DEPLOYMENT])

    def _target(self, deployment: Deployment, name: str) -> tuple[_Live, _Box]:
        live = self._find(deployment)
        box = live.boxes.get(name) if live else None
        if live is None or box is None or not box.running:
            raise RuntimeError(f"{name} is not running")
        return live, box

    def _proc(self, box: _Box, pid: int) -> _Proc:
        found = [p for p in box.procs if p.pid == pid and p.alive]
        if not found:
            raise RuntimeError(f"no process {pid} in {box.name}")
        return found[0]

    def _set(self, deployment: Deployment, call: str, name: str, **state: bool) -> None:
        self.calls.append((call, name))
        with self._lock:
            live, box = self._target(deployment, name)
            for key, value in state.items():
                setattr(box, key, value)
            self._silence(live, box)
            if self._reaches_redis(live, box):  # back on the network: acknowledge
                for task_id in box.unacked:
                    if (lease := live.leases.get(task_id)) is not None and lease.box is box:
                        del live.leases[task_id]
                box.unacked.clear()

    def _box(self, spec: ContainerSpec) -> _Box:
        config = json.loads(spec.env["TOPO_CONFIG"]) if "TOPO_CONFIG" in spec.env else {}
        processes, role = spec.processes, spec.role
        if role == "single" and processes == 0:  # "auto": resolved inside, as the agent does
            processes = self.cpu_count if config["processes"] == "auto" else int(config["processes"])
        memory = {"redis": REDIS_MEMORY, "feeder": FEEDER_MEMORY}.get(
            role, self.memory_per_process * processes)
        command = list(spec.command)
        durable = "--appendonly" in command and command[command.index("--appendonly") + 1] == "yes"
        return _Box(spec.name, role, spec.cpus, processes if role in ("single", "worker") else 0,
                    memory, spec.restart, config, durable=durable)

    def _boot(self, live: _Live, box: _Box) -> None:
        """The container's agent starts: expect, then one ready per worker process."""
        now = live.now
        if box.main is None:
            box.main = _Events(live.events, f"{box.name}-{MAIN_PID}")
        box.main.emit(ev="expect", c=box.name, n=box.processes, t=now)
        box.next_pid = FIRST_POOL_PID if box.role == "single" else WORKER_PID
        for _ in range(box.processes):
            self._spawn(live, box)

    def _spawn(self, live: _Live, box: _Box) -> None:
        pid, box.next_pid = box.next_pid, box.next_pid + 1
        worker = f"{box.name}/{pid}"
        proc = _Proc(pid, worker, _Events(live.events, f"{box.name}-{pid}"), live.now)
        box.procs = [p for p in box.procs if p.alive] + [proc]
        if not self.never_ready:
            proc.out.emit(ev="ready", w=worker, c=box.name, t=live.now,
                          cpu_count=self.cpu_count, affinity=self.cpu_count, quota=box.cpus)

    # ----------------------------------------------------------------- faults

    def _crash(self, live: _Live, box: _Box, t: float, oom: bool) -> None:
        """The main process of ``box`` is killed: all of it goes; its policy may restart it."""
        box.exit(KILLED, t)
        box.oom_killed = oom
        if box.role == "redis":
            live.redis_up, live.redis_down_since = False, t
        self._silence(live, box)
        if box.restart == "no":
            return
        box.running, box.exit_code, box.restarts, box.life = True, None, box.restarts + 1, box.life + 1
        box.frozen = box.cut = False
        if box.role == "redis":
            live.redis_up, live.redis_down_since = True, None
            if not box.durable:
                live.queue.clear()  # nothing on disk: it comes back empty
                live.leases.clear()
        elif box.role in ("single", "worker"):
            self._boot(live, box)

    def _kill_process(self, live: _Live, box: _Box, proc: _Proc, t: float) -> None:
        """One pool process of a single container dies (SIGKILL or the OOM killer)."""
        proc.alive = False
        pool = box.config.get("pool", "process-pool")
        assert box.main is not None
        if pool == "process-pool":  # one death breaks the pool: every pending task fails
            pending = [p.task for p in box.procs if p.task is not None] + list(live.queue)
            live.queue.clear()
            for p in box.procs:
                p.alive, p.task = False, None
            for task_id in sorted(pending):
                box.main.emit(ev="task", id=task_id, w=box.name, ok=False, t0=None, t1=t,
                              cpu=0.0, core=None, err=BROKEN)
            box.exit(0, t)
            return
        box.main.emit(ev="exit", c=box.name, w=proc.worker, t=t,
                      code=None if pool == "mp-pool" else -9)
        task_id, proc.task = proc.task, None
        if task_id is not None and pool == "mp-pool":
            live.lost.add(task_id)  # its answer never comes; PID 1 gives up on it later
        elif task_id is not None:  # supervisor: hand it on, or give it up
            tries = live.deliveries[task_id]
            given_up = tries >= int(box.config.get("max_attempts", 3))
            box.main.emit(ev="requeue", id=task_id, w=proc.worker, by=f"{box.name}/{MAIN_PID}",
                          t=t, dead=given_up)
            if given_up:
                box.main.emit(ev="task", id=task_id, w=box.name, ok=False, t0=None, t1=t,
                              cpu=0.0, core=None, err=f"given up after {tries} attempts")
            else:
                live.queue.appendleft(task_id)
        self._spawn(live, box)

    def _silence(self, live: _Live, box: _Box) -> None:
        """Leases held by ``box`` stop (or resume) being renewed by its heartbeat."""
        silent = not box.running or box.frozen or box.cut
        for lease in live.leases.values():
            if lease.box is box:
                if silent or lease.life != box.life:
                    lease.silent_since = lease.silent_since if lease.silent_since is not None else live.now
                else:
                    lease.silent_since = None

    # ----------------------------------------------------------------- simulation

    def _advance(self, now: float) -> None:
        with self._lock:
            for live in list(self._live.values()):
                self._step(live, now)

    def _step(self, live: _Live, now: float) -> None:
        """Simulate ``live`` up to ``now``, one event at a time in time order."""
        if not live.released and live.go.exists():
            self._release(live, live.now)
        while live.released:
            action = self._next(live, now)
            if action is None:
                break
            t, act = action
            live.now = t
            act()
        for box in live.workers():
            for p in box.procs:
                if p.task is not None and self._runs(box, p):
                    p.left -= now - p.at
                p.at = now
        live.now = now

    def _release(self, live: _Live, t: float) -> None:
        releaser = live.box("feeder" if live.topology == "multi" else "single")
        if releaser is None or not releaser.running or self.never_ready or releaser.main is None:
            return
        live.queue.extend(range(live.plan.task_count))
        live.released, live.last_done = True, t
        releaser.main.emit(ev="avail", c=releaser.name, t=t, n=live.plan.task_count)
        if releaser.role == "feeder":
            releaser.main.emit(ev="fed", c=releaser.name, t=t, n=live.plan.task_count)
            releaser.exit(0, t)
        for box in live.workers():
            for p in box.procs:
                p.at = t

    def _runs(self, box: _Box, p: _Proc) -> bool:
        return box.running and p.alive and not box.frozen and not p.stopped

    def _reaches_redis(self, live: _Live, box: _Box) -> bool:
        return box.role == "single" or (live.redis_up and not box.cut)

    def _next(self, live: _Live, now: float) -> tuple[float, Callable[[], None]] | None:
        """The earliest thing that happens by ``now``, or None."""
        found: list[tuple[float, int, Callable[[], None]]] = []
        for box in live.workers():
            for p in box.procs:
                if not self._runs(box, p):
                    continue
                if p.task is not None:
                    found.append((p.at + p.left, len(found), lambda b=box, q=p: self._finish(live, b, q)))
                elif live.queue and self._reaches_redis(live, box):
                    found.append((max(p.at, live.now), len(found),
                                  lambda b=box, q=p: self._take(live, b, q)))
            if box.running and not any(p.task is not None for p in box.procs if p.alive):
                t_end = self._ends_at(live, box)
                if t_end is not None:
                    found.append((t_end, len(found), lambda b=box, t=t_end: self._end(live, b, t)))
        for task_id, lease in live.leases.items():
            reaper = self._reaper(live, lease)
            if lease.silent_since is not None and reaper is not None:
                found.append((max(lease.silent_since + LEASE, live.now), len(found),
                              lambda i=task_id, r=reaper: self._reap(live, i, r)))
        due = [x for x in found if x[0] <= now + 1e-9]
        if not due:
            return None
        t, _, act = min(due, key=lambda x: (x[0], x[1]))
        return t, act

    def _take(self, live: _Live, box: _Box, p: _Proc) -> None:
        p.at = live.now
        task_id = live.queue.popleft()
        if task_id in self.lose_ids:
            return  # taken and never heard of again
        live.deliveries[task_id] += 1
        if live.topology == "multi" and box.config.get("queue") == "reliable":
            live.leases[task_id] = _Lease(box, box.life)
        p.task, p.t0, p.left = task_id, p.at, self.task_seconds
        if task_id in box.config.get("poison", []):
            _Events(live.events, f"{box.name}-{p.pid}-poison").emit(
                ev="poison", id=task_id, c=box.name, t=p.at)
            box.oom_killed = True
            if box.role == "single":
                self._kill_process(live, box, p, p.at)
            else:
                self._crash(live, box, p.at, oom=True)

    def _finish(self, live: _Live, box: _Box, p: _Proc) -> None:
        t1, task_id = p.at + p.left, p.task
        assert task_id is not None
        failed = task_id in self.fail_ids
        box.cpu += self.cpu_per_task
        box.attempts += 1
        p.out.emit(ev="task", id=task_id, w=p.worker, ok=not failed, t0=p.t0, t1=t1,
                   cpu=self.cpu_per_task, core=p.pid % self.cpu_count,
                   err=f"RuntimeError: fake failure of task {task_id}" if failed else None)
        p.at, p.task, live.last_done = t1, None, t1
        lease = live.leases.get(task_id)
        if lease is not None and lease.box is box:
            if self._reaches_redis(live, box):
                del live.leases[task_id]  # acknowledged
            else:
                box.unacked.add(task_id)
        if task_id in self.duplicate_ids and not p.again:
            p.again = True
            if box.role == "worker":
                p.out.emit(ev="requeue", id=task_id, w=p.worker, by=p.worker, t=t1)
            p.task, p.t0, p.left = task_id, t1, self.task_seconds
        else:
            p.again = False

    def _ends_at(self, live: _Live, box: _Box) -> float | None:
        """When an idle agent container exits: its work is over, or it gave up."""
        if box.role == "worker" and not live.redis_up and live.redis_down_since is not None:
            return live.redis_down_since + RECONNECT_WAIT
        if live.queue or live.leases:
            return None
        if box.role == "single" and live.lost:  # PID 1's patience, as the agent's
            return live.last_done + stall_after(AgentConfig.from_json(json.dumps(box.config)), [self.task_seconds])
        return max(live.last_done, live.now)

    def _end(self, live: _Live, box: _Box, t: float) -> None:
        assert box.main is not None
        if box.role == "worker" and not live.redis_up:
            box.exit(1, t)  # gave up on Redis
            return
        if box.role == "single" and live.lost:
            box.main.emit(ev="stall", c=box.name, t=t, pending=sorted(live.lost))
        box.exit(0, t)

    def _reaper(self, live: _Live, lease: _Lease) -> _Proc | None:
        """A worker that reaps the silent ``lease``: running, reaching Redis, not its holder
        (a holder restarted since is another worker to Redis)."""
        for box in live.workers():
            if box.role != "worker" or box.frozen or not self._reaches_redis(live, box):
                continue
            if box is lease.box and box.life == lease.life:
                continue
            procs = [p for p in box.procs if self._runs(box, p)]
            if procs:
                return procs[0]
        return None

    def _reap(self, live: _Live, task_id: int, reaper: _Proc) -> None:
        lease = live.leases.pop(task_id)
        t = live.now
        holder = f"{lease.box.name}/{WORKER_PID}"
        tries = live.deliveries[task_id]
        dead = tries >= int(lease.box.config.get("max_attempts", 3))
        reaper.out.emit(ev="requeue", id=task_id, w=holder, by=reaper.worker, t=t, dead=dead)
        if dead:
            reaper.out.emit(ev="task", id=task_id, w=reaper.worker, ok=False, t0=None, t1=t,
                            cpu=0.0, core=None, err=f"dead-lettered after {tries} deliveries")
        else:
            live.queue.appendleft(task_id)


def event_lines(run_dir: Path) -> list[dict[str, Any]]:
    """Every event line the fake wrote under ``run_dir`` (for assertions on the format)."""
    return [json.loads(line) for path in sorted((run_dir / "events").glob("*.jsonl"))
            for line in path.read_text().splitlines()]
