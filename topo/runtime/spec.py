"""How one container of a plan runs, as data: the single source that both the Docker
runtime (``topo.runtime.docker``) and the Compose writer (``topo.compose``) render.

Limits (CPU, memory without swap, cpuset, pids), the restart policy, the hardening every
container gets (unprivileged user, no capabilities, no-new-privileges, read-only root with
/tmp in memory), labels, mounts (the run folder, the workload's data) and the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from topo import defaults
from topo.model import ContainerSpec, TopologyPlan
from topo.plan import RUN_DIR


@dataclass(frozen=True)
class Bind:
    source: str  # host path (or a Compose expression standing for one)
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a container is started with; rendered, never rebuilt elsewhere."""

    name: str
    role: str
    image: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    labels: Mapping[str, str]
    cpus: float
    memory: int  # bytes; swap is the same figure: a memory limit means what it says
    cpuset: str | None
    pids_limit: int
    restart: str  # no | on-failure | always | unless-stopped
    network: str | None  # None: no network at all
    binds: tuple[Bind, ...]
    user: str = defaults.CONTAINER_USER
    cap_drop: tuple[str, ...] = defaults.CAP_DROP
    security_opt: tuple[str, ...] = defaults.SECURITY_OPT
    read_only: bool = defaults.READ_ONLY_ROOT
    tmpfs: tuple[tuple[str, str], ...] = defaults.TMPFS

    @property
    def memswap(self) -> int:
        return self.memory


def launch_spec(spec: ContainerSpec, plan: TopologyPlan, run_dir: str,
             network: str | None = None) -> LaunchSpec:
    """The container ``spec`` of ``plan`` as it is started, with the host's ``run_dir``
    mounted at RUN_DIR. ``network`` overrides the plan's (a Swarm file needs one even for
    single)."""
    binds = (Bind(run_dir, RUN_DIR),
             *(Bind(m.source, m.target, m.read_only) for m in spec.mounts))
    return LaunchSpec(
        name=spec.name, role=spec.role, image=spec.image or plan.image,
        command=tuple(spec.command), env=dict(spec.env), labels=dict(spec.labels),
        cpus=spec.cpus, memory=spec.memory, cpuset=spec.cpuset, pids_limit=spec.pids_limit,
        restart=spec.restart, network=network or plan.network, binds=binds,
    )
