"""The Compose files topo writes, accepted by the real tools: ``docker compose config`` and
``docker stack config`` (moved here from the unit tests: they need the Docker CLIs)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_compose import SCENARIO, make_plan
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
