"""Compose files of a plan: the same limits and hardening as the runtime, no password."""

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
from topo import plan as planning
from topo.model import (
    ContainerSpec, MultiSpec, Resources, RunSpec, Scenario, SingleSpec, TopologyPlan, Workload,
)
from topo.plan import RUN_DIR
from topo.runtime.docker import DockerRuntime

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


@pytest.mark.parametrize("topology", ["single", "multi"])
def test_every_service_carries_what_the_runtime_starts_it_with(topology: str) -> None:
    plan = make_plan(topology)
    rendered = services(compose.render(plan, SCENARIO))
    for name, run in started_by_runtime(plan).items():
        service = rendered[name]
        assert service["image"] == run["image"]
        assert service["hostname"] == run["hostname"]
        assert round(service["cpus"] * 1e9) == run["nano_cpus"]
        assert service["mem_limit"] == run["mem_limit"]
        assert service["memswap_limit"] == run["memswap_limit"]
        assert service.get("cpuset") == run["cpuset_cpus"]
        assert service["pids_limit"] == run["pids_limit"]
        assert service["user"] == run["user"]
        assert service["cap_drop"] == run["cap_drop"]
        assert [s.removesuffix(":true") for s in service["security_opt"]] == run["security_opt"]
        assert service["read_only"] is run["read_only"]
        assert dict(t.split(":", 1) for t in service["tmpfs"]) == run["tmpfs"]
        assert service["labels"] == run["labels"]
        restart = run["restart_policy"]["Name"] if run["restart_policy"] else "no"
        assert service["restart"] == restart
        if run["network"]:
            assert service["networks"] == [run["network"]]
        else:
            assert service["network_mode"] == run["network_mode"] == "none"
        (volume,) = service["volumes"]
        assert volume["target"] == RUN_DIR == run["volumes"]["/host/run"]["bind"]
        assert volume["type"] == "bind" and volume["source"] == "${TOPO_RUN_DIR:-./run}"
        env = {k: unescaped(v) for k, v in service.get("environment", {}).items()}
        expected = dict(run["environment"])
        if "TOPO_REDIS_PASSWORD" in expected:
            expected["TOPO_REDIS_PASSWORD"] = compose.PASSWORD
        assert env == expected
        command = [compose.PASSWORD if a == PASSWORD else a for a in run["command"]]
        assert [unescaped(a) for a in service["command"]] == command


def test_multi_runs_on_an_internal_network_and_redis_demands_the_password_variable() -> None:
    text = compose.render(make_plan("multi"), SCENARIO)
    doc = yaml.safe_load(text)
    assert doc["networks"]["topo-r1-m0"]["internal"] is True
    redis = doc["services"]["topo-r1-m0-redis"]
    assert redis["command"][-2:] == ["--requirepass", "${TOPO_REDIS_PASSWORD:?set TOPO_REDIS_PASSWORD}"]
    assert PASSWORD not in text
    assert len([s for s in doc["services"] if "-w" in s]) == 3


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
    assert doc["services"]["topo-r1-s0-single"]["network_mode"] == "none"


SWARM_REFUSES = {"cpuset", "mem_limit", "memswap_limit", "pids_limit", "network_mode",
                 "cpus", "restart", "container_name"}


@pytest.mark.parametrize("topology", ["single", "multi"])
def test_the_swarm_flavour_leaves_out_what_stack_deploy_refuses(topology: str) -> None:
    plan = make_plan(topology)
    doc = yaml.safe_load(compose.render(plan, SCENARIO, swarm=True))
    specs = {c.name: c for c in plan.containers}
    for name, service in doc["services"].items():
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
    assert services(compose.render(plan, SCENARIO))["c"]["cpus"] == 0.666666667


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
    assert "topo-r1-m0-redis" in yaml.safe_load(files["compose/multi.yaml"])["services"]
    assert not any(PASSWORD in text for text in files.values())


def test_redis_runs_from_its_own_image_when_the_workers_run_a_teams_image() -> None:
    plan = planning.plan(SCENARIO, "multi", "r1", "topo-r1-m0", "topo-worker:team", PASSWORD,
                         redis_image="topo-base:bookworm")
    images = {name: s["image"] for name, s in services(compose.render(plan, SCENARIO)).items()}
    started = {name: s["image"] for name, s in started_by_runtime(plan).items()}
    assert images == started
    assert images.pop("topo-r1-m0-redis") == "topo-base:bookworm"
    assert set(images.values()) == {"topo-worker:team"}  # 3 workers and the feeder
    assert len(images) == 4


_RENDER_ELSEWHERE = """
import json, pickle, sys
sys.path.insert(0, sys.argv[1])
import topo
from topo import compose
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
        assert set(services(text)) == {c.name for c in p.containers}
        assert text == compose.render(p, SCENARIO)
