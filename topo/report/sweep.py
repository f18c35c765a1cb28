"""The scaling table of ``topo sweep``."""

from __future__ import annotations

from typing import Sequence

from tabulate import tabulate

from topo.sweep import ScalingPoint, crossover


def _f(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def render(name: str, cpus: float, pts: Sequence[ScalingPoint]) -> str:
    rows = [
        [p.workers, p.topology, _f(p.throughput, ".1f"), _f(p.speedup, ".2f"),
         _f(None if p.efficiency is None else 100 * p.efficiency, ".0f"),
         _f(None if p.cpu_per_task is None else 1000 * p.cpu_per_task, ".2f"),
         _f(None if p.peak_memory is None else p.peak_memory / 2**20, ".1f"),
         p.lost_or_failed]
        for p in pts
    ]
    table = tabulate(rows, headers=["N", "topology", "throughput (tasks/s)", "speed-up",
                                    "efficiency (%)", "CPU per task (ms)", "peak memory (MiB)",
                                    "lost+failed"], disable_numparse=True)
    cross = crossover(pts) or "no crossover: the same topology leads at every N"
    return (f"scenario {name}: sweep of N under a fixed budget of {cpus:g} CPUs\n\n{table}\n\n"
            f"crossover: {cross}")
