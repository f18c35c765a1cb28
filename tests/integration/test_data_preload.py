"""workload.data and single.preload on the real engine.

- The data folder is readable at data_dir in every worker of both topologies (tasks compare
  what they read with what the test wrote) and is read-only (a task that writes there fails
  and is counted failed, and nothing reaches the host folder).
- preload: the task module records every process that imports it; with preload PID 1 alone
  imports it, without it each of the N pool workers does, in every pool kind.
- The pandas example end to end, through the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from topo import ledger, engine as run
from topo.model import RunResult, Scenario, SingleSpec, Workload
from topo.runtime.docker import DockerRuntime

from .conftest import ROOT, leftovers, scenario

pytestmark = pytest.mark.docker

CODE = str(Path(__file__).resolve().parent / "data_workload")


def _with(sc: Scenario, task: str, tasks: int, params: dict, data: Path | None) -> Scenario:  # type: ignore[type-arg]
    workload = Workload(task=task, tasks=tasks, params=params, seed=3, path=CODE,
                        data=None if data is None else str(data))
    return replace(sc, workload=workload)


def _compare(runtime: DockerRuntime, tmp_path: Path, sc: Scenario) -> list[RunResult]:
    run_id = run.new_run_id()
    results = run.compare(sc, runtime, tmp_path / "out", lambda r, complete: None, run_id=run_id)
    assert leftovers(runtime, run_id) == []
    return results


def _data(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o755)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        (folder / name).chmod(0o644)
    return folder


def test_every_worker_of_both_topologies_reads_the_data(runtime: DockerRuntime, tmp_path: Path) -> None:
    data = _data(tmp_path, {"in-0.txt": "alpha", "in-1.txt": "beta", "in-2.txt": "gamma"})
    # The third expectation is wrong on purpose: tasks 2, 5, 8 and 11 must fail, showing
    # that the tasks really compare what they read (12 tasks, 3 files: ids with id % 3 == 2).
    expect = ["alpha", "beta", "not gamma"]
    # Each task holds its worker 50 ms after the read (asleep): a read alone takes well under
    # a scheduler slice, and one pool worker once ran all 12 before the other took any.
    sc = _with(scenario(workers=2, cpus=1.0), "datatask:read", 12,
               {"expect": expect, "hold": 0.05}, data)
    for r in _compare(runtime, tmp_path, sc):
        assert r.status == "ok", (r.topology, r.error)
        lg = ledger.build_ledger(r.task_count, r.records, r.retried)
        assert (lg.completed, lg.failed, lg.lost) == (8, 4, 0), r.topology
        failed = {rec.id: rec.error for rec in r.records if not rec.ok}
        assert sorted(failed) == [2, 5, 8, 11]
        assert all(e == "ValueError: in-2.txt holds 'gamma', expected 'not gamma'" for e in failed.values())
        assert len({rec.worker for rec in r.records}) == 2, r.topology  # both workers read


def test_the_data_is_read_only_and_a_task_that_writes_there_fails(
        runtime: DockerRuntime, tmp_path: Path) -> None:
    data = _data(tmp_path, {"keep.txt": "x"})
    # 10 tasks, every 4th writes: ids 0, 4 and 8 fail, the other 7 complete.
    sc = _with(scenario(workers=2, cpus=1.0), "datatask:write", 10, {"every": 4}, data)
    for r in _compare(runtime, tmp_path, sc):
        lg = ledger.build_ledger(r.task_count, r.records, r.retried)
        assert (lg.completed, lg.failed, lg.lost) == (7, 3, 0), r.topology
        errors = {rec.id: rec.error for rec in r.records if not rec.ok}
        assert sorted(errors) == [0, 4, 8]
        assert all("Read-only file system" in (e or "") for e in errors.values()), errors
    assert sorted(p.name for p in data.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("pool", ["process-pool", "mp-pool", "supervisor"])
def test_preload_imports_the_module_once_before_the_fork_otherwise_in_each_worker(
        runtime: DockerRuntime, tmp_path: Path, pool: str) -> None:
    workers = 3
    seen = {}
    for preload in (True, False):
        base = scenario(workers=workers, cpus=1.0, single=SingleSpec(pool=pool, preload=preload))
        sc = replace(_with(base, "datatask:noop", 12, {}, None), multi=None)
        folder = tmp_path / str(preload)
        (result,) = _compare(runtime, folder, sc)
        assert result.status == "ok", result.error
        (raw,) = (folder / "out" / "raw").iterdir()
        seen[preload] = sorted(int(p.name.rsplit("-", 1)[1]) for p in raw.glob("imported-*"))
        pool_pids = {int(w.worker.split("/")[1]) for w in result.workers}
        assert len(pool_pids) == workers
        if preload:
            assert seen[preload] == [1]  # PID 1 of the container, before it forked
        else:
            assert set(seen[preload]) == pool_pids  # each worker, none in PID 1
    assert len(seen[True]) == 1 and len(seen[False]) == workers


def test_pandas_example_end_to_end(runtime: DockerRuntime, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = "import sys; sys.argv = ['topo'] + sys.argv[1:]; from topo.cli import main; main()"
    p = subprocess.run([sys.executable, "-c", code, "compare", "scenarios/pandas-etl.yaml",
                        "--out", str(out), "--format", "json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1800,
                       env={**os.environ, "NO_COLOR": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    doc = json.loads((out / "result.json").read_text())
    assert doc["complete"] is True
    assert [r["topology"] for r in doc["runs"]] == ["single", "multi"]
    for r in doc["runs"]:
        ids = sorted(rec["id"] for rec in r["records"] if rec["ok"])
        assert ids == list(range(240)), (r["topology"], r["error"])
        data = [c["mounts"] for c in r["containers"] if c["role"] in ("single", "worker")]
        assert data and all(m == [{"source": str(ROOT / "examples" / "pandas-etl" / "data"),
                                   "target": "/data", "read_only": True}] for m in data)
    assert not any(x for x in (ROOT / "examples" / "pandas-etl").rglob("*.whl"))


@pytest.mark.parametrize("pool", ["process-pool", "mp-pool", "supervisor"])
def test_without_preload_an_import_error_in_the_workers_is_named(
        runtime: DockerRuntime, tmp_path: Path, pool: str) -> None:
    base = scenario(workers=2, cpus=1.0, single=SingleSpec(pool=pool, preload=False))
    sc = replace(_with(base, "brokenimport:run", 4, {}, None), multi=None)
    (result,) = _compare(runtime, tmp_path, sc)
    assert result.status == "error"
    assert result.error is not None and result.error.endswith(
        ": ModuleNotFoundError: No module named 'not_installed_dependency'"), result.error
