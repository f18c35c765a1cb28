"""The worker image carries compiled bytecode for the agent: a worker container (read-only
root, PYTHONDONTWRITEBYTECODE, unprivileged user, as topo starts every one) imports the
agent without compiling any of topo's modules. Counted from the interpreter's own verbose
output (``python3 -v`` says ``code object from <file>`` for each module it loads: a .pyc
when it was cached, the .py when it compiled it right then)."""

from __future__ import annotations

import re

from topo import cleanup, defaults
from topo.plan import MANAGED, OWNER
from topo.runtime.docker import DockerRuntime

import pytest

from .conftest import scenario

pytestmark = pytest.mark.docker

# What a multi worker, the feeder and a single container's PID 1 import at start.
ENTRY = "import topo.agent.worker, topo.agent.queue, topo.agent.single"
# The modules those imports load, read off their import lines (none of the peer_* ones).
EXPECTED = {"topo/__init__", "topo/agent/__init__", "topo/workloads", "topo/agent/common",
            "topo/agent/protocol", "topo/agent/queue", "topo/agent/reliable",
            "topo/agent/telemetry", "topo/agent/worker", "topo/agent/single",
            "topo/agent/resp"}
LOADED = re.compile(r"^# code object from '?([^']+)'?$")


def _module(path: str) -> str:
    """topo/agent/worker for .../topo/agent/worker.py and for its
    .../topo/agent/__pycache__/worker.cpython-311.pyc."""
    if path.endswith(".pyc"):
        folder, _, name = path.rpartition("/__pycache__/")
        return f"{folder}/{name.split('.')[0]}".removeprefix("/opt/topo/")
    return path.removesuffix(".py").removeprefix("/opt/topo/")


def _verbose_import(runtime: DockerRuntime, image: str) -> str:
    out = runtime.client.containers.run(
        image, ["python3", "-v", "-c",
                "import sys; assert sys.flags.dont_write_bytecode; " + ENTRY],
        read_only=True, user=defaults.CONTAINER_USER, network_mode="none", remove=True,
        stdout=True, stderr=True,
        labels={MANAGED: "true", "topo.test": "bytecode", OWNER: cleanup.owner_label()})
    return bytes(out).decode("utf-8", "replace")


def test_agent_modules_load_from_pycs_on_a_read_only_root(runtime: DockerRuntime) -> None:
    image = runtime.ensure_image(scenario(task="noop"))
    paths = [m.group(1) for ln in _verbose_import(runtime, image).splitlines()
             if (m := LOADED.match(ln.strip()))]
    modules = {_module(p): p for p in paths if p.startswith("/opt/topo/")}
    assert EXPECTED <= set(modules), sorted(modules)
    # compiled at start: every module loaded from its source, topo's or not (stdlib, redis, psutil)
    assert [p for p in paths if p.endswith(".py")] == []
