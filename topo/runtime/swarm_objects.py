"""Swarm's services, secrets, configs and volumes that topo made, found and removed by label.

Apart from the Swarm runtime so that the Docker runtime's cleanup can reach them too (a
SIGKILLed ``--engine swarm`` run is swept by the next topo start, whatever its engine),
without the two runtimes importing each other.
"""

from __future__ import annotations

import os
import time
from typing import Any

import docker
import docker.errors

from topo.errors import EngineError, RunError
from topo.plan import MANAGED, OWNER, RUN
from topo.runtime.sdk import engine_error, force_remove

GONE_TIMEOUT = 60.0  # s for a removed service's containers to go before its network goes
ENGINES_ENV = "TOPO_SWARM_ENGINES"  # the other nodes' engine addresses, comma-separated


def node_engines() -> tuple[docker.DockerClient, ...]:
    """The engines of the swarm's other nodes that ``TOPO_SWARM_ENGINES`` names: where the
    event readers and run volumes of a run live besides topo's own node."""
    return tuple(_engine(url.strip()) for url in os.environ.get(ENGINES_ENV, "").split(",")
                 if url.strip())


def _engine(url: str) -> docker.DockerClient:
    try:
        client = docker.DockerClient(base_url=url, timeout=60)
        client.ping()
    except Exception as e:  # DockerException, requests' errors, a bad address
        raise EngineError(f"{ENGINES_ENV}: no engine answers at {url} "
                          f"({str(e).splitlines()[0][:160]})") from e
    return client


class SwarmObjects:
    """Services, secrets, configs and volumes of topo's, found and removed by label. The
    sweep of cleanup.py uses it with any engine, so a SIGKILLed ``--engine swarm`` run's
    services go at the next topo start whatever its engine."""

    def __init__(self, client: docker.DockerClient,
                 engines: tuple[docker.DockerClient, ...] | None = None) -> None:
        self.client = client
        self._engines = engines  # None: those TOPO_SWARM_ENGINES names, when first needed

    @property
    def engines(self) -> tuple[docker.DockerClient, ...]:
        if self._engines is None:
            self._engines = node_engines()
        return self._engines

    def manager(self) -> bool:
        try:
            return bool(self.client.info().get("Swarm", {}).get("ControlAvailable"))
        except docker.errors.DockerException:
            return False

    def _kinds(self, label: str) -> dict[str, list[Any]]:
        f = {"label": label}
        return {"services": self.client.services.list(filters=f),
                "secrets": self.client.secrets.list(filters=f),
                "configs": self.client.configs.list(filters=f),
                "volumes": self.client.volumes.list(filters=f)}

    def labelled_runs(self) -> dict[str, str]:
        """Run id -> owner label of every service, secret, config and volume topo made."""
        runs: dict[str, str] = {}
        try:
            found = self._kinds(f"{MANAGED}=true")
        except docker.errors.DockerException as e:
            raise engine_error("list topo's services", e) from e
        try:  # other nodes hold a run's event reader and volume, nothing else
            found["nodes"] = [x for c in self.engines for x in (
                *c.containers.list(all=True, sparse=True, filters={"label": f"{MANAGED}=true"}),
                *c.volumes.list(filters={"label": f"{MANAGED}=true"}))]
        except docker.errors.DockerException as e:
            raise engine_error("list topo's readers on the other nodes", e) from e
        for item in (x for items in found.values() for x in items):
            labels = item.attrs.get("Spec", {}).get("Labels") or item.attrs.get("Labels") or {}
            if RUN in labels and labels.get(OWNER):
                runs[labels[RUN]] = labels[OWNER]
        return runs

    def remove_labelled(self, label: str) -> dict[str, int]:
        """Remove services first, wait for their task containers to go (they hold the
        network, the secret and the volume), then the rest."""
        removed = {"services": 0, "containers": 0, "networks": 0, "secrets": 0, "configs": 0,
                   "volumes": 0}
        try:
            for service in self.client.services.list(filters={"label": label}):
                removed["services"] += _quietly(service.remove)
            removed["containers"] = self.wait_containers_gone(label)
            removed["networks"] = self._remove_networks(label)
            found = self._kinds(label)
            for kind in ("secrets", "configs", "volumes"):
                removed[kind] = sum(_retry_in_use(x.remove) for x in found[kind])
            for client in self.engines:
                removed["containers"] += remove_on_node(client, label)
        except docker.errors.DockerException as e:
            raise RunError(f"cleanup of {label} incomplete: {str(e).splitlines()[0][:200]}") from e
        return removed

    def _remove_networks(self, label: str) -> int:
        """An overlay network lingers in the listing for a moment after its removal was
        accepted (each node drops its copy on its own): wait until it is gone."""
        removed = 0
        deadline = time.monotonic() + GONE_TIMEOUT
        while time.monotonic() < deadline:
            left = self.client.networks.list(filters={"label": label})
            if not left:
                break
            for net in left:
                removed += _retry_in_use(net.remove)
            time.sleep(0.2)
        return removed

    def wait_containers_gone(self, label: str | list[str]) -> int:
        """Remove a removed service's task containers by force: Swarm would stop them with
        SIGTERM and a 10 s grace, which a Python PID 1 ignores (no handler), so every
        teardown would wait that long. The service is gone: nothing reschedules them.
        Several labels: containers carrying all of them."""
        deadline = time.monotonic() + GONE_TIMEOUT
        removed = 0
        while time.monotonic() < deadline:
            left = self.client.containers.list(all=True, sparse=True, filters={"label": label})
            if not left:
                break
            removed += sum(_remove_container(c) for c in left)
            time.sleep(0.2)
        return removed


def _remove_container(container: Any) -> int:
    try:
        return force_remove(container)
    except docker.errors.APIError as e:
        if "in progress" in str(e):  # Swarm is removing it too
            return 0
        raise


def _quietly(fn: Any) -> int:
    try:
        fn()
        return 1
    except docker.errors.NotFound:
        return 0  # removed meanwhile (a watchdog)
    except docker.errors.APIError as e:
        if "not found" in str(e):  # an overlay network whose removal is under way answers 500
            return 0
        raise


def _retry_in_use(fn: Any, timeout: float = 20.0) -> int:
    """Remove something the engine may still see in use for a moment after the last
    container went (a network's endpoints, a secret's reference)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _quietly(fn)
        except docker.errors.APIError as e:
            if time.monotonic() > deadline or "in use" not in str(e).lower():
                raise
            time.sleep(0.5)


def remove_on_node(client: docker.DockerClient, label: str) -> int:
    """Another node's readers, task containers and run volume: only what its own engine
    holds (a node that is not a manager has no services to list)."""
    removed = 0
    for c in client.containers.list(all=True, sparse=True, filters={"label": label}):
        removed += _remove_container(c)
    for v in client.volumes.list(filters={"label": label}):
        removed += _retry_in_use(v.remove)
    return removed
