"""Scenario -> TopologyPlan: the budget split, labels, names, network and agent config."""

from __future__ import annotations

import json

import pytest

from topo import plan as planning
from topo.model import (
    Fault, MultiSpec, RedisSpec, Resources, RunSpec, Scenario, SingleSpec, TopologyPlan, Workload,
)

MIB = 1024 * 1024
GIB = 1024 * MIB
PASSWORD = "s3cret-redis-password"


def make(workers: int, *, cpus: float = 3.0, memory: int = GIB,
         processes: int | str | None = None, cpuset: str | None = None) -> Scenario:
    return Scenario(
        name="plan-test",
        workload=Workload(task="etl", tasks=123, params={"rows": 500, "groups": 4}, seed=42),
        workers=workers,
        resources=Resources(cpus=cpus, memory=memory, cpuset=cpuset),
        single=SingleSpec(pool="process-pool", processes=processes),  # type: ignore[arg-type]
        multi=MultiSpec(queue="simple", prefetch=2, restart="always",
                        redis=RedisSpec(cpus=0.3, memory=96 * MIB)),
        run=RunSpec(repeat=1),
    )


def build(scenario: Scenario, topology: str, deployment: str = "topo-r1-s0") -> TopologyPlan:
    return planning.plan(scenario, topology, "r1", deployment, "img:7", PASSWORD)  # type: ignore[arg-type]


def config(env: dict[str, str] | object) -> dict:
    return json.loads(dict(env)["TOPO_CONFIG"])  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("workers", "cpus", "memory", "each_cpus", "each_memory"),
    [
        (1, 3.0, GIB, 3.0, GIB),
        (3, 3.0, GIB, 1.0, 357913941),  # 1 GiB // 3: the remainder byte is not given out
        (4, 3.0, GIB, 0.75, 256 * MIB),
    ],
)
def test_multi_splits_the_budget_between_its_workers(workers, cpus, memory, each_cpus, each_memory):
    p = build(make(workers, cpus=cpus, memory=memory), "multi", "topo-r1-m0")
    worker_specs = [c for c in p.containers if c.role == "worker"]
    assert [(c.cpus, c.memory, c.processes) for c in worker_specs] == [
        (each_cpus, each_memory, 1)] * workers
    assert sum(c.cpus for c in worker_specs) == pytest.approx(cpus)
    assert memory - workers < sum(c.memory for c in worker_specs) <= memory
    assert (p.budget_cpus, p.budget_memory, p.workers, p.task_count) == (cpus, memory, workers, 123)
    assert p.worker_containers == tuple(worker_specs)


@pytest.mark.parametrize("workers", [1, 3, 4])
def test_single_gets_the_whole_budget_and_n_processes(workers):
    p = build(make(workers), "single")
    assert [(c.role, c.cpus, c.memory, c.processes) for c in p.containers] == [
        ("single", 3.0, GIB, workers)]
    assert p.worker_containers == p.containers
    assert (p.budget_cpus, p.budget_memory, p.topology, p.image) == (3.0, GIB, "single", "img:7")


@pytest.mark.parametrize("workers", [1, 3, 4])
def test_multi_has_redis_with_its_own_budget_and_a_feeder(workers):
    p = build(make(workers), "multi", "topo-r1-m0")
    roles = [c.role for c in p.containers]
    assert roles == ["redis"] + ["worker"] * workers + ["feeder"]
    redis = p.containers[0]
    assert (redis.cpus, redis.memory, redis.processes, redis.restart) == (0.3, 96 * MIB, 0, "always")
    assert redis.command[0] == "redis-server"
    assert redis.command[redis.command.index("--requirepass") + 1] == PASSWORD
    feeder = p.containers[-1]
    assert (feeder.cpus, feeder.memory, feeder.processes, feeder.restart) == (
        0.25, 64 * MIB, 0, "no")
    assert feeder.command == ("python3", "-m", "topo.agent.queue")
    for c in p.containers[1:]:
        assert dict(c.env)["TOPO_REDIS_PASSWORD"] == PASSWORD
        assert config(c.env)["redis_host"] == "topo-r1-m0-redis"
        assert (config(c.env)["queue"], config(c.env)["prefetch"]) == ("simple", 2)
        assert config(c.env)["max_attempts"] == planning.MAX_ATTEMPTS


@pytest.mark.parametrize("topology", ["single", "multi"])
@pytest.mark.parametrize("workers", [1, 3, 4])
def test_labels_names_and_network(topology, workers):
    deployment = f"topo-r1-{topology[0]}2"
    p = build(make(workers), topology, deployment)
    must = {"topo.managed": "true", "topo.run": "r1", "topo.deployment": deployment}
    assert must.items() <= dict(p.labels).items()
    assert dict(p.labels)["topo.topology"] == topology
    for c in p.containers:
        assert must.items() <= dict(c.labels).items(), c.name
        assert dict(c.labels)["topo.role"] == c.role
        assert c.name.startswith(deployment + "-")
    names = [c.name for c in p.containers]
    assert len(set(names)) == len(names)
    assert p.network == (deployment if topology == "multi" else None)
    assert p.run_id == "r1"


def test_plans_of_two_deployments_share_no_container_name():
    sc = make(4)
    a = build(sc, "multi", "topo-r1-m0")
    b = build(sc, "multi", "topo-r1-m1")
    assert not {c.name for c in a.containers} & {c.name for c in b.containers}


@pytest.mark.parametrize(("processes", "expected"), [(None, 3), (6, 6), ("auto", "auto")])
def test_processes_reach_the_single_agents_config(processes, expected):
    p = build(make(3, processes=processes), "single")
    cfg = config(p.containers[0].env)
    assert cfg["processes"] == expected
    assert cfg["pool"] == "process-pool"
    assert dict(p.containers[0].env)["TOPO_RUN_DIR"] == planning.RUN_DIR


def test_explicit_process_count_is_the_containers_process_count():
    assert build(make(3, processes=6), "single").containers[0].processes == 6


@pytest.mark.parametrize("workers", [1, 3, 4])
def test_every_agent_gets_the_same_task_params_and_seed(workers):
    sc = make(workers)
    configs = {c.name: config(c.env)
               for topology in ("single", "multi")
               for c in build(sc, topology, f"topo-r1-{topology[0]}0").containers
               if c.role != "redis"}
    assert len(configs) == 1 + workers + 1  # single, the workers, the feeder
    for name, cfg in configs.items():
        assert cfg["container"] == name
        assert (cfg["task"], cfg["params"], cfg["seed"], cfg["tasks"]) == (
            "etl", {"rows": 500, "groups": 4}, 42, 123), name


def test_cpuset_reaches_every_container():
    sc = make(2, cpuset="0-1")
    for topology in ("single", "multi"):
        assert {c.cpuset for c in build(sc, topology).containers} == {"0-1"}


def test_the_redis_password_is_not_in_the_single_plan():
    p = build(make(2), "single")
    assert PASSWORD not in repr(p)


@pytest.mark.parametrize(("fault", "poison"), [
    (None, []),
    (Fault(name="o", kind="oom", at_fraction=0.5), [61]),  # int(0.5 * 123)
    (Fault(name="o", kind="oom", at_fraction=1.0), [122]),  # never past the last id
    (Fault(name="o", kind="oom", at_seconds=2.0), []),  # no id to plant by time
    (Fault(name="k", kind="kill-worker", at_fraction=0.5), []),
])
def test_an_oom_fault_plants_the_same_poison_task_in_every_agent(fault, poison):
    sc = make(3)
    for topology in ("single", "multi"):
        p = planning.plan(sc, topology, "r1", f"topo-r1-{topology[0]}0", "img:7", PASSWORD,
                          fault)  # type: ignore[arg-type]
        agents = [c for c in p.containers if c.role != "redis"]
        assert [config(c.env)["poison"] for c in agents] == [poison] * len(agents)


def test_redis_keeps_nothing_on_disk_unless_asked() -> None:
    from topo.plan import redis_command

    def flags(command: tuple[str, ...]) -> dict[str, str]:
        args = command[1:]
        return dict(zip(args[::2], args[1::2]))

    plain = flags(redis_command("no", "pw"))
    assert (plain["--appendonly"], plain["--save"], plain["--dir"]) == ("no", "", "/tmp")
    assert "--appendfsync" not in plain
    for sync in ("everysec", "always"):
        durable = flags(redis_command(sync, "pw"))
        # /tmp is a tmpfs Docker wipes on restart: the file lives in the run's host folder.
        assert (durable["--appendonly"], durable["--appendfsync"], durable["--dir"]) == (
            "yes", sync, "/run/topo/redis")
        assert durable["--requirepass"] == "pw"
