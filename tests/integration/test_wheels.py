"""A scenario's own dependencies and image on the real engine: requirements resolved on the
host into wheels, a team's image with topo's agent on top, and every bad input refused in one
line before anything runs. Images built here carry the label topo.test=wheels and are
removed at the end, with the worker images topo built from them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from topo.errors import UnusableImageError
from topo.plan import MANAGED
from topo.model import Workload
from topo.runtime.docker import BASE_IMAGE, DockerRuntime

from .conftest import ROOT, scenario

pytestmark = pytest.mark.docker

TOPO = [sys.executable, "-m", "topo.cli"]
WORKLOAD = ROOT / "tests" / "integration" / "wheels_workload"
TEST_LABEL = {"topo.test": "wheels"}
TEAM = "topo-test-team:wheels"
NO_PYTHON = "topo-test-nopython:wheels"
OLD_PYTHON = "topo-test-oldpython:wheels"
TASKS = 30

# A team's image as a team would make it, but FROM topo's base (no registry here): its code
# in /opt/team on its own PYTHONPATH, tabulate installed from a wheel, Debian's redis and
# psutil removed (topo's agents need neither: nothing is added for them), a user and an
# entrypoint of its own.
TEAM_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
COPY tabulate.whl /tmp/tabulate.whl
RUN python3 -m zipfile -e /tmp/tabulate.whl /usr/local/lib/python3.11/dist-packages/ \\
 && rm -rf /tmp/tabulate.whl /usr/lib/python3/dist-packages/redis /usr/lib/python3/dist-packages/psutil
COPY teamtask.py /opt/team/teamtask.py
ENV PYTHONPATH=/opt/team
USER 4242
ENTRYPOINT ["/bin/false"]
"""
TEAM_TASK = """\
import tabulate

def run(task_id):
    return tabulate.tabulate([[task_id, task_id * task_id]])
"""
NO_PYTHON_DOCKERFILE = f"FROM {BASE_IMAGE}\nRUN rm -f /usr/bin/python3* /usr/local/bin/python3*\n"
# A python3 that says it is 3.8: what the probe sees of an image topo cannot use.
OLD_PYTHON_DOCKERFILE = f"FROM {BASE_IMAGE}\nCOPY python3 /usr/local/bin/python3\n"
OLD_PYTHON3 = """#!/bin/sh
echo '{"python": "3.8.18", "implementation": "cpython", "machine": "x86_64", "libc": "glibc 2.36"}'
"""


def topo(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TOPO, *args], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={**os.environ, **env})


def git_status() -> list[str]:
    """Changed, new and ignored files of the repository (ignored too: topo-results/ is)."""
    out = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [ln for ln in out.splitlines() if "__pycache__" not in ln]


def managed_containers(runtime: DockerRuntime) -> set[str]:
    return {c.name for c in runtime.client.containers.list(all=True, filters={"label": "topo.managed=true"})}


def build(runtime: DockerRuntime, tag: str, dockerfile: str, folder: Path,
          files: dict[str, bytes] | None = None) -> None:
    folder.mkdir()
    (folder / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        (folder / name).write_bytes(data)
        (folder / name).chmod(0o755)
    runtime.client.images.build(path=str(folder), tag=tag, rm=True, forcerm=True, pull=False,
                                network_mode="none", labels=TEST_LABEL)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user cache of this module's own: the first resolution really downloads."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(scope="module")
def team_images(runtime: DockerRuntime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    root = tmp_path_factory.mktemp("team-images")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--no-deps",
                    "-d", str(root / "dl"), "tabulate"], check=True, cwd=root)
    wheel = next((root / "dl").glob("tabulate-*.whl")).read_bytes()
    try:
        build(runtime, TEAM, TEAM_DOCKERFILE, root / "team",
              {"tabulate.whl": wheel, "teamtask.py": TEAM_TASK.encode()})
        build(runtime, NO_PYTHON, NO_PYTHON_DOCKERFILE, root / "nopython")
        build(runtime, OLD_PYTHON, OLD_PYTHON_DOCKERFILE, root / "oldpython",
              {"python3": OLD_PYTHON3.encode()})
        yield
    finally:
        for tag in (TEAM, NO_PYTHON, OLD_PYTHON):
            for worker in runtime.client.images.list(filters={"label": f"topo.from={tag}"}):
                runtime.client.images.remove(worker.id, force=True)
        for image in runtime.client.images.list(filters={"label": "topo.test=wheels"}):
            runtime.client.images.remove(image.id, force=True)


@pytest.fixture(scope="module")
def built_with_requirements(runtime: DockerRuntime, cache: Path,
                            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`topo compare` of a scenario whose task imports numpy and tabulate from wheels."""
    folder = tmp_path_factory.mktemp("requirements")
    (folder / "wheels.yaml").write_text(
        "version: 1\nname: wheels\nworkload:\n  task: wheeltask:run\n"
        f"  path: {WORKLOAD}\n  requirements: {WORKLOAD / 'requirements.txt'}\n  tasks: {TASKS}\n"
        "workers: 2\nresources: {cpus: 1, memory: 512m}\nrun: {repeat: 1, timeout: 120s}\n")
    before = git_status()
    p = topo("compare", str(folder / "wheels.yaml"), "--out", str(folder / "out"), "--format", "json",
             env={"XDG_CACHE_HOME": str(cache)})
    assert p.returncode == 0, p.stderr
    assert git_status() == before  # neither wheels nor pip's files landed in the repository
    doc = json.loads((folder / "out" / "result.json").read_text())
    tag = doc["host"]["image"]
    yield tag, folder / "out" / "result.json"
    runtime.client.images.remove(tag, force=True)


def test_requirements_reach_both_topologies_and_every_task_completes(
        built_with_requirements: tuple[str, Path]) -> None:
    _, result = built_with_requirements
    doc = json.loads(result.read_text())
    assert sorted(r["topology"] for r in doc["runs"]) == ["multi", "single"]
    for run in doc["runs"]:
        done = {r["id"] for r in run["records"] if r["ok"]}
        errors = [r["error"] for r in run["records"] if not r["ok"]]
        assert (run["status"], done, errors) == ("ok", set(range(TASKS)), []), run["topology"]


def test_wheelhouse_is_in_the_users_cache_with_the_images_platform(
        built_with_requirements: tuple[str, Path], cache: Path) -> None:
    houses = [p.parent for p in (cache / "topo" / "wheels").glob("*/manifest.json")]
    assert len(houses) == 1
    names = sorted(p.name for p in (houses[0] / "wheels").iterdir())
    numpy = [n for n in names if n.startswith("numpy-")]
    assert len(numpy) == 1 and "-cp311-cp311-manylinux" in numpy[0] and numpy[0].endswith("_x86_64.whl")
    assert any(n.startswith("tabulate-") and n.endswith("-py3-none-any.whl") for n in names)


def test_rebuild_from_the_cache_needs_no_index(
        runtime: DockerRuntime, built_with_requirements: tuple[str, Path], cache: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    tag, _ = built_with_requirements
    runtime.client.images.remove(tag, force=True)  # only the worker image: the wheels stay
    for name, value in {"XDG_CACHE_HOME": str(cache), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "",
                        "PIP_CONFIG_FILE": "/dev/null"}.items():
        monkeypatch.setenv(name, value)
    sc = replace(scenario(), workload=Workload(task="wheeltask:run", tasks=TASKS, path=str(WORKLOAD),
                                               requirements=str(WORKLOAD / "requirements.txt")))
    assert runtime.ensure_image(sc) == tag
    assert runtime.image_id(tag) is not None


def test_own_image_runs_both_topologies_with_topos_agent_on_top(
        runtime: DockerRuntime, team_images: None, cache: Path, tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text(
        f"version: 1\nname: team\nworkload:\n  task: teamtask:run\n  image: {TEAM}\n  tasks: {TASKS}\n"
        "workers: 2\nresources: {cpus: 1, memory: 512m}\nrun: {repeat: 1, timeout: 120s}\n")
    env = {"XDG_CACHE_HOME": str(cache)}
    p = topo("compare", str(tmp_path / "team.yaml"), "--out", str(tmp_path / "out"), "--format", "json",
             env=env)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    for run in doc["runs"]:
        done = {r["id"] for r in run["records"] if r["ok"]}
        assert (run["status"], done) == ("ok", set(range(TASKS))), run["topology"]
    services = yaml.safe_load((tmp_path / "out" / "compose" / "multi.yaml").read_text())["services"]
    assert {s["image"] for name, s in services.items() if name == "redis"} == {BASE_IMAGE}
    assert {s["image"] for name, s in services.items() if name != "redis"} == {doc["host"]["image"]}
    doctor = topo("doctor", env=env).stdout
    line = next(ln for ln in doctor.splitlines() if doc["host"]["image"] in ln)
    assert f"from {TEAM} (python 3.11." in line
    # redis and psutil were removed from the team's image, and topo added no wheel: both
    # topologies ran on the standard library and the team's own packages
    assert f"from {TEAM} (python 3.11.2): topo agent; +" in line and "wheels:" not in line, line
    out = runtime.client.containers.run(
        doc["host"]["image"], ["python3", "-c", "import importlib.util as u; print(sorted("
                               "m for m in ('redis', 'psutil', 'tabulate') if u.find_spec(m)))"],
        network_mode="none", remove=True, labels={**TEST_LABEL, MANAGED: "true"})
    assert bytes(out).decode().strip() == "['tabulate']"


@pytest.mark.parametrize("workload, message", [
    ("  task: wheeltask:run\n  requirements: REQ\n", "workload.requirements: nosuchpkg-topo-zz: no such package"),
    ("  task: wheeltask:run\n  requirements: REQ\n", "workload.requirements: docopt has no wheel for cp311 "
                                                     "manylinux_2_36_x86_64"),
    ("  task: m:f\n  image: topo-test-missing:none\n", "workload.image topo-test-missing:none: no such image"),
    (f"  task: m:f\n  image: {NO_PYTHON}\n", f"workload.image {NO_PYTHON}: no python3 on its PATH"),
    (f"  task: m:f\n  image: {OLD_PYTHON}\n", f"workload.image {OLD_PYTHON}: python3 is 3.8.18; topo needs "
                                              "Python 3.9 or newer"),
], ids=["typo", "sdist-only", "missing-image", "no-python", "old-python"])
def test_bad_dependencies_are_one_line_exit_2_and_leave_nothing(
        runtime: DockerRuntime, team_images: None, cache: Path, tmp_path: Path,
        workload: str, message: str) -> None:
    requirement = "docopt" if "docopt" in message else "nosuchpkg-topo-zz"
    (tmp_path / "req.txt").write_text(f"tabulate\n{requirement}\n")
    (tmp_path / "bad.yaml").write_text(
        f"version: 1\nname: bad\nworkload:\n{workload.replace('REQ', 'req.txt')}workers: 2\n")
    containers, status = managed_containers(runtime), git_status()
    p = topo("compare", str(tmp_path / "bad.yaml"), env={"XDG_CACHE_HOME": str(cache)})
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"topo: error: {message}"), p.stderr
    assert managed_containers(runtime) == containers  # the probe container is gone too
    assert git_status() == status  # no topo-results folder, no wheels in the repository


def test_unusable_image_is_refused_by_the_runtime_too(runtime: DockerRuntime, team_images: None) -> None:
    sc = replace(scenario(), workload=Workload(task="m:f", tasks=1, image=NO_PYTHON))
    with pytest.raises(UnusableImageError, match="no python3 on its PATH"):
        runtime.ensure_image(sc)
