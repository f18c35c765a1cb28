"""The Docker engine adapter: the only module that imports ``docker``.

Images, networks, containers, stats and cleanup, all by label. Every SDK error is turned
into a TopoError here, so the rest of topo never sees a docker exception.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors
import psutil

import topo
from topo import cleanup, defaults, images, wheels
from topo.errors import EngineError, ImageError, RunError, UnusableImageError
from topo.model import (
    ContainerSpec, DeployedContainer, Deployment, Role, Scenario, TopologyPlan,
)
from topo.output import shorten
from topo.plan import DEPLOYMENT, MANAGED, OWNER, RUN
from topo.runtime import cgroup
from topo.runtime.base import ContainerState, RawStats
from topo.runtime.sdk import engine_error, force_remove
from topo.runtime.spec import launch_spec
from topo.runtime.swarm_objects import SwarmObjects

BASE_IMAGE = images.BASE_IMAGE  # topo's own base image (TOPO_BASE_IMAGE overrides it)
WORKER_REPO = "topo-worker"
PROBE_TIMEOUT = 60  # seconds for an image's python3 to say what it is
DEPLOY_POOL = 8  # containers created and started at a time (the engine serialises much of it)
TEARDOWN_POOL = 8
REDIS_READY = b"Ready to accept connections"
REDIS_READY_TIMEOUT = 30.0
# The build stage's label: its leftovers are pruned after each build, and by `topo clean`.
BUILD_STAGE = {MANAGED: "true", "topo.image": "worker-deps"}
SETUP_HINT = "run scripts/bootstrap.sh (it installs and starts the engine and builds the images)"


class DockerRuntime:
    """Runs deployments on a Docker engine reached through DOCKER_HOST or the local socket."""

    def __init__(self, client: docker.DockerClient, host_signals: bool | None = None) -> None:
        """``host_signals``: signal processes by their host PID (True), never (False: always
        through the engine, as for a remote one), or when the engine is local (None)."""
        self.client = client
        self.host_signals = host_signals
        self._cgroups: dict[str, cgroup.CgroupPaths] = {}
        self._followed: dict[str, _Followed] = {}  # deployment -> its containers' states

    @classmethod
    def connect(cls, timeout: float = 60) -> DockerRuntime:
        try:
            client = docker.from_env(timeout=int(timeout))
            client.ping()
        except Exception as e:  # DockerException, requests' errors, a missing socket
            raise EngineError(
                f"no Docker engine answers ({str(e).splitlines()[0][:160]}); {SETUP_HINT}"
            ) from e
        return cls(client)

    # ----------------------------------------------------------------- engine facts

    def info(self) -> dict[str, Any]:
        try:
            info = self.client.info()
            version = self.client.version()
        except docker.errors.DockerException as e:
            raise engine_error("info", e) from e
        return {
            "engine": version.get("Version"),
            "api": version.get("ApiVersion"),
            "cgroup_version": info.get("CgroupVersion"),
            "cgroup_driver": info.get("CgroupDriver"),
            "storage_driver": info.get("Driver"),
            "kernel": info.get("KernelVersion"),
            "os": info.get("OperatingSystem"),
            "cpus": info.get("NCPU"),
            "memory": info.get("MemTotal"),
            # What topo.preflight checks a scenario against before any deploy.
            "cpu_quota": info.get("CpuCfsQuota"),
            "memory_limit": info.get("MemoryLimit"),
            "cpuset": info.get("CPUSet"),
            "freezer": _freezer(info.get("CgroupVersion")) if self.local else None,
            "local": self.local,
        }

    @property
    def local(self) -> bool:
        """Whether the engine runs on this host (a unix socket): faults signal host PIDs."""
        # docker-py names a unix socket http+docker://localhost; ssh is http+docker://ssh.
        return str(self.client.api.base_url).startswith(("http+docker://localhost", "http+unix://"))

    def image_id(self, tag: str) -> str | None:
        try:
            return str(self.client.images.get(tag).id)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.DockerException as e:
            raise engine_error(f"inspect image {tag}", e) from e

    # ----------------------------------------------------------------- images

    def worker_images(self) -> list[str]:
        """Tags of the worker images built so far (one per distinct agent + workload)."""
        return [tag for tag, _ in self.worker_image_notes()]

    def worker_image_notes(self) -> list[tuple[str, str]]:
        """Each worker image's tag and what topo added to the image it is built on."""
        try:
            found = self.client.images.list(name=WORKER_REPO)
        except docker.errors.DockerException as e:
            raise engine_error("list images", e) from e
        notes = []
        for image in found:
            labels = image.attrs.get("Config", {}).get("Labels") or {}
            note = labels.get("topo.added") or f"from {BASE_IMAGE}: topo agent"
            base = self.client.images.list(name=labels.get("topo.from") or BASE_IMAGE)
            if base:  # the size is the image's own and every layer below it
                note += f"; +{(image.attrs['Size'] - base[0].attrs['Size']) / 1e6:.0f} MB"
            notes += [(tag, note) for tag in image.tags]
        return sorted(notes)

    def ensure_image(self, scenario: Scenario) -> str:
        """Build (once per distinct input) the worker image: topo's base or the team's own
        image, plus topo's agent, the workload's code and the wheels of its requirements
        (resolved on the host; the build has no network)."""
        w = scenario.workload
        from_image = w.image or BASE_IMAGE
        from_id = self.image_id(from_image)
        if from_id is None and w.image:
            raise UnusableImageError(f"workload.image {w.image}: no such image on this engine "
                                     "(build or pull it first; topo never pulls)")
        if from_id is None or (self.redis_image(scenario) and self.image_id(BASE_IMAGE) is None):
            raise ImageError(f"base image {BASE_IMAGE} is missing; {SETUP_HINT}")
        facts = self.image_facts(from_image)
        house = self.wheelhouse(scenario, facts)
        files = dict(images.agent_files())
        if w.path:
            files.update(images.folder_files(Path(w.path), "workloads"))
        recipe = images.dockerfile(from_image, house, BUILD_STAGE)
        tag = images.worker_tag(WORKER_REPO, from_id, files, house, recipe)
        if self.image_id(tag) is None:
            note = images.added(facts, from_image, bool(w.path), house)
            self._build(tag, recipe, files, house, {"topo.added": note, "topo.from": from_image})
        return tag

    def wheelhouse(self, scenario: Scenario,
                   facts: images.ImageFacts | None = None) -> wheels.Wheelhouse | None:
        """The wheels the worker image installs (the scenario's requirements and what the
        agent needs that the image lacks), resolved on the host; None if it needs none."""
        w = scenario.workload
        facts = facts or self.image_facts(w.image or BASE_IMAGE)
        extra = images.wheels_wanted(facts, scenario.peers)
        if not (w.requirements or extra):
            return None
        return wheels.resolve(facts.target(), Path(w.requirements) if w.requirements else None,
                              extra)

    def redis_image(self, scenario: Scenario) -> str | None:
        """The image Redis runs from when it is not the worker image (None): topo's base,
        when the workers run from a team's own image, which need not have redis-server."""
        # celery-prefork gives the single topology a Redis too
        needs_redis = scenario.multi is not None or "celery" in scenario.peers
        return BASE_IMAGE if scenario.workload.image and needs_redis else None

    def image_facts(self, name: str) -> images.ImageFacts:
        """Python and platform of an image, known from its label (topo's base), else probed
        once by a short-lived container and kept per image id under the user's cache."""
        image = self._call(f"inspect image {name}", lambda: self.client.images.get(name))
        cached = wheels.cache_dir().parent / "images" / f"{str(image.id).split(':')[-1]}.json"
        try:
            facts = images.facts_from_json(cached.read_text())
        except (OSError, ValueError, KeyError, TypeError):
            # An image built FROM the base inherits its labels: only the base itself is known.
            is_base = image.id == self.image_id(BASE_IMAGE)
            labels = (image.attrs.get("Config", {}).get("Labels") or {}) if is_base else {}
            facts = images.base_facts(labels, image.attrs.get("Architecture", "")) or self._probe(name)
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(images.facts_to_json(facts))
        images.check(name, facts)
        return facts

    def _probe(self, name: str) -> images.ImageFacts:
        container = None
        try:
            container = self.client.containers.create(
                name, entrypoint=["python3", "-c", images.PROBE], network_mode="none",
                user=defaults.CONTAINER_USER,
                # the owner label lets the watchdog remove it should topo die meanwhile
                labels={MANAGED: "true", "topo.role": Role.PROBE.value, OWNER: cleanup.owner_label()})
            container.start()
            status = container.wait(timeout=PROBE_TIMEOUT).get("StatusCode")
            output = container.logs().decode("utf-8", "replace")
        except docker.errors.APIError as e:
            if "executable file not found" in str(e) or "no such file" in str(e).lower():
                raise UnusableImageError(f"workload.image {name}: no python3 on its PATH; topo runs "
                                         "its agent with python3 (Python 3.9 or newer)") from e
            raise engine_error(f"probe image {name}", e) from e
        except Exception as e:  # the wait timed out (requests' errors)
            raise ImageError(f"workload.image {name}: python3 did not answer within "
                             f"{PROBE_TIMEOUT}s: {str(e).splitlines()[0][:160]}") from e
        finally:
            if container is not None:
                force_remove(container)
        if status != 0:
            last = (output.strip().splitlines() or ["no output"])[-1][:160]
            raise UnusableImageError(f"workload.image {name}: python3 fails to run ({last})")
        return images.parse_probe(name, output)

    def _build(self, tag: str, recipe: str, files: dict[str, Path],
               house: wheels.Wheelhouse | None, labels: dict[str, str]) -> None:
        with tempfile.TemporaryDirectory(prefix="topo-build-") as ctx:
            for rel, src in files.items():
                dest = Path(ctx, "app", rel)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
            if house is not None:
                wheels.copy_into(house, Path(ctx))
            Path(ctx, "Dockerfile").write_text(recipe)
            Path(ctx, ".dockerignore").write_text("Dockerfile\n")
            try:
                # The build needs nothing from any network: everything is in the context.
                self.client.images.build(
                    path=ctx, tag=tag, rm=True, forcerm=True, pull=False, network_mode="none",
                    labels={MANAGED: "true", "topo.image": "worker", "topo.version": topo.__version__,
                            **labels},
                )
            except docker.errors.BuildError as e:
                raise ImageError(f"building {tag} failed: {_build_failure(e)}") from e
            except docker.errors.DockerException as e:
                raise engine_error(f"build {tag}", e) from e
            finally:
                self._prune(f"topo.image={BUILD_STAGE['topo.image']}")

    def _prune(self, label: str) -> None:
        """Drop the install stage a build leaves behind (wheels and all): only the worker
        image is kept."""
        try:
            self.client.images.prune(filters={"dangling": True, "label": label})
        except docker.errors.DockerException:
            pass  # disk space only; `topo clean --images` removes it by label too

    # ----------------------------------------------------------------- deploy

    def deploy(self, plan: TopologyPlan, run_dir: str) -> Deployment:
        """Create the network, start Redis and wait until it accepts connections, then
        create and start the other containers ``DEPLOY_POOL`` at a time. If any of them
        fails, nothing more is started and everything made so far is removed."""
        t_deploy = time.time()
        deployment = plan.labels[DEPLOYMENT]
        network_id = None
        first = [s for s in plan.containers if s.role == "redis"]
        rest = [s for s in plan.containers if s.role != "redis"]
        try:
            if plan.network:
                net = self.client.networks.create(
                    plan.network, driver="bridge", internal=True, labels=dict(plan.labels),
                    check_duplicate=True,
                )
                network_id = net.id
            started = [self._start_one(spec, plan, run_dir) for spec in first]
            for c in started:
                self._wait_redis(c)
            started += self._start_many(rest, plan, run_dir)
        except EngineError as e:
            failure = self._abandon(deployment, e)
            if failure is e:
                raise
            raise failure from e
        except docker.errors.DockerException as e:
            raise self._abandon(deployment, engine_error(f"deploy {deployment}", e)) from e
        order = {s.name: i for i, s in enumerate(plan.containers)}
        return Deployment(plan=plan, run_dir=run_dir,
                          containers=tuple(sorted(started, key=lambda c: order[c.name])),
                          network_id=network_id, t_deploy=t_deploy)

    def _abandon(self, deployment: str, error: EngineError) -> EngineError:
        """Remove what a failed deploy made. The deploy's own error stays the one reported:
        a cleanup that fails as well is added to it, not put in its place."""
        try:
            self.teardown(None, deployment)
        except (RunError, EngineError) as cleanup:
            return EngineError(f"{error}; removing what it made failed too: {cleanup}")
        return error

    def _start_many(self, specs: list[ContainerSpec], plan: TopologyPlan,
                    run_dir: str) -> list[DeployedContainer]:
        """Start ``specs`` concurrently; on the first failure cancel what has not begun and
        wait for what has (so that teardown finds every container that was created)."""
        with ThreadPoolExecutor(max_workers=DEPLOY_POOL, thread_name_prefix="topo-deploy") as pool:
            futures = [pool.submit(self._start_one, spec, plan, run_dir) for spec in specs]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def _start_one(self, spec: ContainerSpec, plan: TopologyPlan, run_dir: str) -> DeployedContainer:
        """Start one container; an engine error names the container it is about."""
        try:
            started = self._start(spec, plan, run_dir)
        except docker.errors.DockerException as e:
            raise engine_error(f"start {spec.name}", e) from e
        return dataclasses.replace(started, t_started=time.time())

    def _wait_redis(self, c: DeployedContainer) -> None:
        """Block until Redis says it accepts connections, so no worker starts against a
        Redis that is not there yet (its own log is the one signal needing no password)."""
        deadline = time.monotonic() + REDIS_READY_TIMEOUT
        while True:
            if REDIS_READY in self.client.api.logs(c.id, stdout=True, stderr=False):
                return
            state = self.client.api.inspect_container(c.id)["State"]
            if not state.get("Running") and not state.get("Restarting"):
                tail = self.client.api.logs(c.id, tail=2).decode("utf-8", "replace").strip()
                raise EngineError(f"Docker engine: {c.name} exited with code "
                                  f"{state.get('ExitCode')} before it was ready: {tail[:200]}")
            if time.monotonic() > deadline:
                raise EngineError(f"Docker engine: {c.name} not ready after "
                                  f"{REDIS_READY_TIMEOUT:.0f}s")
            time.sleep(0.02)

    def _start(self, spec: ContainerSpec, plan: TopologyPlan, run_dir: str) -> DeployedContainer:
        run = launch_spec(spec, plan, run_dir)
        restart: dict[str, Any] | None = {"Name": run.restart} if run.restart != "no" else None
        if restart and run.restart == "on-failure":
            restart["MaximumRetryCount"] = 0
        options: dict[str, Any] = dict(
            command=list(run.command),
            name=run.name,
            hostname=run.name,
            detach=True,
            environment=dict(run.env),
            labels=dict(run.labels),
            nano_cpus=int(round(run.cpus * 1e9)),
            mem_limit=run.memory,
            memswap_limit=run.memswap,
            cpuset_cpus=run.cpuset,
            network=run.network,
            network_mode=None if run.network else "none",
            volumes={b.source: {"bind": b.target, "mode": "ro" if b.read_only else "rw"}
                     for b in run.binds},
            user=run.user,
            cap_drop=list(run.cap_drop),
            security_opt=list(run.security_opt),
            read_only=run.read_only,
            tmpfs=dict(run.tmpfs),
            pids_limit=run.pids_limit,
            restart_policy=restart,
        )
        container = self.client.containers.run(run.image, **options)
        return DeployedContainer(name=spec.name, role=spec.role, id=str(container.id))

    # ----------------------------------------------------------------- observe

    def states(self, deployment: Deployment) -> dict[str, ContainerState]:
        """Each container's state, at the price of one sparse listing: a container is
        inspected again only when the engine has said something about it since (a start,
        a death, an OOM kill, ...: its event stream) or its listed state changed. Inspecting
        all of them at every look cost, with 66 containers, ~40 ms of the engine's CPU and
        ~70 ms of ours, four times a second while the workload runs beside it
        (benchmarks/scale.py --states)."""
        name = deployment.plan.labels[DEPLOYMENT]
        followed = self._followed.get(name)
        try:
            if followed is None:
                followed = self._followed[name] = _Followed(self.client, f"{DEPLOYMENT}={name}")
            return followed.states()
        except docker.errors.DockerException as e:
            raise engine_error("list containers", e) from e

    # ----------------------------------------------------------------- faults

    def _processes_here(self) -> bool:
        """Whether the containers' processes are this host's (host PIDs, cgroup files)."""
        return self.host_signals is True or (self.host_signals is None and self.local)

    def _host_pid(self, name: str) -> int | None:
        """Host PID of a container's main process, when topo can signal it from here: the
        engine is local and that PID is the container's own (checked in its cgroup, so a
        remote engine's PID that happens to exist here is never signalled)."""
        if not self._processes_here():
            return None
        try:
            state = self.client.api.inspect_container(name)
        except docker.errors.DockerException:
            return None
        pid = int(state["State"]["Pid"] or 0)
        return pid if pid and _owns(pid, str(state["Id"])) else None

    def host_pid(self, name: str) -> int | None:
        """Host PID of a container's main process as the engine reports it (None when it is
        not running); for tests that act from the host themselves."""
        try:
            pid = self.client.api.inspect_container(name)["State"]["Pid"]
        except docker.errors.DockerException:
            return None
        return int(pid) or None

    def workers(self, deployment: Deployment, name: str) -> list[int]:
        main = self._host_pid(name)
        if main is not None:
            try:
                found = [_ns_pid(p.pid) for p in psutil.Process(main).children()]
                return sorted(p for p in found if p is not None)
            except psutil.Error:
                pass  # it exited meanwhile: ask inside, which says so
        code, out = self.exec(deployment, name, ("python3", "-c", _CHILDREN))
        if code != 0:
            raise RunError(f"{name}: cannot list its processes: {out.strip()[-200:]}")
        return [int(x) for x in out.split()]

    def kill(self, deployment: Deployment, name: str, pid: int | None = None) -> str:
        """SIGKILL ``pid`` (in-container) or the main process. The main process is killed
        through its host PID where it is visible: ``docker kill`` counts as a manual stop,
        after which restart policies never fire; a SIGKILL from outside does not. Where it is
        not (a remote engine) the engine's API kills it, and restart policies do not fire."""
        if pid is None:
            main = self._host_pid(name)
            if main is not None:
                os.kill(main, signal.SIGKILL)
                return "host-pid"
            self._call(f"kill {name}", lambda: self.client.api.kill(name, "SIGKILL"))
            return "engine-api"
        return self._signal(deployment, name, pid, signal.SIGKILL)

    def stop_process(self, deployment: Deployment, name: str, pid: int, stopped: bool) -> None:
        self._signal(deployment, name, pid, signal.SIGSTOP if stopped else signal.SIGCONT)

    def _signal(self, deployment: Deployment, name: str, pid: int, signo: int) -> str:
        """Signal one in-container process: by its host PID when visible, else from inside."""
        main = self._host_pid(name)
        host = _host_pid_of(main, pid) if main is not None else None
        if host is not None:
            os.kill(host, signo)
            return "host-pid"
        code, out = self.exec(deployment, name, ("python3", "-c", _KILL, str(pid), str(int(signo))))
        if code != 0:
            raise RunError(f"{name}: signal {int(signo)} to PID {pid} failed: {out.strip()[-200:]}")
        return "exec"

    def exec(self, deployment: Deployment, name: str, argv: tuple[str, ...]) -> tuple[int, str]:
        def run() -> tuple[int, str]:
            code, out = self.client.containers.get(name).exec_run(
                list(argv), user=defaults.CONTAINER_USER)
            text = out if isinstance(out, bytes) else b"".join(out or ())
            return int(code or 0), text.decode("utf-8", "replace")
        result: tuple[int, str] = self._call(f"exec in {name}", run)
        return result

    def pause(self, deployment: Deployment, name: str) -> None:
        """Freeze every process of a container (cgroup freezer)."""
        self._call(f"pause {name}", lambda: self.client.api.pause(name))

    def unpause(self, deployment: Deployment, name: str) -> None:
        self._call(f"unpause {name}", lambda: self.client.api.unpause(name))

    def disconnect(self, deployment: Deployment, name: str) -> None:
        """Cut a container off its deployment's network."""
        net = deployment.network_id
        if net is None:
            raise RunError(f"{name} is on no network")
        self._call(f"disconnect {name}", lambda: self.client.api.disconnect_container_from_network(name, net, force=True))

    def reconnect(self, deployment: Deployment, name: str) -> None:
        net = deployment.network_id
        if net is not None:
            self._call(f"reconnect {name}", lambda: self.client.api.connect_container_to_network(name, net))

    def _call(self, action: str, fn: Any) -> Any:
        try:
            return fn()
        except docker.errors.DockerException as e:
            raise engine_error(action, e) from e

    def stats(self, deployment: Deployment) -> dict[str, RawStats | None]:
        """Counters per container; None = not running. A container whose state could not be
        read this time is left out, so a passing API error is not mistaken for a stop."""
        def one(c: DeployedContainer) -> tuple[str, RawStats | None] | None:
            try:
                return c.name, self._stats_of(c)
            except docker.errors.DockerException:
                return None

        if self._processes_here():
            found = [one(c) for c in deployment.containers]
        else:
            # The stats API answers each request at its collector's next tick (once a
            # second): asked one after another, a pass would take a second per container.
            with ThreadPoolExecutor(max_workers=max(1, min(32, len(deployment.containers))),
                                    thread_name_prefix="topo-stats") as pool:
                found = list(pool.map(one, deployment.containers))
        return dict(f for f in found if f is not None)

    def _stats_of(self, c: DeployedContainer) -> RawStats | None:
        if not self._processes_here():
            return self._api_stats(c)  # a remote engine: no cgroup of its is read here
        paths = self._cgroups.get(c.id)
        if paths is not None:
            raw = cgroup.read(paths)
            if raw is not None:
                return raw
        # First look, or the cgroup went away (exit or restart): find it again.
        try:
            state = self.client.api.inspect_container(c.id)
        except docker.errors.NotFound:
            return None
        pid = int(state["State"]["Pid"] or 0)
        if not pid:
            return None
        # Only a PID that is visibly the container's own names its cgroup here: a PID the
        # engine reports can exist on this host as some other process.
        paths = cgroup.paths_of(pid) if _owns(pid, str(state["Id"])) else None
        if paths is None:
            return self._api_stats(c)
        self._cgroups[c.id] = paths
        return cgroup.read(paths)

    def _api_stats(self, c: DeployedContainer) -> RawStats | None:
        """The same counters from the engine's stats API, for a container whose processes
        are not visible here: slower (one request per container and pass, answered at the
        engine's next one-second tick). None when it is not running."""
        try:
            return stats_from_api(self.client.api.stats(c.id, stream=False, one_shot=True))
        except docker.errors.NotFound:
            return None

    def logs(self, deployment: Deployment, name: str, tail: int = 5) -> str:
        try:
            out = self.client.containers.get(name).logs(tail=tail)
        except docker.errors.DockerException:
            return ""
        return str(out.decode("utf-8", "replace")).strip()

    # ----------------------------------------------------------------- cleanup

    def teardown(self, deployment: Deployment | None, deployment_name: str) -> None:
        followed = self._followed.pop(deployment_name, None)
        if followed is not None:
            followed.close()
        self.remove_labelled(f"{DEPLOYMENT}={deployment_name}")

    def cleanup_parts(self) -> list[Any]:
        """What a sweep removes by label: this engine's containers and networks, and, on a
        Swarm manager, the services, secrets, configs and volumes topo made there (a
        SIGKILLed ``--engine swarm`` run is swept by the next topo start, whatever its
        engine). Services come last here: cleanup removes in reverse order."""
        objects = SwarmObjects(self.client)
        return [self, objects] if objects.manager() else [self]

    def labelled_runs(self) -> dict[str, str]:
        """Run id -> owner label of every container and network topo made."""
        runs: dict[str, str] = {}
        try:
            # sparse: no inspect per container, so one removed meanwhile is no error
            found: list[Any] = [
                *self.client.containers.list(all=True, sparse=True,
                                             filters={"label": MANAGED + "=true"}),
                *self.client.networks.list(filters={"label": MANAGED + "=true"})]
        except docker.errors.DockerException as e:
            raise engine_error("list topo's resources", e) from e
        for item in found:
            labels = item.attrs.get("Labels") or item.attrs.get("Config", {}).get("Labels") or {}
            if RUN in labels and labels.get(OWNER):
                runs[labels[RUN]] = labels[OWNER]
        return runs

    def remove_labelled(self, label: str, images: bool = False) -> dict[str, int]:
        """Remove every container, network (and optionally image) carrying ``label``."""
        removed = {"containers": 0, "networks": 0, "images": 0}
        try:
            found = self.client.containers.list(all=True, sparse=True, filters={"label": label})
            with ThreadPoolExecutor(max_workers=TEARDOWN_POOL) as pool:
                removed["containers"] = sum(pool.map(force_remove, found))
            for net in self.client.networks.list(filters={"label": label}):
                removed["networks"] += _remove_network(net)
            if images:
                for image in self.client.images.list(filters={"label": label}):
                    self.client.images.remove(str(image.id), force=True)
                    removed["images"] += 1
        except docker.errors.DockerException as e:
            raise RunError(f"cleanup of {label} incomplete: {str(e).splitlines()[0][:200]}") from e
        except RunError as e:
            raise RunError(f"cleanup of {label} incomplete: {e}") from e
        return removed


class _Followed:
    """One deployment's container states, kept by following the engine's events for its
    label in a thread: ``states`` inspects only what an event named or what the listing
    shows changed. A restart between two looks leaves the listed state "running" both
    times; its events (die, start) are what tell. If the event stream breaks, every look
    inspects every container again, as if no event had been seen."""

    def __init__(self, client: docker.DockerClient, label: str) -> None:
        self._client, self._label = client, label
        self._lock = threading.Lock()
        self._named: set[str] = set()  # ids an event named since the last look
        self._broken = False
        self._closed = False
        self._known: dict[str, tuple[str, ContainerState]] = {}  # id -> (listed state, state)
        # Subscribed once the call returns (the engine answers after it has subscribed): an
        # event from then on is seen; what came before, the first look inspects.
        self._stream = client.events(filters={"type": "container", "label": label}, decode=True)
        threading.Thread(target=self._follow, name="topo-events", daemon=True).start()

    def _follow(self) -> None:
        try:
            for event in self._stream:
                with self._lock:
                    self._named.add(str(event.get("id") or event.get("Actor", {}).get("ID")))
        except Exception:  # a dropped connection, an engine restart: no event is trusted now
            pass
        with self._lock:
            self._broken = not self._closed

    def states(self) -> dict[str, ContainerState]:
        with self._lock:  # taken before the listing: an event after it is seen next time
            named, self._named = self._named, set()
            everything = self._broken
        known: dict[str, tuple[str, ContainerState]] = {}
        api = self._client.api
        for entry in api.containers(all=True, filters={"label": self._label}):
            cid, listed = str(entry["Id"]), str(entry.get("State", ""))
            seen = self._known.get(cid)
            if seen is None or everything or cid in named or seen[0] != listed:
                try:
                    seen = (listed, _state(api.inspect_container(cid)))
                except docker.errors.NotFound:
                    continue  # removed since the listing
            known[cid] = seen
        self._known = known
        return {state.name: state for _, state in known.values()}

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._stream.close()


def _state(attrs: dict[str, Any]) -> ContainerState:
    s = attrs.get("State", {})
    return ContainerState(
        name=str(attrs.get("Name", "")).lstrip("/"),
        running=bool(s.get("Running")),
        exit_code=None if s.get("Running") else s.get("ExitCode"),
        oom_killed=bool(s.get("OOMKilled")),
        restarts=int(attrs.get("RestartCount", 0)),
        restarting=bool(s.get("Restarting")),
        finished_at=_timestamp(s.get("FinishedAt")),
    )


NETWORK_BUSY_WAIT = 5.0  # seconds a network may still show endpoints of removed containers


def _remove_network(net: Any) -> int:
    """Remove ``net``: 1 if removed here, 0 if another cleanup (a watchdog) did. Right
    after many containers are removed at once the engine may still count some of their
    endpoints ("has active endpoints", 403); ask again for a few seconds before saying so."""
    deadline = time.monotonic() + NETWORK_BUSY_WAIT
    while True:
        try:
            net.remove()
            return 1
        except docker.errors.NotFound:
            return 0
        except docker.errors.APIError as e:
            if "active endpoints" not in str(e):
                raise
            if time.monotonic() > deadline:
                if _attached(net):
                    raise
                raise RunError(
                    f"network {net.name} still has active endpoints by the engine's count, "
                    "though no container is attached to it (dockerd kept endpoints of removed "
                    "containers); it can be removed once dockerd restarts: then run "
                    "`topo clean`") from e
            time.sleep(0.25)


def _attached(net: Any) -> bool:
    """Whether the engine says any container is on ``net`` (True when it cannot say)."""
    try:
        net.reload()
        return bool(net.attrs.get("Containers"))
    except docker.errors.DockerException:
        return True


# Run inside a container by ``exec`` when its processes are not visible from here (a remote
# engine): the main process's children, and a signal to one process.
_CHILDREN = """
import os
found = []
for d in os.listdir("/proc"):
    try:
        with open("/proc/%s/stat" % d) as f:
            if d.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == 1:
                found.append(int(d))
    except (OSError, ValueError, IndexError):
        pass
print(" ".join(map(str, sorted(found))))
"""
_KILL = "import os, sys; os.kill(int(sys.argv[1]), int(sys.argv[2]))"


def _owns(host_pid: int, container_id: str, proc: str = "/proc") -> bool:
    """Whether ``host_pid`` on this host is in the cgroup of the container ``container_id``."""
    try:
        with open(f"{proc}/{host_pid}/cgroup", encoding="ascii") as f:
            return container_id in f.read()
    except OSError:
        return False


def _ns_pid(host_pid: int, proc: str = "/proc") -> int | None:
    """The PID a host process has inside its container's PID namespace."""
    try:
        with open(f"{proc}/{host_pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None


def _host_pid_of(main: int, ns_pid: int) -> int | None:
    """Host PID of the process that is ``ns_pid`` in the container whose main process is
    ``main`` (host PID); None when it is not found from here."""
    if ns_pid == 1:
        return main
    try:
        for p in psutil.Process(main).children(recursive=True):
            if _ns_pid(p.pid) == ns_pid:
                return int(p.pid)
    except psutil.Error:
        pass
    return None


def _freezer(cgroup_version: str | None, cgroups: str = "/proc/cgroups") -> bool | None:
    """Whether `docker pause` can work here: cgroup v2 freezes natively; v1 needs the
    freezer controller enabled (/proc/cgroups). None when that cannot be read."""
    if str(cgroup_version) == "2":
        return True
    try:
        with open(cgroups, encoding="ascii") as f:
            rows = [line.split() for line in f if not line.startswith("#")]
    except OSError:
        return None
    return any(row[0] == "freezer" and row[-1] == "1" for row in rows if len(row) >= 4)


def _timestamp(text: str | None) -> float | None:
    """Docker's RFC 3339 time (nanoseconds, 'Z') as epoch seconds; None for 'never'."""
    if not text or text.startswith("0001-"):
        return None
    from datetime import datetime

    head, _, frac = text.rstrip("Z").partition(".")
    try:
        return datetime.fromisoformat(f"{head}.{(frac or '0')[:6]}+00:00").timestamp()
    except ValueError:
        return None


def stats_from_api(doc: dict[str, Any]) -> RawStats | None:
    """RawStats from one Docker stats API document (cgroup v1 or v2 engines)."""
    try:
        cpu = doc["cpu_stats"]
        mem = doc.get("memory_stats") or {}
        mstats = mem.get("stats") or {}
        inactive = mstats.get("total_inactive_file", mstats.get("inactive_file", 0))
        throttling = cpu.get("throttling_data") or {}
        return RawStats(
            cpu=cpu["cpu_usage"]["total_usage"] / 1e9,
            memory=max(0, int(mem.get("usage", 0)) - int(inactive)),
            throttled_periods=int(throttling.get("throttled_periods", 0)),
            throttled=throttling.get("throttled_time", 0) / 1e9,
            pids=int((doc.get("pids_stats") or {}).get("current", 0)),
        )
    except (KeyError, TypeError):
        return None  # a stopped container's document has no counters


def _build_failure(e: docker.errors.BuildError) -> str:
    """The line of the build log that says what went wrong (pip's ERROR line when it is pip)."""
    text = "".join(str(chunk.get("stream") or chunk.get("error") or "") for chunk in e.build_log)
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()]  # stderr is coloured
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return shorten(errors[-1] if errors else str(e), 300)
