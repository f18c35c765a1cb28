"""Preflight: a scenario against what the (fake) engine offers, before any deploy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import FakeRuntime
from topo.errors import ScenarioError
from topo.preflight import EngineFacts, Problem, check, cpuset_cpus, field_line, problems
from topo.scenario import load

GIB = 1024**3
SCENARIO = """\
version: 1
name: pf
workload: {{task: noop, tasks: 10}}
workers: 4
resources:
  cpus: {cpus}
  memory: {memory}
  cpuset: {cpuset}
topologies:
  single: {{pool: process-pool}}
  multi:
    restart: on-failure
    redis: {{cpus: 0.5, memory: 256m}}
faults:
  - {{name: freeze, kind: pause, at: 50%, duration: 1s}}
  - {{name: die, kind: kill-worker, at: 50%}}
"""


def scenario(tmp_path: Path, cpus: object = 2, memory: str = "1g", cpuset: str = "null"):  # type: ignore[no-untyped-def]
    path = tmp_path / "pf.yaml"
    path.write_text(SCENARIO.format(cpus=cpus, memory=memory, cpuset=cpuset))
    return load(path)


def messages(tmp_path: Path, engine: dict[str, object], **fields: object) -> list[str]:
    sc = scenario(tmp_path, **fields)  # type: ignore[arg-type]
    found = problems(sc, EngineFacts.of(FakeRuntime(engine=engine).info()))
    return [f"{p.field}: {p.message}" for p in found]


def test_a_scenario_that_fits_has_no_problem(tmp_path: Path) -> None:
    assert messages(tmp_path, {}) == []
    check(scenario(tmp_path), FakeRuntime())  # does not raise


def test_a_budget_larger_than_the_engine_is_named_with_file_and_line(tmp_path: Path) -> None:
    sc = scenario(tmp_path, cpus=64)
    with pytest.raises(ScenarioError) as err:
        check(sc, FakeRuntime())  # 2 CPUs
    # line 6 of the file is "  cpus: 64"
    assert str(err.value) == f"{sc.source}:6: resources.cpus: a budget of 64 CPUs on an engine with 2: at most 2"
    assert err.value.exit_code == 2


def test_memory_counts_redis_and_the_feeder_on_top_for_multi(tmp_path: Path) -> None:
    # 1.8 GiB fits a 2 GiB engine for single; multi adds 256 MiB + 64 MiB = 2.11 GiB.
    assert messages(tmp_path, {"memory": 2 * GIB}, memory="1843m") == [
        "resources.memory: multi needs 2.1 GiB with Redis and the feeder; the engine has 2.0 GiB"]
    assert messages(tmp_path, {"memory": 2 * GIB}, memory="1g") == []


def test_cpuset_against_the_engine_cpus(tmp_path: Path) -> None:
    assert messages(tmp_path, {}, cpuset='"1-3"', cpus=1) == [
        "resources.cpuset: '1-3' names CPU 3; the engine's CPUs are 0-1"]
    assert messages(tmp_path, {}, cpuset='"1"', cpus=2) == [
        "resources.cpus: a budget of 2 CPUs pinned to 1 (resources.cpuset '1') can never be used"]
    assert messages(tmp_path, {"cpuset": False}, cpuset='"0"', cpus=1) == [
        "resources.cpuset: this engine cannot pin containers to CPUs"]
    assert cpuset_cpus("0-2,5") == {0, 1, 2, 5}


def test_faults_the_engine_cannot_inject(tmp_path: Path) -> None:
    assert messages(tmp_path, {"freezer": False}) == [
        "faults[0].kind: pause needs the cgroup freezer, which this engine's host does not have"]
    # A remote engine (DOCKER_HOST) takes every fault: the runtime signals from inside the
    # container when the host PIDs are not visible.
    assert messages(tmp_path, {"local": False}) == []


def test_restart_policy_and_limits_the_engine_lacks(tmp_path: Path) -> None:
    assert messages(tmp_path, {"restart_policies": ["no", "always"]}) == [
        "topologies.multi.restart: this engine knows the restart policies no, always,"
        " not 'on-failure'"]
    assert messages(tmp_path, {"cpu_quota": False, "memory_limit": False}) == [
        "resources.cpus: this engine cannot enforce a CPU quota (no CFS quota support), so no"
        " budget can be given",
        "resources.memory: this engine cannot enforce a memory limit, so no budget can be given"]


def test_unknown_facts_are_not_held_against_the_scenario(tmp_path: Path) -> None:
    unknown = {k: None for k in ("cpus", "memory", "cpu_quota", "memory_limit", "cpuset",
                                 "freezer", "local")}
    assert messages(tmp_path, unknown, cpus=64, cpuset='"0-63"') == []


def test_several_problems_are_one_line_naming_the_first(tmp_path: Path) -> None:
    sc = scenario(tmp_path, cpus=64)
    with pytest.raises(ScenarioError) as err:
        check(sc, FakeRuntime(engine={"freezer": False}))
    assert str(err.value).endswith("at most 2 (and 1 more)")
    assert "\n" not in str(err.value)


def test_field_line_finds_nested_and_listed_fields(tmp_path: Path) -> None:
    sc = scenario(tmp_path)
    assert field_line(sc.source, "topologies.multi.redis.cpus") == 13
    assert field_line(sc.source, "topologies.multi.restart") == 12
    assert field_line(sc.source, "faults[1].kind") == 16
    # not written in the file: the nearest parent that is
    assert field_line(sc.source, "topologies.multi.queue") == 11
    assert field_line(str(tmp_path / "gone.yaml"), "resources.cpus") is None
    assert isinstance(Problem("a", "b"), Problem)
