"""What the run engine needs from a container runtime. The Docker adapter and the fake
runtime of the tests both provide it.

The runtime owns every side effect on containers: deploying, observing, and the faults
(kill, stop/continue a process, pause, partition, exec). Nothing else in topo signals a
process or calls an engine, so a remote engine or another orchestrator only has to
implement this protocol.
"""

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

    def workers(self, deployment: Deployment, name: str) -> list[int]:
        """In-container PIDs of the processes the container's main process started (a
        single container's pool), lowest first; empty when there are none."""

    def kill(self, deployment: Deployment, name: str, pid: int | None = None) -> str:
        """SIGKILL one process of a container: ``pid`` (in-container) or, when None, its
        main process, killed as from outside (a restart policy fires, as for a crash).
        Returns how it was done (``host-pid`` | ``exec`` | ``engine-api``)."""

    def stop_process(self, deployment: Deployment, name: str, pid: int, stopped: bool) -> None:
        """SIGSTOP (``stopped``) or SIGCONT one process inside a container."""

    def exec(self, deployment: Deployment, name: str, argv: tuple[str, ...]) -> tuple[int, str]:
        """Run ``argv`` inside a running container as its own user: exit code and output."""

    def pause(self, deployment: Deployment, name: str) -> None:
        """Freeze every process of a container."""

    def unpause(self, deployment: Deployment, name: str) -> None:
        """Thaw a frozen container."""

    def disconnect(self, deployment: Deployment, name: str) -> None:
        """Cut a container off its deployment's network."""

    def reconnect(self, deployment: Deployment, name: str) -> None:
        """Put a container back on its deployment's network."""

    def teardown(self, deployment: Deployment | None, deployment_name: str) -> None:
        """Remove every container and network labelled with ``deployment_name``."""
