"""The scaling table of ``topo sweep``."""

from __future__ import annotations

from tabulate import tabulate

from topo.report.model import SweepReport


def _f(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def render(report: SweepReport) -> str:
    rows = [
        [p.workers, p.topology, _f(p.throughput, ".1f"), _f(p.speedup, ".2f"),
         _f(p.efficiency, ".0f"), _f(p.cpu_per_task, ".2f"), _f(p.peak_memory, ".1f"),
         p.lost_or_failed]
        for p in report.rows
    ]
    table = tabulate(rows, headers=["N", "topology", "throughput (tasks/s)", "speed-up",
                                    "efficiency (%)", "CPU per task (ms)", "peak memory (MiB)",
                                    "lost+failed"], disable_numparse=True)
    cross = report.crossover or "no crossover: the same topology leads at every N"
    return (f"scenario {report.name}: sweep of N under a fixed budget of {report.cpus:g} CPUs"
            f"\n\n{table}\n\ncrossover: {cross}")
