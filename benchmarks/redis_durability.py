"""What Redis durability saves when Redis is killed, and what it costs when nothing fails.

For each ``multi.redis.appendonly`` setting (no, everysec, always), interleaved over R
repeats (no, everysec, always, no, everysec, …, so machine drift touches each alike), the
multi topology of the scenario runs once without a fault and once with its kill-redis fault
(SIGKILL of Redis' main process; the restart policy brings it back). Printed per setting:
the tasks lost, failed and duplicated in the kill-redis runs, the throughput of the runs
without a fault, and its ratio to appendonly no with a bootstrap 95% interval.

Usage: .venv/bin/python benchmarks/redis_durability.py [scenario.yaml] [R] [cpu_ms]
(defaults: scenarios/kill-redis.yaml, 3 repeats, the scenario's own task parameters)
"""

from __future__ import annotations

import dataclasses
import statistics
import sys

from _common import ROOT, DockerRuntime, measure

from topo.analysis import figures as figures_of
from topo.analysis import rates
from topo import scenario
from topo.model import RunResult, Scenario

SETTINGS = ("no", "everysec", "always")


def variant(sc: Scenario, appendonly: str) -> Scenario:
    assert sc.multi is not None, "the scenario must run the multi topology"
    redis = dataclasses.replace(sc.multi.redis, appendonly=appendonly)
    kill = tuple(f for f in sc.faults if f.kind == "kill-redis")
    assert kill, "the scenario needs a kill-redis fault"
    return dataclasses.replace(sc, single=None, multi=dataclasses.replace(sc.multi, redis=redis),
                               faults=kill[:1], run=dataclasses.replace(sc.run, repeat=1))


def spread(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.median(values):g} ({min(values):g}–{max(values):g})"


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "scenarios" / "kill-redis.yaml")
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    sc = scenario.load(path)
    if len(sys.argv) > 3:
        sc = dataclasses.replace(sc, workload=dataclasses.replace(
            sc.workload, params={"cpu_ms": float(sys.argv[3])}))
    runtime = DockerRuntime.connect()
    runs: dict[str, list[RunResult]] = {s: [] for s in SETTINGS}
    for i in range(repeats):
        for setting in SETTINGS:
            runs[setting] += measure(variant(sc, setting), runtime)
            print(f"repeat {i + 1}/{repeats}: appendonly {setting} done", file=sys.stderr)
    print(f"{sc.name}: {sc.workload.tasks} × {sc.workload.task} {dict(sc.workload.params)},"
          f" {sc.workers} workers, queue {sc.multi.queue if sc.multi else '?'}, {repeats} repeats")
    clean = {s: [figures_of.run_figures(r) for r in rs if r.fault is None] for s, rs in runs.items()}
    base = [f.throughput for f in clean["no"] if f.throughput]
    for setting in SETTINGS:
        killed = [figures_of.run_figures(r) for r in runs[setting] if r.fault is not None]
        tput = [f.throughput for f in clean[setting] if f.throughput]
        ratio = rates.ratio_of(base, tput)
        cost = "—" if ratio is None else (
            f"{ratio.value:.3f}" + (f" (95% CI {ratio.ci_low:.3f}–{ratio.ci_high:.3f})"
                                    if ratio.ci_low is not None else ""))
        print(f"  appendonly {setting:8}: kill-redis lost {spread([f.ledger.lost for f in killed])},"
              f" failed {spread([f.ledger.failed for f in killed])},"
              f" duplicated {spread([f.ledger.duplicated for f in killed])},"
              f" completed {spread([f.ledger.completed for f in killed])};"
              f" no fault: throughput {spread([round(r, 1) for r in tput])} tasks/s,"
              f" vs appendonly no {cost}")


if __name__ == "__main__":
    main()
