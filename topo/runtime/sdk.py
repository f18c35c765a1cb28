"""Small helpers around the Docker SDK that the runtimes share: one-line engine errors and
forced removal."""

from __future__ import annotations

import docker.errors
from docker.models.containers import Container

from topo.errors import EngineError
from topo.output import shorten


def engine_error(action: str, err: Exception) -> EngineError:
    reason = getattr(err, "explanation", None) or str(err)
    return EngineError(f"Docker engine: {action}: {shorten(str(reason).splitlines()[0], 300)}")


def force_remove(container: Container) -> int:
    try:
        container.remove(force=True)
        return 1
    except docker.errors.NotFound:
        return 0
