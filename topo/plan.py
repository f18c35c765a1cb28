"""Scenario -> TopologyPlan: which containers, with which limits, env and labels. Pure.

Both topologies get the same total budget (``resources``) for their workers:
- single: one container with ``cpus=C, memory=M`` running N worker processes;
- multi: N worker containers with ``C/N`` CPUs and ``M/N`` memory each, plus a Redis
  container (its own budget, reported as coordination overhead) and a feeder container that
  puts the batch on the queue and exits (the producer every queue-based system has).
"""

from __future__ import annotations


from topo import defaults
from topo.agent.protocol import AgentConfig
from topo.model import (
    PEER_QUEUES, ContainerSpec, Fault, FaultKind, Mount, MultiSpec, PoolKind, QueueKind, Role,
    Scenario, Topology, TopologyPlan,
)

LABEL_PREFIX = "topo"
MANAGED = f"{LABEL_PREFIX}.managed"
RUN = f"{LABEL_PREFIX}.run"
DEPLOYMENT = f"{LABEL_PREFIX}.deployment"
OWNER = f"{LABEL_PREFIX}.owner"  # host:pid:start time of the topo process that made it
MAX_ATTEMPTS = 3  # deliveries of one task before it is dead-lettered (reliable queue)
FEEDER_CPUS = 0.25
FEEDER_MEMORY = 64 * 1024 * 1024
RUN_DIR = "/run/topo"  # where the host's run folder is mounted in every container
# Where workload.data is mounted, read-only, in every worker container of both topologies.
# A fixed path rather than the host's: the task code and the Compose files do not depend on
# where the data happens to live on the machine that measured.
DATA_DIR = "/data"
REDIS_FOLDER = "redis"  # in the run folder: Redis' append-only file, removed after teardown
REDIS_DIR = f"{RUN_DIR}/{REDIS_FOLDER}"
# A queue library a team runs (celery, rq, dramatiq): its worker and its producer.
PEER_WORKER = ("python3", "-m", "topo.agent.peer", "worker")
PEER_FEEDER = ("python3", "-m", "topo.agent.peer", "feed")


def poison_task(fault: Fault | None, task_count: int) -> int | None:
    """The task that exceeds the memory limit for an ``oom`` fault (dispatch is in id order,
    so the task at the fault's fraction of the batch runs at about that point)."""
    if fault is None or fault.kind != FaultKind.OOM or fault.at_fraction is None:
        return None
    return min(task_count - 1, int(fault.at_fraction * task_count))


def labels(run_id: str, deployment: str, **extra: str) -> dict[str, str]:
    """Labels every container and network of a deployment carries; cleanup is by label."""
    out = {MANAGED: "true", RUN: run_id, DEPLOYMENT: deployment}
    out.update({f"{LABEL_PREFIX}.{k}": v for k, v in extra.items()})
    return out


def _env(agent: AgentConfig, container: str, *, worker: bool) -> dict[str, str]:
    """A container's environment: ``agent`` (what every agent of the deployment shares)
    for this container; a ``worker`` (not the feeder) is told where the data is mounted, in
    its configuration and as TOPO_DATA for the task's own use."""
    cfg = agent.replace(container=container)
    data = {"TOPO_DATA": DATA_DIR} if worker and cfg.data_dir is not None else {}
    if not data:
        cfg = cfg.replace(data_dir=None)
    return {"TOPO_CONFIG": cfg.to_json(), "TOPO_RUN_DIR": RUN_DIR, **data}


def data_mounts(scenario: Scenario) -> tuple[Mount, ...]:
    """What a worker container mounts besides the run folder: the data, read-only."""
    data = scenario.workload.data
    return () if data is None else (Mount(source=data, target=DATA_DIR, read_only=True),)


def plan(
    scenario: Scenario, topology: Topology, run_id: str, deployment: str, image: str,
    redis_password: str, fault: Fault | None = None, owner: str = "", redis_image: str | None = None,
) -> TopologyPlan:
    """The containers of one deployment of ``topology``. ``deployment`` names it uniquely.
    An ``oom`` fault plants its poison task in every worker's configuration. Redis runs from
    ``redis_image`` when given (a team's own worker image need not have redis-server)."""
    base = labels(run_id, deployment, topology=topology, scenario=scenario.name, owner=owner)
    poison = poison_task(fault, scenario.workload.tasks)
    w = scenario.workload
    agent = AgentConfig(  # what every agent shares; _env names the container
        container="", task=w.task, params=dict(w.params), seed=w.seed, tasks=w.tasks,
        poison=() if poison is None else (poison,), max_attempts=MAX_ATTEMPTS,
        data_dir=None if w.data is None else DATA_DIR)
    if topology == "single" and scenario.single is not None \
            and scenario.single.pool == PoolKind.CELERY_PREFORK:
        containers = _single_celery(scenario, deployment, base, redis_password, agent, redis_image)
        network = deployment
    elif topology == "single":
        containers = _single(scenario, deployment, base, agent)
        network = None
    else:
        containers = _multi(scenario, deployment, base, redis_password, agent, redis_image)
        network = deployment
    return TopologyPlan(
        run_id=run_id,
        topology=topology,
        image=image,
        containers=containers,
        network=network,
        labels=base,
        budget_cpus=scenario.resources.cpus,
        budget_memory=scenario.resources.memory,
        workers=scenario.workers,
        task_count=scenario.workload.tasks,
    )


def _single(
    scenario: Scenario, deployment: str, base: dict[str, str], agent: AgentConfig
) -> tuple[ContainerSpec, ...]:
    spec = scenario.single
    assert spec is not None
    processes = scenario.workers if spec.processes is None else spec.processes
    name = f"{deployment}-single"
    return (
        ContainerSpec(
            name=name,
            role=Role.SINGLE,
            command=("python3", "-m", "topo.agent.single"),
            cpus=scenario.resources.cpus,
            memory=scenario.resources.memory,
            cpuset=scenario.resources.cpuset,
            env=_env(agent.replace(pool=spec.pool, processes=processes, preload=spec.preload,
                                   linger=defaults.SINGLE_LINGER), name, worker=True),
            # "auto" is only known inside the container: count the host's cores as Python would
            restart=spec.restart,
            processes=0 if processes == "auto" else int(processes),
            labels={**base, "topo.role": Role.SINGLE.value},
            mounts=data_mounts(scenario),
        ),
    )


def redis_command(appendonly: str, password: str) -> tuple[str, ...]:
    """redis-server's command line. ``appendonly`` no keeps nothing on disk (the default);
    everysec or always log every write to an append-only file synced that often, in
    REDIS_DIR: a folder of the run's own folder on the host, because the container's /tmp is
    a tmpfs that Docker wipes when a restart policy brings the killed Redis back."""
    durable = appendonly != "no"
    return ("redis-server", "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no",
            "--save", "", "--appendonly", "yes" if durable else "no",
            *(("--appendfsync", appendonly) if durable else ()),
            "--dir", REDIS_DIR if durable else "/tmp", "--requirepass", password)


def _multi(
    scenario: Scenario, deployment: str, base: dict[str, str], password: str,
    agent: AgentConfig, redis_image: str | None = None,
) -> tuple[ContainerSpec, ...]:
    spec = scenario.multi
    assert spec is not None
    n = scenario.workers
    secret = {"TOPO_REDIS_PASSWORD": password}
    redis = _redis(scenario, deployment, base, password, spec, redis_image)
    common = _peer_options(spec, agent.replace(redis_host=f"{deployment}-redis",
                                               queue=spec.queue, prefetch=spec.prefetch))
    peer = spec.queue in PEER_QUEUES
    workers = tuple(
        ContainerSpec(
            name=f"{deployment}-w{i}",
            role=Role.WORKER,
            command=PEER_WORKER if peer else ("python3", "-m", "topo.agent.worker"),
            cpus=scenario.resources.cpus / n,
            memory=scenario.resources.memory // n,
            cpuset=scenario.resources.cpuset,
            env={**_env(common, f"{deployment}-w{i}", worker=True), **secret},
            restart=spec.restart,
            processes=1,
            labels={**base, "topo.role": Role.WORKER.value},
            mounts=data_mounts(scenario),
        )
        for i in range(n)
    )
    command = PEER_FEEDER if peer else ("python3", "-m", "topo.agent.queue")
    return (redis, *workers, _feeder(scenario, deployment, base, password, common, command))


def _peer_options(spec: MultiSpec, agent: AgentConfig) -> AgentConfig:
    """acks_late and visibility_timeout mean something to Celery only: other queues' agents
    are not handed them (their configuration stays as it was before these existed)."""
    if spec.queue != QueueKind.CELERY:
        return agent
    return agent.replace(acks_late=spec.acks_late, visibility_timeout=spec.visibility_timeout)


def _redis(scenario: Scenario, deployment: str, base: dict[str, str], password: str,
           spec: MultiSpec, redis_image: str | None) -> ContainerSpec:
    return ContainerSpec(
        name=f"{deployment}-redis",
        role=Role.REDIS,
        command=redis_command(spec.redis.appendonly, password),
        cpus=spec.redis.cpus,
        memory=spec.redis.memory,
        cpuset=scenario.resources.cpuset,
        restart=spec.restart,
        processes=0,
        labels={**base, "topo.role": Role.REDIS.value},
        image=redis_image,
    )


def _feeder(scenario: Scenario, deployment: str, base: dict[str, str], password: str,
            common: AgentConfig, command: tuple[str, ...]) -> ContainerSpec:
    return ContainerSpec(
        name=f"{deployment}-feeder",
        role=Role.FEEDER,
        command=command,
        cpus=FEEDER_CPUS,
        memory=FEEDER_MEMORY,
        cpuset=scenario.resources.cpuset,
        env={**_env(common, f"{deployment}-feeder", worker=False),
             "TOPO_REDIS_PASSWORD": password},
        processes=0,
        labels={**base, "topo.role": Role.FEEDER.value},
    )


def _single_celery(
    scenario: Scenario, deployment: str, base: dict[str, str], password: str,
    agent: AgentConfig, redis_image: str | None,
) -> tuple[ContainerSpec, ...]:
    """Celery's prefork pool, ``--concurrency N`` in the one worker container, needs a broker:
    the same Redis container (and feeder) as the multi topology, with the multi section's
    Redis settings when there is one, so the two differ only in where the N processes run."""
    spec = scenario.single
    assert spec is not None
    multi = scenario.multi or MultiSpec(queue=QueueKind.CELERY)
    processes = scenario.workers if spec.processes is None else spec.processes
    name = f"{deployment}-single"
    celery = multi.queue == QueueKind.CELERY
    common = agent.replace(redis_host=f"{deployment}-redis", queue=QueueKind.CELERY,
                           prefetch=multi.prefetch,
                           acks_late=multi.acks_late if celery else False,
                           visibility_timeout=multi.visibility_timeout if celery else None)
    single = ContainerSpec(
        name=name,
        role=Role.SINGLE,
        command=PEER_WORKER,
        cpus=scenario.resources.cpus,
        memory=scenario.resources.memory,
        cpuset=scenario.resources.cpuset,
        env={**_env(common.replace(pool=spec.pool, processes=processes), name, worker=True),
             "TOPO_REDIS_PASSWORD": password},
        restart=spec.restart,
        processes=0 if processes == "auto" else int(processes),
        labels={**base, "topo.role": Role.SINGLE.value},
        mounts=data_mounts(scenario),
    )
    return (_redis(scenario, deployment, base, password, multi, redis_image), single,
            _feeder(scenario, deployment, base, password, common, PEER_FEEDER))
