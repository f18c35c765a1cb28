"""What a user of other command-line tools expects of topo's: output any console can take,
errors that name what was given, one option vocabulary, help without noise."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from topo import output

from .test_report_cli import SMALL, topo

ROOT = Path(__file__).resolve().parents[2]


def raw(*args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    code = ("import sys; sys.modules['docker'] = None; sys.argv = ['topo'] + sys.argv[1:];"
            " from topo.cli import main; main()")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          timeout=120, env={**os.environ, **env})


# small.md holds – — × … → (counted by hand from `topo report small.result.json -f md`)
@pytest.mark.parametrize(("encoding", "replaced"), [
    ("cp1252", {"→": "->"}),  # cp1252 has – — × … but no arrow
    ("ascii", {"→": "->", "–": "-", "—": "-", "×": "x", "…": "..."}),
])
def test_a_report_prints_on_a_console_without_utf8(encoding: str, replaced: dict[str, str]
                                                    ) -> None:
    # before: UnicodeEncodeError "character maps to <undefined>" with cp1252
    p = raw("report", SMALL, "-f", "md", PYTHONIOENCODING=encoding)
    assert p.returncode == 0 and b"Traceback" not in p.stderr, p.stderr
    utf8 = raw("report", SMALL, "-f", "md").stdout.decode("utf-8")
    assert p.stdout.decode(encoding) == utf8.translate(str.maketrans(replaced))


def test_a_diff_prints_on_an_ascii_console() -> None:
    p = raw("diff", SMALL, SMALL, PYTHONIOENCODING="ascii")
    assert p.returncode == 0 and b"Traceback" not in p.stderr
    p.stdout.decode("ascii")  # the table's "—" (no change) is written as "-"


def test_shorten_cuts_at_a_word() -> None:
    text = "Docker engine: create container: 409 Conflict: the name is already in use"
    assert output.shorten(text, 40) == "Docker engine: create container: 409..."
    assert output.shorten(text, 200) == text
    assert output.shorten("x" * 50, 20) == "x" * 17 + "..."


def test_report_of_a_missing_path_names_it_without_errno(tmp_path: Path) -> None:
    # before: "topo: error: /nope: cannot read result file: [Errno 2] No such file or ..."
    p = topo("report", "/nope")
    assert p.returncode == 1
    assert p.stderr == ("topo: error: /nope: no such file; give a result.json that topo"
                        " compare saved\n")
    empty = topo("report", str(tmp_path))
    assert empty.stderr == (f"topo: error: {tmp_path} holds no result.json; give a result.json"
                            " that topo compare saved\n")


def test_report_takes_the_folder_compare_wrote() -> None:
    p = topo("report", str(Path(SMALL).parent / "gate" / "nothing-here"))
    assert p.returncode == 1 and "no such file" in p.stderr


def test_validate_of_a_result_says_what_it_is() -> None:
    # before: "small.result.json:1582: too many YAML values (more than 20000)"
    p = topo("validate", SMALL)
    assert p.returncode == 2
    assert p.stderr == (f"topo: error: {SMALL}: this is a topo result file, not a scenario:"
                        " use topo report or topo diff\n")


def test_report_of_a_scenario_or_other_json_says_what_it_is(tmp_path: Path) -> None:
    # before: "scenarios/cpu.yaml: cannot read result file: Expecting value: line 1 column 1"
    scenario = str(ROOT / "scenarios" / "cpu.yaml")
    p = topo("report", scenario)
    assert p.returncode == 1
    assert p.stderr == (f"topo: error: {scenario}: this is a topo scenario file, not a result:"
                        f" use topo compare {scenario}\n")
    other = tmp_path / "package.json"
    other.write_text('{"name": "x"}')
    q = topo("report", str(other))
    assert q.stderr == (f"topo: error: {other}: this is a JSON file, not a result file:"
                        " give a result.json\n")


def test_validate_names_the_file_with_its_folder(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nworkers: 0\nworkload: {task: cpu}\n")
    p = topo("validate", str(bad))
    assert p.stderr == f"topo: error: {bad}:2: workers: must be a positive integer, got 0\n"


@pytest.mark.parametrize("command", ["compare", "sweep", "report", "diff", "validate", "clean"])
def test_help_has_no_type_noise(command: str) -> None:
    p = topo(command, "--help", COLUMNS="120")
    assert p.returncode == 0
    assert "<bool>" not in p.stdout and "{" not in p.stdout, p.stdout


@pytest.mark.parametrize(("command", "options"), [
    ("compare", ["-o", "-f", "--runs", "--warmup", "-q", "--export-csv"]),
    ("sweep", ["-o", "-f", "--runs", "--warmup", "-q", "--export-csv"]),
    ("report", ["-o", "-f", "-q", "--export-csv"]),
    ("diff", ["-o", "-f", "-q", "--export-csv", "--fail-on-regression", "--tolerance"]),
])
def test_one_option_vocabulary(command: str, options: list[str]) -> None:
    help_text = topo(command, "--help", COLUMNS="200").stdout
    for option in options:
        assert f"{option} " in help_text or f"{option}," in help_text, (option, help_text)


def test_completion_is_offered() -> None:
    assert "--install-completion" in topo("--help").stdout


def test_report_exports_csv_and_writes_quietly(tmp_path: Path) -> None:
    out, table = tmp_path / "r.md", tmp_path / "r.csv"
    p = topo("report", SMALL, "-f", "md", "-o", str(out), "-q", "--export-csv", str(table))
    assert p.returncode == 0 and p.stdout == "" and p.stderr == ""
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    # small.result.json: 120 tasks completed in every repeat of both topologies (make_small.py)
    done = [r for r in rows if r["figure"] == "completed"]
    assert [(r["topology"], r["median"], r["n"]) for r in done] == [
        ("single", "120", "3"), ("multi", "120", "3")]
    assert out.read_text().startswith("#")


def test_runs_and_warmup_must_be_in_range() -> None:
    p = topo("compare", "scenarios/cpu.yaml", "--runs", "0")
    assert p.returncode == 2 and "--runs" in p.stderr and len(p.stderr.splitlines()) == 1


def test_runs_and_warmup_replace_the_scenarios_counts() -> None:
    from topo import cli

    # scenarios/cpu.yaml says repeat: 1, timeout: 180s (and no warmup: 0)
    assert cli._load_scenario(ROOT / "scenarios" / "cpu.yaml").run.repeat == 1
    run = cli._load_scenario(ROOT / "scenarios" / "cpu.yaml", runs=5, warmup=2).run
    assert (run.repeat, run.warmup, run.timeout) == (5, 2, 180.0)


def test_diff_writes_markdown_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "diff.md"
    p = topo("diff", SMALL, SMALL, "-f", "md", "-o", str(out))
    assert p.returncode == 0 and p.stdout == "" and p.stderr == f"diff: {out}\n"
    lines = out.read_text().splitlines()
    assert lines[0] == f"A: {SMALL}  " and lines[3].startswith("| figure ")
