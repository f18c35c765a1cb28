"""The adopted Compose files, parsed and checked against values written by hand from the
scenario of tests.unit.test_compose: 3 workers sharing 2 CPUs and 768 MiB on cpuset 0-1,
restart on-failure, 50 etl tasks with seed 1, Redis 0.5 CPUs and 256 MiB."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_compose import PASSWORD, SCENARIO, make_plan
import topo
from topo import compose, wheels

MIB = 1024 * 1024
REDIS_OK = {"redis": {"condition": "service_healthy"}}
# What an agent of SCENARIO is told, as the variables a person reads (redis by service name)
SHARED_ENV = {"TOPO_TASK": "etl", "TOPO_SEED": "1", "TOPO_TASKS": "50",
              "TOPO_MAX_ATTEMPTS": "3", "TOPO_TELEMETRY": "true", "TOPO_RUN_DIR": "/run/topo",
              "TOPO_PARAM_pattern": "$$HOME $${X}"}  # "$" escaped for compose
QUEUE_ENV = {"TOPO_REDIS_HOST": "redis", "TOPO_QUEUE": "reliable", "TOPO_PREFETCH": "1",
             "TOPO_REDIS_PASSWORD": "${TOPO_REDIS_PASSWORD:?set TOPO_REDIS_PASSWORD}"}


def doc(topology: str, swarm: bool = False) -> dict[str, Any]:
    return yaml.safe_load(compose.render(make_plan(topology), SCENARIO, swarm=swarm))  # type: ignore[no-any-return]


def test_multi_is_one_worker_service_with_replicas_and_each_replicas_limits() -> None:
    services = doc("multi")["services"]
    assert list(services) == ["redis", "worker", "feeder"]
    worker = services["worker"]
    assert worker["deploy"] == {"replicas": 3}
    assert (worker["cpus"], worker["mem_limit"], worker["memswap_limit"]) == (
        0.666666667, 256 * MIB, 256 * MIB)
    assert (worker["cpuset"], worker["pids_limit"], worker["restart"]) == ("0-1", 256, "on-failure")
    assert worker["command"] == ["python3", "-m", "topo.agent.worker"]
    assert "hostname" not in worker and "container_name" not in worker  # replicas differ


def test_agents_are_configured_by_plain_variables_and_a_replica_is_not_named() -> None:
    services = doc("multi")["services"]
    assert services["worker"]["environment"] == {**SHARED_ENV, **QUEUE_ENV}
    assert services["feeder"]["environment"] == {**SHARED_ENV, **QUEUE_ENV,
                                                 "TOPO_CONTAINER": "feeder"}
    assert "TOPO_CONFIG" not in services["worker"]["environment"]  # no JSON in a string
    single = doc("single")["services"]["single"]
    assert single["environment"] == {**SHARED_ENV, "TOPO_CONTAINER": "single",
                                     "TOPO_POOL": "process-pool", "TOPO_PROCESSES": "3",
                                     "TOPO_PRELOAD": "false"}


def test_redis_has_a_healthcheck_with_the_password_and_the_others_wait_for_it() -> None:
    services = doc("multi")["services"]
    redis = services["redis"]
    assert redis["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli ping | grep -q PONG"]
    assert redis["environment"] == {
        "REDISCLI_AUTH": "${TOPO_REDIS_PASSWORD:?set TOPO_REDIS_PASSWORD}"}
    assert "depends_on" not in redis
    assert services["worker"]["depends_on"] == services["feeder"]["depends_on"] == REDIS_OK
    assert (redis["cpus"], redis["mem_limit"]) == (0.5, 256 * MIB)
    assert "depends_on" not in doc("single")["services"]["single"]  # no Redis to wait for


def test_nothing_topo_clean_selects_on() -> None:
    # topo clean removes what carries topo.managed=true (or a run's topo.run); the image's
    # own topo.managed=true reaches every container unless the service says otherwise
    service_labels = {"topo.scenario": "adopt", "topo.managed": "false"}
    for topology in ("single", "multi"):
        for swarm in (False, True):
            d = doc(topology, swarm)
            assert [s["labels"] for s in d["services"].values()] == [service_labels] * len(d["services"])
            assert [n["labels"] for n in (d.get("networks") or {}).values()] == (
                [{"topo.scenario": "adopt"}] if topology == "multi" or swarm else [])
            text = compose.render(make_plan(topology), SCENARIO, swarm=swarm)
            assert "topo.run" not in text and "r1" not in text
    assert compose.dockerfile(SCENARIO, None).splitlines()[-1] == "LABEL topo.managed=false"


def test_names_are_stable_from_the_scenario_not_the_run() -> None:
    text = compose.render(make_plan("multi"), SCENARIO)
    other = compose.render(dataclasses.replace(make_plan("multi"), run_id="r2",
                                               labels={"topo.run": "r2"}), SCENARIO)
    assert text == other
    assert doc("multi")["networks"] == {"internal": {"internal": True,
                                                     "labels": {"topo.scenario": "adopt"}}}
    assert "docker compose -p topo-adopt-multi -f multi.yaml up -d" in text
    assert compose.project_name(SCENARIO, "single") == "topo-adopt-single"
    assert PASSWORD not in text


def test_every_service_of_the_measured_image_builds_it_from_the_dockerfile_beside() -> None:
    build = {"context": ".", "dockerfile": "Dockerfile", "network": "none"}
    for topology in ("single", "multi"):
        for service in doc(topology)["services"].values():
            assert service["image"] == "topo-worker:abc"
            assert service["build"] == build
        for service in doc(topology, swarm=True)["services"].values():
            assert "build" not in service  # docker stack deploy cannot build


def test_the_dockerfile_is_the_measured_recipe_from_the_base_image() -> None:
    text = compose.dockerfile(SCENARIO, None)
    lines = text.splitlines()
    # a build stage compiles the agent, the final stage takes /opt/topo alone
    assert lines[0] == "FROM topo-base:bookworm AS build"
    assert "FROM topo-base:bookworm" in lines and "COPY --from=build /opt/topo /opt/topo" in lines
    assert "COPY app /opt/topo/" in lines
    runs = [x for x in lines if x.startswith("RUN")]  # no wheels: only the compile step
    assert len(runs) == 1 and "compileall" in runs[0]


def test_the_build_context_holds_the_agent_the_runtime_builds_into_its_image(tmp_path: Path) -> None:
    # the agent as the image needs it, listed from the package folder, not by topo's helper
    package = Path(topo.__file__).parent
    expected = {"app/topo/__init__.py": package / "__init__.py",
                "app/topo/workloads.py": package / "workloads.py",
                **{f"app/topo/agent/{name}": package / "agent" / name
                   for name in os.listdir(package / "agent") if name.endswith(".py")}}
    assert "app/topo/agent/worker.py" in expected and "app/topo/agent/single.py" in expected
    assert compose.build_files(SCENARIO, None) == expected
    # wheels and their installer, as the Dockerfile copies them
    folder = tmp_path / "house"
    for sub, name in (("wheels", "a-1-py3-none-any.whl"), ("tool", "pip-24")):
        (folder / sub).mkdir(parents=True)
        (folder / sub / name).write_text("x")
    house = wheels.Wheelhouse(folder=folder, wheels=("a-1-py3-none-any.whl",), installer="pip-24",
                              digest="d")
    files = compose.build_files(SCENARIO, house)
    assert files["wheels/a-1-py3-none-any.whl"] == folder / "wheels" / "a-1-py3-none-any.whl"
    assert files["tool/pip-24"] == folder / "tool" / "pip-24"
    dockerfile = compose.dockerfile(SCENARIO, house)
    assert "COPY wheels /tmp/topo/wheels" in dockerfile and "--no-index" in dockerfile
    assert dockerfile.count("topo.managed") == 1 and dockerfile.endswith("LABEL topo.managed=false\n")


def test_the_single_stack_file_says_it_runs_on_its_own_network() -> None:
    text = compose.render(make_plan("single"), SCENARIO, swarm=True)
    header = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    assert "on no network" not in header and "an internal network of its own" in header
    assert doc("single", swarm=True)["services"]["single"]["networks"] == ["internal"]
    plain = compose.render(make_plan("single"), SCENARIO)
    assert "on no network" in " ".join(x.lstrip("# ") for x in plain.splitlines() if x.startswith("#"))


def test_compare_out_writes_the_dockerfile_and_everything_it_copies(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tests.unit.test_compare_files import SCENARIO as SCENARIO_TEXT, _topo

    scenario_file = tmp_path / "s.yaml"
    scenario_file.write_text(SCENARIO_TEXT.replace("  requirements: deps/requirements.txt\n", ""))
    out = tmp_path / "out"
    code, _, err = _topo(monkeypatch, capsys, "compare", str(scenario_file), "--out", str(out), "-q")
    assert code == 0, err
    folder = out / "compose"
    dockerfile = (folder / "Dockerfile").read_text()
    copied = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")
              and "--from" not in line]
    assert copied == ["app"]  # the fake engine's image needs no wheels
    assert (folder / "app" / "topo" / "agent" / "worker.py").read_bytes() == (
        Path(compose.__file__).parent / "agent" / "worker.py").read_bytes()
    assert (folder / ".dockerignore").read_text().split() == ["*.yaml", "run"]
    build = yaml.safe_load((folder / "multi.yaml").read_text())["services"]["worker"]["build"]
    assert (folder / build["context"] / build["dockerfile"]).resolve() == folder / "Dockerfile"
