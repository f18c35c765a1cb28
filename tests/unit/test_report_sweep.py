"""The scaling table of ``topo sweep``: its model is in display units, the table only lays
it out."""

from __future__ import annotations

from topo import sweep
from topo.report import sweep as sweep_report

MIB = 2**20


def point(n: int, topology: str, throughput: float, efficiency: float) -> sweep.ScalingPoint:
    return sweep.ScalingPoint(n, topology, throughput, throughput / 10.0, efficiency,  # type: ignore[arg-type]
                              0.0125, 96 * MIB, 0)


def test_the_table_shows_percent_milliseconds_and_mebibytes() -> None:
    pts = [point(1, "single", 10.0, 1.0), point(1, "multi", 9.0, 0.9),
           point(2, "single", 15.0, 0.75), point(2, "multi", 18.0, 1.0)]
    model = sweep.report("demo", 2.0, pts)
    # 0.75 -> 75 %, 0.0125 s -> 12.5 ms, 96 MiB in bytes -> 96 MiB
    assert (model.rows[2].efficiency, model.rows[2].cpu_per_task, model.rows[2].peak_memory) == (
        75.0, 12.5, 96.0)
    lines = sweep_report.render(model).splitlines()
    assert lines[0] == "scenario demo: sweep of N under a fixed budget of 2 CPUs"
    assert lines[6].split() == ["2", "single", "15.0", "1.50", "75", "12.50", "96.0", "0"]
    assert lines[-1] == "crossover: multi overtakes single at N = 2"
