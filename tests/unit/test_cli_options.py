"""The command line itself: --version, --format choices and usage errors (exit 2, one line)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from .terminal import run_on_a_terminal

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
    ("compare", ["scenarios/cpu.yaml"], ["table", "md", "html", "json"]),
    ("report", ["tests/golden/small.result.json"], ["table", "md", "html", "json"]),
    ("diff", ["tests/golden/small.result.json"] * 2, ["table", "md", "json"]),
    ("sweep", ["scenarios/cpu.yaml"], ["table", "json"]),
]


@pytest.mark.parametrize(("command", "args", "formats"), COMMANDS)
def test_format_lists_its_choices_in_help_and_refuses_another_on_one_line(
    command: str, args: list[str], formats: list[str]
) -> None:
    help_text = topo(command, "--help", COLUMNS="200").stdout
    assert f"<{'|'.join(formats)}>" in help_text, help_text
    p = topo(command, *args, "--format", "pdf")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("topo: usage error: Invalid value for '-f' / '--format': "), p.stderr
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


# One run of 20 tasks as topo.engine reports it, then a second run's start and end.
FEED = """
import sys
from topo import cli
from topo.engine import Progress
show = cli._progress()
for topology, phase, done, t in [("single", "deploy", 0, 0.0), ("single", "ready", 0, 0.4),
                                 ("single", "run", 5, 1.0), ("single", "run", 20, 2.0),
                                 ("single", "teardown", 20, 2.1), ("multi", "deploy", 0, 0.0),
                                 ("multi", "teardown", 0, 0.3)]:
    show(Progress(topology, 0, 1, done, 20, t, phase))
print(type(show).__name__, file=sys.stderr)
"""
COLOUR = re.compile(r"\x1b\[[0-9;]*\b(3[0-7]|38|9[0-7])[;m]")  # a foreground colour (SGR)


def test_piped_progress_is_a_plain_line_per_phase() -> None:
    p = subprocess.run([sys.executable, "-c", FEED], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert p.stderr.splitlines() == [
        "single run 1/1  deploy   0/20 tasks    0.0s",
        "single run 1/1  ready    0/20 tasks    0.4s",
        "single run 1/1  run      5/20 tasks    1.0s",
        "single run 1/1  teardown 20/20 tasks    2.1s",
        "multi  run 1/1  deploy   0/20 tasks    0.0s",
        "multi  run 1/1  teardown 0/20 tasks    0.3s",
        "_ProgressLine",
    ]


def on_a_terminal(**env: str) -> str:
    """FEED's stderr when it is a terminal (a pseudo-terminal here)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    return run_on_a_terminal([sys.executable, "-c", FEED], stream="stderr", cwd=ROOT,
                             env={**environ, "TERM": "xterm-256color", **env})


def test_on_a_terminal_each_run_is_a_live_bar_coloured_unless_no_color() -> None:
    text = on_a_terminal()
    assert text.rstrip().endswith("_LiveBars")
    final = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line).strip()
             for line in text.replace("\r", "\n").splitlines()]
    assert re.search(r"single run 1/1  teardown .*━.* 20/20 tasks    2\.1s", "\n".join(final))
    assert any(line.startswith("multi  run 1/1  teardown") and "0/20 tasks    0.3s" in line
               for line in final)
    assert COLOUR.search(text)
    plain = on_a_terminal(NO_COLOR="1")
    assert plain.rstrip().endswith("_LiveBars") and "20/20 tasks" in plain
    assert not COLOUR.search(plain)
