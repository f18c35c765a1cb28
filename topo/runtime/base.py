"""What the run loop needs from a container runtime. The Docker adapter and the fake
runtime of the tests both provide it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from topo.model import Deployment, Scenario, TopologyPlan


@dataclass(frozen=True)
class RawStats:
    """Counters of one container as the kernel keeps them (they restart at 0 when the
    container restarts; the sampler makes them cumulative)."""

    cpu: float  # CPU seconds
    memory: int  # bytes, usage minus inactive file cache
    throttled_periods: int = 0
    throttled: float = 0.0  # seconds
    pids: int = 0


@dataclass(frozen=True)
class ContainerState:
    name: str
    running: bool
    exit_code: int | None
    oom_killed: bool
    restarts: int
    restarting: bool = False
    finished_at: float | None = None  # when it last exited (host wall clock), if it has


class Runtime(Protocol):
    def ensure_image(self, scenario: Scenario) -> str:
        """Tag of a worker image holding topo's agent and the scenario's workload."""

    def redis_image(self, scenario: Scenario) -> str | None:
        """The image Redis runs from, when not the worker image (None)."""

    def deploy(self, plan: TopologyPlan, run_dir: str) -> Deployment:
        """Create the network and start every container of ``plan``."""

    def stats(self, deployment: Deployment) -> dict[str, RawStats | None]:
        """Current counters per container name; None for one that is not running."""

    def states(self, deployment: Deployment) -> dict[str, ContainerState]:
        """Whether each container runs, how it exited, how often it restarted."""

    def logs(self, deployment: Deployment, name: str, tail: int = 5) -> str:
        """The last lines a container printed, for error messages."""

    def host_pid(self, name: str) -> int | None:
        """Host PID of a container's main process; None when it is not running."""

    def pause(self, name: str) -> None:
        """Freeze every process of a container."""

    def unpause(self, name: str) -> None:
        """Thaw a frozen container."""

    def disconnect(self, deployment: Deployment, name: str) -> None:
        """Cut a container off its deployment's network."""

    def reconnect(self, deployment: Deployment, name: str) -> None:
        """Put a container back on its deployment's network."""

    def teardown(self, deployment: Deployment | None, deployment_name: str) -> None:
        """Remove every container and network labelled with ``deployment_name``."""
