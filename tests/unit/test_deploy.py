"""DockerRuntime.deploy against a fake engine client: Redis first and ready before any other
container, the rest started concurrently, and a failure removing everything created.

The fake engine keeps its own record of what was created, started and removed; the expected
counts come from that record and from the plan's size, never from topo's bookkeeping.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import docker.errors
import pytest

from tests import fakes
from topo import plan as planning
from topo.errors import EngineError, RunError
from topo.model import TopologyPlan
from topo.runtime import docker as docker_runtime
from topo.runtime.docker import DockerRuntime


class _Engine:
    """What the engine holds: every container created (by name, with its labels), in the
    order the creations began, how many ran at once at most, and what was removed."""

    def __init__(self, fail_at: int | None = None, start_delay: float = 0.02) -> None:
        self.lock = threading.Lock()
        self.created: dict[str, dict[str, str]] = {}
        self.order: list[str] = []
        self.removed: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.fail_at = fail_at  # the k-th creation (0-based) is refused
        self.start_delay = start_delay
        self.redis_ready_at: float | None = None
        self.started_at: dict[str, float] = {}
        self.busy_network = 0  # how many removals of the network the engine refuses first


class _Container:
    def __init__(self, engine: _Engine, name: str) -> None:
        self.engine, self.name, self.id = engine, name, name

    def remove(self, force: bool = False) -> None:
        with self.engine.lock:
            if self.name not in self.engine.created:
                raise docker.errors.NotFound("gone")
            del self.engine.created[self.name]
            self.engine.removed.append(self.name)


class _Containers:
    def __init__(self, engine: _Engine) -> None:
        self.engine = engine

    def run(self, image: str, **kw: Any) -> _Container:
        e = self.engine
        with e.lock:
            k = len(e.order)
            e.order.append(kw["name"])
            e.running += 1
            e.most_at_once = max(e.most_at_once, e.running)
        try:
            time.sleep(e.start_delay)  # the engine's work: other starts overlap it
            if k == e.fail_at:
                raise docker.errors.APIError(f"Conflict. The container name {kw['name']} is in use")
            with e.lock:
                e.created[kw["name"]] = dict(kw["labels"])
                e.started_at[kw["name"]] = time.monotonic()
                if kw["labels"].get("topo.role") == "redis":
                    e.redis_ready_at = time.monotonic() + 0.1  # Redis takes 0.1 s to load
            return _Container(e, kw["name"])
        finally:
            with e.lock:
                e.running -= 1

    def list(self, all: bool = False, sparse: bool = False,
             filters: dict[str, str] | None = None) -> list[_Container]:
        key, _, value = (filters or {})["label"].partition("=")
        with self.engine.lock:
            return [_Container(self.engine, n) for n, labels in self.engine.created.items()
                    if labels.get(key) == value]


class _Network:
    def __init__(self, engine: _Engine, name: str) -> None:
        self.engine, self.name, self.id = engine, name, f"net-{name}"
        self.attrs: dict[str, Any] = {}

    def reload(self) -> None:
        """What inspect says: the containers of this network the engine still holds."""
        with self.engine.lock:
            self.attrs = {"Containers": {n: {} for n in self.engine.created}}

    def remove(self) -> None:
        if self.engine.busy_network > 0:  # endpoints of removed containers still counted
            self.engine.busy_network -= 1
            raise docker.errors.APIError(
                f"403 Client Error: Forbidden (\"error while removing network: network "
                f"{self.name} id {self.id} has active endpoints\")")
        self.engine.removed.append(self.id)


class _Networks:
    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        self.made: list[_Network] = []

    def create(self, name: str, **kw: Any) -> _Network:
        self.made.append(_Network(self.engine, name))
        return self.made[-1]

    def list(self, filters: dict[str, str] | None = None) -> list[_Network]:
        made, self.made = self.made, []
        return made


class _Api:
    def __init__(self, engine: _Engine) -> None:
        self.engine = engine

    def logs(self, cid: str, **kw: Any) -> bytes:
        ready = self.engine.redis_ready_at
        if ready is not None and time.monotonic() >= ready:
            return b"1:M * Ready to accept connections tcp\n"
        return b"1:M * Server initialized\n"

    def inspect_container(self, cid: str) -> dict[str, Any]:
        return {"State": {"Running": True}}


class _Client:
    def __init__(self, engine: _Engine) -> None:
        self.containers = _Containers(engine)
        self.networks = _Networks(engine)
        self.api = _Api(engine)


def multi_plan(workers: int) -> TopologyPlan:
    sc = fakes.scenario(workers=workers, topologies=("multi",))
    return planning.plan(sc, "multi", "r1", "topo-r1-m0", "topo-worker:x", "pw")


def test_redis_is_ready_before_any_worker_starts_and_all_start_concurrently() -> None:
    engine = _Engine()
    plan = multi_plan(workers=16)
    deployment = DockerRuntime(_Client(engine)).deploy(plan, "/run")  # type: ignore[arg-type]
    # 16 workers + Redis + the feeder, by the fake engine's own count
    assert len(engine.created) == 18
    assert engine.order[0] == "topo-r1-m0-redis"
    assert engine.redis_ready_at is not None
    others = [t for n, t in engine.started_at.items() if not n.endswith("-redis")]
    assert min(others) >= engine.redis_ready_at  # none began before Redis said it was ready
    assert 1 < engine.most_at_once <= docker_runtime.DEPLOY_POOL
    # the deployment lists them in the plan's order, each with its own start time
    assert [c.name for c in deployment.containers] == [s.name for s in plan.containers]
    assert all(c.t_started is not None for c in deployment.containers)
    assert len({c.t_started for c in deployment.containers}) > 1


@pytest.mark.parametrize("k", [0, 1, 5, 17])
def test_a_failed_creation_removes_every_container_created(k: int) -> None:
    engine = _Engine(fail_at=k)
    runtime = DockerRuntime(_Client(engine))  # type: ignore[arg-type]
    with pytest.raises(EngineError) as err:
        runtime.deploy(multi_plan(workers=16), "/run")
    message = str(err.value)
    assert "\n" not in message and f"start {engine.order[k]}" in message
    assert "is in use" in message
    assert engine.created == {}  # nothing left on the engine
    # everything that was created (all that began except the refused one) was removed
    assert sorted(n for n in engine.removed if not n.startswith("net-")) == sorted(
        n for i, n in enumerate(engine.order) if i != k)
    assert "net-topo-r1-m0" in engine.removed


def test_teardown_removes_a_deployment_by_its_label() -> None:
    engine = _Engine()
    runtime = DockerRuntime(_Client(engine))  # type: ignore[arg-type]
    plan = multi_plan(workers=4)
    runtime.deploy(plan, "/run")
    assert len(engine.created) == 6
    runtime.teardown(None, plan.labels[planning.DEPLOYMENT])
    assert engine.created == {}


def test_a_network_briefly_busy_after_its_containers_went_is_asked_again() -> None:
    engine = _Engine()
    engine.busy_network = 3
    runtime = DockerRuntime(_Client(engine))  # type: ignore[arg-type]
    plan = multi_plan(workers=4)
    runtime.deploy(plan, "/run")
    runtime.teardown(None, plan.labels[planning.DEPLOYMENT])
    assert "net-topo-r1-m0" in engine.removed and engine.busy_network == 0


def test_a_failed_deploy_reports_its_own_error_when_the_cleanup_fails_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _Engine(fail_at=3)
    engine.busy_network = 10**6  # the engine never lets the network go
    monkeypatch.setattr(docker_runtime, "NETWORK_BUSY_WAIT", 0.3, raising=False)
    runtime = DockerRuntime(_Client(engine))  # type: ignore[arg-type]
    with pytest.raises(EngineError) as err:
        runtime.deploy(multi_plan(workers=8), "/run")
    message = str(err.value)
    # the cause first (the refused start), then the cleanup that failed as well
    assert message.index(f"start {engine.order[3]}") < message.index("active endpoints")
    assert "is in use" in message and "\n" not in message
    assert engine.created == {}  # the containers went; only the network stayed


def test_a_network_the_engine_keeps_with_no_container_on_it_is_named_as_such(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # dockerd 20.10 may keep counting endpoints of removed containers until it restarts
    engine = _Engine()
    engine.busy_network = 10**6
    monkeypatch.setattr(docker_runtime, "NETWORK_BUSY_WAIT", 0.3, raising=False)
    runtime = DockerRuntime(_Client(engine))  # type: ignore[arg-type]
    plan = multi_plan(workers=4)
    runtime.deploy(plan, "/run")
    with pytest.raises(RunError) as err:
        runtime.teardown(None, plan.labels[planning.DEPLOYMENT])
    assert str(err.value) == (
        f"cleanup of {planning.DEPLOYMENT}={plan.labels[planning.DEPLOYMENT]} incomplete: "
        f"network {plan.network} still has active endpoints by the engine's count, though no "
        "container is attached to it (dockerd kept endpoints of removed containers); it can "
        "be removed once dockerd restarts: then run `topo clean`")
    assert engine.created == {}
