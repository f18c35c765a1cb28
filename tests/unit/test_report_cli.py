"""`topo report` and `topo diff` from saved result files, with Docker unimportable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .terminal import run_on_a_terminal

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
SMALL = str(GOLDEN / "small.result.json")
REGRESSED = str(GOLDEN / "small-regressed.result.json")
# `import docker` raises ImportError in this interpreter: the path must not need it.
NO_DOCKER = (
    "import sys; sys.modules['docker'] = None; sys.argv = ['topo'] + sys.argv[1:];"
    " from topo.cli import main; main()"
)


def topo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return subprocess.run([sys.executable, "-c", NO_DOCKER, *args], capture_output=True,
                          text=True, timeout=120, env={**environ, **env})


def test_report_renders_every_format_without_docker(tmp_path: Path) -> None:
    table = topo("report", SMALL)
    assert table.returncode == 0, table.stderr
    verdict, header = table.stdout.split("\n\n")[:2]
    assert verdict.startswith("verdict: ") and header.startswith("scenario small: task cpu × 120")
    as_json = topo("report", SMALL, "--format", "json")
    assert json.loads(as_json.stdout)["schema"] == "topo.comparison"
    out = tmp_path / "report.html"
    written = topo("report", SMALL, "--format", "html", "--out", str(out))
    assert written.returncode == 0 and written.stdout == ""
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_report_marks_a_partial_result_without_ansi_when_not_a_terminal() -> None:
    p = topo("report", REGRESSED)
    assert p.stdout.startswith("INCOMPLETE: the result file is partial")
    assert "\033[" not in p.stdout


def test_report_refuses_an_unknown_format_with_exit_2() -> None:
    p = topo("report", SMALL, "--format", "pdf")
    assert p.returncode == 2
    # typer's own refusal of an Enum choice, on one line
    assert p.stderr.startswith("topo: usage error: Invalid value for '-f' / '--format': ")
    assert "'pdf' is not one of 'table', 'md', 'html', 'json'" in p.stderr
    assert len(p.stderr.splitlines()) == 1


def test_report_of_a_missing_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    p = topo("report", str(tmp_path / "nope.json"))
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1
    assert p.stderr.startswith("topo: error: ")


def test_diff_flags_regressions_and_exits_3_when_a_threshold_fails() -> None:
    p = topo("diff", SMALL, REGRESSED, "--fail-if", "multi.throughput < 0.9 * single.throughput",
             NO_COLOR="1")
    assert p.returncode == 3, p.stderr
    assert "REGRESSION" in p.stdout and "INCOMPLETE: B is a partial result" in p.stdout
    assert "\033[" not in p.stdout
    assert p.stderr.startswith("threshold failed: multi.throughput < 0.9 * single.throughput (")


def test_diff_passes_a_threshold_that_holds_and_prints_json() -> None:
    p = topo("diff", SMALL, REGRESSED, "--format", "json", "--fail-if", "multi.lost > 0")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["regressions"] > 0


def test_diff_refuses_code_in_a_threshold_with_exit_2() -> None:
    p = topo("diff", SMALL, SMALL, "--fail-if", "__import__('os').system('echo hacked')")
    assert p.returncode == 2
    assert "hacked" not in p.stdout + p.stderr.replace("echo hacked", "")
    assert p.stderr.startswith("topo: usage error: Invalid value for '--fail-if': ")
    assert len(p.stderr.splitlines()) == 1


def on_a_terminal(*args: str, **env: str) -> str:
    """What `topo` prints when its stdout is a terminal (a pseudo-terminal here)."""
    environ = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return run_on_a_terminal([sys.executable, "-c", NO_DOCKER, *args], stream="stdout",
                             env={**environ, **env})


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    assert "\033[31mREGRESSION\033[0m" in on_a_terminal("diff", SMALL, REGRESSED)
    assert "\033[" not in on_a_terminal("diff", SMALL, REGRESSED, NO_COLOR="1")
    assert "\033[1;31mINCOMPLETE" in on_a_terminal("report", REGRESSED)
