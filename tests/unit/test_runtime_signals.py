"""How the Docker runtime delivers a fault's signal, on a stand-in client (no engine): by
host PID only where that PID is visibly the container's own, else from inside the
container (exec) or through the engine's API."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from topo.errors import RunError
from topo.model import Deployment
from topo.runtime import docker as docker_runtime
from topo.runtime.docker import DockerRuntime

DEP = Deployment(plan=None, run_dir="", containers=(), network_id=None, t_deploy=0.0)  # type: ignore[arg-type]


class _Api:
    def __init__(self, base_url: str, pid: int, container_id: str) -> None:
        self.base_url = base_url
        self.pid, self.container_id = pid, container_id
        self.killed: list[tuple[str, str]] = []

    def inspect_container(self, name: str) -> dict[str, Any]:
        return {"Id": self.container_id, "State": {"Pid": self.pid}}

    def kill(self, name: str, sig: str) -> None:
        self.killed.append((name, sig))


class _Container:
    def __init__(self, answer: tuple[int, bytes]) -> None:
        self.answer = answer
        self.ran: list[tuple[list[str], str]] = []

    def exec_run(self, cmd: list[str], user: str) -> tuple[int, bytes]:
        self.ran.append((cmd, user))
        return self.answer


class _Client:
    def __init__(self, api: _Api, answer: tuple[int, bytes] = (0, b"")) -> None:
        self.api = api
        self.container = _Container(answer)
        self.containers = self

    def get(self, name: str) -> _Container:
        return self.container


def runtime(base_url: str = "http+docker://localhost", *, pid: int = 0, answer=(0, b""),
            host_signals: bool | None = None) -> tuple[DockerRuntime, _Client]:
    client = _Client(_Api(base_url, pid, "c0ffee" * 10), answer)
    return DockerRuntime(client, host_signals=host_signals), client  # type: ignore[arg-type]


@pytest.fixture()
def no_host_kill(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """os.kill as the runtime sees it, recording instead of signalling."""
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(docker_runtime.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    return sent


def test_a_remote_engines_main_process_is_killed_through_its_api(no_host_kill) -> None:
    rt, client = runtime("https://10.0.0.9:2376", pid=os.getpid())
    assert rt.kill(DEP, "w0") == "engine-api"
    assert client.api.killed == [("w0", "SIGKILL")] and no_host_kill == []


def test_a_local_pid_that_is_not_the_containers_own_is_never_signalled(no_host_kill) -> None:
    # This test's own PID exists here, but its cgroup is not the container's.
    rt, client = runtime(pid=os.getpid())
    assert rt.kill(DEP, "w0") == "engine-api"
    assert no_host_kill == [] and client.api.killed == [("w0", "SIGKILL")]


def test_a_visible_pid_is_signalled_on_the_host(no_host_kill, monkeypatch) -> None:
    monkeypatch.setattr(docker_runtime, "_owns", lambda pid, cid: pid == 4242)
    rt, client = runtime(pid=4242)
    assert rt.kill(DEP, "w0") == "host-pid"
    assert no_host_kill == [(4242, signal.SIGKILL)] and client.api.killed == []
    forced, client = runtime(pid=4242, host_signals=False)
    assert forced.kill(DEP, "w0") == "engine-api" and client.api.killed == [("w0", "SIGKILL")]


def test_one_process_is_signalled_from_inside_as_the_containers_user(no_host_kill) -> None:
    rt, client = runtime(host_signals=False)
    assert rt.kill(DEP, "single", 103) == "exec"
    rt.stop_process(DEP, "single", 104, True)
    rt.stop_process(DEP, "single", 104, False)
    sent = [(cmd[3:], user) for cmd, user in client.container.ran]
    assert sent == [(["103", str(int(signal.SIGKILL))], "10001:10001"),
                    (["104", str(int(signal.SIGSTOP))], "10001:10001"),
                    (["104", str(int(signal.SIGCONT))], "10001:10001")]
    assert no_host_kill == []


def test_workers_are_listed_from_inside_and_a_failure_is_a_run_error() -> None:
    rt, _ = runtime(host_signals=False, answer=(0, b"101 102 105\n"))
    assert rt.workers(DEP, "single") == [101, 102, 105]
    broken, _ = runtime(host_signals=False, answer=(1, b"OCI runtime exec failed"))
    with pytest.raises(RunError, match="cannot list its processes: OCI runtime exec failed"):
        broken.workers(DEP, "single")


class _StatsApi(_Api):
    """Also answers the stats API, with counters no cgroup file on this host holds."""

    def stats(self, name: str, stream: bool, one_shot: bool) -> dict[str, Any]:
        return {"cpu_stats": {"cpu_usage": {"total_usage": 7_000_000_000},
                              "throttling_data": {"throttled_periods": 3,
                                                  "throttled_time": 500_000_000}},
                "memory_stats": {"usage": 42 << 20, "stats": {"total_inactive_file": 2 << 20}},
                "pids_stats": {"current": 5}}


@pytest.mark.parametrize("base_url, pid", [
    ("https://10.0.0.9:2376", os.getpid()),   # a remote engine's PID that exists here
    ("http+docker://localhost", os.getpid()),  # a local PID that is not the container's
])
def test_counters_of_a_container_not_visible_here_come_from_the_stats_api(
        base_url: str, pid: int) -> None:
    """This test's own PID has a cgroup on this host; it must not be read as the
    container's. The stats API's figures, written by hand above, are what is read."""
    client = _Client(_StatsApi(base_url, pid, "c0ffee" * 10))
    rt = DockerRuntime(client)  # type: ignore[arg-type]
    c = docker_runtime.DeployedContainer(name="w0", role="worker", id="c0ffee" * 10)
    raw = rt._stats_of(c)
    assert raw is not None
    assert (raw.cpu, raw.memory, raw.throttled_periods, raw.throttled, raw.pids) == (
        7.0, 40 << 20, 3, 0.5, 5)


def test_a_remote_engines_counters_are_asked_for_all_containers_at_once() -> None:
    """The stats API answers at its next one-second tick, so a remote engine's pass asks for
    every container together: each request here waits until all 4 have arrived (a barrier),
    which one-after-another requests would never reach."""
    import threading

    gate = threading.Barrier(4, timeout=10)

    class _Gated(_StatsApi):
        def stats(self, name: str, stream: bool, one_shot: bool) -> dict[str, Any]:
            gate.wait()
            return super().stats(name, stream, one_shot)

    client = _Client(_Gated("https://10.0.0.9:2376", 4242, "c0ffee" * 10))
    rt = DockerRuntime(client)  # type: ignore[arg-type]
    names = [f"w{i}" for i in range(4)]
    dep = Deployment(plan=None, run_dir="", network_id=None, t_deploy=0.0,  # type: ignore[arg-type]
                     containers=tuple(docker_runtime.DeployedContainer(name=n, role="worker", id=n)
                                      for n in names))
    out = rt.stats(dep)
    assert sorted(out) == names and all(v is not None and v.pids == 5 for v in out.values())
