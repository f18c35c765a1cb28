"""Which runtime ``--engine`` names: the Docker engine's containers (the default) or Swarm
services on the same engine, when it is a Swarm manager."""

from __future__ import annotations

from topo.runtime.docker import DockerRuntime

ENGINES = ("docker", "swarm")


def connect(engine: str = "docker") -> DockerRuntime:
    """The runtime for ``engine``; an EngineError when the engine cannot run it."""
    if engine == "swarm":
        from topo.runtime.swarm import SwarmRuntime

        return SwarmRuntime.connect()
    return DockerRuntime.connect()
