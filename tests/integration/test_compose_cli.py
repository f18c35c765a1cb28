"""The Compose files topo writes, accepted by the real tools: ``docker compose config`` and
``docker stack config`` (moved here from the unit tests: they need the Docker CLIs)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import yaml

from tests.unit.test_compose import SCENARIO, make_plan
from tests.unit.test_data_and_preload import DATA, WITH_DATA
from tests.unit.test_data_and_preload import _plan as _data_plan
from topo import compose

pytestmark = [pytest.mark.docker, pytest.mark.compose]


def _compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


@pytest.mark.parametrize("topology", ["single", "multi"])
def test_compose_accepts_the_file(tmp_path: Path, topology: str) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.fail("neither docker-compose nor docker compose is installed: run scripts/bootstrap.sh --test")
    path = tmp_path / f"{topology}.yaml"
    path.write_text(compose.render(make_plan(topology), SCENARIO))
    env = {**os.environ, "TOPO_REDIS_PASSWORD": "pw"}
    p = subprocess.run([*cli, "-f", str(path), "config", "-q"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    if topology == "multi":  # without the variable, compose refuses to start Redis
        env.pop("TOPO_REDIS_PASSWORD")
        p = subprocess.run([*cli, "-f", str(path), "config", "-q"], capture_output=True,
                           text=True, env=env, timeout=60)
        assert p.returncode != 0 and "TOPO_REDIS_PASSWORD" in p.stderr


@pytest.mark.parametrize("topology", ["single", "multi"])
def test_docker_stack_accepts_the_swarm_file(tmp_path: Path, topology: str) -> None:
    if not shutil.which("docker"):
        pytest.fail("the docker CLI is not installed: run scripts/bootstrap.sh --test")
    path = tmp_path / f"{topology}.stack.yaml"
    path.write_text(compose.render(make_plan(topology), SCENARIO, swarm=True))
    p = subprocess.run(["docker", "stack", "config", "-c", str(path)], capture_output=True,
                       text=True, env={**os.environ, "TOPO_REDIS_PASSWORD": "pw"}, timeout=60)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("topology", ["single", "multi"])
def test_compose_reads_the_data_mount_as_a_read_only_bind_of_that_folder(
        tmp_path: Path, topology: str) -> None:
    cli = _compose_cli()
    assert cli is not None, "docker compose is not installed: run scripts/bootstrap.sh --test"
    path = tmp_path / f"{topology}.yaml"
    path.write_text(compose.render(_data_plan(topology), WITH_DATA))
    env = {k: v for k, v in os.environ.items() if k != "TOPO_DATA_DIR"}
    p = subprocess.run([*cli, "-f", str(path), "config"], capture_output=True, text=True,
                       env={**env, "TOPO_REDIS_PASSWORD": "pw"}, timeout=60)
    assert p.returncode == 0, p.stderr
    for name, service in yaml.safe_load(p.stdout)["services"].items():
        mounts = [v for v in service["volumes"] if v["target"] == "/data"]
        if name in ("redis", "feeder"):  # services are named by role
            assert mounts == []
        else:
            assert [(m["type"], m["source"], m.get("read_only")) for m in mounts] == [
                ("bind", DATA, True)], name
