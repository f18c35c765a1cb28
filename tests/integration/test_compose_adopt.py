"""The adopted multi Compose file, deployed once by the Compose CLI on the real engine:
built from the Dockerfile beside it (no network), brought up, fed a tiny batch, counted,
left alone by `topo clean`, brought down.

Debian's docker-compose 1.29.2 is what runs here (no v2 plugin in bookworm, none on PyPI);
``docker compose`` (v2) is used instead when it is the one installed."""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import pytest

from tests.integration.test_compose_cli import _compose_cli
from topo import cli as cli_main
from topo import compose
from topo import plan as planning
from topo.agent import protocol
from tests.integration.conftest import ROOT
from topo.model import MultiSpec, Resources, RunSpec, Scenario, Workload
from topo.plan import MANAGED
from topo.runtime.docker import DockerRuntime
from topo.wheels import Wheelhouse

pytestmark = [pytest.mark.docker, pytest.mark.compose]

WORKERS, TASKS = 2, 30
SCENARIO = Scenario(
    name="adoptit", workload=Workload(task="noop", tasks=TASKS, params={}, seed=5),
    workers=WORKERS, resources=Resources(cpus=1.0, memory=512 * 2**20), single=None,
    multi=MultiSpec(), run=RunSpec(repeat=1))
WHEELS = ROOT / "tests" / "integration" / "wheels_workload"  # numpy and tabulate, as wheels
WITH_WHEELS = dataclasses.replace(SCENARIO, workload=Workload(
    task="wheeltask:run", tasks=TASKS, params={}, seed=5, path=str(WHEELS),
    requirements=str(WHEELS / "requirements.txt")))
PROJECT = "topo-adoptit-multi"  # compose.project_name, written out
PROJECT_LABEL = f"com.docker.compose.project={PROJECT}"
AGENT_USER = 10001  # the user every service runs as


def _write(folder: Path, image: str, sc: Scenario, house: Wheelhouse | None) -> None:
    """What `topo compare --out` writes into compose/: the file, the Dockerfile, its context."""
    plan = planning.plan(sc, "multi", "it", "topo-it-m0", image, "unused")
    (folder / "multi.yaml").write_text(compose.render(plan, sc))
    (folder / "Dockerfile").write_text(compose.dockerfile(sc, house))
    (folder / ".dockerignore").write_text(compose.DOCKERIGNORE)
    for rel, src in compose.build_files(sc, house).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, folder / rel)
    events = folder / "run" / "events"
    events.mkdir(parents=True)
    for path in (folder / "run", events):
        os.chown(path, AGENT_USER, AGENT_USER)


def _tasks_done(events: Path) -> tuple[set[int], set[str]]:
    """Ids recorded ok and the containers that said they expect workers, from the events."""
    done: set[int] = set()
    containers: set[str] = set()
    for path in events.glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            event = protocol.decode(line)
            if isinstance(event, protocol.Task) and event.ok:
                done.add(event.id)
            elif isinstance(event, protocol.Expect) and event.n > 0:
                containers.add(event.container)
    return done, containers


class _Narrowed:
    """A collection of the engine's (containers, networks, services, ...) whose ``list``
    also demands this test's Compose project label: what topo clean selects is ANDed with it."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def list(self, *args: Any, **kwargs: Any) -> Any:
        filters = dict(kwargs.pop("filters", None) or {})
        label = filters.get("label") or []
        filters["label"] = [*([label] if isinstance(label, str) else label), PROJECT_LABEL]
        return self._collection.list(*args, filters=filters, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


class _ProjectOnly:
    """The engine as `topo clean` sees it, narrowed to this test's project: the real command
    and its real selection run, and can only ever remove what this test started (the engine
    is shared: a global clean would remove others' runs)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        return _Narrowed(attr) if hasattr(attr, "list") else attr


def _topo_clean(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                client: Any) -> str:
    """`topo clean` (the command's own function), on the narrowed engine; what it printed."""
    monkeypatch.setattr(DockerRuntime, "connect",
                        classmethod(lambda cls: DockerRuntime(cast(Any, _ProjectOnly(client)))))
    capsys.readouterr()
    cli_main.clean(images=False)
    return capsys.readouterr().out.strip()


def _project(client: Any, service: str | None = None) -> list[Any]:
    labels = [f"com.docker.compose.project={PROJECT}"]
    if service:
        labels.append(f"com.docker.compose.service={service}")
    return list(client.containers.list(all=True, filters={"label": labels}))


@pytest.mark.parametrize("sc", [SCENARIO, WITH_WHEELS], ids=["builtin-task", "code-and-wheels"])
def test_the_adopted_multi_file_builds_runs_its_replicas_and_outlives_topo_clean(
        tmp_path: Path, docker_client: Any, runtime: DockerRuntime, sc: Scenario,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cli = _compose_cli()
    assert cli is not None, "docker compose is not installed: run scripts/bootstrap.sh --test"
    image = f"topo-adopt-it:{secrets.token_hex(4)}"
    house = runtime.wheelhouse(sc)  # what the measured image installed, resolved on the host
    assert (house is not None) == (sc is WITH_WHEELS)
    _write(tmp_path, image, sc, house)
    env = {**os.environ, "TOPO_REDIS_PASSWORD": secrets.token_hex(8),
           "TOPO_RUN_DIR": str(tmp_path / "run")}
    compose_cmd = [*cli, "-p", PROJECT, "-f", str(tmp_path / "multi.yaml")]

    def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*compose_cmd, *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=timeout)

    try:
        p = run("config", "-q")
        assert p.returncode == 0, p.stderr
        p = run("build")  # build.network none: everything it needs is in the folder
        assert p.returncode == 0, p.stderr[-2000:]
        p = run("up", "-d")
        assert p.returncode == 0, p.stderr[-2000:]
        (tmp_path / "run" / "go").touch()
        deadline = time.monotonic() + 120
        done, named = _tasks_done(tmp_path / "run" / "events")
        while len(done) < TASKS and time.monotonic() < deadline:
            time.sleep(0.5)
            done, named = _tasks_done(tmp_path / "run" / "events")
        assert done == set(range(TASKS))
        workers = _project(docker_client, "worker")
        assert len(workers) == WORKERS  # counted by the engine, not by the file
        # each replica took its own host name (its container id) as its identity
        assert named == {c.id[:12] for c in workers}
        assert not docker_client.containers.list(
            all=True, filters={"label": [f"{MANAGED}=true", f"com.docker.compose.project={PROJECT}"]})
        before = sorted(c.id for c in _project(docker_client))
        removed = _topo_clean(monkeypatch, capsys, docker_client)
        assert removed == "0 containers, 0 networks, 0 images removed"
        assert sorted(c.id for c in _project(docker_client)) == before
        assert len(before) == WORKERS + 2  # redis, the workers, the feeder (exited)
    finally:
        down = run("down", "-v", "--rmi", "local")
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True, timeout=60)
    assert down.returncode == 0, down.stderr[-2000:]
    assert _project(docker_client) == []
