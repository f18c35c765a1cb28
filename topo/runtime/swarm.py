"""The Docker Swarm engine: the same TopologyPlan deployed as Swarm services.

Every planned container becomes a service of one replica, named as the container would be,
so the run loop, the ledger and the reports see the same names as on the Docker engine. A
service's *current* task container stands in for the planned container: stats, states,
kills and pauses go to whichever task container holds the service now, and Swarm's own
rescheduling (a new task, a new container with a new name) is the recovery.

How the pieces travel, designed for several nodes, built for one:

- **Events (the ledger)**: every task mounts a node-local named volume
  ``<deployment>-run`` at /run/topo, as the Docker engine mounts the run folder. With
  ``collect="bind"`` (one node, the default there) that volume is the run folder itself (the
  local driver's bind option) and tasks stay on topo's node; with ``collect="engine"`` (the
  other nodes' engines given, or asked for) each node's volume is streamed back through its
  engine into the run folder (``topo.runtime.swarm_collect``). Either way the harness's
  incremental reader tails the run folder, and nothing of the ledger goes through Redis,
  which a fault can empty.
- **Redis' password**: a Swarm secret (labelled like everything else), mounted at
  /run/secrets/<name>, never in an environment variable; the agents read it from
  TOPO_REDIS_PASSWORD_FILE, redis-server from its command line built inside the container.
- **Network**: an overlay network per deployment, internal and attachable. The single
  topology gets one too (Swarm cannot start a service with no network; as in the stack
  files topo writes).

- **Faults and counters on any node**: a task container is acted on through the engine of
  the node that runs it (the task's NodeID -> that node's engine, as collection maps them):
  the API's kill, pause/unpause and network disconnect, an exec that signals a process in
  the container's own PID namespace, and the stats API for CPU, throttling and memory. On
  topo's own node the Docker runtime's local path stays (host PIDs, cgroup files: what was
  measured so far) unless ``TOPO_SWARM_ACCESS=engine`` asks for the engine path there too,
  as a node elsewhere gets it (the tests use it on their one-node swarm).

Swarm has no cpuset, swap or pids limit for services: those of the plan are not applied
(the stack files say the same). Restart: the services get a restart delay of 0 (the SDK's
RestartPolicy sends ``Delay: 0``), not Swarm's default of 5 s that a stack file without
``delay`` gets.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import docker
import docker.errors
import docker.types as dt

from topo.errors import EngineError, RunError
from topo.model import ContainerSpec, DeployedContainer, Deployment, TopologyPlan
from topo.plan import DEPLOYMENT, RUN_DIR
from topo.runtime.base import ContainerState, RawStats
from topo.defaults import CONTAINER_USER, TMPFS_SIZE
from topo.runtime.docker import DockerRuntime, _timestamp
from topo.runtime.sdk import engine_error
from topo.runtime.swarm_collect import Collector, NodeEngine, volume_name
from topo.runtime.swarm_objects import ENGINES_ENV, SwarmObjects, node_engines
from topo.runtime.spec import launch_spec

SWARM_RESTART: dict[str, Literal["none", "on-failure", "any"]] = {
    "no": "none", "on-failure": "on-failure", "always": "any", "unless-stopped": "any"}
SECRETS_DIR = "/run/secrets"
TASKS_TTL = 0.1  # s: the sampler (10 Hz) and the state poll (4 Hz) share one task listing
UID, GID = CONTAINER_USER.split(":")
# A task that has not started yet, and one that is over (docs.docker.com, "task states").
STARTING = {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
ENDED = {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}
COLLECT = ("bind", "engine")  # how the event files reach the harness (module docstring)
COLLECT_ENV = "TOPO_SWARM_COLLECT"
# How topo acts on (faults) and reads (counters) a task container on its own node: host
# PIDs and cgroup files, or the engine's API as for a node elsewhere (module docstring).
ACCESS = ("host", "engine")
ACCESS_ENV = "TOPO_SWARM_ACCESS"
TASK_LABEL = "com.docker.swarm.service.id"  # on every task container Swarm starts
NOT_SWARM = ("the Docker engine is not a Swarm manager: `docker swarm init` first (one node: "
             "docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377), "
             "or use --engine docker")


class SwarmSettingError(EngineError):
    """A TOPO_SWARM_* setting names no known choice: a usage error (exit 2), found before
    any engine is asked."""

    exit_code = 2


def _setting(env: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SwarmSettingError(f"{env}: {value!r} is not one of {', '.join(choices)}")
    return value


class NodeRuntime(DockerRuntime):
    """A Swarm node's engine reached as a remote one, whatever its address: processes are
    signalled from inside the container (exec), the main process and the container through
    the API, and the counters come from the engine's stats API, never from a host PID or a
    cgroup file of this host (a PID number a remote engine reports may exist here too)."""

    def __init__(self, client: docker.DockerClient) -> None:
        super().__init__(client, host_signals=False)


class SwarmRuntime(DockerRuntime):
    """Runs deployments as Swarm services on the manager this client reaches. Images,
    cgroup reading and the stats fallback are the Docker runtime's."""


    def __init__(self, client: docker.DockerClient, collect: str = "bind",
                 engines: tuple[docker.DockerClient, ...] = (), access: str = "host") -> None:
        super().__init__(client)
        self.collect = _setting(COLLECT_ENV, collect, COLLECT)
        self.access = _setting(ACCESS_ENV, access, ACCESS)
        self.objects = SwarmObjects(client, engines)
        self.engines = engines  # other nodes' engines (TOPO_SWARM_ENGINES)
        self._nodes: dict[str, NodeRuntime | None] | None = None  # node id -> its engine
        self._here = DockerRuntime(client)  # faults on topo's own node, the local way
        self._collectors: dict[str, Collector] = {}
        self._tasks: tuple[float, dict[str, list[dict[str, Any]]]] = (0.0, {})
        self._services: dict[str, dict[str, str]] = {}  # deployment -> service id -> name
        self._lock = threading.Lock()
        self._ended: dict[str, dict[str, Any]] = {}  # container id -> its inspect, once ended

    @classmethod
    def connect(cls, timeout: float = 60) -> SwarmRuntime:
        """The manager of ``DOCKER_HOST``; ``TOPO_SWARM_ENGINES`` (comma-separated engine
        addresses) reaches the other nodes, and collection goes through the engines then or
        when ``TOPO_SWARM_COLLECT=engine`` asks for it on one node."""
        collect = os.environ.get(COLLECT_ENV)
        if collect:  # a bad value is a usage error before any engine is asked
            _setting(COLLECT_ENV, collect, COLLECT)
        access = _setting(ACCESS_ENV, os.environ.get(ACCESS_ENV) or "host", ACCESS)
        engines = node_engines()
        collect = collect or ("engine" if engines else "bind")
        runtime = cls(DockerRuntime.connect(timeout).client, collect, engines, access)
        if not runtime.objects.manager():
            raise EngineError(NOT_SWARM)
        return runtime

    # ----------------------------------------------------------------- deploy

    def deploy(self, plan: TopologyPlan, run_dir: str) -> Deployment:
        t_deploy = time.time()
        deployment = plan.labels[DEPLOYMENT]
        try:
            net = self.client.networks.create(
                deployment, driver="overlay", internal=True, attachable=True,
                labels=dict(plan.labels), check_duplicate=True)
            secret = None
            if any(s.role == "redis" for s in plan.containers):
                secret = self._secret(plan, deployment)
            placement = self._placement(plan, run_dir)
            started = [self._service(spec, plan, run_dir, str(net.id), secret, placement)
                       for spec in plan.containers]
        except (docker.errors.DockerException, RunError) as e:
            self.teardown(None, deployment)
            raise engine_error(f"deploy {deployment} on Swarm", e) from e
        self._services[deployment] = {c.id: c.name for c in started}
        return Deployment(plan=plan, run_dir=run_dir, containers=tuple(started),
                          network_id=str(net.id), t_deploy=t_deploy)

    def _secret(self, plan: TopologyPlan, deployment: str) -> dt.SecretReference:
        """The run's Redis password as a Swarm secret, readable by the container user only."""
        password = next(s.env["TOPO_REDIS_PASSWORD"] for s in plan.containers
                        if "TOPO_REDIS_PASSWORD" in s.env)
        name = f"{deployment}-redis-password"
        secret = self.client.secrets.create(name=name, data=password.encode(),
                                            labels=dict(plan.labels))
        return dt.SecretReference(str(secret.id), name, uid=UID, gid=GID, mode=0o400)

    def _placement(self, plan: TopologyPlan, run_dir: str) -> list[str]:
        """Where tasks may run: on topo's node only while the run volume is its folder
        (bind); else on the nodes whose readers started (their volumes made first)."""
        here = self._node_id(self.client)
        if self.collect == "bind":
            return [f"node.id=={here}"]
        nodes = [NodeEngine(here, self.client, True),
                 *(NodeEngine(self._node_id(c), c, False) for c in self.engines)]
        collector = Collector(nodes, plan, run_dir)
        self._collectors[plan.labels[DEPLOYMENT]] = collector
        collector.start()
        every = {str(n["ID"]) for n in self.client.api.nodes()}
        return [f"node.id!={n}" for n in sorted(every - collector.node_ids)]

    @staticmethod
    def _node_id(client: docker.DockerClient) -> str:
        node = str(client.info().get("Swarm", {}).get("NodeID") or "")
        if not node:
            raise RunError("an engine of TOPO_SWARM_ENGINES is not a node of the swarm")
        return node

    def _service(self, spec: ContainerSpec, plan: TopologyPlan, run_dir: str, network: str,
                 secret: dt.SecretReference | None, placement: list[str]) -> DeployedContainer:
        env, command = swarm_env_command(spec, secret.get("SecretName") if secret else None)
        deployment = plan.labels[DEPLOYMENT]
        launch = launch_spec(spec, plan, run_dir)  # the hardening every container gets
        bound = self.collect == "bind"  # else the readers made the volume on each node
        mounts = [dt.Mount(RUN_DIR, volume_name(deployment), type="volume",
                           driver_config=dt.DriverConfig("local", run_volume_options(run_dir))
                           if bound else None, labels=dict(plan.labels))]
        mounts += [dt.Mount(path, None, type="tmpfs", tmpfs_size=TMPFS_SIZE[path])
                   for path, _ in launch.tmpfs]
        mounts += [dt.Mount(m.target, m.source, type="bind", read_only=m.read_only)
                   for m in spec.mounts]
        container = dt.ContainerSpec(
            launch.image, command=list(command), env=env, hostname=spec.name,
            labels=dict(launch.labels), user=launch.user, read_only=launch.read_only,
            cap_drop=list(launch.cap_drop),
            mounts=mounts, secrets=[secret] if secret is not None and _needs_secret(spec) else None)
        template = dt.TaskTemplate(
            container,
            # Memory is reserved as limited; CPU is not: the budget may be every core of the
            # node, and Redis and the feeder come on top, which a CPU reservation would
            # leave unschedulable (Docker's --cpus is a limit only, and so is this one).
            resources=dt.Resources(cpu_limit=int(round(spec.cpus * 1e9)), mem_limit=spec.memory,
                                   mem_reservation=spec.memory),
            restart_policy=dt.RestartPolicy(SWARM_RESTART.get(spec.restart, "none")),
            placement=dt.Placement(constraints=placement), networks=[network])
        made = self.client.api.create_service(  # type: ignore[no-untyped-call]
            template, name=spec.name, labels=dict(spec.labels))
        return DeployedContainer(name=spec.name, role=spec.role, id=str(made["ID"]))

    # ----------------------------------------------------------------- tasks

    def _all_tasks(self, deployment: str) -> dict[str, list[dict[str, Any]]]:
        """Each service's tasks, newest first; one listing shared for TASKS_TTL."""
        with self._lock:
            t, cached = self._tasks
            ids = self._services.get(deployment) or {}
            if time.monotonic() - t < TASKS_TTL and all(n in cached for n in ids.values()):
                return cached
            tasks = (self.client.api.tasks(filters={"service": list(ids)})  # type: ignore[no-untyped-call]
                     if ids else [])
            out: dict[str, list[dict[str, Any]]] = {n: [] for n in ids.values()}
            for task in tasks:
                name = ids.get(task.get("ServiceID", ""))
                if name is not None:
                    out[name].append(task)
            for items in out.values():
                items.sort(key=lambda x: (x.get("CreatedAt", ""), x["Version"]["Index"]), reverse=True)
            self._tasks = (time.monotonic(), out)
            return out

    def _current(self, name: str) -> dict[str, Any] | None:
        """The service's running task, if one runs now."""
        deployment = next((d for d, ids in self._services.items() if name in ids.values()), None)
        if deployment is None:
            return None
        for task in self._all_tasks(deployment).get(name, []):
            if task["Status"]["State"] == "running":
                return task
        return None

    def _container_id(self, name: str) -> str:
        """The task container that holds ``name`` (a service) now; a plain container's own
        name passes through (the fault code may hold either)."""
        task = self._current(name)
        if task is None:
            if any(name in ids.values() for ids in self._services.values()):
                raise RunError(f"{name}: no task of this service runs now")
            return name
        return str(task["Status"]["ContainerStatus"]["ContainerID"])

    def task_containers(self, deployment: Deployment) -> dict[str, list[str]]:
        """Each service's task container ids, newest first (every one Swarm has kept)."""
        tasks = self._all_tasks(deployment.plan.labels[DEPLOYMENT])
        return {n: [t["Status"]["ContainerStatus"]["ContainerID"] for t in ts
                    if t["Status"].get("ContainerStatus", {}).get("ContainerID")]
                for n, ts in tasks.items()}

    # ----------------------------------------------------------------- observe

    def states(self, deployment: Deployment) -> dict[str, ContainerState]:
        try:
            tasks = self._all_tasks(deployment.plan.labels[DEPLOYMENT])
        except docker.errors.DockerException as e:
            raise engine_error("list tasks", e) from e
        return {name: self._state(name, ts) for name, ts in tasks.items() if ts}

    def _state(self, name: str, tasks: list[dict[str, Any]]) -> ContainerState:
        """A service as one container: running while a task runs, restarting while Swarm
        starts a replacement, and the exit, OOM kill and end time of its last ended task."""
        newest = tasks[0]
        state = newest["Status"]["State"]
        ended = next((t for t in tasks if t["Status"]["State"] in ENDED), None)
        inspect = self._ended_inspect(ended) if ended is not None else {}
        exit_code = newest["Status"].get("ContainerStatus", {}).get("ExitCode")
        return ContainerState(
            name=name,
            running=state == "running",
            exit_code=None if state == "running" or state in STARTING else exit_code,
            oom_killed=bool(inspect.get("OOMKilled")),
            restarts=len(tasks) - 1,
            restarting=state in STARTING and newest.get("DesiredState") != "shutdown",
            finished_at=_timestamp(inspect.get("FinishedAt")),
        )

    def _ended_inspect(self, task: dict[str, Any]) -> dict[str, Any]:
        """An ended task container's State (kept: it no longer changes)."""
        cid = task["Status"].get("ContainerStatus", {}).get("ContainerID")
        if not cid:
            return {}
        if cid not in self._ended:
            try:
                node = self._node(task)
            except RunError:
                return {}  # a node topo does not reach: no OOM flag, no end time
            client = self.client if node is None else node.client
            try:
                self._ended[cid] = client.api.inspect_container(cid).get("State", {})
            except docker.errors.NotFound:
                self._ended[cid] = {}
        return self._ended[cid]

    def stats(self, deployment: Deployment) -> dict[str, RawStats | None]:
        """Counters of each service's current task container: its cgroup, read here on
        topo's node; the stats API of its node's engine elsewhere, every container at once
        (the engine answers each request at its collector's next tick, once a second, so
        one after the other would take a second per container)."""
        out: dict[str, RawStats | None] = {}
        try:
            tasks = self._all_tasks(deployment.plan.labels[DEPLOYMENT])
        except docker.errors.DockerException:
            return out
        remote: list[tuple[str, NodeRuntime, DeployedContainer]] = []
        for c in deployment.containers:
            task = next((t for t in tasks.get(c.name, []) if t["Status"]["State"] == "running"), None)
            if task is None:
                out[c.name] = None
                continue
            held = DeployedContainer(name=c.name, role=c.role,
                                     id=task["Status"]["ContainerStatus"]["ContainerID"])
            try:
                node = self._node(task)
                if node is None:
                    out[c.name] = self._stats_of(held)
                else:
                    remote.append((c.name, node, held))
            except (docker.errors.DockerException, RunError):
                continue  # left out: a passing error is not a stop
        if remote:
            with ThreadPoolExecutor(max_workers=len(remote)) as pool:
                asked = [(name, pool.submit(node._stats_of, held)) for name, node, held in remote]
                for name, future in asked:
                    try:
                        out[name] = future.result()
                    except docker.errors.DockerException:
                        continue
        return out

    def logs(self, deployment: Deployment, name: str, tail: int = 5) -> str:
        """The last lines of the service's newest task container, from its node's engine."""
        tasks = self._all_tasks(deployment.plan.labels[DEPLOYMENT]).get(name, [])
        task = next((t for t in tasks if t["Status"].get("ContainerStatus", {}).get("ContainerID")), None)
        if task is None:
            return super().logs(deployment, name, tail)
        cid = str(task["Status"]["ContainerStatus"]["ContainerID"])
        try:
            node = self._node(task)
        except RunError:
            return ""
        return super().logs(deployment, cid, tail) if node is None else node.logs(deployment, cid, tail)

    # ----------------------------------------------------------------- faults (by service name)

    # Each takes the service's name and acts on the task container that holds it now,
    # through the runtime ``_via`` picks: its node's engine, or the local Docker runtime.

    def host_pid(self, name: str) -> int | None:
        try:
            return super().host_pid(self._container_id(name))
        except RunError:
            return None

    def workers(self, deployment: Deployment, name: str) -> list[int]:
        cid, runtime = self._via(name)
        return runtime.workers(deployment, cid)

    def kill(self, deployment: Deployment, name: str, pid: int | None = None) -> str:
        cid, runtime = self._via(name)
        return runtime.kill(deployment, cid, pid)

    def stop_process(self, deployment: Deployment, name: str, pid: int, stopped: bool) -> None:
        cid, runtime = self._via(name)
        runtime.stop_process(deployment, cid, pid, stopped)

    def exec(self, deployment: Deployment, name: str, argv: tuple[str, ...]) -> tuple[int, str]:
        cid, runtime = self._via(name)
        return runtime.exec(deployment, cid, argv)

    def pause(self, deployment: Deployment, name: str) -> None:
        cid, runtime = self._via(name)
        runtime.pause(deployment, cid)

    def unpause(self, deployment: Deployment, name: str) -> None:
        cid, runtime = self._via(name)
        runtime.unpause(deployment, cid)

    def disconnect(self, deployment: Deployment, name: str) -> None:
        cid, runtime = self._via(name)
        runtime.disconnect(deployment, cid)

    def reconnect(self, deployment: Deployment, name: str) -> None:
        cid, runtime = self._via(name)
        runtime.reconnect(deployment, cid)

    # ----------------------------------------------------------------- nodes

    def _via(self, name: str) -> tuple[str, DockerRuntime]:
        """The task container that holds ``name`` now, and the runtime that acts on it: the
        engine of its node, or on topo's own node (host access) the local Docker runtime,
        which signals host PIDs."""
        cid, node = self._where(name)
        return cid, self._here if node is None else node

    def _where(self, name: str) -> tuple[str, NodeRuntime | None]:
        """The task container that holds ``name`` now and the engine of its node (None:
        topo's own node, reached the local way). A plain container's name passes through."""
        task = self._current(name)
        if task is None:
            return self._container_id(name), None
        return str(task["Status"]["ContainerStatus"]["ContainerID"]), self._node(task)

    def _node(self, task: dict[str, Any]) -> NodeRuntime | None:
        """The runtime that reaches the node a task runs on; None for topo's own node when
        the local path (host PIDs, cgroup files) applies there."""
        node = str(task.get("NodeID") or "")
        nodes = self._node_map()
        if node not in nodes:
            raise RunError(f"task {str(task.get('ID', ''))[:12]} runs on node {node[:12] or '?'}, "
                           f"whose engine topo does not reach ({ENGINES_ENV})")
        return nodes[node]

    def _node_map(self) -> dict[str, NodeRuntime | None]:
        """Node id -> its engine: topo's own (the manager topo talks to) and those of
        TOPO_SWARM_ENGINES, the same mapping the event collection builds."""
        with self._lock:
            if self._nodes is None:
                here = self._node_id(self.client)
                local = self.access == "host" and self.local
                nodes: dict[str, NodeRuntime | None] = {
                    here: None if local else NodeRuntime(self.client)}
                for client in self.engines:
                    nodes.setdefault(self._node_id(client), NodeRuntime(client))
                self._nodes = nodes
            return self._nodes

    # ----------------------------------------------------------------- cleanup

    def teardown(self, deployment: Deployment | None, deployment_name: str) -> None:
        label = f"{DEPLOYMENT}={deployment_name}"
        try:
            self.finish_collection(deployment_name)
        finally:
            self.remove_labelled(label)  # the other nodes' readers and volumes too
            self._collectors.pop(deployment_name, None)
            self._services.pop(deployment_name, None)

    def finish_collection(self, deployment_name: str) -> None:
        """Engine collection: remove the services, wait until no task container is left on
        any node (no writer), then take every node's last lines. Idempotent; nothing to do
        when the volume is the run folder."""
        collector = self._collectors.get(deployment_name)
        if collector is None or collector.drained:
            return
        label = f"{DEPLOYMENT}={deployment_name}"
        try:
            for service in self.client.services.list(filters={"label": label}):
                service.remove()  # type: ignore[no-untyped-call]
            for reader in collector.readers:
                SwarmObjects(reader.node.client).wait_containers_gone([label, TASK_LABEL])
        except docker.errors.DockerException as e:
            raise engine_error(f"stop the services of {deployment_name}", e) from e
        collector.drain()

    def cleanup_parts(self) -> list[Any]:
        """Itself only: its labelled runs and removal cover the Swarm objects already."""
        return [self]

    def labelled_runs(self) -> dict[str, str]:
        return {**super().labelled_runs(), **self.objects.labelled_runs()}

    def remove_labelled(self, label: str, images: bool = False) -> dict[str, int]:
        removed = self.objects.remove_labelled(label)
        for kind, n in super().remove_labelled(label, images).items():
            removed[kind] = removed.get(kind, 0) + n
        return removed


def run_volume_options(run_dir: str) -> dict[str, str]:
    """The local driver's options that make a task's run volume the harness's run folder
    (only where the task runs on topo's own node)."""
    return {"type": "none", "o": "bind", "device": run_dir}


def _needs_secret(spec: ContainerSpec) -> bool:
    return spec.role == "redis" or "TOPO_REDIS_PASSWORD" in spec.env


def swarm_env_command(spec: ContainerSpec, secret: str | None) -> tuple[list[str], tuple[str, ...]]:
    """A container's environment and command with the Redis password taken out: agents get
    the secret's path, redis-server reads the file when it starts (a shell puts it on its
    command line inside the container; the service's spec never holds it)."""
    env = {k: v for k, v in spec.env.items() if k != "TOPO_REDIS_PASSWORD"}
    command = spec.command
    if secret is not None and "TOPO_REDIS_PASSWORD" in spec.env:
        env["TOPO_REDIS_PASSWORD_FILE"] = f"{SECRETS_DIR}/{secret}"
    if secret is not None and "--requirepass" in command:
        i = command.index("--requirepass")
        rest = command[:i] + command[i + 2:]
        command = ("sh", "-c", f'exec "$@" --requirepass "$(cat {SECRETS_DIR}/{secret})"',
                   "sh", *rest)
    return [f"{k}={v}" for k, v in sorted(env.items())], command

