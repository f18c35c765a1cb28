"""topo.engine.compare end to end on the FakeRuntime and its clock (no real sleep): deploy, ready, go, collect, teardown, save."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import EXIT_LOG, IMAGE, MIB, FakeRuntime, event_lines, scenario
from topo.analysis import figures as figures_of
from topo.analysis import comparison as comparison_of
from topo import results as result_file
from topo import engine as runner
from topo.ledger import build_ledger
from topo.model import ContainerSpec, Fault, Ledger, RunResult, Spread
from topo.engine import EngineConfig
from topo.runtime.base import Runtime

RUN_ID = "abc123"
SINGLE = f"topo-{RUN_ID}-s"
MULTI = f"topo-{RUN_ID}-m"
NAMES_2X2 = [f"{SINGLE}0", f"{MULTI}0", f"{SINGLE}1", f"{MULTI}1"]


class SaveLog:
    """The ``save`` callback: remembers (number of results, complete) of every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []
        self.last: list[RunResult] = []

    def __call__(self, results: list[RunResult], complete: bool) -> None:
        self.calls.append((len(results), complete))
        self.last = list(results)


def ledger(result: RunResult) -> Ledger:
    return build_ledger(result.task_count, result.records, result.retried)


def test_the_fake_provides_every_method_of_the_runtime_protocol():
    wanted = {name for name in vars(Runtime) if not name.startswith("_")}
    assert wanted and wanted <= set(dir(FakeRuntime))


# --------------------------------------------------------------------------- faulty batch

FAULTY = scenario(tasks=20, workers=2, repeat=2)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One comparison (2 x 2 runs) with task 3 failing, 5 lost and 7 done twice."""
    out = tmp_path_factory.mktemp("faulty")
    runtime = FakeRuntime(fail_ids={3}, lose_ids={5}, duplicate_ids={7})
    save = SaveLog()
    results = runner.compare(FAULTY, runtime, out, save, run_id=RUN_ID, clock=runtime.clock)
    return {"out": out, "runtime": runtime, "save": save, "results": results}


def test_runs_alternate_single_multi(faulty):
    results = faulty["results"]
    assert [(r.topology, r.index, r.warmup) for r in results] == [
        ("single", 0, False), ("multi", 0, False), ("single", 1, False), ("multi", 1, False)]
    assert faulty["runtime"].images == ["fake"]
    assert {p.image for p in faulty["runtime"].plans} == {IMAGE}


def test_every_deployment_names_this_process_as_its_owner(faulty):
    """A caller that gives no owner (the integration tests) still labels what it starts, so a
    killed test run's containers are found by the next sweep. The label names this process
    by host and PID (read here from the OS, not from topo.cleanup)."""
    import os
    import socket

    owners = {p.labels["topo.owner"] for p in faulty["runtime"].plans}
    assert len(owners) == 1
    host, pid, _started = owners.pop().split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())


def test_every_ledger_balances_and_shows_the_configured_faults(faulty):
    for r in faulty["results"]:
        # A lost task never resolves; the workers exit when the queue is empty.
        assert (r.status, r.error) == ("workers-exited", None)
        retried = 1 if r.topology == "multi" else 0  # a duplicate follows a requeue
        assert ledger(r) == Ledger(submitted=20, completed=18, failed=1, lost=1,
                                   duplicated=1, retried=retried)
        failures = [rec for rec in r.records if not rec.ok]
        assert [(f.id, f.error) for f in failures] == [(3, "RuntimeError: fake failure of task 3")]
        assert sorted(rec.id for rec in r.records if rec.ok) == sorted(
            [i for i in range(20) if i not in (3, 5)] + [7])


def test_times_and_workers_of_each_run(faulty):
    for r in faulty["results"]:
        assert r.t_deploy <= r.t_ready <= r.t_available <= min(x.end for x in r.records)
        assert max(x.end for x in r.records) <= r.t_end
        assert (r.budget_cpus, r.budget_memory) == (2.0, 512 * MIB)
    single, multi = faulty["results"][:2]
    assert sorted(w.worker for w in single.workers) == [
        f"{SINGLE}0-single/101", f"{SINGLE}0-single/102"]
    assert sorted(w.worker for w in multi.workers) == [f"{MULTI}0-w0/7", f"{MULTI}0-w1/7"]
    assert {w.quota for w in single.workers} == {2.0}
    assert {w.quota for w in multi.workers} == {1.0}


def test_save_is_called_after_every_run_and_finally_complete(faulty):
    # an empty, incomplete file first: a result file exists however topo ends
    assert faulty["save"].calls == [(0, False), (1, False), (2, False), (3, False), (4, False),
                                    (4, True)]
    assert faulty["save"].last == faulty["results"]


def test_every_deployment_is_torn_down(faulty):
    runtime = faulty["runtime"]
    assert runtime.deployed == NAMES_2X2
    assert runtime.torn_down == NAMES_2X2


def test_cpu_and_memory_figures_are_the_fakes_counters(faulty):
    # 20 attempts per run (19 ids executed, id 7 twice) at 0.01 CPU s each.
    for r in faulty["results"]:
        figures = figures_of.run_figures(r)
        workers = [c for c in figures.containers if c.role in ("single", "worker")]
        assert sum(c.cpu_total for c in workers) == pytest.approx(0.20)
        assert figures.task_cpu == pytest.approx(0.19)  # ok attempts only
        # single: 2 processes x 8 MiB; multi: 2 x 8 MiB + redis 4 MiB + feeder 2 MiB
        assert figures.peak_memory == (16 * MIB if r.topology == "single" else 22 * MIB)


def test_stats_compare_counts(faulty):
    comparison = comparison_of.compare(FAULTY, faulty["results"])
    rows = {row.key: row for row in comparison.rows}
    assert (rows["completed"].single, rows["completed"].multi) == (
        Spread(18, 18, 18, 2, 18.0, 0.0, (18, 18)), Spread(18, 18, 18, 2, 18.0, 0.0, (18, 18)))
    assert rows["completed"].ratio.value == 1.0
    for key, single, multi in (("failed", 1, 1), ("lost", 1, 1), ("duplicated", 1, 1),
                               ("retried", 0, 1)):
        assert (rows[key].single, rows[key].multi) == (
            Spread(single, single, single, 2, single, 0.0, (single, single)),
            Spread(multi, multi, multi, 2, multi, 0.0, (multi, multi))), key
    assert [f.ledger.completed for f in comparison.runs] == [18, 18, 18, 18]


def round_trip(sc, results: list[RunResult], path: Path) -> tuple[Any, list[RunResult], dict]:
    result_file.save(path, result_file.to_json(sc, results, {"hostname": "test"}, complete=True))
    return result_file.load(path)


def test_result_file_round_trip(faulty, tmp_path):
    results = faulty["results"]
    password = dict(results[1].containers[1].env)["TOPO_REDIS_PASSWORD"]
    assert len(password) == 32
    path = tmp_path / "result.json"

    loaded_scenario, loaded_runs, loaded_doc = round_trip(FAULTY, results, path)

    assert loaded_scenario == FAULTY
    assert loaded_runs == [_redacted(r) for r in results]
    assert loaded_runs[0] == results[0]  # single: no secret, so exactly equal
    assert all(r.samples and r.signals for r in loaded_runs)  # not trivially empty
    assert (loaded_doc["complete"], loaded_doc["host"]) == (True, {"hostname": "test"})
    text = path.read_text()
    assert password not in text
    assert text.count('"***"') == 2 * (2 + 2)  # per multi run: 2 workers, feeder, redis cmd
    # Redaction works on a copy: the results in memory keep their secret.
    assert dict(results[1].containers[1].env)["TOPO_REDIS_PASSWORD"] == password


def _redacted(result: RunResult) -> RunResult:
    def hide(c: ContainerSpec) -> ContainerSpec:
        env = {k: "***" if k == "TOPO_REDIS_PASSWORD" else v for k, v in c.env.items()}
        cmd = tuple("***" if i and c.command[i - 1] == "--requirepass" else a
                    for i, a in enumerate(c.command))
        return dataclasses.replace(c, env=env, command=cmd)

    return dataclasses.replace(result, containers=tuple(hide(c) for c in result.containers))


# --------------------------------------------------------------------------- clean batch


def test_clean_batch_is_ok_with_the_agents_event_format(tmp_path):
    runtime = FakeRuntime()
    phases: list[tuple[str, int, str, int]] = []
    results = runner.compare(scenario(repeat=1), runtime, tmp_path, SaveLog(),
                             progress=lambda p: phases.append((p.topology, p.index, p.phase,
                                                               p.completed)),
                             run_id=RUN_ID, clock=runtime.clock)

    assert [(r.topology, r.status, r.error) for r in results] == [
        ("single", "ok", None), ("multi", "ok", None)]
    assert [ledger(r) for r in results] == [Ledger(20, 20, 0, 0, 0, 0)] * 2
    assert runtime.torn_down == [f"{SINGLE}0", f"{MULTI}0"]
    for topology in ("single", "multi"):
        seen = [ph for t, _, ph, _ in phases if t == topology]
        assert list(dict.fromkeys(seen)) == ["deploy", "ready", "run", "teardown"]
        assert [c for t, _, ph, c in phases if t == topology and ph == "teardown"] == [20]

    single = event_lines(tmp_path / "raw" / f"{SINGLE}0")
    multi = event_lines(tmp_path / "raw" / f"{MULTI}0")
    assert {e["c"]: e["n"] for e in single if e["ev"] == "expect"} == {f"{SINGLE}0-single": 2}
    assert {e["c"]: e["n"] for e in multi if e["ev"] == "expect"} == {
        f"{MULTI}0-w0": 1, f"{MULTI}0-w1": 1, f"{MULTI}0-feeder": 0}
    assert [e["c"] for e in single if e["ev"] == "avail"] == [f"{SINGLE}0-single"]
    assert [e["c"] for e in multi if e["ev"] == "avail"] == [f"{MULTI}0-feeder"]
    for lines in (single, multi):
        assert sum(e["ev"] == "ready" for e in lines) == 2
        tasks = [e for e in lines if e["ev"] == "task"]
        assert sorted(e["id"] for e in tasks) == list(range(20))
        assert set(tasks[0]) == {"ev", "id", "w", "ok", "t0", "t1", "cpu", "core", "err"}
        assert len({e["w"] for e in tasks}) == 2  # the batch was shared out


def test_processes_auto_runs_as_many_workers_as_the_container_reports_cores(tmp_path):
    runtime = FakeRuntime(cpu_count=3)
    [result] = runner.compare(scenario(repeat=1, topologies=("single",), processes="auto"),
                              runtime, tmp_path, SaveLog(), run_id=RUN_ID, clock=runtime.clock)
    assert result.status == "ok"
    assert len(result.workers) == 3
    assert {w.cpu_count for w in result.workers} == {3}


def test_an_auto_sized_pool_bigger_than_its_quota_is_flagged(tmp_path):
    runtime = FakeRuntime(cpu_count=3)  # budget: 2 CPUs
    sc = scenario(repeat=1, topologies=("single",), processes="auto")
    [result] = runner.compare(sc, runtime, tmp_path, SaveLog(), run_id=RUN_ID,
                              clock=runtime.clock)
    assert figures_of.run_figures(result).oversubscribed == (f"{SINGLE}0-single",)
    text = "\n".join(comparison_of.compare(sc, [result]).warnings)
    assert 'the pool sized "auto" in' in text and "started 3 processes for a quota of 2 CPUs" in text
    assert "reports the host's cores (3)" in text


def test_an_explicit_pool_bigger_than_its_quota_is_flagged(tmp_path):
    runtime = FakeRuntime()
    [result] = runner.compare(scenario(repeat=1, topologies=("single",), processes=3),
                              runtime, tmp_path, SaveLog(), run_id=RUN_ID, clock=runtime.clock)
    assert figures_of.run_figures(result).oversubscribed == (f"{SINGLE}0-single",)


# --------------------------------------------------------------------------- faults

PAUSE = Fault(name="freeze", kind="pause", at_fraction=0.25, duration=0.5)
KILL = Fault(name="kill", kind="kill-container", at_fraction=0.5)


def test_each_fault_gets_its_own_runs_and_is_recorded_as_data(tmp_path):
    runtime = FakeRuntime()
    sc = scenario(repeat=1, faults=(PAUSE, KILL))
    results = runner.compare(sc, runtime, tmp_path, SaveLog(), run_id=RUN_ID, clock=runtime.clock)

    assert runtime.deployed == runtime.torn_down == [
        f"{SINGLE}0", f"{MULTI}0", f"{SINGLE}0f1", f"{MULTI}0f1", f"{SINGLE}0f2", f"{MULTI}0f2"]
    assert [(r.topology, r.fault) for r in results] == [
        ("single", None), ("multi", None), ("single", PAUSE), ("multi", PAUSE),
        ("single", KILL), ("multi", KILL)]
    # single's only container is killed without a restart policy: the rest is never done
    assert [r.status for r in results] == ["ok"] * 4 + ["workers-exited", "ok"]
    assert [ledger(r).submitted for r in results] == [20] * 6
    assert results[0].fault_events == results[1].fault_events == ()

    # A pause stops one process of single (SIGSTOP) and freezes one container of multi,
    # for the fault's duration by the engine's clock.
    events = [r.fault_events[0] for r in results[2:]]
    assert [(e.name, e.status, e.target, e.error) for e in events] == [
        ("freeze", "injected", f"{SINGLE}0f1-single/101", None),
        ("freeze", "injected", f"{MULTI}0f1-w0", None),
        ("kill", "injected", f"{SINGLE}0f2-single", None),
        ("kill", "injected", f"{MULTI}0f2-w0", None)]
    for e in events[:2]:
        assert e.t is not None and e.t_end == pytest.approx(e.t + 0.5, abs=0.06)
    assert [c for c in runtime.calls if c[0] != "workers"] == [
        ("stop", f"{SINGLE}0f1-single", 101), ("cont", f"{SINGLE}0f1-single", 101),
        ("pause", f"{MULTI}0f1-w0"), ("unpause", f"{MULTI}0f1-w0"),
        ("kill", f"{SINGLE}0f2-single"), ("kill", f"{MULTI}0f2-w0")]

    loaded_scenario, loaded_runs, _ = round_trip(sc, results, tmp_path / "faults.json")
    assert loaded_scenario == sc
    assert loaded_runs == [_redacted(r) for r in results]


# --------------------------------------------------------------------------- failures


def test_workers_never_ready_is_an_error_and_still_torn_down(tmp_path):
    runtime = FakeRuntime(never_ready=True)
    save = SaveLog()
    results = runner.compare(scenario(repeat=1), runtime, tmp_path, save, run_id=RUN_ID,
                             clock=runtime.clock, config=EngineConfig(ready_timeout=12))

    assert [(r.topology, r.status) for r in results] == [("single", "error"), ("multi", "error")]
    for r in results:
        assert r.error == "workers not ready after 12s"
        assert r.t_end - r.t_deploy == pytest.approx(12, abs=0.2)  # the fake clock's time
        assert (r.records, r.workers, r.t_ready, r.t_available) == ((), (), None, None)
        assert ledger(r) == Ledger(20, 0, 0, 20, 0, 0)
    assert runtime.torn_down == runtime.deployed == [f"{SINGLE}0", f"{MULTI}0"]
    assert save.calls == [(0, False), (1, False), (2, False), (2, True)]


def test_container_exiting_before_ready_names_it_with_its_log(tmp_path):
    runtime = FakeRuntime(exit_before_ready=True)
    results = runner.compare(scenario(repeat=1), runtime, tmp_path, SaveLog(), run_id=RUN_ID,
                             clock=runtime.clock)

    assert [r.status for r in results] == ["error", "error"]
    assert results[0].error == (
        f"{SINGLE}0-single exited with code 1 before it was ready: {EXIT_LOG}")
    assert results[1].error == f"{MULTI}0-w0 exited with code 1 before it was ready: {EXIT_LOG}"
    assert runtime.torn_down == runtime.deployed == [f"{SINGLE}0", f"{MULTI}0"]


def test_timeout_ends_the_run_and_leaves_tasks_lost(tmp_path):
    # 40 tasks of 1 s on 2 workers need 20 s; the run may take 5.
    runtime = FakeRuntime(task_seconds=1.0)
    results = runner.compare(scenario(tasks=40, repeat=1, timeout=5), runtime, tmp_path,
                             SaveLog(), run_id=RUN_ID, clock=runtime.clock)

    assert [r.status for r in results] == ["timeout", "timeout"]
    for r, name in zip(results, (f"{SINGLE}0", f"{MULTI}0")):
        # what the fake agents wrote before the teardown, counted from their files
        done = {e["id"] for e in event_lines(tmp_path / "raw" / name) if e["ev"] == "task"}
        # the watch polls every 0.05 s: it sees 5 s passed at 5.05 s, after 2 x 5 tasks
        assert len(done) == 10
        assert ledger(r) == Ledger(40, len(done), 0, 40 - len(done), 0, 0)
    assert runtime.torn_down == runtime.deployed == [f"{SINGLE}0", f"{MULTI}0"]


def test_a_saved_file_written_by_the_save_callback_is_valid_json(tmp_path):
    """The way the CLI wires it: save(results, complete) writes the result file each time."""
    path = tmp_path / "result.json"
    snapshots: list[dict[str, Any]] = []
    sc = scenario(repeat=1)

    def save(results: list[RunResult], complete: bool) -> None:
        result_file.save(path, result_file.to_json(sc, results, {}, complete))
        snapshots.append(json.loads(path.read_text()))

    runtime = FakeRuntime()
    runner.compare(sc, runtime, tmp_path, save, run_id=RUN_ID, clock=runtime.clock)
    assert [(len(s["runs"]), s["complete"]) for s in snapshots] == [(0, False), (1, False),
                                                                    (2, False), (2, True)]
    assert not list(Path(tmp_path).glob("*.tmp"))


def test_the_schedule_interleaves_topologies_and_runs_faults_after_the_warmups():
    from topo.engine.schedule import schedule

    sc = scenario(repeat=2, warmup=1, faults=(PAUSE, KILL))
    got = [(s.deployment, s.warmup, s.fault.name if s.fault else None)
           for s in schedule(sc, RUN_ID)]
    assert got == [
        (f"{SINGLE}0", True, None), (f"{MULTI}0", True, None),  # warm-ups: no fault
        (f"{SINGLE}1", False, None), (f"{MULTI}1", False, None),
        (f"{SINGLE}1f1", False, "freeze"), (f"{MULTI}1f1", False, "freeze"),
        (f"{SINGLE}1f2", False, "kill"), (f"{MULTI}1f2", False, "kill"),
        (f"{SINGLE}2", False, None), (f"{MULTI}2", False, None),
        (f"{SINGLE}2f1", False, "freeze"), (f"{MULTI}2f1", False, "freeze"),
        (f"{SINGLE}2f2", False, "kill"), (f"{MULTI}2f2", False, "kill")]
