"""Is topo's CPU accounting right? Tasks of known cost, checked against the cgroups.

Every task spins until its own thread has used ``cpu_ms`` of CPU (topo/workloads.py ``cpu``),
so the batch's cost is known by construction: tasks x cpu_ms. The truth is taken outside the
clock the tasks spin on: the worker containers' cgroups (cpuacct), read by the harness in the
makespan window. Per run:

  task CPU       what the tasks recorded (their thread's clock), against tasks x cost
  cgroup CPU     the worker containers' cgroups in the window
  agent threads  the agents' threads besides the task threads (telemetry, heartbeat, single's
                 PID 1), measured by the in-container telemetry
  coordination   metrics.md: redis/feeder CPU + (cgroup CPU - task CPU)
  rest           cgroup - tasks x cost - agent threads: the task threads' own work between
                 tasks (taking, acknowledging, writing records), measured by nothing else
  truth ratio    cgroup CPU / (tasks x cost + agent threads); target: within 3% of 1

This machine's speed drifts (a shared VM), so the runs alternate single and multi for
``rounds`` rounds, and each ratio is given per topology as median (min-max).

Usage: .venv/bin/python benchmarks/cpu_accuracy.py [scenario.yaml] [rounds] [cpu_ms] [tasks]
(default scenarios/cpu.yaml with its workload replaced by cpu_ms = 40, 3 rounds, 200 tasks)
"""

from __future__ import annotations

import dataclasses
import statistics
import sys

from _common import ROOT, DockerRuntime, measure

from topo import scenario
from topo.analysis import figures as figures_of
from topo.model import RunResult, Scenario

TARGET = 0.03


def known_cost(sc: Scenario, rounds: int, cpu_ms: float, tasks: int) -> Scenario:
    workload = dataclasses.replace(sc.workload, task="cpu", tasks=tasks, params={"cpu_ms": cpu_ms})
    run = dataclasses.replace(sc.run, repeat=rounds, warmup=0)
    return dataclasses.replace(sc, workload=workload, run=run, faults=())


def row(r: RunResult, cost: float, budget: float) -> dict[str, float] | None:
    f = figures_of.run_figures(r)
    n = f.ledger.completed
    if r.status != "ok" or not n or f.makespan is None or f.cpu_agents is None:
        print(f"  {r.topology:6} run {r.index + 1}: status {r.status} ({r.error}), {n} tasks completed, "
              f"agent threads {'not ' if f.cpu_agents is None else ''}measured: no figures")
        return None
    known = n * cost
    overhead = f.cpu_coordination + f.cpu_workers - f.task_cpu
    rest = f.cpu_workers - known - f.cpu_agents
    out = {"truth": f.cpu_workers / (known + f.cpu_agents), "task": f.task_cpu / known,
           "ideal": (f.throughput or 0.0) * cost / budget}
    print(
        f"  {r.topology:6} run {r.index + 1}: {n} tasks x {cost * 1000:g} ms = {known:.3f} s; "
        f"task CPU {f.task_cpu:.3f} s ({100 * (out['task'] - 1):+.2f}%); cgroup CPU "
        f"{f.cpu_workers:.3f} s; agent threads {f.cpu_agents:.3f} s; rest {rest:.3f} s "
        f"({1000 * rest / n:.2f} ms/task); coordination {overhead:.3f} s; truth ratio "
        f"{out['truth']:.4f} [{'ok' if abs(out['truth'] - 1) <= TARGET else 'OFF BY MORE THAN 3%'}]; "
        f"throughput {f.throughput:.1f}/s = {100 * out['ideal']:.1f}% of ideal C/c; host busy "
        f"outside the run {f.outside_cores or 0:.2f} cores, stolen {f.steal_cores or 0:.2f} cores"
    )
    return out


def summary(rows: dict[str, list[dict[str, float]]], rounds: int) -> None:
    for topology, got in rows.items():
        if not got:
            print(f"  {topology:6}: no measured run")
            continue
        parts = []
        for key, label in (("truth", "truth ratio"), ("task", "task CPU / known"),
                           ("ideal", "share of ideal throughput")):
            values = [g[key] for g in got]
            parts.append(f"{label} {statistics.median(values):.4f} "
                         f"({min(values):.4f}-{max(values):.4f})")
        worst = max(abs(g["truth"] - 1) for g in got)
        met = worst <= TARGET and len(got) == rounds
        print(f"  {topology:6}: {len(got)}/{rounds} runs; " + "; ".join(parts)
              + f"; worst truth error {100 * worst:.2f}% [{'met' if met else 'NOT MET'}]")


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "scenarios" / "cpu.yaml")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    cpu_ms = float(sys.argv[3]) if len(sys.argv) > 3 else 40.0
    tasks = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    sc = known_cost(scenario.load(path), rounds, cpu_ms, tasks)
    cost, budget = cpu_ms / 1000, sc.resources.cpus
    print(f"task cpu {{'cpu_ms': {cpu_ms:g}}} x {tasks}, {sc.workers} workers, budget "
          f"{budget:g} CPUs; {rounds} rounds, topologies alternating; ideal C/c = "
          f"{budget / cost:.1f} tasks/s; target: cgroup within {100 * TARGET:g}% of "
          f"tasks x cost + agent threads")
    runtime = DockerRuntime.connect()
    rows: dict[str, list[dict[str, float]]] = {t: [] for t in sc.topologies}
    for r in measure(sc, runtime):
        got = row(r, cost, budget)
        if got is not None:
            rows[r.topology].append(got)
    print("per topology, median (min-max):")
    summary(rows, rounds)


if __name__ == "__main__":
    main()
