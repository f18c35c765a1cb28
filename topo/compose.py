"""A TopologyPlan as a Compose file a team can adopt: the measured set-up, under stable names.

Every service is rendered from the same ``topo.runtime.spec.LaunchSpec`` that
``topo.runtime.docker`` starts its containers from: CPU and memory limits (no swap),
cpuset, pids limit, restart policy, unprivileged user, no capabilities, no-new-privileges,
read-only root with /tmp in memory, the run folder at /run/topo, the workload's data
read-only at /data (workers only), and (multi) an internal network. What differs from
topo's own deployment, so that a team can run and keep the file:
- services are named by role (``redis``, ``worker``, ``feeder``, ``single``), not by run;
  the N worker containers are ONE ``worker`` service with ``deploy.replicas: N``, each
  replica with the limits one worker container had (its cpuset too: topo gives every
  worker container the scenario's cpuset, so each replica gets the same);
- the agents' configuration is plain ``TOPO_<FIELD>`` variables
  (``AgentConfig.to_env``); a replica is told no name and takes its host name (unique per
  container), so its events and worker ids are its own;
- ``build:`` points at the Dockerfile written beside the file (``build_files``), and
  ``image:`` keeps the measured image's tag;
- Redis has a healthcheck (``redis-cli ping`` with the password in ``REDISCLI_AUTH``) and
  the others start once it is healthy (``depends_on``);
- nothing ``topo clean`` selects on: no ``topo.run``, and ``topo.managed`` is "false" on
  every service (the image carries "true", which its containers would inherit) and in the
  Dockerfile; a deployment started from the file is the team's, and ``topo.scenario`` says
  where it came from.
The Redis password becomes ``${TOPO_REDIS_PASSWORD}``, which compose refuses to start
without. Compose 1.29 (Debian's docker-compose) refuses a top-level ``name:``, so the
project name (``project_name``) is given with ``-p`` in the file's instructions.

Two flavours, one template per topology (topo/templates/compose/<topology>.yaml.tmpl,
package data read through importlib.resources so that an installed wheel has them too):
- compose (default): for ``docker compose`` and ``docker-compose`` (1.27+, the Compose
  Specification, so no ``version`` key): every limit as measured;
- swarm: for ``docker stack deploy``, which refuses cpuset, mem_limit, memswap_limit,
  pids_limit, network_mode and build, and ignores depends_on: limits go to
  ``deploy.resources`` (CPUs and memory only), the restart policy to
  ``deploy.restart_policy``, and single gets an internal network instead of none.

Pure: it returns text (and names files) and deploys nothing.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from string import Template

import topo
from topo import images
from topo.agent.protocol import AgentConfig
from topo.model import ContainerSpec, Role, Scenario, TopologyPlan
from topo.plan import MANAGED
from topo.runtime.spec import LaunchSpec, launch_spec
from topo.wheels import Wheelhouse

TEMPLATES = "templates/compose"  # under the topo package, shipped as package data
PASSWORD_ENV = "TOPO_REDIS_PASSWORD"
PASSWORD = "${TOPO_REDIS_PASSWORD:?set TOPO_REDIS_PASSWORD}"
HOST_RUN_DIR = "${TOPO_RUN_DIR:-./run}"
DATA_ENV = "TOPO_DATA_DIR"  # overrides the data folder's host path in a Compose file
MIB = 1024 * 1024
SERVICE = {Role.REDIS: "redis", Role.WORKER: "worker", Role.FEEDER: "feeder",
           Role.SINGLE: "single"}
NETWORK = "internal"
DESCRIPTION = "topo.scenario"  # says where the file came from; topo clean never selects on it
# topo clean removes what carries topo.managed=true. topo's base image carries it (so that
# `topo clean --images` finds topo's images), every image built from it inherits it, and so
# does every container started from one: the adopted files and their Dockerfile say "false".
NOT_MANAGED = f"LABEL {MANAGED}=false"
HEALTHCHECK = [
    "    healthcheck:  # PONG once Redis accepts the password (REDISCLI_AUTH)",
    '      test: ["CMD-SHELL", "redis-cli ping | grep -q PONG"]',
    "      interval: 1s",
    "      timeout: 3s",
    "      retries: 60",
]
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
    network = NETWORK if plan.network is not None or swarm else None
    services = "\n".join(
        "\n".join(_service(name, specs, plan, scenario, network, swarm))
        for name, specs in services_of(plan).items()
    )
    project = project_name(scenario, plan.topology)
    fields = {
        "topo_version": topo.__version__,
        "scenario": scenario.name,
        "source": scenario.source or "built in code",
        "sha256": scenario.sha256 or "none",
        "image": plan.image,
        "flavour": _comment(SWARM_NOTE if swarm else COMPOSE_NOTE),
        "network_words": ("an internal network of its own" if network
                          else "no network"),
        "up": (f"docker stack deploy -c {plan.topology}.stack.yaml {project}" if swarm
               else f"docker compose -p {project} -f {plan.topology}.yaml up -d"
                    "    # or docker-compose"),
        "down": (f"docker stack rm {project}" if swarm
                 else f"docker compose -p {project} -f {plan.topology}.yaml down -v"),
        "services": services,
        "networks": _networks(network, scenario) if network else "",
        **_summary(plan, scenario),
    }
    return template.substitute(fields).rstrip("\n") + "\n"


def project_name(scenario: Scenario, topology: str) -> str:
    """The Compose project of an adopted file: stable, from the scenario (Compose wants
    lower case)."""
    return f"topo-{scenario.name.lower()}-{topology}"


def services_of(plan: TopologyPlan) -> dict[str, list[ContainerSpec]]:
    """The plan's containers grouped into services by role, in the plan's order: the N
    worker containers (alike but for their names) become one service."""
    out: dict[str, list[ContainerSpec]] = {}
    for spec in plan.containers:
        out.setdefault(SERVICE[spec.role], []).append(spec)
    return out


def dockerfile(scenario: Scenario, house: Wheelhouse | None) -> str:
    """The Dockerfile beside the Compose files: the measured image's recipe (base or the
    team's image, topo's agent, the workload's code, the wheels resolved on the host), built
    with no network. Its install stage carries no label ``topo clean`` selects on."""
    from_image = scenario.workload.image or images.BASE_IMAGE
    text = images.dockerfile(from_image, house, {"topo.scenario": scenario.name})
    return text + f"# a team's image: topo clean --images leaves it alone\n{NOT_MANAGED}\n"


def build_files(scenario: Scenario, house: Wheelhouse | None) -> dict[str, Path]:
    """The build context beside the Compose files, path -> host file: topo's agent and the
    workload's code under ``app/``, the wheels under ``wheels/`` and ``tool/``, as the
    Dockerfile copies them."""
    files = {f"app/{rel}": f for rel, f in images.agent_files()}
    if scenario.workload.path:
        files.update(images.folder_files(Path(scenario.workload.path), "app/workloads"))
    if house is not None:
        for sub, names in (("wheels", house.wheels), ("tool", (house.installer,))):
            files.update({f"{sub}/{n}": house.folder / sub / n for n in names})
    return files


DOCKERIGNORE = "*.yaml\nrun\n"  # the Compose files and the run folder are no part of the image


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
    redis = next((c for c in plan.containers if c.role == "redis"), None)
    return {
        "processes": str(sum(c.processes for c in workers) or "auto"),
        "pool": scenario.single.pool if scenario.single else "",
        "cpus": _cpus(plan.budget_cpus),
        "memory": _memory(plan.budget_memory),
        "workers": str(len(workers)),
        "worker_cpus": _cpus(first.cpus) if first else "",
        "worker_memory": _memory(first.memory) if first else "",
        "redis_cpus": _cpus(redis.cpus) if redis else "",
        "redis_memory": _memory(redis.memory) if redis else "",
        "tasks": str(plan.task_count),
        "queue": scenario.multi.queue if scenario.multi else "",
    }


def _service(name: str, specs: list[ContainerSpec], plan: TopologyPlan, scenario: Scenario,
             network: str | None, swarm: bool) -> list[str]:
    run = launch_spec(specs[0], plan, HOST_RUN_DIR, network)
    lines = [f"  {name}:", f"    image: {_q(run.image)}"]
    if run.image == plan.image and not swarm:  # stack deploy cannot build
        lines.append("    build: {context: ., dockerfile: Dockerfile, network: none}")
    lines.append(f"    command: [{', '.join(_arg(run.command, i) for i in range(len(run.command)))}]")
    env = _environment(run, name, replicated=len(specs) > 1 or run.role == Role.WORKER)
    if env:
        lines.append("    environment:")
        lines += [f"      {k}: {v}" for k, v in env.items()]
    lines += [
        "    labels:",
        f"      {_q(DESCRIPTION)}: {_q(scenario.name)}",
        f"      {_q(MANAGED)}: \"false\"  # the image says true, and a container inherits it",
        f"    user: {_q(run.user)}",
        f"    cap_drop: [{', '.join(run.cap_drop)}]",
        f"    security_opt: [{', '.join(_q(o) for o in run.security_opt)}]",
        f"    read_only: {str(run.read_only).lower()}",
        f"    tmpfs: [{', '.join(_q(f'{path}:{opts}') for path, opts in run.tmpfs)}]",
        "    volumes:",
        *_binds(run),
    ]
    if run.role == Role.REDIS:
        lines += HEALTHCHECK
    elif any(s.role == Role.REDIS for s in plan.containers) and not swarm:
        lines += ["    depends_on:", "      redis: {condition: service_healthy}"]
    lines += _swarm_limits(run, len(specs)) if swarm else _compose_limits(run, len(specs))
    return lines + ([f"    networks: [{run.network}]"] if run.network else ["    network_mode: none"])


def _environment(run: LaunchSpec, service: str, replicated: bool) -> dict[str, str]:
    """Rendered values by name: the agent's configuration as ``TOPO_<FIELD>`` variables
    (Redis by its service name; a replicated service's name left out), the rest as they
    are, and the password as a variable compose demands."""
    env = dict(run.env)
    out: dict[str, str] = {}
    text = env.pop("TOPO_CONFIG", None)
    if text is not None:
        cfg = AgentConfig.from_json(text)
        # linger: a Compose run has no sampler to wait for; its single service just ends
        cfg = cfg.replace(container=service, linger=None,
                          redis_host=None if cfg.redis_host is None else SERVICE[Role.REDIS])
        out.update({k: _q(v) for k, v in cfg.to_env(container=not replicated).items()})
    if run.role == Role.REDIS:  # redis-cli reads it: the healthcheck's ping needs no shell variable
        out["REDISCLI_AUTH"] = PASSWORD_JSON
    for key, value in sorted(env.items()):
        out[key] = PASSWORD_JSON if key == PASSWORD_ENV else _q(value)
    return out


def _binds(run: LaunchSpec) -> list[str]:
    """The run folder (TOPO_RUN_DIR) and a worker's data (TOPO_DATA_DIR overrides its host
    path, read-only)."""
    run_dir, *data = run.binds
    lines = ["      - type: bind", f"        source: {json.dumps(run_dir.source)}",
             f"        target: {run_dir.target}"]
    for m in data:
        source = f"${{{DATA_ENV}:-{_q(m.source)[1:-1]}}}"
        lines += ["      - type: bind", f'        source: "{source}"', f"        target: {_q(m.target)}"]
        if m.read_only:
            lines.append("        read_only: true")
    return lines


def _compose_limits(run: LaunchSpec, replicas: int) -> list[str]:
    lines = [
        f"    cpus: {_cpus(run.cpus)}",
        f"    mem_limit: {run.memory}",
        f"    memswap_limit: {run.memswap}  # equal to mem_limit: no swap",
        f"    pids_limit: {run.pids_limit}",
        f"    restart: {_q(run.restart)}",
    ]
    if run.cpuset:
        lines.insert(1, f"    cpuset: {_q(run.cpuset)}")
    if run.role == Role.WORKER:  # each replica has the limits above
        lines += ["    deploy:", f"      replicas: {replicas}"]
    return lines


def _swarm_limits(run: LaunchSpec, replicas: int) -> list[str]:
    return [
        "    deploy:",
        *([f"      replicas: {replicas}"] if run.role == Role.WORKER else []),
        "      resources:",
        f"        limits: {{cpus: {_q(_cpus(run.cpus))}, memory: {_q(f'{run.memory}b')}}}",
        f"      restart_policy: {{condition: {SWARM_RESTART.get(run.restart, 'none')}}}",
    ]


def _networks(name: str, scenario: Scenario) -> str:
    return "\n".join(["networks:", f"  {name}:", "    internal: true", "    labels:",
                      f"      {_q(DESCRIPTION)}: {_q(scenario.name)}"])


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
