"""What `topo compare` leaves in --out, driven through the command on the fake runtime: the
scenario copied beside the result, the exit code when runs fail, and a saved report.md that
`topo report` rebuilds byte for byte from result.json."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeRuntime
from topo import cli
from topo import engine as engines
from topo import results as result_files

SCENARIO = """\
version: 1
name: files
workload:
  task: noop
  tasks: 12
  requirements: deps/requirements.txt
workers: 2
resources: {cpus: 2, memory: 512m}
run: {repeat: 1, timeout: 10s}
"""


class _MultiExits(FakeRuntime):
    """Every multi worker exits before it is ready; single runs are untouched."""

    def deploy(self, plan: Any, run_dir: str) -> Any:
        self.exit_before_ready = plan.topology == "multi"
        return super().deploy(plan, run_dir)


def _topo(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
          *args: str, runtime: FakeRuntime | None = None) -> tuple[int, str, str]:
    """Run the command in this process; compare meets ``runtime`` instead of Docker."""
    fake = runtime or FakeRuntime()
    real_compare = engines.compare
    monkeypatch.setattr(cli, "_start_measuring", lambda sc, kind=None: (fake, "rf1"))
    monkeypatch.setattr(engines, "compare",
                        lambda *a, **kw: real_compare(*a, **kw, clock=fake.clock))
    monkeypatch.setattr(sys, "argv", ["topo", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    captured = capsys.readouterr()
    return int(done.value.code or 0), captured.out, captured.err


class _Ticking:
    """The time module as topo.results sees it, a minute later at every look: a comparison
    takes time, and the saved report must still say when it was measured, not written."""

    def __init__(self) -> None:
        self.looks = 0

    def gmtime(self) -> time.struct_time:
        self.looks += 1
        return time.gmtime(1_800_000_000 + 60 * self.looks)

    def strftime(self, fmt: str, t: time.struct_time) -> str:
        return time.strftime(fmt, t)


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "team"
    (folder / "deps").mkdir(parents=True)
    (folder / "scenario-files.yaml").write_text(SCENARIO, encoding="utf-8")
    (folder / "deps" / "requirements.txt").write_text("# nothing to install\n", encoding="utf-8")
    return folder


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_the_scenario_and_its_requirements_are_copied_and_reproduced_from(
        monkeypatch, capsys, scenario_dir, tmp_path):
    original = scenario_dir / "scenario-files.yaml"
    out = tmp_path / "out"
    code, _, err = _topo(monkeypatch, capsys, "compare", str(original), "--out", str(out), "-q")
    assert code == 0, err
    assert _sha256(out / "scenario.yaml") == hashlib.sha256(SCENARIO.encode()).hexdigest()
    assert _sha256(out / "scenario.yaml") == _sha256(original)
    assert (_sha256(out / "deps" / "requirements.txt")
            == hashlib.sha256(b"# nothing to install\n").hexdigest())
    for report in ("report.md", "report.html"):
        text = (out / report).read_text(encoding="utf-8")
        assert f"topo compare {out}/scenario.yaml" in text
        assert f"topo compare {original}" not in text
    assert json.loads((out / "result.json").read_text())["scenario_copy"] == f"{out}/scenario.yaml"


def test_the_saved_report_md_is_what_topo_report_rebuilds(monkeypatch, capsys, scenario_dir,
                                                          tmp_path):
    monkeypatch.setattr(result_files, "time", _Ticking())
    out = tmp_path / "out"
    code, _, err = _topo(monkeypatch, capsys, "compare", str(scenario_dir / "scenario-files.yaml"),
                         "--out", str(out), "-q")
    assert code == 0, err
    rebuilt = tmp_path / "rebuilt.md"
    code, _, err = _topo(monkeypatch, capsys, "report", str(out), "-f", "md", "-o", str(rebuilt),
                         "-q")
    assert code == 0, err
    assert rebuilt.read_bytes() == (out / "report.md").read_bytes()
    created = json.loads((out / "result.json").read_text())["created"]
    assert f"| measured | {created} |" in rebuilt.read_text(encoding="utf-8")


def test_failed_runs_exit_1_after_every_file_is_written_and_are_named(
        monkeypatch, capsys, scenario_dir, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = _topo(monkeypatch, capsys, "compare",
                              str(scenario_dir / "scenario-files.yaml"), "--out", str(out), "-q",
                              runtime=_MultiExits())
    assert code == 1
    assert stdout.startswith("verdict:")  # the comparison is still printed
    for name in ("result.json", "report.md", "report.html", "scenario.yaml", "compose/multi.yaml"):
        assert (out / name).is_file(), name
    runs = json.loads((out / "result.json").read_text())["runs"]
    assert [(r["topology"], r["status"] == "ok") for r in runs] == [("single", True),
                                                                    ("multi", False)]
    lines = err.splitlines()
    assert any(line.startswith(f"run multi #0: {runs[1]['status']}") for line in lines), err
    assert not any(line.startswith("run single") for line in lines), err
    assert lines[-1].startswith("topo: error: 1 of 2 run(s) did not end ok"), err


def test_a_sweep_copies_the_scenario_and_each_point_reproduces_its_own_n(
        monkeypatch, capsys, scenario_dir, tmp_path):
    original = scenario_dir / "scenario-files.yaml"
    out = tmp_path / "swept"
    code, _, err = _topo(monkeypatch, capsys, "sweep", str(original), "--workers", "1,3",
                         "-o", str(out), "-q")
    assert code == 0, err
    assert _sha256(out / "scenario.yaml") == hashlib.sha256(SCENARIO.encode()).hexdigest()
    assert (out / "deps" / "requirements.txt").exists()
    for n in (1, 3):
        document = json.loads((out / f"workers-{n}" / "result.json").read_text())
        assert (document["scenario_copy"], document["sweep_workers"]) == (f"{out}/scenario.yaml", n)
        code, text, err = _topo(monkeypatch, capsys, "report",
                                str(out / f"workers-{n}" / "result.json"), "-f", "md")
        assert code == 0, err
        # the file says 2 workers; this point was measured at n
        assert f"Reproduce: `topo sweep {out}/scenario.yaml --workers {n}`" in text
