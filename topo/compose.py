"""A TopologyPlan as a Compose file, so the measured set-up can be adopted as it is.

Every container keeps what ``topo.runtime.docker`` starts it with: CPU and memory limits
(no swap), cpuset, pids limit, restart policy, unprivileged user, no capabilities,
no-new-privileges, read-only root with /tmp in memory, the run folder at /run/topo, the
workload's data read-only at /data (workers only), labels, and (multi) an internal network.
The Redis password becomes ``${TOPO_REDIS_PASSWORD}``, which docker compose refuses to start
without.

Two flavours, one template per topology (topo/templates/compose/<topology>.yaml.tmpl,
package data read through importlib.resources so that an installed wheel has them too):
- compose (default): for ``docker compose`` and ``docker-compose`` (1.27+, the Compose
  Specification, so no ``version`` key): every limit as measured;
- swarm: for ``docker stack deploy``, which refuses cpuset, mem_limit, memswap_limit,
  pids_limit and network_mode: limits go to ``deploy.resources`` (CPUs and memory only),
  the restart policy to ``deploy.restart_policy``, and single gets an internal network
  instead of none.

Pure: it returns text and deploys nothing.
"""

from __future__ import annotations

import json
from importlib import resources
from string import Template

import topo
from topo.model import ContainerSpec, Role, Scenario, TopologyPlan
from topo.plan import DEPLOYMENT, RUN_DIR

TEMPLATES = "templates/compose"  # under the topo package, shipped as package data
PASSWORD_ENV = "TOPO_REDIS_PASSWORD"
PASSWORD = "${TOPO_REDIS_PASSWORD:?set TOPO_REDIS_PASSWORD}"
HOST_RUN_DIR = "${TOPO_RUN_DIR:-./run}"
DATA_ENV = "TOPO_DATA_DIR"  # overrides the data folder's host path in a Compose file
# As topo.runtime.docker starts every container (tests/unit/test_compose.py compares them).
USER = "10001:10001"
SECURITY_OPT = "no-new-privileges:true"
TMPFS = "/tmp:rw,nosuid,nodev,size=64m"
MIB = 1024 * 1024
SWARM_RESTART = {"no": "none", "on-failure": "on-failure", "always": "any",
                 "unless-stopped": "any"}
COMPOSE_NOTE = (
    "For docker compose / docker-compose (1.27+). For docker stack deploy use the .stack.yaml"
    " file, which leaves out what Swarm refuses."
)
SWARM_NOTE = (
    "For docker stack deploy, which refuses cpuset, memswap_limit, pids_limit and"
    " network_mode: those are left out here (so memory may swap, pids are unlimited); the"
    " plain .yaml file for docker compose keeps every limit as measured."
)


def render(plan: TopologyPlan, scenario: Scenario, *, swarm: bool = False) -> str:
    """The Compose file of ``plan`` (a deployment of ``scenario``), as text."""
    template = Template(template_text(plan.topology))
    network = plan.network
    if network is None and swarm:  # Swarm has no "network_mode: none": a network of its own
        network = f"{plan.labels.get(DEPLOYMENT, plan.run_id)}-net"
    services = "\n".join(
        "\n".join(_service(spec, plan, network, swarm)) for spec in plan.containers
    )
    fields = {
        "topo_version": topo.__version__,
        "scenario": scenario.name,
        "source": scenario.source or "built in code",
        "sha256": scenario.sha256 or "none",
        "image": plan.image,
        "flavour": _comment(SWARM_NOTE if swarm else COMPOSE_NOTE),
        "up": (f"docker stack deploy -c {plan.topology}.stack.yaml topo-{plan.topology}" if swarm
               else f"docker compose -f {plan.topology}.yaml up -d    # or docker-compose"),
        "services": services,
        "networks": _networks(network, plan) if network else "",
        **_summary(plan, scenario),
    }
    return template.substitute(fields).rstrip("\n") + "\n"


def template_text(topology: str) -> str:
    """The Compose template of ``topology``, from the installed package (not the checkout)."""
    # One name per "/" step: a Traversable (a zip, say) need not take a path in one go.
    folder = resources.files("topo")
    for part in (*TEMPLATES.split("/"), f"{topology}.yaml.tmpl"):
        folder = folder / part
    return folder.read_text(encoding="utf-8")


def _comment(text: str, width: int = 88) -> str:
    # The template line already starts with "# "; wrap the rest under it.
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 3 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n# ".join([*lines, line])


def _summary(plan: TopologyPlan, scenario: Scenario) -> dict[str, str]:
    workers = plan.worker_containers
    first = workers[0] if workers else None
    redis = next((c for c in plan.containers if c.role == Role.REDIS), None)
    return {
        "processes": str(sum(c.processes for c in workers) or "auto"),
        "pool": str(scenario.single.pool) if scenario.single else "",
        "cpus": _cpus(plan.budget_cpus),
        "memory": _memory(plan.budget_memory),
        "workers": str(len(workers)),
        "worker_cpus": _cpus(first.cpus) if first else "",
        "worker_memory": _memory(first.memory) if first else "",
        "redis_cpus": _cpus(redis.cpus) if redis else "",
        "redis_memory": _memory(redis.memory) if redis else "",
        "tasks": str(plan.task_count),
        "queue": str(scenario.multi.queue) if scenario.multi else "",
    }


def _service(
    spec: ContainerSpec, plan: TopologyPlan, network: str | None, swarm: bool
) -> list[str]:
    lines = [
        f"  {spec.name}:",
        f"    image: {_q(spec.image or plan.image)}",
        f"    command: [{', '.join(_arg(spec.command, i) for i in range(len(spec.command)))}]",
        f"    hostname: {_q(spec.name)}",
    ]
    if spec.env:
        lines.append("    environment:")
        lines += [f"      {k}: {PASSWORD_JSON if k == PASSWORD_ENV else _q(v)}"
                  for k, v in sorted(spec.env.items())]
    if spec.labels:
        lines.append("    labels:")
        lines += [f"      {_q(k)}: {_q(v)}" for k, v in sorted(spec.labels.items())]
    lines += [
        f"    user: {_q(USER)}",
        "    cap_drop: [ALL]",
        f"    security_opt: [{_q(SECURITY_OPT)}]",
        "    read_only: true",
        f"    tmpfs: [{_q(TMPFS)}]",
        "    volumes:",
        "      - type: bind",
        f"        source: {json.dumps(HOST_RUN_DIR)}",
        f"        target: {RUN_DIR}",
        *_mounts(spec),
    ]
    return lines + (_swarm_limits(spec) if swarm else _compose_limits(spec)) + (
        [f"    networks: [{_q(network)}]"] if network else ["    network_mode: none"]
    )


def _mounts(spec: ContainerSpec) -> list[str]:
    """The data a worker reads: its host folder (TOPO_DATA_DIR overrides it), read-only."""
    lines = []
    for m in spec.mounts:
        source = f"${{{DATA_ENV}:-{_q(m.source)[1:-1]}}}"
        lines += ["      - type: bind", f'        source: "{source}"', f"        target: {_q(m.target)}"]
        if m.read_only:
            lines.append("        read_only: true")
    return lines


def _compose_limits(spec: ContainerSpec) -> list[str]:
    lines = [
        f"    cpus: {_cpus(spec.cpus)}",
        f"    mem_limit: {spec.memory}",
        f"    memswap_limit: {spec.memory}  # equal to mem_limit: no swap",
        f"    pids_limit: {spec.pids_limit}",
        f"    restart: {_q(spec.restart)}",
    ]
    if spec.cpuset:
        lines.insert(1, f"    cpuset: {_q(spec.cpuset)}")
    return lines


def _swarm_limits(spec: ContainerSpec) -> list[str]:
    return [
        "    deploy:",
        "      resources:",
        f"        limits: {{cpus: {_q(_cpus(spec.cpus))}, memory: {_q(f'{spec.memory}b')}}}",
        f"      restart_policy: {{condition: {SWARM_RESTART.get(spec.restart, 'none')}}}",
    ]


def _networks(name: str, plan: TopologyPlan) -> str:
    lines = ["networks:", f"  {name}:", "    internal: true", "    labels:"]
    lines += [f"      {_q(k)}: {_q(v)}" for k, v in sorted(plan.labels.items())]
    return "\n".join(lines)


def _q(value: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's), with Compose's ``$``
    interpolation escaped so that values reach the container unchanged."""
    return json.dumps(str(value).replace("$", "$$"), ensure_ascii=False)


PASSWORD_JSON = json.dumps(PASSWORD)


def _arg(command: tuple[str, ...], i: int) -> str:
    # The password follows --requirepass in Redis' command line.
    return PASSWORD_JSON if i > 0 and command[i - 1] == "--requirepass" else _q(command[i])


def _cpus(cpus: float) -> str:
    # Nine decimals: what the engine keeps (nano CPUs), so 2/3 stays 0.666666667.
    return f"{cpus:.9f}".rstrip("0").rstrip(".")


def _memory(size: int) -> str:
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size} bytes"
