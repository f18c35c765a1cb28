"""The three single-container pool kinds (and the multi worker) under real faults.

The harness's own fault injection is not used here: the tests inject from the host, the way
it will, by SIGKILLing one pool worker process (a child of the container's main process) once
~30% of the batch has completed, or by making one task a memory poison (``TOPO_CONFIG``'s
``poison`` key) in a memory-limited container so that the kernel's OOM killer ends the
process that runs it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from topo import cleanup, ledger, engine as run
from topo import plan as planning
from topo.model import ContainerSpec, Resources, RunResult, Scenario, SingleSpec
from topo.runtime.docker import DockerRuntime

from .conftest import leftovers, scenario

pytestmark = pytest.mark.docker

MIB = 2**20
KILL_AT = 0.3  # fraction of the batch completed when the worker is killed
TIMEOUT = 120.0  # the run's own timeout; a pool that hangs would run into it


# --------------------------------------------------------------------------- helpers


def _events(folder: Path) -> list[dict[str, Any]]:
    """Every whole line the agents wrote so far, in file order."""
    out = []
    for path in sorted(folder.glob("*.jsonl")):
        data = path.read_bytes()
        for line in data[: data.rfind(b"\n") + 1].splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def _completed(folder: Path) -> int:
    return len({e["id"] for e in _events(folder) if e["ev"] == "task" and e["ok"]})


def _ns_pid(host_pid: int) -> int:
    """The PID a host process has inside its container (the last NSpid field)."""
    with open(f"/proc/{host_pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    raise AssertionError(f"no NSpid for {host_pid}")


@dataclass(frozen=True)
class Kill:
    t: float  # host wall clock of the SIGKILL
    container: str
    host_pid: int
    pid: int  # inside the container

    @property
    def worker(self) -> str:
        return f"{self.container}/{self.pid}"


def _kill_pool_worker(runtime: DockerRuntime, container: str) -> Kill:
    """SIGKILL one worker process of a single container: a child of its main process."""
    main = runtime.host_pid(container)
    assert main, f"{container} is not running"
    children = [
        p for p in psutil.Process(main).children()
        if "resource_tracker" not in " ".join(p.cmdline())
    ]
    assert children, f"{container} has no worker processes"
    victim = children[len(children) // 2]
    pid = _ns_pid(victim.pid)
    t = time.time()
    os.kill(victim.pid, signal.SIGKILL)
    return Kill(t=t, container=container, host_pid=victim.pid, pid=pid)


REDIS_DOWN = 3.0  # seconds Redis stays away


def _redis_outage(runtime: DockerRuntime, container: str, folder: Path, tasks: int) -> Kill:
    """Kill Redis, keep it down REDIS_DOWN seconds, start it again (empty: it saves nothing),
    then put back on the queue every task that has no outcome yet: what Redis forgot.

    A kill through the API (a manual stop) fires no restart policy, so the outage lasts as
    long as the test says."""
    main = runtime.host_pid(container)
    assert main, f"{container} is not running"
    handle = runtime.client.containers.get(container)
    cmd = handle.attrs["Config"]["Cmd"]
    cli = ["redis-cli", "-a", cmd[cmd.index("--requirepass") + 1], "--no-auth-warning"]

    def refeed() -> None:
        handle.start()
        deadline = time.monotonic() + 20
        while handle.exec_run([*cli, "PING"]).output.strip() != b"PONG":
            assert time.monotonic() < deadline, "Redis did not come back"
            time.sleep(0.1)
        resolved = {e["id"] for e in _events(folder) if e["ev"] == "task"}
        forgotten = [str(i) for i in range(tasks) if i not in resolved]
        if forgotten:
            handle.exec_run([*cli, "LPUSH", "topo:queue", *forgotten])

    t = time.time()
    handle.kill()
    threading.Timer(REDIS_DOWN, refeed).start()
    return Kill(t=t, container=container, host_pid=main, pid=1)


@dataclass(frozen=True)
class Outcome:
    result: RunResult
    kill: Kill
    events: list[dict[str, Any]]
    completed_at_kill: int  # ok records that ended before the kill
    seconds_after_kill: float  # until run.compare returned (teardown included)


def _compare_with_kill(runtime: DockerRuntime, tmp_path: Path, sc: Scenario,
                       victim: str = "pool-worker") -> Outcome:
    """Run ``sc`` (one topology) with run.compare in a thread; at KILL_AT of the batch,
    kill a pool worker (``pool-worker``) or the Redis container's main process (``redis``)."""
    (topology,) = sc.topologies
    run_id = run.new_run_id()
    deployment = f"topo-{run_id}-{topology[0]}0"
    folder = tmp_path / "raw" / deployment / "events"
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["results"] = run.compare(sc, runtime, tmp_path, lambda r, complete: None,
                                         run_id=run_id)
        except BaseException as e:  # handed to the test thread
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    kill = None
    deadline = time.monotonic() + 120
    while thread.is_alive() and time.monotonic() < deadline:
        if folder.is_dir() and _completed(folder) >= KILL_AT * sc.workload.tasks:
            if victim == "redis":
                kill = _redis_outage(runtime, f"{deployment}-redis", folder,
                                     sc.workload.tasks)
            else:
                kill = _kill_pool_worker(runtime, f"{deployment}-single")
            break
        time.sleep(0.01)
    thread.join(timeout=sc.run.timeout + 60)
    assert not thread.is_alive(), "run.compare did not return"
    if "error" in box:
        raise box["error"]
    assert kill is not None, "the run ended before the fault could be injected"
    seconds_after_kill = time.time() - kill.t
    assert leftovers(runtime, run_id) == []
    (result,) = box["results"]
    done_before = {r.id for r in result.records if r.ok and r.end <= kill.t}
    return Outcome(result, kill, _events(folder), len(done_before), seconds_after_kill)


def _single(pool: str, tasks: int = 80, workers: int = 3, cpu_ms: float = 40.0,
            timeout: float = TIMEOUT) -> Scenario:
    return scenario(task="cpu", tasks=tasks, workers=workers, cpus=1.5,
                    params={"cpu_ms": cpu_ms}, single=SingleSpec(pool=pool), multi=None,
                    timeout=timeout)


def _ledger(r: RunResult):  # type: ignore[no-untyped-def]
    # Ledger's own check raises if submitted != completed + failed + lost
    return ledger.build_ledger(r.task_count, r.records, r.retried)


def _outcomes(r: RunResult) -> dict[int, str]:
    return ledger.outcomes(r.task_count, r.records)


# --------------------------------------------------------------------------- kill a worker


def test_process_pool_one_dead_worker_fails_the_pending_batch(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    out = _compare_with_kill(runtime, tmp_path, _single("process-pool"))
    r, lg = out.result, _ledger(out.result)
    print(f"\nprocess-pool kill: completed={lg.completed} failed={lg.failed} lost={lg.lost} "
          f"(completed at kill: {out.completed_at_kill})")
    assert r.status == "ok", r.error  # every task has an outcome: PID 1 failed the pending
    not_done = r.task_count - out.completed_at_kill
    assert lg.failed >= 0.5 * not_done, (lg, out.completed_at_kill)
    assert lg.lost == 0 and lg.completed + lg.failed == r.task_count
    failures = [rec for rec in r.records if not rec.ok]
    assert all(rec.error and rec.error.startswith("BrokenProcessPool") for rec in failures)
    assert all(rec.start is None and rec.worker == out.kill.container for rec in failures)
    assert len(r.workers) == 3  # nobody replaced the dead worker


def test_mp_pool_loses_the_dead_workers_task_and_stops_waiting(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    workers = 3
    out = _compare_with_kill(runtime, tmp_path, _single("mp-pool", workers=workers))
    r, lg = out.result, _ledger(out.result)
    lost = [i for i, state in _outcomes(r).items() if state == ledger.LOST]
    stalls = [e for e in out.events if e["ev"] == "stall"]
    frozen = lg.lost > 1
    print(f"\nmp-pool kill: completed={lg.completed} failed={lg.failed} lost={lg.lost} "
          f"(completed at kill: {out.completed_at_kill}; run over {out.seconds_after_kill:.1f}s "
          f"after the kill{'; the pool froze' if frozen else ''})")
    assert lg.failed == 0
    if not frozen:
        # one task per worker in flight: exactly the killed worker's task is lost
        assert (lg.completed, lg.lost) == (r.task_count - 1, 1), lg
    else:
        # the kill caught the worker inside one of the pool's queue locks (rare): the other
        # workers wait for it forever, so nothing completes beyond what was in flight
        assert lg.completed <= out.completed_at_kill + workers, lg
    # PID 1 gave up on exactly the tasks that never completed, in one stall line
    assert len(stalls) == 1 and stalls[0]["pending"] == lost, stalls
    # the dead worker wrote nothing after the kill, and the run did not hang
    assert not [rec for rec in r.records if rec.worker == out.kill.worker and rec.end > out.kill.t]
    assert r.status != "timeout" and out.seconds_after_kill < TIMEOUT / 4
    assert stalls[0]["t"] - out.kill.t < 30
    # the Pool replaced it: a fourth worker announced itself, and PID 1 saw the death
    assert len(r.workers) == workers + 1 and out.kill.worker in {w.worker for w in r.workers}
    exits = [e for e in out.events if e["ev"] == "exit"]
    assert [e["w"] for e in exits] == [out.kill.worker]


def test_supervisor_requeues_the_dead_workers_task(runtime: DockerRuntime, tmp_path: Path) -> None:
    out = _compare_with_kill(runtime, tmp_path, _single("supervisor"))
    r, lg = out.result, _ledger(out.result)
    print(f"\nsupervisor kill: completed={lg.completed} failed={lg.failed} lost={lg.lost} "
          f"requeued={lg.retried} duplicated={lg.duplicated}")
    assert r.status == "ok", r.error
    assert (lg.completed, lg.failed, lg.lost) == (r.task_count, 0, 0), lg
    assert lg.retried >= 1
    requeues = [e for e in out.events if e["ev"] == "requeue"]
    assert {e["w"] for e in requeues} == {out.kill.worker}
    assert all(e["by"] == f"{out.kill.container}/1" for e in requeues)
    exits = [e for e in out.events if e["ev"] == "exit"]
    assert [(e["w"], e["code"]) for e in exits] == [(out.kill.worker, -9)]
    assert len(r.workers) == 4  # the replacement said ready


# --------------------------------------------------------------------------- poison (oom)


def _poisoned(spec: ContainerSpec, poison: list[int]) -> ContainerSpec:
    cfg = json.loads(spec.env["TOPO_CONFIG"])
    cfg["poison"] = poison
    return replace(spec, env={**spec.env, "TOPO_CONFIG": json.dumps(cfg, sort_keys=True)})


def _run_poisoned(runtime: DockerRuntime, tmp_path: Path, sc: Scenario,
                  poison: list[int]) -> tuple[RunResult, list[dict[str, Any]]]:
    (topology,) = sc.topologies
    image = runtime.ensure_image(sc)
    run_id = run.new_run_id()
    deployment = f"topo-{run_id}-{topology[0]}0"
    p = planning.plan(sc, topology, run_id, deployment, image, secrets.token_hex(16),
                      owner=cleanup.owner_label())
    p = replace(p, containers=tuple(
        _poisoned(c, poison) if c.role in ("single", "worker") else c for c in p.containers))
    run_dir = tmp_path / "raw" / deployment
    r = run.run_one(runtime, p, run_dir, index=0, warmup=False, timeout=60)
    assert leftovers(runtime, run_id) == []
    return r, _events(run_dir / "events")


def _small(pool: str | None, cpu_ms: float = 30.0) -> Scenario:
    sc = scenario(task="cpu", tasks=40, workers=2, cpus=1.0, params={"cpu_ms": cpu_ms},
                  single=SingleSpec(pool=pool) if pool else None,
                  **({"multi": None} if pool else {}))
    return replace(sc, resources=Resources(cpus=1.0, memory=256 * MIB))


def _no_survivor(records: Any) -> None:
    # the poison never ran to its fallback (MemoryError): the OOM killer ended it first
    assert not [rec for rec in records if rec.error and "MemoryError" in rec.error]


def test_supervisor_gives_up_a_poison_task(runtime: DockerRuntime, tmp_path: Path) -> None:
    r, events = _run_poisoned(runtime, tmp_path, _small("supervisor"), [5])
    lg = _ledger(r)
    print(f"\nsupervisor oom: completed={lg.completed} failed={lg.failed} lost={lg.lost} "
          f"requeued={lg.retried}")
    assert r.status == "ok", r.error
    assert (lg.completed, lg.failed, lg.lost) == (39, 1, 0), lg
    (failure,) = [rec for rec in r.records if not rec.ok]
    assert failure.id == 5 and failure.error == "given up after 3 attempts"
    _no_survivor(r.records)
    exits = [e for e in events if e["ev"] == "exit"]
    assert len(exits) == 3 and {e["code"] for e in exits} == {-9}  # OOM-killed, 3 times
    assert [e["id"] for e in events if e["ev"] == "requeue"] == [5, 5, 5]
    # every replacement announced itself; after the last death there may be nothing left to
    # do (every other task done), and then no replacement is started
    assert len(r.workers) in (2 + 2, 2 + 3)


def test_process_pool_poison_breaks_the_pool(runtime: DockerRuntime, tmp_path: Path) -> None:
    r, _ = _run_poisoned(runtime, tmp_path, _small("process-pool", cpu_ms=50), [5])
    lg = _ledger(r)
    print(f"\nprocess-pool oom: completed={lg.completed} failed={lg.failed} lost={lg.lost}")
    assert r.status == "ok", r.error
    states = _outcomes(r)
    assert states[5] == ledger.FAILED
    assert lg.lost == 0 and lg.failed >= 10 and lg.completed + lg.failed == 40, lg
    failures = [rec for rec in r.records if not rec.ok]
    assert all(rec.error and rec.error.startswith("BrokenProcessPool") for rec in failures)
    _no_survivor(r.records)


def test_mp_pool_poison_is_lost(runtime: DockerRuntime, tmp_path: Path) -> None:
    r, events = _run_poisoned(runtime, tmp_path, _small("mp-pool"), [5])
    lg = _ledger(r)
    print(f"\nmp-pool oom: completed={lg.completed} failed={lg.failed} lost={lg.lost}")
    assert (lg.completed, lg.failed, lg.lost) == (39, 0, 1), lg
    assert _outcomes(r)[5] == ledger.LOST
    assert [e["pending"] for e in events if e["ev"] == "stall"] == [[5]]
    assert len(r.workers) == 3


def test_multi_worker_dead_letters_a_poison_task(runtime: DockerRuntime, tmp_path: Path) -> None:
    r, events = _run_poisoned(runtime, tmp_path, _small(None), [5])
    lg = _ledger(r)
    print(f"\nmulti oom: completed={lg.completed} failed={lg.failed} lost={lg.lost} "
          f"requeued={lg.retried}")
    assert r.status == "ok", r.error
    assert (lg.completed, lg.failed, lg.lost) == (39, 1, 0), lg
    (failure,) = [rec for rec in r.records if not rec.ok]
    assert failure.id == 5 and failure.error == "dead-lettered after 3 deliveries"
    _no_survivor(r.records)


# --------------------------------------------------------------------------- redis outage


def test_multi_workers_survive_a_redis_outage(runtime: DockerRuntime, tmp_path: Path) -> None:
    sc = scenario(task="cpu", tasks=80, workers=2, cpus=1.0, params={"cpu_ms": 40}, single=None,
                  timeout=60.0)
    out = _compare_with_kill(runtime, tmp_path, sc, victim="redis")
    r, lg = out.result, _ledger(out.result)
    errors = [e for e in out.events if e["ev"] == "error" and e["t"] <= max(
        rec.end for rec in r.records)]
    print(f"\nmulti redis outage: completed={lg.completed} failed={lg.failed} lost={lg.lost} "
          f"duplicated={lg.duplicated} (completed at kill: {out.completed_at_kill}; "
          f"error lines: {len(errors)})")
    # the workers carried on with the restarted, empty Redis: once the test put back what
    # it forgot, the whole batch completed, and both workers took part after the outage
    assert r.status == "ok", r.error
    assert (lg.completed, lg.failed, lg.lost) == (80, 0, 0), lg
    back = out.kill.t + REDIS_DOWN
    over = max(rec.end for rec in r.records)  # then teardown, which Redis may not survive
    for name in sorted(c.name for c in r.containers if c.role == "worker"):
        assert [rec for rec in r.records if rec.worker.startswith(name + "/") and rec.start
                and rec.start > back], f"{name} did no work after the outage"
        mine = [e for e in out.events if e.get("c") == name]
        kinds = [e["ev"] for e in mine]
        # no crash and no container restart: one start, and nothing fatal
        assert kinds.count("expect") == 1 and kinds.count("ready") == 1, kinds
        # at most one error line per outage, each followed by a reconnect. A worker may
        # also see no error at all: when its next command comes once Redis is back (name
        # resolution of a stopped container stalls ~5 s), redis-py reconnects on its own
        own = [e for e in mine if e["ev"] == "error" and e["t"] <= over]
        assert all(e.get("recoverable") is True for e in own), own
        assert len(own) <= 1 and kinds.count("reconnect") == len(own), mine
