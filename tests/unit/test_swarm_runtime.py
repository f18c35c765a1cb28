"""The Swarm engine's pure parts: the password kept out of the service spec, a service's
tasks seen as one container, the sweep reaching Swarm objects, the agent's password file."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from topo import cleanup
from topo.agent import queue
from topo.model import ContainerSpec
from topo.plan import redis_command
from topo.runtime import swarm
from topo.runtime.swarm import SwarmRuntime, swarm_env_command


def _spec(role: str, command: tuple[str, ...], env: dict[str, str]) -> ContainerSpec:
    return ContainerSpec(name=f"d-{role}", role=role, command=command, cpus=1.0, memory=1, env=env)


def test_workers_get_the_secret_path_not_the_password() -> None:
    spec = _spec("worker", ("python3", "-m", "topo.agent.worker"),
                 {"TOPO_REDIS_PASSWORD": "s3cret", "TOPO_RUN_DIR": "/run/topo"})
    env, command = swarm_env_command(spec, "d-redis-password")
    assert env == ["TOPO_REDIS_PASSWORD_FILE=/run/secrets/d-redis-password", "TOPO_RUN_DIR=/run/topo"]
    assert command == spec.command


def test_redis_reads_the_password_from_the_secret_file(tmp_path: Path) -> None:
    spec = _spec("redis", redis_command("no", "s3cret"), {})
    env, command = swarm_env_command(spec, "d-redis-password")
    assert "s3cret" not in " ".join(command) and env == []
    # Run the same shell line with `printf` in place of redis-server and the secret in tmp_path:
    # it must produce redis-server's original arguments with the password from the file.
    (tmp_path / "d-redis-password").write_text("fromfile")
    argv = list(command)
    argv[2] = argv[2].replace(swarm.SECRETS_DIR, str(tmp_path))
    assert argv[4] == "redis-server"
    argv[4:5] = ["printf", "%s\n"]  # one argument a line, the empty one (--save "") too
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split("\n")[:-1]
    expected = list(redis_command("no", "fromfile")[1:])
    assert out == expected


def test_agent_reads_the_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("abc\n")
    monkeypatch.setenv("TOPO_REDIS_PASSWORD", "from-env")
    monkeypatch.setenv("TOPO_REDIS_PASSWORD_FILE", str(tmp_path / "pw"))
    assert queue.redis_password() == "abc"
    monkeypatch.delenv("TOPO_REDIS_PASSWORD_FILE")
    assert queue.redis_password() == "from-env"


class _Api:
    base_url = "http+docker://localhost"  # a local engine: topo's own node

    def __init__(self, states: dict[str, dict[str, Any]]) -> None:
        self.states = states

    def inspect_container(self, cid: str) -> dict[str, Any]:
        return {"State": self.states[cid]}


class _Client:
    def __init__(self, states: dict[str, dict[str, Any]], node: str = "n1") -> None:
        self.api = _Api(states)
        self.node = node

    def info(self) -> dict[str, Any]:
        return {"Swarm": {"NodeID": self.node}}


def _task(state: str, created: str, cid: str | None = None, exit_code: int = 0,
          desired: str = "running") -> dict[str, Any]:
    status: dict[str, Any] = {"State": state}
    if cid:
        status["ContainerStatus"] = {"ContainerID": cid, "ExitCode": exit_code}
    return {"Status": status, "CreatedAt": created, "DesiredState": desired, "NodeID": "n1"}


def test_a_killed_task_and_its_pending_replacement_are_one_restarting_container() -> None:
    rt = SwarmRuntime(_Client({"c1": {"OOMKilled": True, "FinishedAt": "2026-01-01T00:00:10.5Z"}}))  # type: ignore[arg-type]
    tasks = [_task("ready", "2026-01-01T00:00:11Z"),
             _task("failed", "2026-01-01T00:00:00Z", "c1", exit_code=137)]
    st = rt._state("w0", tasks)
    assert (st.running, st.restarting, st.restarts, st.exit_code, st.oom_killed) == (
        False, True, 1, None, True)
    assert st.finished_at == 1767225610.5  # 2026-01-01T00:00:10.5Z, from `date -d ... +%s`


def test_a_task_that_ended_without_replacement_exited() -> None:
    rt = SwarmRuntime(_Client({"c1": {"OOMKilled": False, "FinishedAt": "2026-01-01T00:00:10Z"}}))  # type: ignore[arg-type]
    st = rt._state("single", [_task("failed", "2026-01-01T00:00:00Z", "c1", exit_code=137,
                                    desired="shutdown")])
    assert (st.running, st.restarting, st.restarts, st.exit_code) == (False, False, 0, 137)


class _Part:
    def __init__(self, runs: dict[str, str], log: list[str], name: str) -> None:
        self.runs, self.log, self.name = runs, log, name

    def labelled_runs(self) -> dict[str, str]:
        return dict(self.runs)

    def remove_labelled(self, label: str) -> dict[str, int]:
        self.log.append(f"{self.name} {label}")
        return {}


def test_sweep_reaches_swarm_objects_through_a_docker_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    from topo.runtime import docker as docker_runtime
    from topo.runtime.docker import DockerRuntime

    log: list[str] = []
    services = _Part({"r2": "nohost:1:1.00"}, log, "swarm")
    monkeypatch.setattr(docker_runtime, "SwarmObjects", lambda client: _Fake(services))
    own = _Part({"r1": "nohost:1:1.00"}, log, "docker")
    runtime = DockerRuntime(_InfoClient({"ControlAvailable": True}))  # type: ignore[arg-type]
    monkeypatch.setattr(runtime, "labelled_runs", own.labelled_runs)
    monkeypatch.setattr(runtime, "remove_labelled", own.remove_labelled)
    monkeypatch.setattr(cleanup, "owner_alive", lambda owner: False)
    assert sorted(cleanup.sweep(runtime)) == ["r1", "r2"]
    # services (and their containers) go before the engine's own containers and networks
    assert log == ["swarm topo.run=r1", "docker topo.run=r1", "swarm topo.run=r2", "docker topo.run=r2"]


def test_the_swarm_runtime_sweeps_its_objects_itself() -> None:
    rt = SwarmRuntime(_Client({}))  # type: ignore[arg-type]
    assert rt.cleanup_parts() == [rt]


class _Fake(_Part):
    def __init__(self, part: _Part) -> None:
        super().__init__(part.runs, part.log, part.name)

    def manager(self) -> bool:
        return True


class _InfoClient:
    def __init__(self, swarm: dict[str, Any]) -> None:
        self.swarm = swarm

    def info(self) -> dict[str, Any]:
        return {"Swarm": self.swarm}


def test_an_engine_that_is_no_swarm_manager_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from topo.errors import EngineError
    from topo.runtime.docker import DockerRuntime

    for state in ({"LocalNodeState": "inactive"}, {"LocalNodeState": "active", "ControlAvailable": False}):
        client = _InfoClient(state)
        monkeypatch.setattr(DockerRuntime, "connect", classmethod(lambda cls, timeout=60: cls(client)))
        with pytest.raises(EngineError, match="not a Swarm manager: `docker swarm init` first"):
            SwarmRuntime.connect()
    client = _InfoClient({"LocalNodeState": "active", "ControlAvailable": True})
    assert isinstance(SwarmRuntime.connect(), SwarmRuntime)
