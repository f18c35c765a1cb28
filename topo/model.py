"""Frozen dataclasses handed from stage to stage.

scenario -> Scenario -> plan -> TopologyPlan -> runtime.deploy -> Deployment
-> run -> RunResult -> stats -> RunFigures / Comparison -> report.

Nothing here imports docker, redis or typer. Mappings inside these classes are never
mutated after construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

# Defined with the agents' protocol (the agents import nothing else of topo), re-exported.
# A task line is kept as it was written: the harness's record of one attempt is the event.
from topo.agent.protocol import PoolKind as PoolKind
from topo.agent.protocol import QueueKind as QueueKind
from topo.agent.protocol import StrKind as StrKind
from topo.agent.protocol import Task

TaskRecord = Task  # one attempt at one task, written where the work happened

Topology = Literal["single", "multi"]
TOPOLOGIES: tuple[Topology, ...] = ("single", "multi")


class FaultKind(StrKind):
    """What a fault does (docs/scenario-format.md, faults)."""

    KILL_WORKER = "kill-worker"
    KILL_CONTAINER = "kill-container"
    KILL_REDIS = "kill-redis"
    OOM = "oom"
    PAUSE = "pause"
    PARTITION = "partition"


class Role(StrKind):
    """What a container of a deployment is for."""

    SINGLE = "single"  # the single topology's one container, PID 1 and its pool
    WORKER = "worker"  # one multi worker process
    REDIS = "redis"
    FEEDER = "feeder"  # puts the batch on the queue, then exits
    PROBE = "probe"  # a short-lived check of the engine, never part of a run


WORKER_ROLES = (Role.SINGLE, Role.WORKER)  # the containers that run tasks


class RunStatus(StrKind):
    """How a run ended."""

    OK = "ok"  # every task has an outcome
    TIMEOUT = "timeout"  # the scenario's run timeout passed first
    STALLED = "stalled"  # tasks stopped completing, long after the longest task took
    WORKERS_EXITED = "workers-exited"  # no worker container left running
    ERROR = "error"  # the engine or an agent failed; see the run's error
    INTERRUPTED = "interrupted"  # the user, or the end of topo, stopped it


class FaultStatus(StrKind):
    """What became of a fault in its run."""

    INJECTED = "injected"
    NOT_APPLICABLE = "not-applicable"  # e.g. kill-redis on single
    FAILED = "failed"  # the injection itself failed
    NOT_REACHED = "not-reached"  # the run ended before the fault's trigger point


class SignalKind(StrKind):
    """Something observed during a run (Signal)."""

    REQUEUE = "requeue"  # a task given back to the queue (or given up)
    EXIT = "exit"  # a container stopped, or a pool's worker process died
    RESTART = "restart"  # a container came back
    READY = "ready"  # a worker process announced itself
    ERROR = "error"  # an agent reported an error (fatal unless it reconnects)
    RECONNECT = "reconnect"  # a worker is back on Redis after an outage
    OOM = "oom"  # a container was OOM-killed
    STALL = "stall"  # mp-pool gave up its pending tasks
    FED = "fed"  # the feeder has put the whole batch on the queue


# Queue libraries a team may already run (topo/agent/peer.py); celery-prefork is Celery too.
PEER_QUEUES: tuple[QueueKind, ...] = (QueueKind.CELERY, QueueKind.RQ, QueueKind.DRAMATIQ)
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
APPENDONLY = ("no", "everysec", "always")  # redis-server's appendfsync: how often the AOF is synced
BUILTIN_TASKS = ("noop", "cpu", "io", "etl", "memory")
CONTAINER_UID = 10001  # every container runs as this uid and gid; what it must be able to read


# --------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class Workload:
    task: str  # a built-in name or "package.module:function"
    tasks: int
    params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    path: str | None = None  # absolute folder copied into the image, for module:function
    data: str | None = None  # absolute host folder, mounted read-only at /data in every worker
    requirements: str | None = None  # absolute path of a requirements file, installed as wheels
    image: str | None = None  # the team's own image the worker image is built on (None = topo's base)


@dataclass(frozen=True)
class Resources:
    cpus: float
    memory: int  # bytes
    cpuset: str | None = None


@dataclass(frozen=True)
class SingleSpec:
    pool: PoolKind = PoolKind.PROCESS_POOL
    processes: int | Literal["auto"] | None = None  # None = workers
    preload: bool = False  # PID 1 imports the task module before forking its workers
    restart: str = "no"  # Docker's restart policy of the one container (see RESTART_POLICIES)


@dataclass(frozen=True)
class RedisSpec:
    cpus: float = 0.5
    memory: int = 256 * 1024 * 1024
    appendonly: str = "no"  # no: nothing on disk | everysec | always (see APPENDONLY)


@dataclass(frozen=True)
class MultiSpec:
    queue: QueueKind = QueueKind.RELIABLE
    prefetch: int = 1
    restart: str = "on-failure"
    redis: RedisSpec = field(default_factory=RedisSpec)
    acks_late: bool = False  # celery only: acknowledge after the task ran (Celery's default: before)
    visibility_timeout: float | None = None  # celery only: seconds before an unacknowledged
    # message is delivered again (None = Celery's own default, one hour)


@dataclass(frozen=True)
class Fault:
    name: str
    kind: FaultKind
    at_fraction: float | None = None  # of tasks completed, 0..1
    at_seconds: float | None = None  # since the batch became available
    duration: float | None = None  # seconds; pause and partition only


@dataclass(frozen=True)
class RunSpec:
    repeat: int = 3
    warmup: int = 0
    timeout: float = 300.0


@dataclass(frozen=True)
class Scenario:
    name: str
    workload: Workload
    workers: int
    resources: Resources
    single: SingleSpec | None
    multi: MultiSpec | None
    faults: tuple[Fault, ...] = ()
    run: RunSpec = field(default_factory=RunSpec)
    description: str = ""
    version: int = 1
    source: str = ""  # path of the file it came from
    sha256: str = ""  # of the file's bytes

    @property
    def topologies(self) -> tuple[Topology, ...]:
        return tuple(t for t in TOPOLOGIES if getattr(self, t) is not None)

    @property
    def peers(self) -> tuple[str, ...]:
        """The queue libraries this scenario runs (see PEER_QUEUES), which its image needs."""
        celery = self.single is not None and self.single.pool == PoolKind.CELERY_PREFORK
        used = {QueueKind.CELERY.value} if celery else set()
        if self.multi is not None and self.multi.queue in PEER_QUEUES:
            used.add(str(self.multi.queue))  # a member or, built in code, its plain name
        return tuple(sorted(used))


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Mount:
    source: str  # host path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    """One container to start."""

    name: str
    role: Role
    command: tuple[str, ...]
    cpus: float
    memory: int
    env: Mapping[str, str] = field(default_factory=dict)
    cpuset: str | None = None
    restart: str = "no"
    processes: int = 1  # worker processes it hosts (0 for redis/feeder)
    labels: Mapping[str, str] = field(default_factory=dict)
    pids_limit: int = 256
    mounts: tuple[Mount, ...] = ()  # besides the run folder, which every container gets
    image: str | None = None  # None = the plan's image (Redis runs elsewhere when it lacks redis-server)


@dataclass(frozen=True)
class TopologyPlan:
    run_id: str
    topology: Topology
    image: str
    containers: tuple[ContainerSpec, ...]
    network: str | None  # name of the run's internal network; None = no network
    labels: Mapping[str, str]
    budget_cpus: float
    budget_memory: int
    workers: int
    task_count: int

    @property
    def worker_containers(self) -> tuple[ContainerSpec, ...]:
        return tuple(c for c in self.containers if c.role in WORKER_ROLES)


# --------------------------------------------------------------------------- deployment


@dataclass(frozen=True)
class DeployedContainer:
    name: str
    role: Role
    id: str
    t_started: float | None = None  # host wall clock when this container's start returned


@dataclass(frozen=True)
class Deployment:
    plan: TopologyPlan
    run_dir: str  # host folder mounted at /run/topo in every container
    containers: tuple[DeployedContainer, ...]
    network_id: str | None
    t_deploy: float  # host wall clock when deploy was called


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class Sample:
    """Cumulative counters of one container at host time ``t``."""

    t: float
    container: str
    cpu: float  # CPU seconds since the container first started (restarts accumulate)
    memory: int  # bytes: usage minus inactive file cache
    throttled_periods: int = 0
    throttled: float = 0.0  # seconds
    pids: int = 0
    running: bool = True


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker process saw of its container when it became ready."""

    worker: str
    container: str
    t_ready: float
    cpu_count: int
    affinity: int
    quota: float | None  # CPUs allowed by the CFS quota, None if unlimited
    tid: int | None = None  # the kernel's id of the thread that runs its tasks


@dataclass(frozen=True)
class ProcSample:
    """One process of a container, as the in-container telemetry saw it at time ``t``."""

    t: float
    container: str
    pid: int  # inside the container
    ppid: int
    name: str
    cpu: float  # user + system CPU seconds so far
    rss: int  # bytes
    uss: int | None = None  # bytes only this process holds
    pss: int | None = None  # bytes, shared pages divided among their sharers
    # per live thread: (tid, CPU seconds so far, host time it started or None)
    threads: tuple[tuple[int, float, float | None], ...] = ()


@dataclass(frozen=True)
class Ledger:
    submitted: int
    completed: int
    failed: int
    lost: int
    duplicated: int
    retried: int

    def __post_init__(self) -> None:
        if self.submitted != self.completed + self.failed + self.lost:
            raise ValueError(f"ledger does not balance: {self}")


@dataclass(frozen=True)
class FaultEvent:
    """What became of one fault in one run. A fault that could not be injected is recorded
    as such (status not-applicable | failed | not-reached), never silently skipped."""

    name: str
    kind: FaultKind
    status: FaultStatus
    t: float | None  # when it was injected (host wall clock)
    t_end: float | None = None  # end of a pause or partition
    target: str | None = None  # "<container>" or "<container>/<pid in the container>"
    error: str | None = None


@dataclass(frozen=True)
class Signal:
    """Something observed during a run, with its time: the raw material of time-to-detect.

    kind: see SignalKind."""

    t: float
    kind: SignalKind
    container: str
    detail: str = ""


@dataclass(frozen=True)
class RunResult:
    topology: Topology
    index: int  # 0-based repeat number
    warmup: bool
    status: RunStatus
    error: str | None
    task_count: int
    t_deploy: float
    t_ready: float | None  # all worker processes ready
    t_available: float | None  # batch available to the workers
    t_end: float
    # every attempt; a run's reader keeps them as columns (topo.records.TaskRecords)
    records: Sequence[TaskRecord]
    samples: tuple[Sample, ...]
    workers: tuple[WorkerInfo, ...]
    containers: tuple[ContainerSpec, ...]
    retried: int = 0
    budget_cpus: float = 0.0
    budget_memory: int = 0
    fault: Fault | None = None  # the fault this run injected; None for the no-fault run
    fault_events: tuple[FaultEvent, ...] = ()
    signals: tuple[Signal, ...] = ()
    processes: tuple[ProcSample, ...] = ()  # in-container telemetry
    host: tuple[tuple[float, float, float], ...] = ()  # (t, host busy CPU s, stolen CPU s)


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class ContainerFigures:
    name: str
    role: str
    cpu: float  # CPU seconds inside the makespan window
    cpu_total: float  # CPU seconds over the whole run, start-up included
    peak_memory: int  # bytes, highest sample
    mean_memory: int  # bytes, mean of the samples inside the makespan window
    throttled_periods: int
    throttled: float  # seconds


@dataclass(frozen=True)
class Quantiles:
    p50: float
    p95: float
    p99: float
    max: float
    n: int


@dataclass(frozen=True)
class RunFigures:
    """Every figure of one run, as metrics.md defines it. None = could not be measured."""

    topology: Topology
    index: int
    status: RunStatus
    ledger: Ledger
    makespan: float | None
    throughput: float | None  # completed / makespan
    steady_rate: float | None  # median bucket rate between 10% and 90% of completions
    startup_ready: float | None  # deploy call -> all workers ready
    startup_first: float | None  # deploy call -> first task completed
    cpu_workers: float  # CPU seconds of the worker containers in the makespan window
    cpu_coordination: float  # redis + feeder CPU seconds in the window
    task_cpu: float  # CPU seconds of the task threads during completed attempts
    mean_cores: float | None  # (cpu_workers + cpu_coordination) / makespan
    utilisation: float | None  # mean_cores / budget cpus
    cpu_per_task: float | None  # (cpu_workers + cpu_coordination) / completed
    peak_memory: int  # bytes, highest sum over the topology's containers
    containers: tuple[ContainerFigures, ...]
    oversubscribed: tuple[str, ...] = ()  # containers with more busy processes than quota
    wait: Quantiles | None = None  # seconds: batch available -> task started
    service: Quantiles | None = None  # seconds: task started -> done
    cores: tuple[tuple[int, int], ...] = ()  # (core, completed tasks that ran on it)
    rss_sum: int | None = None  # bytes: peak summed RSS of the worker processes
    pss_sum: int | None = None  # bytes: peak summed PSS of the worker processes
    outside_cores: float | None = None  # host CPU busy outside the run's containers, cores
    steal_cores: float | None = None  # CPU the hypervisor took from this host, cores
    # CPU seconds in the window of the worker processes' threads other than the one that runs
    # tasks (telemetry, heartbeat, single's PID 1); None without per-thread telemetry
    cpu_agents: float | None = None


@dataclass(frozen=True)
class BlastRadius:
    """The damage one fault did in one run (metrics.md, blast radius)."""

    fault: str
    kind: FaultKind
    topology: Topology
    index: int
    status: FaultStatus  # of the injection
    workers: int  # N
    workers_affected: int  # died, froze or failed a task in [tf, tf + window]
    failed: int
    lost: int
    duplicated: int
    retried: int
    throughput_dip: float | None  # 1 - lowest bucket rate after tf / steady rate before
    time_to_detect: float | None  # seconds from tf to the first sign
    time_to_recover: float | None  # seconds from tf until the rolling rate is back; None = never
    survived: bool  # every task completed, nobody stepped in
    # seconds from tf to the first task the killed container completed once it was back (its
    # restart, or the task Swarm scheduled in its place); None = never. Only where a whole
    # container was killed (kill-container; kill-worker in multi): ``replaced`` says so.
    time_to_replace: float | None = None
    replaced: bool = False  # the fault killed a whole container: time_to_replace applies

    @property
    def share_affected(self) -> float:
        return self.workers_affected / self.workers if self.workers else 0.0


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int
    # None when not every value is finite; stddev is the sample one (n - 1), None below 2
    mean: float | None = None
    stddev: float | None = None
    values: tuple[float, ...] = ()  # per run, in the order the runs ran


@dataclass(frozen=True)
class Ratio:
    """multi / single for one figure, with a bootstrap 95% interval where repeats allow."""

    value: float
    ci_low: float | None
    ci_high: float | None

    @property
    def significant(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None and not (
            self.ci_low <= 1.0 <= self.ci_high
        )


@dataclass(frozen=True)
class FigureRow:
    key: str  # e.g. "throughput"
    label: str  # e.g. "throughput (tasks/s)"
    unit: str
    single: Spread | None
    multi: Spread | None
    ratio: Ratio | None
    higher_is_better: bool | None


@dataclass(frozen=True)
class Comparison:
    scenario: Scenario
    runs: tuple[RunFigures, ...]  # measured runs, warm-ups excluded
    rows: tuple[FigureRow, ...]
    warnings: tuple[str, ...] = ()
    blast: tuple[BlastRadius, ...] = ()
