"""workload.data (validated, mounted read-only at /data in every worker, in the runtime and in
Compose files, handed to the task) and single.preload (parsed, passed to PID 1, which then
imports, or only looks for, the task module)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from topo import compose, results
from topo import plan as planning
from topo.agent.single import locate
from topo.errors import ScenarioError
from topo.model import Mount, RunResult
from topo.scenario import load, unreadable
from topo.workloads import bind
from tests.unit.test_compose import SCENARIO, started_by_runtime
from tests.unit.test_report_cli import topo

HEAD = "name: etl\nworkload:\n  task: etl\n  data: {data}\nworkers: 3\n"  # data: line 4


def _scenario_file(tmp_path: Path, data: str, extra: str = "") -> Path:
    path = tmp_path / "sc.yaml"
    path.write_text(HEAD.format(data=data) + extra)
    return path


def _readable(folder: Path) -> None:
    folder.mkdir()
    folder.chmod(0o755)  # whatever the umask: the containers' user may read it


def _error(path: Path) -> str:
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message  # the file as given, folder included
    return message.removeprefix(f"{path.parent}/")


# --------------------------------------------------------------------------- validation


def test_data_is_resolved_against_the_scenarios_folder(tmp_path: Path) -> None:
    _readable(tmp_path / "inputs")
    sc = load(_scenario_file(tmp_path, "./inputs"))
    assert sc.workload.data == str((tmp_path / "inputs").resolve())


def test_a_missing_data_folder_is_one_line_naming_file_line_and_field(tmp_path: Path) -> None:
    message = _error(_scenario_file(tmp_path, "./nowhere"))
    assert message == f"sc.yaml:4: workload.data: no such folder: './nowhere' (relative to {tmp_path})"


def test_a_file_is_not_a_data_folder(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("a\n")
    assert _error(_scenario_file(tmp_path, "f.csv")).startswith("sc.yaml:4: workload.data: no such folder")


def test_a_folder_the_containers_user_cannot_enter_is_refused_with_the_fix(tmp_path: Path) -> None:
    data = tmp_path / "private"
    data.mkdir(mode=0o700)
    data.chmod(0o700)  # the umask may have taken bits away; set exactly these
    message = _error(_scenario_file(tmp_path, "private"))
    assert message.startswith("sc.yaml:4: workload.data: ")
    assert f"'{data}' is not readable by the containers' user (uid 10001)" in message
    assert f"chmod -R o+rX '{data}'" in message


def test_one_unreadable_file_deep_inside_is_named(tmp_path: Path) -> None:
    data = tmp_path / "d"
    (data / "a" / "b").mkdir(parents=True)
    for folder in (data, data / "a", data / "a" / "b"):
        folder.chmod(0o755)
    (data / "a" / "ok.csv").write_text("x\n")
    (data / "a" / "ok.csv").chmod(0o644)
    secret = data / "a" / "b" / "secret.csv"
    secret.write_text("x\n")
    secret.chmod(0o600)
    assert unreadable(data) == secret
    secret.chmod(0o604)  # others may read
    assert unreadable(data) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to the containers' uid needs root")
def test_owner_and_group_bits_count_for_the_containers_uid_and_gid(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    data.chmod(0o750)
    os.chown(data, 0, 10001)  # group 10001 may read and enter, others may not
    assert unreadable(data) is None
    f = data / "rows.csv"
    f.write_text("x\n")
    f.chmod(0o600)
    os.chown(f, 10001, 0)  # the containers' user owns it
    assert unreadable(data) is None
    f.chmod(0o060)  # its owner bits say no, even though group bits say yes
    assert unreadable(data) == f


@pytest.mark.parametrize("value, line", [("true", True), ("false", False)])
def test_preload_reads_a_boolean(tmp_path: Path, value: str, line: bool) -> None:
    _readable(tmp_path / "in")
    sc = load(_scenario_file(tmp_path, "in", f"topologies:\n  single:\n    preload: {value}\n"))
    assert sc.single is not None and sc.single.preload is line


@pytest.mark.parametrize("value, got", [("1", "got 1"), ("'true'", "got 'true' (a string)"),
                                        ("[true]", "got a list")])
def test_preload_refuses_anything_but_a_boolean(tmp_path: Path, value: str, got: str) -> None:
    _readable(tmp_path / "in")
    path = _scenario_file(tmp_path, "in", f"topologies:\n  single:\n    preload: {value}\n")
    assert _error(path) == f"sc.yaml:8: topologies.single.preload: must be true or false, {got}"


def test_preload_defaults_to_false(tmp_path: Path) -> None:
    _readable(tmp_path / "in")
    sc = load(_scenario_file(tmp_path, "in"))
    assert sc.single is not None and sc.single.preload is False


# --------------------------------------------------------------------------- plan

DATA = "/srv/team/partitions"
WITH_DATA = replace(SCENARIO, workload=replace(SCENARIO.workload, data=DATA))


def _plan(topology: str, scenario=WITH_DATA):  # type: ignore[no-untyped-def]
    return planning.plan(scenario, topology, "r1", f"topo-r1-{topology[0]}0", "img:1", "pw")


def test_every_worker_container_of_both_topologies_mounts_the_data_read_only() -> None:
    single, multi = _plan("single"), _plan("multi")
    expected = (Mount(source=DATA, target="/data", read_only=True),)
    by_role = {c.name: (c.role, c.mounts) for c in single.containers + multi.containers}
    assert {name: mounts for name, (role, mounts) in by_role.items() if mounts} == {
        "topo-r1-s0-single": expected, "topo-r1-m0-w0": expected, "topo-r1-m0-w1": expected,
        "topo-r1-m0-w2": expected}  # 3 workers; not Redis, not the feeder
    for c in single.containers + multi.containers:
        cfg = json.loads(c.env["TOPO_CONFIG"]) if "TOPO_CONFIG" in c.env else {}
        if c.role in ("single", "worker"):
            assert c.env["TOPO_DATA"] == "/data" and cfg["data_dir"] == "/data"
        else:
            assert "TOPO_DATA" not in c.env and "data_dir" not in cfg


def test_without_data_nothing_is_mounted_or_announced() -> None:
    for topology in ("single", "multi"):
        for c in _plan(topology, SCENARIO).containers:
            assert c.mounts == () and "TOPO_DATA" not in c.env
            assert "data_dir" not in json.loads(c.env.get("TOPO_CONFIG", "{}"))


def test_preload_reaches_the_single_containers_configuration() -> None:
    for preload in (True, False):
        assert SCENARIO.single is not None
        sc = replace(SCENARIO, single=replace(SCENARIO.single, preload=preload))
        (single,) = _plan("single", sc).containers
        assert json.loads(single.env["TOPO_CONFIG"])["preload"] is preload


@pytest.mark.parametrize("topology", ["single", "multi"])
def test_runtime_and_compose_file_mount_the_data_the_same_way(topology: str) -> None:
    plan = _plan(topology)
    rendered = yaml.safe_load(compose.render(plan, WITH_DATA))["services"]
    roles = {c.name: c.role for c in plan.containers}
    for name, run in started_by_runtime(plan).items():
        service = rendered[compose.SERVICE[roles[name]]]  # one service per role
        data_volumes = [v for v in service["volumes"] if v["target"] == "/data"]
        if name.endswith(("-redis", "-feeder")):
            assert data_volumes == [] and DATA not in run["volumes"]
            continue
        assert run["volumes"][DATA] == {"bind": "/data", "mode": "ro"}
        assert data_volumes == [{"type": "bind", "source": "${TOPO_DATA_DIR:-" + DATA + "}",
                                 "target": "/data", "read_only": True}]


def test_a_result_file_keeps_the_mounts_data_and_preload(tmp_path: Path) -> None:
    assert WITH_DATA.single is not None
    sc = replace(WITH_DATA, single=replace(WITH_DATA.single, preload=True))
    plan = _plan("single", sc)
    run = RunResult(topology="single", index=0, warmup=False, status="ok", error=None,
                    task_count=1, t_deploy=1.0, t_ready=None, t_available=None, t_end=2.0,
                    records=(), samples=(), workers=(), containers=plan.containers)
    path = tmp_path / "result.json"
    results.save(path, results.to_json(sc, [run], {}, True))
    loaded, (again,), _ = results.load(path)
    assert loaded.workload.data == DATA and loaded.single is not None and loaded.single.preload
    assert again.containers == plan.containers


# --------------------------------------------------------------------------- in the agents


def _user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    pkg = tmp_path / "teampkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise RuntimeError('the package ran')\n")
    (pkg / "job.py").write_text(body)
    (tmp_path / "flat.py").write_text("raise RuntimeError('the module ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_locate_finds_a_module_without_running_it_or_its_package(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _user_module(tmp_path, monkeypatch, "raise RuntimeError('ran')\n")
    locate("teampkg.job:run")
    locate("flat:run")
    locate("etl")
    assert not {"teampkg", "teampkg.job", "flat"} & set(sys.modules)


@pytest.mark.parametrize("task, message", [
    ("nosuchmodule:run", "No module named 'nosuchmodule'"),  # as `import` says it
    ("teampkg.nope:run", "No module named 'teampkg.nope'"),
    ("flat.job:run", "No module named 'flat.job'; 'flat' is not a package"),
])
def test_locate_says_what_import_would_say(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str, message: str) -> None:
    _user_module(tmp_path, monkeypatch, "")
    with pytest.raises(ModuleNotFoundError) as info:
        locate(task)
    assert str(info.value) == message


def test_a_task_that_names_data_dir_gets_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _user_module(tmp_path, monkeypatch, "")
    monkeypatch.setitem(sys.modules, "teampkg", type(sys)("teampkg"))
    module = type(sys)("teampkg.job")
    module.run = lambda task_id, data_dir: (task_id, data_dir)  # type: ignore[attr-defined]
    module.plain = lambda task_id: task_id  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "teampkg.job", module)
    assert bind("teampkg.job:run", {}, 1, "/data")(5) == (5, "/data")
    assert bind("teampkg.job:run", {}, 1)(6) == (6, None)  # no data configured
    assert bind("teampkg.job:plain", {}, 1, "/data")(7) == 7  # not named: not passed


def test_compare_with_a_missing_data_folder_stops_before_docker_and_writes_nothing(
        tmp_path: Path) -> None:
    scenario = _scenario_file(tmp_path, "../gone")
    before = sorted(tmp_path.rglob("*"))
    p = topo("compare", str(scenario), "--out", str(tmp_path / "out"))  # docker unimportable
    assert p.returncode == 2
    assert p.stderr == (f"topo: error: {scenario}:4: workload.data: no such folder: '../gone' "
                        f"(relative to {tmp_path})\n")
    assert sorted(tmp_path.rglob("*")) == before


def test_the_reports_method_says_whether_single_preloaded_and_where_the_data_was() -> None:
    from topo.analysis.build import from_comparison
    from topo.model import Comparison
    from topo.report import markdown

    assert SCENARIO.single is not None
    for preload, data in ((True, DATA), (False, None)):
        sc = replace(SCENARIO, single=replace(SCENARIO.single, preload=preload),
                     workload=replace(SCENARIO.workload, data=data))
        text = markdown.render(from_comparison(Comparison(scenario=sc, runs=(), rows=())))
        said_preload = "forked after PID 1 imported the task module (preload)." in text
        said_data = f"- Every worker container read {DATA} mounted read-only at /data." in text
        assert (said_preload, said_data) == (preload, data is not None)
