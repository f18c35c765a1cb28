"""The command line itself: --version, --format choices and usage errors (exit 2, one line)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def topo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # `import docker` fails in this interpreter: a refused option must not reach the engine.
    code = ("import sys; sys.modules['docker'] = None; sys.argv = ['topo'] + sys.argv[1:];"
            " from topo.cli import main; main()")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, **env})


def test_version_prints_the_installed_distributions_version() -> None:
    p = topo("--version")
    assert p.returncode == 0, p.stderr
    # The package's own literal, read as text: the wheel's metadata is built from it.
    source = re.search(r'__version__ = "([^"]+)"', (ROOT / "topo" / "__init__.py").read_text())
    assert source and metadata.version("topo") == source[1]
    assert p.stdout == f"topo {source[1]}\n" and p.stderr == ""


# (command, the arguments before --format, the formats it prints): from README's command table
COMMANDS = [
    ("compare", ["scenarios/cpu.yaml"], ["table", "md", "json"]),
    ("report", ["tests/golden/small.result.json"], ["table", "md", "html", "json"]),
    ("diff", ["tests/golden/small.result.json"] * 2, ["table", "json"]),
]


@pytest.mark.parametrize(("command", "args", "formats"), COMMANDS)
def test_format_lists_its_choices_in_help_and_refuses_another_on_one_line(
    command: str, args: list[str], formats: list[str]
) -> None:
    help_text = topo(command, "--help", COLUMNS="200").stdout
    assert f"<{'|'.join(formats)}>" in help_text, help_text
    p = topo(command, *args, "--format", "pdf")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("topo: usage error: Invalid value for '--format': "), p.stderr
    assert "'pdf' is not one of " + ", ".join(f"'{f}'" for f in formats) in p.stderr
    assert len(p.stderr.splitlines()) == 1


def test_report_formats_are_the_renderers_formats() -> None:
    from topo import cli, report

    assert tuple(f.value for f in cli.ReportFormat) == report.FORMATS


@pytest.mark.parametrize(("args", "message"), [
    (["compare", "--bogus", "x"], "No such option: --bogus"),
    (["report"], "Missing argument 'result_file'."),
    (["nosuch"], "No such command 'nosuch'."),
])
def test_typers_own_usage_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    p = topo(*args)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith(f"topo: usage error: {message}"), p.stderr
    assert len(p.stderr.splitlines()) == 1


def test_topo_alone_prints_the_help_and_exits_2() -> None:
    p = topo()
    assert p.returncode == 2
    assert "Usage: topo [OPTIONS] COMMAND" in p.stdout + p.stderr
    assert "usage error" not in p.stderr


@pytest.mark.parametrize("workers", ["0,2", "1,x", "65", ""])
def test_sweep_refuses_worker_counts_as_a_usage_error_before_the_engine(workers: str) -> None:
    p = topo("sweep", "scenarios/cpu.yaml", "--workers", workers)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == ("topo: usage error: Invalid value for '--workers': a comma-separated list"
                        f" of counts from 1 to 64, got {workers!r}\n")
