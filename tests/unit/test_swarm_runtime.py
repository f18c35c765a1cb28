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


# ------------------------------------------------------------------ settings and nodes

def _compare_swarm(**env: str) -> Any:
    """`topo compare --engine swarm` with an engine address that answers nothing: a bad
    setting must be refused before any engine is asked."""
    import os
    import sys

    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-m", "topo.cli", "compare", str(root / "scenarios" / "etl.yaml"),
         "--engine", "swarm"], capture_output=True, text=True, timeout=120, cwd=root,
        env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock", **env})


@pytest.mark.parametrize(("env", "value"), [("TOPO_SWARM_COLLECT", "bnid"),
                                            ("TOPO_SWARM_ACCESS", "remote")])
def test_a_bad_swarm_setting_is_a_usage_error(env: str, value: str) -> None:
    p = _compare_swarm(**{env: value})
    # before: exit 1, "topo: error: no Docker engine answers ..." (the setting never read)
    assert p.returncode == 2, p.stderr
    assert p.stderr.splitlines() == [
        f"topo: error: {env}: {value!r} is not one of "
        f"{'bind, engine' if env == 'TOPO_SWARM_COLLECT' else 'host, engine'}"]


def test_a_bad_setting_given_in_code_is_the_same_error() -> None:
    from topo.errors import TopoError

    with pytest.raises(TopoError, match="TOPO_SWARM_ACCESS: 'x' is not one of host, engine") as e:
        SwarmRuntime(_Client({}), access="x")  # type: ignore[arg-type]
    assert e.value.exit_code == 2


class _NodeApi(_Api):
    """An engine that records what it was asked to do to which container."""

    def __init__(self, calls: list[tuple[str, ...]], base_url: str) -> None:
        super().__init__({})
        self.calls = calls
        self.base_url = base_url

    def kill(self, cid: str, sig: str) -> None:
        self.calls.append(("kill", cid, sig))

    def pause(self, cid: str) -> None:
        self.calls.append(("pause", cid))

    def unpause(self, cid: str) -> None:
        self.calls.append(("unpause", cid))

    def disconnect_container_from_network(self, cid: str, net: str, force: bool = False) -> None:
        self.calls.append(("disconnect", cid, net))

    def stats(self, cid: str, stream: bool, one_shot: bool) -> dict[str, Any]:
        self.calls.append(("stats", cid))
        return {"cpu_stats": {"cpu_usage": {"total_usage": 2_500_000_000},
                              "throttling_data": {"throttled_periods": 3, "throttled_time": 10**9}},
                "memory_stats": {"usage": 5000, "stats": {"inactive_file": 1000}},
                "pids_stats": {"current": 4}}


class _Exec:
    def __init__(self, calls: list[tuple[str, ...]], cid: str) -> None:
        self.calls, self.cid = calls, cid

    def exec_run(self, argv: list[str], user: str) -> tuple[int, bytes]:
        self.calls.append(("exec", self.cid, *argv[-2:]))
        return 0, b""


class _Containers:
    def __init__(self, calls: list[tuple[str, ...]]) -> None:
        self.calls = calls

    def get(self, cid: str) -> _Exec:
        return _Exec(self.calls, cid)


class _Node(_Client):
    def __init__(self, node: str, base_url: str) -> None:
        super().__init__({}, node)
        self.calls: list[tuple[str, ...]] = []
        self.api = _NodeApi(self.calls, base_url)
        self.containers = _Containers(self.calls)


def _on(node: str, cid: str) -> dict[str, Any]:
    return {"ID": f"t-{cid}", "NodeID": node, "DesiredState": "running", "CreatedAt": "1",
            "Version": {"Index": 1},
            "Status": {"State": "running", "ContainerStatus": {"ContainerID": cid}}}


def _two_nodes(access: str = "host") -> tuple[SwarmRuntime, _Node, _Node, Any]:
    """topo's node n1 (a local engine) and n2 (another engine); service w0 on n2."""
    from topo.model import DeployedContainer, Deployment

    here, there = _Node("n1", "http+docker://localhost"), _Node("n2", "tcp://node2:2376")
    given = {"access": access} if access != "host" else {}  # host: the default
    rt = SwarmRuntime(here, engines=(there,), **given)  # type: ignore[arg-type]
    rt._services["d"] = {"s-w0": "w0", "s-w1": "w1"}
    rt._all_tasks = lambda deployment: {"w0": [_on("n2", "c-w0")], "w1": [_on("n1", "c-w1")]}  # type: ignore[method-assign]
    plan = type("Plan", (), {"labels": {"topo.deployment": "d"}})()
    dep = Deployment(plan=plan, run_dir="/tmp", network_id="net1", t_deploy=0.0,  # type: ignore[arg-type]
                     containers=(DeployedContainer("w0", "worker", "s-w0"),
                                 DeployedContainer("w1", "worker", "s-w1")))
    return rt, here, there, dep


def test_faults_on_another_node_go_through_that_node_s_engine() -> None:
    rt, here, there, dep = _two_nodes()
    assert rt.kill(dep, "w0") == "engine-api"
    assert rt.kill(dep, "w0", 7) == "exec"  # a process in the container's own PID namespace
    rt.pause(dep, "w0")
    rt.unpause(dep, "w0")
    rt.disconnect(dep, "w0")
    assert there.calls == [("kill", "c-w0", "SIGKILL"), ("exec", "c-w0", "7", "9"),
                           ("pause", "c-w0"), ("unpause", "c-w0"), ("disconnect", "c-w0", "net1")]
    assert here.calls == []


def test_counters_on_another_node_come_from_its_stats_api(monkeypatch: pytest.MonkeyPatch) -> None:
    from topo.runtime.base import RawStats

    rt, here, there, dep = _two_nodes()
    local = RawStats(cpu=1.0, memory=1)
    monkeypatch.setattr(rt, "_stats_of", lambda c: local if c.id == "c-w1" else None)
    out = rt.stats(dep)
    # 2.5e9 ns, 5000 - 1000 inactive bytes, 3 periods, 1e9 ns throttled, 4 pids
    assert out == {"w0": RawStats(cpu=2.5, memory=4000, throttled_periods=3, throttled=1.0, pids=4),
                   "w1": local}
    assert there.calls == [("stats", "c-w0")] and here.calls == []


def test_engine_access_takes_the_engine_path_on_topo_s_own_node_too() -> None:
    rt, here, there, dep = _two_nodes(access="engine")
    assert rt.kill(dep, "w1") == "engine-api"
    rt.stats(dep)
    assert here.calls == [("kill", "c-w1", "SIGKILL"), ("stats", "c-w1")]


def test_a_task_on_a_node_topo_has_no_engine_for_is_one_clear_error() -> None:
    from topo.errors import RunError

    rt, here, there, dep = _two_nodes()
    rt._all_tasks = lambda deployment: {"w0": [_on("n9", "c-w0")]}  # type: ignore[method-assign]
    with pytest.raises(RunError, match="runs on node n9, whose engine topo does not reach "
                                       r"\(TOPO_SWARM_ENGINES\)"):
        rt.kill(dep, "w0")
