"""Every format renders the same model: each figure appears with the same value in the table,
Markdown, HTML and JSON, and that value is the one computed by hand from a small batch.

The batch (4 tasks, 2 workers, one run per topology and per fault):

- single, no fault: available at 1.0 s, completions at 1.4, 1.8, 2.2, 2.6 s: makespan 1.6 s,
  throughput 4 / 1.6 = 2.5 tasks/s; its one container used 1.2 CPU s in the makespan, so
  CPU per task = 1.2 / 4 = 300 ms; memory 100 then 120 MiB: peak 120 MiB.
- multi, no fault: completions at 1.3, 1.6, 1.9, 2.25 s: makespan 1.25 s, throughput 3.2
  tasks/s; workers 0.5 + 0.5 CPU s and Redis 0.3: CPU per task = 1.3 / 4 = 325 ms; memory
  40 + 40 + 10 = 90 MiB, then 50 + 45 + 10 = 105 MiB: peak 105 MiB.
- "one worker dies": single completes task 0, fails task 1 and never reports 2 and 3 (1
  failed, 2 lost); multi completes 0-2 and never reports 3 (0 failed, 1 lost).
"""

from __future__ import annotations

import json
import re

import pytest

from topo.analysis import build_report
from topo.model import (
    ContainerSpec, Fault, FaultEvent, MultiSpec, Resources, RunResult, Sample, Scenario,
    SingleSpec, TaskRecord, Workload,
)
from topo.report import render
from topo.report.model import Provenance, Report

MIB = 1024 * 1024
KILL = Fault(name="one worker dies", kind="kill-worker", at_fraction=0.25)
SCENARIO = Scenario(name="hand", workload=Workload(task="cpu", tasks=4), workers=2,
                    resources=Resources(cpus=2.0, memory=512 * MIB), single=SingleSpec(),
                    multi=MultiSpec(), faults=(KILL,))

# (row label, JSON key, single, multi), hand-computed in the module docstring
FIGURES = (
    ("throughput (tasks/s)", "throughput", 2.5, 3.2),
    ("CPU per task (ms)", "cpu_per_task", 300.0, 325.0),
    ("peak memory (MiB)", "peak_memory", 120.0, 105.0),
    ("tasks lost", "lost", 0.0, 0.0),
)
# fault -> topology -> (failed, lost)
DAMAGE = {"one worker dies": {"single": (1, 2), "multi": (0, 1)}}


def spec(name: str, role: str) -> ContainerSpec:
    return ContainerSpec(name=name, role=role, command=("x",), cpus=1.0, memory=256 * MIB)


def ok(i: int, end: float, worker: str) -> TaskRecord:
    return TaskRecord(id=i, worker=worker, ok=True, start=end - 0.1, end=end)


def run(topology: str, records: tuple[TaskRecord, ...], samples: tuple[Sample, ...],
        containers: tuple[ContainerSpec, ...], fault: Fault | None = None) -> RunResult:
    events = (FaultEvent(KILL.name, KILL.kind, "injected", 1.5),) if fault else ()
    return RunResult(topology, 0, False, "ok", None, 4, 0.0, 1.0, 1.0, 3.0, records,  # type: ignore[arg-type]
                     samples, (), containers, budget_cpus=2.0, budget_memory=512 * MIB,
                     fault=fault, fault_events=events)


def single(fault: Fault | None = None) -> RunResult:
    if fault:
        records: tuple[TaskRecord, ...] = (
            ok(0, 1.4, "s/7"), TaskRecord(1, "s/8", False, 1.2, 1.6, error="killed"))
    else:
        records = tuple(ok(i, t, "s/7") for i, t in enumerate((1.4, 1.8, 2.2, 2.6)))
    samples = (Sample(1.0, "s", 0.0, 100 * MIB), Sample(2.6, "s", 1.2, 120 * MIB))
    return run("single", records, samples, (spec("s", "single"),), fault)


def multi(fault: Fault | None = None) -> RunResult:
    ends = (1.3, 1.6, 1.9) if fault else (1.3, 1.6, 1.9, 2.25)
    records = tuple(ok(i, t, f"w{i % 2}/1") for i, t in enumerate(ends))
    samples = (Sample(1.0, "w0", 0.0, 40 * MIB), Sample(1.0, "w1", 0.0, 40 * MIB),
               Sample(1.0, "r", 0.0, 10 * MIB), Sample(2.25, "w0", 0.5, 50 * MIB),
               Sample(2.25, "w1", 0.5, 45 * MIB), Sample(2.25, "r", 0.3, 10 * MIB))
    containers = (spec("w0", "worker"), spec("w1", "worker"), spec("r", "redis"))
    return run("multi", records, samples, containers, fault)


@pytest.fixture(scope="module")
def model() -> Report:
    runs = [single(), multi(), single(KILL), multi(KILL)]
    return build_report(SCENARIO, runs, Provenance(engine="20.10"))


def number(cell: str) -> float:
    """The median of a cell ("2.50", "2.50 (2.40–2.60)", "120")."""
    return float(cell.split()[0])


def close(shown: float, expected: float) -> bool:
    # Reports round to about three significant digits; the JSON is exact.
    return abs(shown - expected) <= max(0.006, 0.005 * abs(expected))


# --------------------------------------------------------------------------- parsers


def from_table(text: str, label: str) -> tuple[float, float]:
    line = next(line for line in text.splitlines() if line.startswith(label + " "))
    cells = re.split(r"\s{2,}", line[len(label):].strip())
    return number(cells[0]), number(cells[1])


def from_markdown(text: str, label: str) -> tuple[float, float]:
    figures = text.split("## All figures", 1)[1]
    line = next(line for line in figures.splitlines() if line.startswith(f"| {label} |"))
    cells = [c.strip() for c in line.strip("|").split(" | ")]
    return number(cells[1]), number(cells[2])


def from_html(text: str, label: str) -> tuple[float, float]:
    figures = text.split("<h2>All figures</h2>", 1)[1]
    match = re.search(rf'<tr><td>{re.escape(label)}</td><td class="num">([^<]*)</td>'
                      r'<td class="num">([^<]*)</td>', figures)
    assert match, label
    return number(match[1]), number(match[2])


def from_json(text: str, key: str) -> tuple[float, float]:
    figure = json.loads(text)["figures"][key]
    return figure["single"]["median"], figure["multi"]["median"]


@pytest.mark.parametrize(("label", "key", "single_value", "multi_value"), FIGURES)
def test_each_figure_has_the_same_value_in_every_format(
    model: Report, label: str, key: str, single_value: float, multi_value: float
) -> None:
    found = {
        "table": from_table(render(model, "table"), label),
        "md": from_markdown(render(model, "md"), label),
        "html": from_html(render(model, "html"), label),
        "json": from_json(render(model, "json"), key),
    }
    for fmt, (s, m) in found.items():
        assert close(s, single_value) and close(m, multi_value), (fmt, s, m)


def damage_in_table(text: str) -> dict[str, tuple[int, int]]:
    line = next(line for line in text.splitlines() if " failed · " in line)
    cells = re.findall(r"(\d+) failed · (\d+) lost", line)
    return {t: (int(f), int(lost)) for t, (f, lost) in zip(("single", "multi"), cells)}


def damage_in_rows(rows: list[list[str]]) -> dict[str, tuple[int, int]]:
    # fault, topology, runs, workers affected, failed, lost, …
    return {row[1]: (int(row[4]), int(row[5])) for row in rows}


def damage_in_markdown(text: str) -> dict[str, tuple[int, int]]:
    section = text.split("### Blast radius per fault", 1)[1].split("\n\n")[1]
    rows = [[c.strip() for c in line.strip("|").split(" | ")]
            for line in section.splitlines()[2:]]
    return damage_in_rows(rows)


def damage_in_html(text: str) -> dict[str, tuple[int, int]]:
    section = text.split("<h3>Blast radius per fault</h3>", 1)[1].split("</table>")[0]
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", tr) for tr in section.split("<tr>")[2:]]
    return damage_in_rows(rows)


def damage_in_json(text: str) -> dict[str, tuple[int, int]]:
    return {b["topology"]: (b["failed"], b["lost"]) for b in json.loads(text)["blast_radius"]}


def test_the_tasks_each_fault_cost_are_the_same_in_every_format(model: Report) -> None:
    expected = DAMAGE["one worker dies"]
    assert damage_in_table(render(model, "table")) == expected
    assert damage_in_markdown(render(model, "md")) == expected
    assert damage_in_html(render(model, "html")) == expected
    assert damage_in_json(render(model, "json")) == expected


def test_the_verdict_is_the_same_sentence_in_every_format(model: Report) -> None:
    words = model.verdict.text
    assert "single fails 1 and loses 2 tasks" in words
    assert " ".join(render(model, "table").split("\n\n")[0].split()) == f"verdict: {words}"
    assert f"**Verdict:** {words}" in render(model, "md")
    assert f"<strong>Verdict:</strong> {words}</p>" in render(model, "html")
    assert json.loads(render(model, "json"))["provenance"]["engine"] == "20.10"
