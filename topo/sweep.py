"""``topo sweep``: both topologies at several worker counts N, under the scenario's budget.

The budget stays fixed while N grows, as it does when a team asks "how many workers should
this 2-CPU service run?"; so does the task list. Efficiency is measured against N = 1:
throughput(N) / (N x throughput(1)).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from statistics import median
from typing import Callable, Mapping, Sequence

from topo.analysis.figures import run_figures
from topo.model import RunResult, Scenario, Topology
from topo.report.model import SweepReport, SweepRow


@dataclass(frozen=True)
class ScalingPoint:
    workers: int
    topology: Topology
    throughput: float | None  # median over the no-fault runs, tasks/s
    speedup: float | None  # against N = 1 of the same topology
    efficiency: float | None  # speedup / N
    cpu_per_task: float | None  # seconds
    peak_memory: int | None  # bytes
    lost_or_failed: int


def with_workers(scenario: Scenario, n: int) -> Scenario:
    """The scenario at N workers, faults dropped (a sweep measures capacity); single's pool
    has N processes too, whatever the scenario fixed, so both sides scale alike."""
    single = scenario.single and dataclasses.replace(scenario.single, processes=None)
    return dataclasses.replace(scenario, workers=n, faults=(), single=single)


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return median(present) if present else None


def points(runs: Mapping[int, Sequence[RunResult]]) -> list[ScalingPoint]:
    """Scaling figures from the runs measured at each N (pure)."""
    out: list[ScalingPoint] = []
    base: dict[str, float | None] = {}
    for n in sorted(runs):
        for topology in ("single", "multi"):
            figs = [run_figures(r) for r in runs[n]
                    if r.topology == topology and not r.warmup and r.fault is None]
            if not figs:
                continue
            thr = _median([f.throughput for f in figs])
            base.setdefault(topology, thr if n == min(runs) else None)
            b = base.get(topology)
            speedup = thr / b if thr is not None and b else None
            mem = _median([float(f.peak_memory) for f in figs])
            out.append(ScalingPoint(
                workers=n, topology=topology, throughput=thr, speedup=speedup,
                efficiency=speedup / n * min(runs) if speedup is not None else None,
                cpu_per_task=_median([f.cpu_per_task for f in figs]),
                peak_memory=int(mem) if mem is not None else None,
                lost_or_failed=sum(f.ledger.lost + f.ledger.failed for f in figs),
            ))
    return out


def crossover(pts: Sequence[ScalingPoint]) -> str | None:
    """Where the faster topology changes as N grows, in words; None if it never does."""
    by_n: dict[int, dict[str, float]] = {}
    for p in pts:
        if p.throughput is not None:
            by_n.setdefault(p.workers, {})[p.topology] = p.throughput
    leader_before = None
    for n in sorted(by_n):
        both = by_n[n]
        if len(both) < 2:
            continue
        leader = "multi" if both["multi"] > both["single"] else "single"
        if leader_before is not None and leader != leader_before:
            return f"{leader} overtakes {leader_before} at N = {n}"
        leader_before = leader
    return None


def report(name: str, cpus: float, pts: Sequence[ScalingPoint]) -> SweepReport:
    """The scaling table's model: the points in the units it shows, and the crossover."""
    def scaled(value: float | None, factor: float) -> float | None:
        return None if value is None else value * factor

    rows = tuple(
        SweepRow(p.workers, p.topology, p.throughput, p.speedup, scaled(p.efficiency, 100),
                 scaled(p.cpu_per_task, 1000),
                 None if p.peak_memory is None else p.peak_memory / 2**20,
                 p.lost_or_failed)
        for p in pts)
    return SweepReport(name, cpus, rows, crossover(pts))


def sweep(scenario: Scenario, workers: Sequence[int],
          measure: Callable[[Scenario], list[RunResult]]) -> dict[int, list[RunResult]]:
    """Measure the scenario at each N with ``measure`` (run.compare, bound by the caller)."""
    return {n: measure(with_workers(scenario, n)) for n in workers}
