"""No-op dispatch rate: how many empty tasks per second each topology moves.

The multi topology's figure is the cost of its coordination (Redis round trips, acks,
event lines); the target for later is >= 20,000 tasks/s with 2 worker containers, which
needs workers that take tasks in batches (prefetch).

Usage: .venv/bin/python benchmarks/dispatch_rate.py [tasks] [prefetch,...]
"""

from __future__ import annotations

import dataclasses
import sys

from _common import DockerRuntime, measure

from topo.analysis import figures as figures_of
from topo.model import MultiSpec, Resources, RunSpec, Scenario, SingleSpec, Workload


def main() -> None:
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    prefetches = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "1,100").split(",")]
    runtime = DockerRuntime.connect()
    base = Scenario(
        name="dispatch", workload=Workload(task="noop", tasks=tasks), workers=2,
        resources=Resources(cpus=2, memory=512 * 2**20), single=SingleSpec(), multi=None,
        run=RunSpec(repeat=1, timeout=600),
    )
    variants = [("single process-pool", base)] + [
        (f"multi prefetch {p}",
         dataclasses.replace(base, single=None, multi=MultiSpec(prefetch=p)))
        for p in prefetches
    ]
    for label, sc in variants:
        (r,) = measure(sc, runtime)
        f = figures_of.run_figures(r)
        print(f"{label:22} {f.ledger.completed} no-op tasks in {f.makespan:.2f} s: "
              f"{f.throughput:,.0f} tasks/s (2 workers; status {r.status})")


if __name__ == "__main__":
    main()
