"""The Docker engine adapter: the only module that imports ``docker``.

Images, networks, containers, stats and cleanup, all by label. Every SDK error is turned
into a TopoError here, so the rest of topo never sees a docker exception.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import docker
import docker.errors
from docker.models.containers import Container

import topo
from topo import cleanup, images, wheels
from topo.errors import EngineError, ImageError, RunError, UnusableImageError
from topo.model import ContainerSpec, DeployedContainer, Deployment, Scenario, TopologyPlan
from topo.output import shorten
from topo.plan import DEPLOYMENT, MANAGED, OWNER, RUN, RUN_DIR
from topo.runtime import cgroup
from topo.runtime.base import ContainerState, RawStats

BASE_IMAGE = os.environ.get("TOPO_BASE_IMAGE", "topo-base:bookworm")
WORKER_REPO = "topo-worker"
CONTAINER_USER = "10001:10001"  # no root inside any container topo starts
PROBE_TIMEOUT = 60  # seconds for an image's python3 to say what it is
SETUP_HINT = "run scripts/bootstrap.sh (it installs and starts the engine and builds the images)"


def _engine_error(action: str, err: Exception) -> EngineError:
    reason = getattr(err, "explanation", None) or str(err)
    return EngineError(f"Docker engine: {action}: {shorten(str(reason).splitlines()[0], 300)}")


class DockerRuntime:
    """Runs deployments on a Docker engine reached through DOCKER_HOST or the local socket."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self._cgroups: dict[str, cgroup.CgroupPaths] = {}

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
            raise _engine_error("info", e) from e
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
            raise _engine_error(f"inspect image {tag}", e) from e

    # ----------------------------------------------------------------- images

    def worker_images(self) -> list[str]:
        """Tags of the worker images built so far (one per distinct agent + workload)."""
        return [tag for tag, _ in self.worker_image_notes()]

    def worker_image_notes(self) -> list[tuple[str, str]]:
        """Each worker image's tag and what topo added to the image it is built on."""
        try:
            found = self.client.images.list(name=WORKER_REPO)
        except docker.errors.DockerException as e:
            raise _engine_error("list images", e) from e
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
        house = None
        extra = images.wheels_wanted(facts, scenario.peers)
        if w.requirements or extra:
            requirements = Path(w.requirements) if w.requirements else None
            house = wheels.resolve(facts.target(), requirements, extra)
        files = dict(_agent_files())
        if w.path:
            files.update(_folder_files(Path(w.path), "workloads"))
        tag = images.worker_tag(WORKER_REPO, from_id, files, house)
        if self.image_id(tag) is None:
            note = images.added(facts, from_image, bool(w.path), house)
            self._build(tag, from_image, files, house, {"topo.added": note, "topo.from": from_image})
        return tag

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
                user=CONTAINER_USER,
                # the owner label lets the watchdog remove it should topo die meanwhile
                labels={MANAGED: "true", "topo.role": "probe", OWNER: cleanup.owner_label()})
            container.start()
            status = container.wait(timeout=PROBE_TIMEOUT).get("StatusCode")
            output = container.logs().decode("utf-8", "replace")
        except docker.errors.APIError as e:
            if "executable file not found" in str(e) or "no such file" in str(e).lower():
                raise UnusableImageError(f"workload.image {name}: no python3 on its PATH; topo runs "
                                         "its agent with python3 (Python 3.9 or newer)") from e
            raise _engine_error(f"probe image {name}", e) from e
        except Exception as e:  # the wait timed out (requests' errors)
            raise ImageError(f"workload.image {name}: python3 did not answer within "
                             f"{PROBE_TIMEOUT}s: {str(e).splitlines()[0][:160]}") from e
        finally:
            if container is not None:
                _force_remove(container)
        if status != 0:
            last = (output.strip().splitlines() or ["no output"])[-1][:160]
            raise UnusableImageError(f"workload.image {name}: python3 fails to run ({last})")
        return images.parse_probe(name, output)

    def _build(self, tag: str, from_image: str, files: dict[str, Path],
               house: wheels.Wheelhouse | None, labels: dict[str, str]) -> None:
        stage = {MANAGED: "true", "topo.image": "worker-deps"}
        with tempfile.TemporaryDirectory(prefix="topo-build-") as ctx:
            for rel, src in files.items():
                dest = Path(ctx, "app", rel)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
            if house is not None:
                wheels.copy_into(house, Path(ctx))
            Path(ctx, "Dockerfile").write_text(images.dockerfile(from_image, house, stage))
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
                raise _engine_error(f"build {tag}", e) from e
            finally:
                self._prune(f"topo.image={stage['topo.image']}")

    def _prune(self, label: str) -> None:
        """Drop the install stage a build leaves behind (wheels and all): only the worker
        image is kept."""
        try:
            self.client.images.prune(filters={"dangling": True, "label": label})
        except docker.errors.DockerException:
            pass  # disk space only; `topo clean --images` removes it by label too

    # ----------------------------------------------------------------- deploy

    def deploy(self, plan: TopologyPlan, run_dir: str) -> Deployment:
        t_deploy = time.time()
        deployment = plan.labels[DEPLOYMENT]
        network_id = None
        try:
            if plan.network:
                net = self.client.networks.create(
                    plan.network, driver="bridge", internal=True, labels=dict(plan.labels),
                    check_duplicate=True,
                )
                network_id = net.id
            started = [self._start(spec, plan, run_dir) for spec in plan.containers]
        except docker.errors.DockerException as e:
            self.teardown(None, deployment)
            raise _engine_error(f"deploy {deployment}", e) from e
        return Deployment(plan=plan, run_dir=run_dir, containers=tuple(started),
                          network_id=network_id, t_deploy=t_deploy)

    def _start(self, spec: ContainerSpec, plan: TopologyPlan, run_dir: str) -> DeployedContainer:
        restart = {"Name": spec.restart} if spec.restart != "no" else None
        if restart and spec.restart == "on-failure":
            restart["MaximumRetryCount"] = 0  # type: ignore[assignment]
        container = self.client.containers.run(
            spec.image or plan.image,
            command=list(spec.command),
            name=spec.name,
            hostname=spec.name,
            detach=True,
            environment=dict(spec.env),
            labels=dict(spec.labels),
            nano_cpus=int(round(spec.cpus * 1e9)),
            mem_limit=spec.memory,
            memswap_limit=spec.memory,  # no swap: a memory limit must mean what it says
            cpuset_cpus=spec.cpuset,
            network=plan.network,
            network_mode=None if plan.network else "none",
            volumes={run_dir: {"bind": RUN_DIR, "mode": "rw"},
                     **{m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                        for m in spec.mounts}},
            user=CONTAINER_USER,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=64m"},
            pids_limit=spec.pids_limit,
            restart_policy=restart,
        )
        return DeployedContainer(name=spec.name, role=spec.role, id=str(container.id))

    # ----------------------------------------------------------------- observe

    def _containers(self, deployment: str) -> list[Container]:
        try:
            return list(self.client.containers.list(all=True, filters={"label": f"{DEPLOYMENT}={deployment}"}))
        except docker.errors.DockerException as e:
            raise _engine_error("list containers", e) from e

    def states(self, deployment: Deployment) -> dict[str, ContainerState]:
        out = {}
        for c in self._containers(deployment.plan.labels[DEPLOYMENT]):
            s = c.attrs.get("State", {})
            out[c.name] = ContainerState(
                name=c.name,
                running=bool(s.get("Running")),
                exit_code=None if s.get("Running") else s.get("ExitCode"),
                oom_killed=bool(s.get("OOMKilled")),
                restarts=int(c.attrs.get("RestartCount", 0)),
                restarting=bool(s.get("Restarting")),
                finished_at=_timestamp(s.get("FinishedAt")),
            )
        return out

    def host_pid(self, name: str) -> int | None:
        """Host PID of a container's main process (0/None when it is not running)."""
        try:
            pid = self.client.api.inspect_container(name)["State"]["Pid"]
        except docker.errors.DockerException:
            return None
        return int(pid) or None

    def pause(self, name: str) -> None:
        """Freeze every process of a container (cgroup freezer)."""
        self._call(f"pause {name}", lambda: self.client.api.pause(name))

    def unpause(self, name: str) -> None:
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
            raise _engine_error(action, e) from e

    def stats(self, deployment: Deployment) -> dict[str, RawStats | None]:
        """Counters per container; None = not running. A container whose state could not be
        read this time is left out, so a passing API error is not mistaken for a stop."""
        out: dict[str, RawStats | None] = {}
        for c in deployment.containers:
            try:
                out[c.name] = self._stats_of(c)
            except docker.errors.DockerException:
                continue
        return out

    def _stats_of(self, c: DeployedContainer) -> RawStats | None:
        paths = self._cgroups.get(c.id)
        if paths is not None:
            raw = cgroup.read(paths)
            if raw is not None:
                return raw
        # First look, or the cgroup went away (exit or restart): find it again.
        try:
            pid = int(self.client.api.inspect_container(c.id)["State"]["Pid"])
        except docker.errors.NotFound:
            return None
        if not pid:
            return None
        paths = cgroup.paths_of(pid)
        if paths is None:
            # Its processes are not visible here (a remote engine): ask the stats API,
            # slower (one request per container and pass) but the same counters.
            return stats_from_api(self.client.api.stats(c.id, stream=False, one_shot=True))
        self._cgroups[c.id] = paths
        return cgroup.read(paths)

    def logs(self, deployment: Deployment, name: str, tail: int = 5) -> str:
        try:
            out = self.client.containers.get(name).logs(tail=tail)
        except docker.errors.DockerException:
            return ""
        return out.decode("utf-8", "replace").strip()

    # ----------------------------------------------------------------- cleanup

    def teardown(self, deployment: Deployment | None, deployment_name: str) -> None:
        self.remove_labelled(f"{DEPLOYMENT}={deployment_name}")

    def labelled_runs(self) -> dict[str, str]:
        """Run id -> owner label of every container and network topo made."""
        runs: dict[str, str] = {}
        try:
            # sparse: no inspect per container, so one removed meanwhile is no error
            found = self.client.containers.list(all=True, sparse=True,
                                                filters={"label": MANAGED + "=true"})
            found += self.client.networks.list(filters={"label": MANAGED + "=true"})
        except docker.errors.DockerException as e:
            raise _engine_error("list topo's resources", e) from e
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
            with ThreadPoolExecutor(max_workers=8) as pool:
                removed["containers"] = sum(pool.map(_force_remove, found))
            for net in self.client.networks.list(filters={"label": label}):
                try:
                    net.remove()
                    removed["networks"] += 1
                except docker.errors.NotFound:
                    pass  # removed meanwhile by another cleanup (a watchdog)
            if images:
                for image in self.client.images.list(filters={"label": label}):
                    self.client.images.remove(image.id, force=True)
                    removed["images"] += 1
        except docker.errors.DockerException as e:
            raise RunError(f"cleanup of {label} incomplete: {str(e).splitlines()[0][:200]}") from e
        return removed


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


def _force_remove(container: Container) -> int:
    try:
        container.remove(force=True)
        return 1
    except docker.errors.NotFound:
        return 0


def _agent_files() -> Iterator[tuple[str, Path]]:
    """The part of topo that runs inside containers, keyed by its path in the image."""
    root = Path(topo.__file__).parent
    yield "topo/__init__.py", root / "__init__.py"
    yield "topo/workloads.py", root / "workloads.py"
    for f in sorted((root / "agent").glob("*.py")):
        yield f"topo/agent/{f.name}", f


def _folder_files(folder: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    for f in sorted(folder.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            yield f"{prefix}/{f.relative_to(folder).as_posix()}", f
