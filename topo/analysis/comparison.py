"""The comparison of two topologies: each figure across repeats, as a row with its spreads
and the multi/single ratio (metrics.md, "Repeats"), plus the blast radius of each fault run.

Pure and stdlib-only. ``compare`` is the one place where runs become rows; the report model
(``topo.analysis.build``) is made from what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from topo.analysis.blast import blast_radius
from topo.analysis.figures import MIB, run_figures
from topo.analysis.rates import ratio_of, spread
from topo.analysis.warnings import fault_warnings, warnings
from topo.model import TOPOLOGIES, Comparison, FigureRow, Quantiles, RunFigures, RunResult, Scenario


@dataclass(frozen=True)
class _RowDef:
    key: str
    label: str
    unit: str
    higher_is_better: bool | None
    get: Callable[[RunFigures], float | None]


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _in_window(figures: RunFigures, value: float) -> float | None:
    # Window CPU is 0.0 when there was no window; a row must show "not measured" instead.
    return None if figures.makespan is None else value


def _q(q: Quantiles | None, which: str) -> float | None:
    return None if q is None else 1000 * float(getattr(q, which))


ROWS: tuple[_RowDef, ...] = (
    _RowDef("completed", "tasks completed", "tasks", True, lambda f: f.ledger.completed),
    _RowDef("failed", "tasks failed", "tasks", False, lambda f: f.ledger.failed),
    _RowDef("lost", "tasks lost", "tasks", False, lambda f: f.ledger.lost),
    _RowDef("duplicated", "tasks duplicated", "tasks", False, lambda f: f.ledger.duplicated),
    _RowDef("retried", "re-deliveries", "tasks", False, lambda f: f.ledger.retried),
    _RowDef("makespan", "makespan (s)", "s", False, lambda f: f.makespan),
    _RowDef("throughput", "throughput (tasks/s)", "tasks/s", True, lambda f: f.throughput),
    _RowDef("steady_rate", "steady rate (tasks/s)", "tasks/s", True, lambda f: f.steady_rate),
    _RowDef(
        "cpu_workers", "CPU workers (s)", "s", None, lambda f: _in_window(f, f.cpu_workers)
    ),
    _RowDef(
        "cpu_coordination",
        "CPU redis/feeder (s)",
        "s",
        False,
        lambda f: _in_window(f, f.cpu_coordination),
    ),
    _RowDef("task_cpu", "CPU in tasks (s)", "s", None, lambda f: f.task_cpu),
    # Part of the overhead below, measured where it is spent: the agents' own threads.
    _RowDef("cpu_agents", "agent threads CPU (s)", "s", False,
            lambda f: None if f.cpu_agents is None else _in_window(f, f.cpu_agents)),
    # metrics.md: coordination overhead = Redis CPU + (worker CPU - task CPU).
    _RowDef(
        "overhead",
        "coordination overhead (s)",
        "s",
        False,
        lambda f: _in_window(f, f.cpu_coordination + f.cpu_workers - f.task_cpu),
    ),
    _RowDef("mean_cores", "mean cores used", "cores", None, lambda f: f.mean_cores),
    _RowDef("utilisation", "utilisation (%)", "%", None, lambda f: _scaled(f.utilisation, 100)),
    _RowDef(
        "cpu_per_task", "CPU per task (ms)", "ms", False, lambda f: _scaled(f.cpu_per_task, 1000)
    ),
    _RowDef("peak_memory", "peak memory (MiB)", "MiB", False, lambda f: f.peak_memory / MIB),
    _RowDef("pss_sum", "workers' memory, PSS (MiB)", "MiB", False,
            lambda f: _scaled(f.pss_sum, 1 / MIB)),
    _RowDef("rss_sum", "workers' memory, summed RSS (MiB)", "MiB", None,
            lambda f: _scaled(f.rss_sum, 1 / MIB)),
    _RowDef("wait_p50", "queue wait p50 (ms)", "ms", False, lambda f: _q(f.wait, "p50")),
    _RowDef("wait_p95", "queue wait p95 (ms)", "ms", False, lambda f: _q(f.wait, "p95")),
    _RowDef("wait_p99", "queue wait p99 (ms)", "ms", False, lambda f: _q(f.wait, "p99")),
    _RowDef("service_p50", "service time p50 (ms)", "ms", False, lambda f: _q(f.service, "p50")),
    _RowDef("service_p95", "service time p95 (ms)", "ms", False, lambda f: _q(f.service, "p95")),
    _RowDef("service_p99", "service time p99 (ms)", "ms", False, lambda f: _q(f.service, "p99")),
    _RowDef("service_max", "service time max (ms)", "ms", False, lambda f: _q(f.service, "max")),
    _RowDef("outside_cores", "host CPU outside the run (cores)", "cores", None,
            lambda f: f.outside_cores),
    _RowDef("steal_cores", "CPU stolen by the hypervisor (cores)", "cores", None,
            lambda f: f.steal_cores),
    _RowDef("startup_ready", "start-up to ready (s)", "s", False, lambda f: f.startup_ready),
    _RowDef(
        "startup_first", "start-up to first task (s)", "s", False, lambda f: f.startup_first
    ),
)


# Figures a reviewer decides on, in this order in the decision table.
DECISION_KEYS = (
    "throughput", "wait_p95", "service_p95", "cpu_per_task", "overhead", "peak_memory",
    "pss_sum", "startup_ready", "startup_first",
)


def compare(scenario: Scenario, results: Sequence[RunResult]) -> Comparison:
    """Rows and warnings from the measured (non-warm-up) runs without a fault, and one
    blast radius per measured fault run.

    ``Comparison.runs`` holds the figures of the no-fault runs only: a fault run's speed
    is the fault's doing, so it is reported as blast radius, never mixed into the rows.
    """
    measured = [r for r in results if not r.warmup]
    baseline = [r for r in measured if r.fault is None]
    faulty = [r for r in measured if r.fault is not None]
    runs = tuple(run_figures(r) for r in baseline)
    rows = tuple(figure_row(definition, runs) for definition in ROWS)
    found = warnings(baseline, runs) + fault_warnings(faulty)
    blast = tuple(blast_radius(r, scenario.workers) for r in faulty)
    return Comparison(scenario, runs, rows, tuple(dict.fromkeys(found)), blast)


def figure_row(definition: _RowDef, runs: Sequence[RunFigures]) -> FigureRow:
    """One figure across the repeats of both topologies, with the multi/single ratio."""
    measured = {
        t: [v for v in (definition.get(f) for f in runs if f.topology == t) if v is not None]
        for t in TOPOLOGIES
    }
    return FigureRow(
        key=definition.key,
        label=definition.label,
        unit=definition.unit,
        single=spread(measured["single"]),
        multi=spread(measured["multi"]),
        ratio=ratio_of(measured["single"], measured["multi"]),
        higher_is_better=definition.higher_is_better,
    )


