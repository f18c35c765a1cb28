"""The terminal table: medians with min–max, ratios with their interval, verdicts, warnings."""

from __future__ import annotations

import dataclasses

from topo.model import (
    BlastRadius,
    Comparison,
    ContainerSpec,
    Fault,
    FigureRow,
    MultiSpec,
    Ratio,
    Resources,
    RunResult,
    Scenario,
    SingleSpec,
    Spread,
    TaskRecord,
    Workload,
)
from topo.analysis.aggregate import summarise
from topo.analysis.build import from_comparison
from topo.analysis.comparison import compare
from topo.report import table
from topo.report.table import blast_cell, numbers


def render(comparison: Comparison) -> str:
    return table.render(from_comparison(comparison))

MIB = 1024 * 1024
SCENARIO = Scenario(
    name="demo",
    workload=Workload(task="cpu", tasks=100),
    workers=4,
    resources=Resources(cpus=4.0, memory=1024 * MIB),
    single=SingleSpec(),
    multi=MultiSpec(),
)

THROUGHPUT = FigureRow(
    "throughput",
    "throughput (tasks/s)",
    "tasks/s",
    Spread(2.0, 1.5, 2.5, 3),
    Spread(2.24, 2.1, 2.3, 3),
    Ratio(1.12, 1.05, 1.19),
    True,
)
NOTHING = Spread(0, 0, 0, 3)
LOST = FigureRow("lost", "tasks lost", "tasks", NOTHING, NOTHING, None, False)
MEMORY = FigureRow(
    "peak_memory",
    "peak memory (MiB)",
    "MiB",
    Spread(412.25, 400.0, 420.0, 3),
    Spread(650.5, 640.0, 660.0, 3),
    Ratio(1.578, 1.5, 1.6),
    False,
)


def test_full_table_golden():
    comparison = Comparison(SCENARIO, (), (THROUGHPUT, LOST, MEMORY), ("spread is high",))
    assert render(comparison) == (
        # wrapped at 100 columns, continued under the text
        "verdict: Multi is 1.12× faster (95% CI 1.05–1.19); single uses 1.58× less memory"
        " (peak 412 vs 650\n"
        "         MiB; 95% CI 1.50–1.60).\n"
        "\n"
        "scenario demo: task cpu × 100, 4 workers, budget 4 CPUs / 1024 MiB\n"
        "\n"
        "figure                          single             multi      multi/single\n"
        "--------------------  ----------------  ----------------  ----------------\n"
        "throughput (tasks/s)  2.00 (1.50–2.50)  2.24 (2.10–2.30)  1.12 (1.05–1.19)\n"
        "tasks lost                     0 (0–0)           0 (0–0)                 —\n"
        "peak memory (MiB)        412 (400–420)     650 (640–660)  1.58 (1.50–1.60)\n"
        "\n"
        "throughput: multi is 1.12× faster (95% CI 1.05–1.19)\n"
        "peak memory: single is 1.58× better (95% CI 1.50–1.60)\n"
        "\n"
        "warning: spread is high\n"
    )


def test_one_repeat_shows_the_median_alone_and_the_ratio_without_interval():
    once = [Spread(5.0, 5.0, 5.0, 1), Spread(4.0, 4.0, 4.0, 1)]
    row = FigureRow("makespan", "makespan (s)", "s", *once, Ratio(0.8, None, None), False)
    lines = render(Comparison(SCENARIO, (), (row,))).splitlines()
    assert lines[-1].split() == ["makespan", "(s)", "5", "4", "0.80"]
    assert not any(line.startswith(("warning", "makespan:")) for line in lines)


def test_missing_topology_shows_dashes():
    only_single = dataclasses.replace(THROUGHPUT, multi=None, ratio=None)
    text = render(Comparison(SCENARIO, (), (only_single,)))
    cells = text.splitlines()[-1].split()
    assert cells == ["throughput", "(tasks/s)", "2.00", "(1.50–2.50)", "—", "—"]
    assert "faster" not in text


def test_renders_a_comparison_where_only_single_ran():
    records = tuple(TaskRecord(i, "s/1", True, 100.0, 100.0 + i + 1) for i in range(4))
    run = RunResult(
        topology="single",
        index=0,
        warmup=False,
        status="ok",
        error=None,
        task_count=4,
        t_deploy=98.0,
        t_ready=99.0,
        t_available=100.0,
        t_end=105.0,
        records=records,
        samples=(),
        workers=(),
        containers=(ContainerSpec("s", "single", ("run",), 4.0, 1024 * MIB, processes=4),),
        budget_cpus=4.0,
    )
    text = render(compare(dataclasses.replace(SCENARIO, multi=None), [run]))
    throughput = next(line for line in text.splitlines() if line.startswith("throughput"))
    assert throughput.split() == ["throughput", "(tasks/s)", "1", "—", "—"]
    assert "warning: no confidence interval with one repeat; set run.repeat ≥ 3" in text


def test_numbers_share_decimals_within_a_cell():
    assert numbers(2.0, 1.5, 2.5) == ["2.00", "1.50", "2.50"]
    assert numbers(10, 9, 12) == ["10", "9", "12"]
    assert numbers(0.0123) == ["0.012"]
    assert numbers(12.34, 9.5) == ["12.3", "9.5"]
    assert numbers(float("nan")) == ["nan"]


# --------------------------------------------------------------------------- blast radius

KILL = Fault("one worker dies", "kill-worker", at_fraction=0.3)
REDIS = Fault("redis dies", "kill-redis", at_fraction=0.5)


def radius(fault: Fault, topology: str, index: int = 0, **changes: object) -> BlastRadius:
    """A fault that did nothing, in one run; ``changes`` override fields."""
    base = BlastRadius(
        fault=fault.name, kind=fault.kind, topology=topology, index=index, status="injected",
        workers=4, workers_affected=0, failed=0, lost=0, duplicated=0, retried=0,
        throughput_dip=0.0, time_to_detect=None, time_to_recover=0.0, survived=True,
    )
    return dataclasses.replace(base, **changes)


BROKEN_POOL = dict(workers_affected=4, throughput_dip=1.0, time_to_recover=None, survived=False)


def test_blast_radius_table_golden():
    blast = (
        # Out of order on purpose: the table follows the scenario's faults, then topologies.
        radius(REDIS, "multi", workers_affected=4, lost=50, throughput_dip=1.0,
               time_to_detect=0.05, time_to_recover=None, survived=False),
        radius(REDIS, "single", status="not-applicable", throughput_dip=None,
               time_to_recover=None),
        radius(KILL, "multi", 0, workers_affected=1, duplicated=1, retried=1,
               throughput_dip=0.25, time_to_detect=3.1, time_to_recover=4.2),
        radius(KILL, "single", 0, failed=270, time_to_detect=0.1, **BROKEN_POOL),
        radius(KILL, "single", 1, failed=268, time_to_detect=0.12, **BROKEN_POOL),
        radius(KILL, "single", 2, failed=275, time_to_detect=0.09, **BROKEN_POOL),
        radius(KILL, "multi", 1, workers_affected=2, retried=1, throughput_dip=0.35,
               time_to_detect=3.3, time_to_recover=5.0),
        radius(KILL, "multi", 2, status="not-reached", throughput_dip=None,
               time_to_recover=None),
    )
    scenario = dataclasses.replace(SCENARIO, faults=(KILL, REDIS))
    text = render(Comparison(scenario, (), (LOST,), ("spread is high",), blast))
    assert text.split("tasks lost")[1].split("\n", 1)[1] == (
        "\n"
        "blast radius (median over runs; dip = lowest 0.5 s rate after the fault vs before)\n"
        "\n"
        "fault                       single                                   multi\n"
        "--------------------------  ---------------------------------------"
        "  ---------------------------------------\n"
        "one worker dies             4/4 workers · survived no                1.5/4 workers · survived yes\n"
        "                            270 failed · 0 lost · 0 dup · 0 retried  "
        # over the 2 runs where it was injected (1 and 0), not the run it was not reached in
        "0 failed · 0 lost · 0.5 dup · 1 retried\n"
        "                            dip 100% · detect 0.10s · recover never  "
        "dip 30% · detect 3.20s · recover 4.60s\n"
        "                            3 runs                                   3 runs, 1 not reached\n"
        "--------------------------  ---------------------------------------"
        "  ---------------------------------------\n"
        "redis dies (appendonly no)  not applicable                           4/4 workers · survived no\n"
        "                                                                     "
        "0 failed · 50 lost · 0 dup · 0 retried\n"
        "                                                                     "
        "dip 100% · detect 0.05s · recover never\n"
        "\n"
        "warning: spread is high\n"
    )
    assert max(len(line) for line in text.splitlines()) <= 120


def test_blast_radius_cell_when_the_rate_before_the_fault_is_unknown():
    # No dip means no rate to recover to: "—", not "never"; a detection that never came is "none".
    early = radius(KILL, "single", workers_affected=1, throughput_dip=None, time_to_recover=None)
    assert blast_cell(summarise(SCENARIO, [early])).splitlines() == [
        "1/4 workers · survived yes",
        "0 failed · 0 lost · 0 dup · 0 retried",
        "dip — · detect none · recover —",
    ]
    assert blast_cell(None) == "—"


def test_no_blast_radius_table_without_fault_runs():
    assert "blast radius" not in render(Comparison(SCENARIO, (), (LOST,)))
