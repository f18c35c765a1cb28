"""Scenario -> TopologyPlan: which containers, with which limits, env and labels. Pure.

Both topologies get the same total budget (``resources``) for their workers:
- single: one container with ``cpus=C, memory=M`` running N worker processes;
- multi: N worker containers with ``C/N`` CPUs and ``M/N`` memory each, plus a Redis
  container (its own budget, reported as coordination overhead) and a feeder container that
  puts the batch on the queue and exits (the producer every queue-based system has).
"""

from __future__ import annotations

import json
from typing import Any

from topo.model import ContainerSpec, Fault, Scenario, Topology, TopologyPlan

LABEL_PREFIX = "topo"
MANAGED = f"{LABEL_PREFIX}.managed"
RUN = f"{LABEL_PREFIX}.run"
DEPLOYMENT = f"{LABEL_PREFIX}.deployment"
OWNER = f"{LABEL_PREFIX}.owner"  # host:pid:start time of the topo process that made it
MAX_ATTEMPTS = 3  # deliveries of one task before it is dead-lettered (reliable queue)
FEEDER_CPUS = 0.25
FEEDER_MEMORY = 64 * 1024 * 1024
RUN_DIR = "/run/topo"  # where the host's run folder is mounted in every container
REDIS_FOLDER = "redis"  # in the run folder: Redis' append-only file, removed after teardown
REDIS_DIR = f"{RUN_DIR}/{REDIS_FOLDER}"


def poison_task(fault: Fault | None, task_count: int) -> int | None:
    """The task that exceeds the memory limit for an ``oom`` fault (dispatch is in id order,
    so the task at the fault's fraction of the batch runs at about that point)."""
    if fault is None or fault.kind != "oom" or fault.at_fraction is None:
        return None
    return min(task_count - 1, int(fault.at_fraction * task_count))


def labels(run_id: str, deployment: str, **extra: str) -> dict[str, str]:
    """Labels every container and network of a deployment carries; cleanup is by label."""
    out = {MANAGED: "true", RUN: run_id, DEPLOYMENT: deployment}
    out.update({f"{LABEL_PREFIX}.{k}": v for k, v in extra.items()})
    return out


def _config(scenario: Scenario, container: str, **extra: Any) -> dict[str, str]:
    w = scenario.workload
    cfg: dict[str, Any] = {
        "container": container,
        "task": w.task,
        "params": dict(w.params),
        "seed": w.seed,
        "tasks": w.tasks,
        **extra,
    }
    return {"TOPO_CONFIG": json.dumps(cfg, sort_keys=True), "TOPO_RUN_DIR": RUN_DIR}


def plan(
    scenario: Scenario, topology: Topology, run_id: str, deployment: str, image: str,
    redis_password: str, fault: Fault | None = None, owner: str = "",
) -> TopologyPlan:
    """The containers of one deployment of ``topology``. ``deployment`` names it uniquely.
    An ``oom`` fault plants its poison task in every worker's configuration."""
    base = labels(run_id, deployment, topology=topology, scenario=scenario.name, owner=owner)
    poison = poison_task(fault, scenario.workload.tasks)
    agent = {"poison": [] if poison is None else [poison], "max_attempts": MAX_ATTEMPTS}
    if topology == "single":
        containers = _single(scenario, deployment, base, agent)
        network = None
    else:
        containers = _multi(scenario, deployment, base, redis_password, agent)
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
    scenario: Scenario, deployment: str, base: dict[str, str], agent: dict[str, Any]
) -> tuple[ContainerSpec, ...]:
    spec = scenario.single
    assert spec is not None
    processes = scenario.workers if spec.processes is None else spec.processes
    name = f"{deployment}-single"
    return (
        ContainerSpec(
            name=name,
            role="single",
            command=("python3", "-m", "topo.agent.single"),
            cpus=scenario.resources.cpus,
            memory=scenario.resources.memory,
            cpuset=scenario.resources.cpuset,
            env=_config(scenario, name, pool=spec.pool, processes=processes, **agent),
            # "auto" is only known inside the container: count the host's cores as Python would
            processes=0 if processes == "auto" else int(processes),
            labels={**base, "topo.role": "single"},
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
    agent: dict[str, Any],
) -> tuple[ContainerSpec, ...]:
    spec = scenario.multi
    assert spec is not None
    n = scenario.workers
    secret = {"TOPO_REDIS_PASSWORD": password}
    redis = ContainerSpec(
        name=f"{deployment}-redis",
        role="redis",
        command=redis_command(spec.redis.appendonly, password),
        cpus=spec.redis.cpus,
        memory=spec.redis.memory,
        cpuset=scenario.resources.cpuset,
        restart=spec.restart,
        processes=0,
        labels={**base, "topo.role": "redis"},
    )
    common = dict(redis_host=f"{deployment}-redis", queue=spec.queue, prefetch=spec.prefetch,
                  **agent)
    workers = tuple(
        ContainerSpec(
            name=f"{deployment}-w{i}",
            role="worker",
            command=("python3", "-m", "topo.agent.worker"),
            cpus=scenario.resources.cpus / n,
            memory=scenario.resources.memory // n,
            cpuset=scenario.resources.cpuset,
            env={**_config(scenario, f"{deployment}-w{i}", **common), **secret},
            restart=spec.restart,
            processes=1,
            labels={**base, "topo.role": "worker"},
        )
        for i in range(n)
    )
    feeder = ContainerSpec(
        name=f"{deployment}-feeder",
        role="feeder",
        command=("python3", "-m", "topo.agent.queue"),
        cpus=FEEDER_CPUS,
        memory=FEEDER_MEMORY,
        cpuset=scenario.resources.cpuset,
        env={**_config(scenario, f"{deployment}-feeder", **common), **secret},
        processes=0,
        labels={**base, "topo.role": "feeder"},
    )
    return (redis, *workers, feeder)
