"""Fork after import: workers' memory and start-up of the pandas example, three ways.

single with ``preload: true`` (PID 1 imports pandas, then forks its workers), single with
``preload: false`` (each worker imports pandas itself) and multi (each container imports it;
nothing can be shared). The three run in turn, ``repeats`` times, so drift spreads evenly;
every figure is topo's own (figures_of.run_figures): peak summed PSS and RSS of the worker
containers' processes, deploy -> all workers ready, deploy -> first task completed.

Usage: .venv/bin/python benchmarks/preload.py [repeats] [scenario]
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from typing import Callable

from _common import ROOT, DockerRuntime, measure

from topo import scenario
from topo.analysis import figures as figures_of
from topo.model import RunFigures, Scenario

MIB = 2**20
FIGURES: tuple[tuple[str, Callable[[RunFigures], float | None]], ...] = (
    ("workers' PSS (MiB)", lambda f: f.pss_sum / MIB if f.pss_sum is not None else None),
    ("workers' summed RSS (MiB)", lambda f: f.rss_sum / MIB if f.rss_sum is not None else None),
    ("start-up to ready (s)", lambda f: f.startup_ready),
    ("start-up to first task (s)", lambda f: f.startup_first),
    ("throughput (tasks/s)", lambda f: f.throughput),
    # a busy host disturbs throughput far more than memory: say how busy it was
    ("host CPU outside the run (cores)", lambda f: f.outside_cores),
)


def variants(sc: Scenario) -> dict[str, Scenario]:
    assert sc.single is not None and sc.multi is not None
    one = dataclasses.replace(sc.run, repeat=1, warmup=0)
    single = dataclasses.replace(sc, multi=None, run=one)
    return {
        "single, preload": dataclasses.replace(
            single, single=dataclasses.replace(sc.single, preload=True)),
        "single, no preload": dataclasses.replace(
            single, single=dataclasses.replace(sc.single, preload=False)),
        "multi": dataclasses.replace(sc, single=None, run=one),
    }


def cell(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    if not got:
        return "-"
    return f"{statistics.median(got):.3g} [{min(got):.3g}-{max(got):.3g}]"


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    path = sys.argv[2] if len(sys.argv) > 2 else str(ROOT / "scenarios" / "pandas-etl.yaml")
    runtime = DockerRuntime.connect()
    figures: dict[str, list[RunFigures]] = {}
    for i in range(repeats):
        for label, sc in variants(scenario.load(path)).items():
            (result,) = measure(sc, runtime)
            if result.status != "ok":
                print(f"{label} run {i + 1}: {result.status}: {result.error}", file=sys.stderr)
            figures.setdefault(label, []).append(figures_of.run_figures(result))
    labels = list(figures)
    print(f"{path}: {repeats} runs each, median [min-max]")
    print(f"{'figure':28}" + "".join(f"{label:>26}" for label in labels))
    for name, get in FIGURES:
        print(f"{name:28}" + "".join(f"{cell([get(f) for f in figures[x]]):>26}" for x in labels))


if __name__ == "__main__":
    main()
