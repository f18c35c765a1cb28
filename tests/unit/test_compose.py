"""Compose files of a plan: rendered from the same launch spec the Docker runtime starts
containers from (limits, hardening, labels), with no password."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from topo import compose
from topo.agent.protocol import AgentConfig
from topo import plan as planning
from topo.model import (
    ContainerSpec, MultiSpec, Resources, RunSpec, Scenario, SingleSpec, TopologyPlan, Workload,
)
from topo.plan import RUN_DIR
from topo.runtime.docker import DockerRuntime
from topo.runtime.spec import Bind, launch_spec

MIB = 1024 * 1024
PASSWORD = "s3cret-pass"
SCENARIO = Scenario(
    name="adopt",
    workload=Workload(task="etl", tasks=50, params={"pattern": "$HOME ${X}"}, seed=1),
    workers=3,
    resources=Resources(cpus=2.0, memory=768 * MIB, cpuset="0-1"),
    single=SingleSpec(),
    multi=MultiSpec(restart="on-failure"),
    run=RunSpec(repeat=1),
    source="scenarios/adopt.yaml",
    sha256="12" * 32,
)


def make_plan(topology: str) -> TopologyPlan:
    return planning.plan(SCENARIO, topology, "r1", f"topo-r1-{topology[0]}0",  # type: ignore[arg-type]
                         "topo-worker:abc", PASSWORD)


def services(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)["services"]  # type: ignore[no-any-return]


class _Containers:
    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}

    def run(self, image: str, **kwargs: Any) -> Any:
        self.started[kwargs["name"]] = {"image": image, **kwargs}
        return type("Started", (), {"id": kwargs["name"]})()


class _Client:
    def __init__(self) -> None:
        self.containers = _Containers()


def started_by_runtime(plan: TopologyPlan) -> dict[str, dict[str, Any]]:
    """The options topo.runtime.docker passes to the engine for each container."""
    client = _Client()
    runtime = DockerRuntime(client)  # type: ignore[arg-type]
    for spec in plan.containers:
        runtime._start(spec, plan, "/host/run")
    return client.containers.started


def unescaped(value: str) -> str:
    return value.replace("$$", "$")


# What every container must be started with, written out by hand (not read from topo).
HARDENING = {"user": "10001:10001", "cap_drop": ("ALL",),
             "security_opt": ("no-new-privileges",), "read_only": True,
             "tmpfs": (("/tmp", "rw,nosuid,nodev,size=64m"),)}
# name suffix -> (cpus, memory, restart, pids limit): SCENARIO's budget split by hand.
LIMITS = {
    "single": {"-single": (2.0, 768 * MIB, "no", 256)},
    "multi": {"-redis": (0.5, 256 * MIB, "on-failure", 256),
              **{f"-w{i}": (2.0 / 3, 256 * MIB, "on-failure", 256) for i in range(3)},
              "-feeder": (0.25, 64 * MIB, "no", 256)},
}


@pytest.mark.parametrize("topology", ["single", "multi"])
def test_the_launch_spec_hardens_and_limits_every_container(topology: str) -> None:
    plan = make_plan(topology)
    prefix = f"topo-r1-{topology[0]}0"
    runs = {c.name: launch_spec(c, plan, "/host/run") for c in plan.containers}
    assert sorted(runs) == sorted(prefix + suffix for suffix in LIMITS[topology])
    for name, run in runs.items():
        assert {k: getattr(run, k) for k in HARDENING} == HARDENING
        cpus, memory, restart, pids = LIMITS[topology][name.removeprefix(prefix)]
        assert (run.cpus, run.memory, run.memswap, run.restart, run.pids_limit) == (
            pytest.approx(cpus), memory, memory, restart, pids)
        assert run.cpuset == "0-1"
        assert run.binds[0] == Bind("/host/run", RUN_DIR)
        assert run.network == (None if topology == "single" else prefix)
        assert run.labels["topo.deployment"] == prefix


@pytest.mark.parametrize("topology", ["single", "multi"])
def test_the_docker_runtime_starts_each_container_as_its_launch_spec_says(topology: str) -> None:
    plan = make_plan(topology)
    started = started_by_runtime(plan)
    for spec in plan.containers:
        run, kw = launch_spec(spec, plan, "/host/run"), started[spec.name]
        assert (kw["image"], kw["hostname"], kw["command"]) == (run.image, run.name,
                                                                list(run.command))
        assert (kw["nano_cpus"], kw["mem_limit"], kw["memswap_limit"]) == (
            round(run.cpus * 1e9), run.memory, run.memory)
        assert (kw["cpuset_cpus"], kw["pids_limit"]) == (run.cpuset, run.pids_limit)
        assert (kw["user"], kw["cap_drop"], kw["security_opt"], kw["read_only"]) == (
            run.user, list(run.cap_drop), list(run.security_opt), run.read_only)
        assert kw["tmpfs"] == dict(run.tmpfs)
        assert (kw["labels"], kw["environment"]) == (dict(run.labels), dict(run.env))
        policy = kw["restart_policy"]["Name"] if kw["restart_policy"] else "no"
        assert policy == run.restart
        assert kw["network"] == run.network
        assert kw["network_mode"] == (None if run.network else "none")
        assert kw["volumes"] == {"/host/run": {"bind": RUN_DIR, "mode": "rw"}}


@pytest.mark.parametrize("topology", ["single", "multi"])
def test_every_compose_service_is_its_launch_spec(topology: str) -> None:
    plan = make_plan(topology)
    rendered = services(compose.render(plan, SCENARIO))
    for spec in plan.containers:
        run = launch_spec(spec, plan, compose.HOST_RUN_DIR, "internal" if plan.network else None)
        service = rendered[compose.SERVICE[spec.role]]
        assert service["image"] == run.image and "hostname" not in service
        assert round(service["cpus"] * 1e9) == round(run.cpus * 1e9)
        assert (service["mem_limit"], service["memswap_limit"]) == (run.memory, run.memory)
        assert (service.get("cpuset"), service["pids_limit"]) == (run.cpuset, run.pids_limit)
        assert (service["user"], service["read_only"]) == (run.user, run.read_only)
        assert tuple(service["cap_drop"]) == run.cap_drop
        assert tuple(service["security_opt"]) == run.security_opt
        assert tuple(tuple(t.split(":", 1)) for t in service["tmpfs"]) == run.tmpfs
        assert service["restart"] == run.restart  # labels: tests/unit/test_compose_adopt.py
        if run.network:
            assert service["networks"] == [run.network]
        else:
            assert service["network_mode"] == "none"
        (volume,) = service["volumes"]
        assert volume == {"type": "bind", "source": "${TOPO_RUN_DIR:-./run}", "target": RUN_DIR}
        env = {k: unescaped(v) for k, v in service.get("environment", {}).items()}
        expected = {k: v for k, v in run.env.items() if k != "TOPO_CONFIG"}
        if "TOPO_REDIS_PASSWORD" in expected:
            expected["TOPO_REDIS_PASSWORD"] = compose.PASSWORD
        if spec.role == "redis":
            expected["REDISCLI_AUTH"] = compose.PASSWORD
        assert {k: v for k, v in env.items() if k in expected or not k.startswith("TOPO_")} == expected
        if "TOPO_CONFIG" in run.env:  # the same configuration, as plain variables
            measured = AgentConfig.from_json(run.env["TOPO_CONFIG"])
            adopted = AgentConfig.from_env(env, hostname=spec.name)
            # (but no linger: no harness samples a Compose run, its single service just ends)
            assert adopted == measured.replace(redis_host=measured.redis_host and "redis",
                                               container=adopted.container, linger=None)
            assert (measured.linger is not None) == (spec.role == "single")
        command = [compose.PASSWORD if a == PASSWORD else a for a in run.command]
        assert [unescaped(a) for a in service["command"]] == command


def test_multi_runs_on_an_internal_network_and_redis_demands_the_password_variable() -> None:
    text = compose.render(make_plan("multi"), SCENARIO)
    doc = yaml.safe_load(text)
    assert doc["networks"]["internal"]["internal"] is True
    redis = doc["services"]["redis"]
    assert redis["command"][-2:] == ["--requirepass", "${TOPO_REDIS_PASSWORD:?set TOPO_REDIS_PASSWORD}"]
    assert PASSWORD not in text
    assert doc["services"]["worker"]["deploy"]["replicas"] == 3


def test_dollars_in_values_are_escaped_for_compose_interpolation() -> None:
    text = compose.render(make_plan("single"), SCENARIO)
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert any("$$HOME $${X}" in line for line in body)
    # Every other "$" is one of the variables the file means to use.
    lone = re.findall(r"(?<!\$)\$(?!\$)[^\s\"]*", "\n".join(body).replace("$$", ""))
    assert set(lone) == {"${TOPO_RUN_DIR:-./run}"}


def test_single_is_on_no_network() -> None:
    doc = yaml.safe_load(compose.render(make_plan("single"), SCENARIO))
    assert "networks" not in doc
    assert doc["services"]["single"]["network_mode"] == "none"


SWARM_REFUSES = {"cpuset", "mem_limit", "memswap_limit", "pids_limit", "network_mode",
                 "cpus", "restart", "container_name"}


@pytest.mark.parametrize("topology", ["single", "multi"])
def test_the_swarm_flavour_leaves_out_what_stack_deploy_refuses(topology: str) -> None:
    plan = make_plan(topology)
    doc = yaml.safe_load(compose.render(plan, SCENARIO, swarm=True))
    specs = {compose.SERVICE[c.role]: c for c in plan.containers}
    for name, service in doc["services"].items():
        assert "build" not in service and "depends_on" not in service  # stack deploy ignores them
        assert not SWARM_REFUSES & set(service), name
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) == pytest.approx(specs[name].cpus)
        assert limits["memory"] == f"{specs[name].memory}b"
        assert service["deploy"]["restart_policy"]["condition"] == compose.SWARM_RESTART[specs[name].restart]
        assert len(service["networks"]) == 1
    (network,) = doc["networks"].values()
    assert network["internal"] is True


def test_cpus_keep_the_engines_precision() -> None:
    spec = ContainerSpec(name="c", role="worker", command=("x",), cpus=2 / 3, memory=MIB)
    plan = TopologyPlan("r", "multi", "img", (spec,), "net", {}, 2.0, MIB, 3, 1)
    assert services(compose.render(plan, SCENARIO))["worker"]["cpus"] == 0.666666667


def test_report_files_hold_both_reports_and_both_flavours_of_each_plan() -> None:
    from topo import cli, report, results
    from topo.analysis import build_report

    golden = Path(__file__).resolve().parents[1] / "golden" / "small.result.json"
    sc, runs, document = results.load(golden)
    plans = [planning.plan(sc, t, "r1", f"topo-r1-{t[0]}0", "img:1", PASSWORD)  # type: ignore[arg-type]
             for t in ("single", "multi")]
    files = {**report.files(build_report(sc, runs, results.provenance(document))),
             **cli._compose_files(sc, plans)}
    assert sorted(files) == ["compose/multi.stack.yaml", "compose/multi.yaml",
                             "compose/single.stack.yaml", "compose/single.yaml",
                             "k8s/multi.yaml", "k8s/single.yaml", "report.html", "report.md"]
    assert files["report.md"].startswith("# topo report: small")
    assert "redis" in yaml.safe_load(files["compose/multi.yaml"])["services"]
    assert not any(PASSWORD in text for text in files.values())


def test_redis_runs_from_its_own_image_when_the_workers_run_a_teams_image() -> None:
    plan = planning.plan(SCENARIO, "multi", "r1", "topo-r1-m0", "topo-worker:team", PASSWORD,
                         redis_image="topo-base:bookworm")
    images = {name: s["image"] for name, s in services(compose.render(plan, SCENARIO)).items()}
    started = {name: s["image"] for name, s in started_by_runtime(plan).items()}
    assert images == {"redis": started["topo-r1-m0-redis"], "worker": started["topo-r1-m0-w0"],
                      "feeder": started["topo-r1-m0-feeder"]}
    assert images == {"redis": "topo-base:bookworm", "worker": "topo-worker:team",
                      "feeder": "topo-worker:team"}


_RENDER_ELSEWHERE = """
import json, pickle, sys
sys.path.insert(0, sys.argv[1])
import topo
from dataclasses import replace

from topo import compose
from topo.agent.protocol import AgentConfig
plans, scenario = pickle.load(sys.stdin.buffer)
print(json.dumps({"package": topo.__file__,
                  "texts": [compose.render(p, scenario) for p in plans]}))
"""


def test_templates_are_read_from_the_installed_package_not_the_checkout(tmp_path: Path) -> None:
    # The topo package alone, away from the repository (as a wheel installs it), imported
    # from a working directory that has no compose/ folder either.
    package = Path(compose.__file__).resolve().parent
    site = tmp_path / "site"
    shutil.copytree(package, site / "topo", ignore=shutil.ignore_patterns("__pycache__"))
    plans = [make_plan("single"), make_plan("multi")]
    done = subprocess.run(
        [sys.executable, "-c", _RENDER_ELSEWHERE, str(site)], cwd=tmp_path,
        input=pickle.dumps((plans, SCENARIO)), capture_output=True, check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-600:]
    out = json.loads(done.stdout)
    assert Path(out["package"]).parent == site / "topo"
    for p, text in zip(plans, out["texts"]):
        assert set(services(text)) == {compose.SERVICE[c.role] for c in p.containers}
        assert text == compose.render(p, SCENARIO)
