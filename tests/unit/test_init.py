"""`topo init module:function`: the scenario it writes loads back with the fields a person
would write by hand; it never overwrites; and the pandas example's data is what its
generator writes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from topo.model import MultiSpec, SingleSpec
from topo.scenario import load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pandas-etl"


def topo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; sys.argv = ['topo'] + sys.argv[1:]; from topo.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _project(tmp_path: Path) -> Path:
    """A team's checkout: code under src/, requirements at the top, scenarios elsewhere."""
    (tmp_path / "src" / "team" / "jobs").mkdir(parents=True)
    (tmp_path / "src" / "team" / "__init__.py").write_text("")
    (tmp_path / "src" / "team" / "jobs" / "daily.py").write_text("def run(task_id): pass\n")
    (tmp_path / "scenarios").mkdir()
    return tmp_path


def test_init_writes_a_scenario_that_loads_back_as_written_by_hand(tmp_path: Path) -> None:
    project = _project(tmp_path)
    p = topo(project, "init", "team.jobs.daily:run", "--out", "scenarios/daily.yaml")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "wrote scenarios/daily.yaml; next: topo compare scenarios/daily.yaml\n"
    text = (project / "scenarios" / "daily.yaml").read_text()
    assert "  path: ../src  #" in text  # relative to the scenario file, as the loader reads it
    assert "  # data: ./data" in text and "  # requirements:" in text  # commented out
    sc = load(project / "scenarios" / "daily.yaml")
    assert (sc.name, sc.workload.task, sc.workload.tasks, sc.workload.seed) == (
        "daily", "team.jobs.daily:run", 200, 1)
    assert sc.workload.path == str(project / "src") and sc.workload.data is None
    assert dict(sc.workload.params) == {} and sc.workers == 4
    assert sc.resources.cpus == min(2, os.cpu_count() or 1) and sc.resources.memory == 2 * 1024**3
    assert sc.single == SingleSpec(pool="process-pool", processes=None, preload=False)
    assert sc.multi == MultiSpec()
    assert (sc.run.repeat, sc.run.timeout) == (3, 300.0)


def test_init_points_at_the_requirements_file_nearest_above_the_code(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (project / "requirements.txt").write_text("tabulate==0.9.0\n")
    p = topo(project, "init", "team.jobs.daily:run", "--out", "scenarios/daily.yaml")
    assert p.returncode == 0, p.stderr
    assert "  requirements: ../requirements.txt  #" in (project / "scenarios" / "daily.yaml").read_text()
    sc = load(project / "scenarios" / "daily.yaml")
    assert sc.workload.requirements == str(project / "requirements.txt")
    assert sc.workload.path == str(project / "src")


def test_init_names_the_default_file_after_the_module_and_never_overwrites(tmp_path: Path) -> None:
    project = _project(tmp_path)
    assert topo(project, "init", "team.jobs.daily:run").returncode == 0
    before = (project / "daily.yaml").read_text()
    assert "  path: ./src  #" in before
    p = topo(project, "init", "team.jobs.daily:run")
    assert p.returncode == 2
    assert p.stderr == ("topo: usage error: Invalid value for '--out': daily.yaml exists; topo init"
                        " never overwrites a file\n")
    assert (project / "daily.yaml").read_text() == before


def test_a_module_not_found_is_said_and_left_for_the_user_to_fill_in(tmp_path: Path) -> None:
    p = topo(tmp_path, "init", "elsewhere.job:run")
    assert p.returncode == 0
    assert p.stderr == f"topo init: elsewhere.job was not found under {tmp_path}: set workload.path in the file\n"
    assert "  # path: ./src  # NOT FOUND" in (tmp_path / "job.yaml").read_text()
    assert load(tmp_path / "job.yaml").workload.path is None


@pytest.mark.parametrize("task", ["job", "a-b:run", "a.:run", "a:b:c", ""])
def test_a_task_that_is_not_module_function_is_a_usage_error(tmp_path: Path, task: str) -> None:
    p = topo(tmp_path, "init", task)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr == ("topo: usage error: Invalid value for TASK: expected package.module:function,"
                        f" got {task!r}\n")
    assert list(tmp_path.iterdir()) == []


def test_the_example_data_is_exactly_what_its_generator_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_data", EXAMPLE / "make_data.py")
    assert spec is not None and spec.loader is not None
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    written = make_data.write(tmp_path)
    committed = sorted((EXAMPLE / "data").glob("*.csv.gz"))
    assert [p.name for p in written] == [p.name for p in committed] and len(committed) == 8
    for new, old in zip(written, committed):
        assert new.read_bytes() == old.read_bytes(), new.name
