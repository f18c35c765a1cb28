"""Swarm's services, secrets, configs and volumes that topo made, found and removed by label.

Apart from the Swarm runtime so that the Docker runtime's cleanup can reach them too (a
SIGKILLed ``--engine swarm`` run is swept by the next topo start, whatever its engine),
without the two runtimes importing each other.
"""

from __future__ import annotations

import time
from typing import Any

import docker
import docker.errors

from topo.errors import RunError
from topo.plan import MANAGED, OWNER, RUN
from topo.runtime.sdk import engine_error, force_remove

GONE_TIMEOUT = 60.0  # s for a removed service's containers to go before its network goes


class SwarmObjects:
    """Services, secrets, configs and volumes of topo's, found and removed by label. The
    sweep of cleanup.py uses it with any engine, so a SIGKILLed ``--engine swarm`` run's
    services go at the next topo start whatever its engine."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

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
