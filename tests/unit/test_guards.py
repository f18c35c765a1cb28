"""Guards on topo's structure, read from the source itself: what may import the Docker SDK,
what the code inside the containers may import, and a strict type check of all of topo/.
(No cycle, and the reports' layer: tests/unit/test_imports.py.)

Every import statement counts, including those inside functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from topo import images

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "topo"

# What code running inside the containers may import besides the standard library: topo's
# own agent code only (a team's image needs no package of topo's; images.AGENT_PACKAGES).
AGENT_ALLOWED = {"topo"}
AGENT_TOPO_ALLOWED = ("topo.agent", "topo.workloads")
# A queue library (and the redis-py it requires) is imported only by the adapter that
# measures it.
PEER_LIBRARIES = {"celery", "kombu", "rq", "dramatiq", "redis"}
# The Docker SDK stays behind the runtime adapters: the Docker engine's, Swarm's, and the
# helpers both share. Everything else talks to an engine through topo.runtime.base.Runtime.
DOCKER_USERS = ["topo.runtime.docker", "topo.runtime.sdk", "topo.runtime.swarm",
                "topo.runtime.swarm_collect", "topo.runtime.swarm_objects"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, absolute names (relative imports resolved)."""
    return imports_of(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def imports_of(source: str, module: str, is_package: bool = False) -> Iterator[str]:
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            yield base
            # ``from topo import stats`` imports the module topo.stats.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def test_the_walker_sees_function_local_and_relative_imports() -> None:
    source = "import os\ndef f():\n    from topo import stats\n    from . import table\n    from ..x import y\n"
    found = set(imports_of(source, "topo.report.html"))
    assert found == {"os", "topo", "topo.stats", "topo.report", "topo.report.table", "topo.x", "topo.x.y"}


def test_only_the_runtime_adapters_import_the_docker_sdk() -> None:
    users = sorted(name for name, path in modules().items()
                   if any(m == "docker" or m.startswith("docker.") for m in imports(path)))
    assert users == DOCKER_USERS


def test_the_agent_imports_only_what_its_image_has() -> None:
    assert images.AGENT_PACKAGES == ()  # what topo adds to a team's image for its agents
    stdlib = set(sys.stdlib_module_names)
    bad: list[str] = []
    for name, path in modules().items():
        if not (name.startswith("topo.agent") or name == "topo.workloads"):
            continue
        allowed = AGENT_ALLOWED | (PEER_LIBRARIES if name.startswith("topo.agent.peer") else set())
        for m in imports(path):
            top = m.split(".")[0]
            if top == "__future__" or top in stdlib:
                continue
            if top not in allowed:
                bad.append(f"{name} imports {m}")
            elif top == "topo" and m != "topo" and not m.startswith(AGENT_TOPO_ALLOWED):
                bad.append(f"{name} imports {m}")
    assert bad == []


def test_topo_and_its_benchmarks_pass_a_strict_type_check() -> None:
    """The benchmarks too: CI runs none of them, and one of them (redis_durability.py) once
    crashed at its first ratio, a local list named as the module it meant."""
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
                           "topo", "benchmarks"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]
