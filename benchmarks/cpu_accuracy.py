"""Calibrate the CPU cost c of scenarios/cpu.yaml's task, then check topo's figures against it.

1. c: the task run alone, K times, by one process in one container (1 CPU), timed with the
   process's own CPU clock, in this sitting (machines drift; a stored c would not do).
2. topo compare on the same scenario: each topology's throughput against the ideal C/c, and
   the CPU seconds per task it reports (workers' cgroups) against c.

Usage: .venv/bin/python benchmarks/cpu_accuracy.py [scenario.yaml] [K]
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

from _common import ROOT, DockerRuntime, measure

from topo import scenario, stats

CALIBRATE = """
import json, time
from topo import workloads
cfg = json.loads({cfg!r})
run = workloads.bind(cfg["task"], cfg["params"], cfg["seed"])
for i in range(3):
    run(i)
cpu0, t0 = time.process_time(), time.time()
for i in range(cfg["k"]):
    run(i)
print(json.dumps({{"cpu": time.process_time() - cpu0, "wall": time.time() - t0}}))
"""


def calibrate(image: str, sc: scenario.Scenario, k: int) -> float:
    cfg = json.dumps({"task": sc.workload.task, "params": dict(sc.workload.params),
                      "seed": sc.workload.seed, "k": k})
    out = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--cpus", "1", "--user", "10001",
         "--label", "topo.managed=true", image, "python3", "-c", CALIBRATE.format(cfg=cfg)],
        check=True, capture_output=True, text=True,
    ).stdout
    got = json.loads(out)
    return float(got["cpu"]) / k


def report(results: list, c: float, budget: float) -> None:  # type: ignore[type-arg]
    for r in results:
        f = stats.run_figures(r)
        n = f.ledger.completed
        per_task = f.cpu_workers / n if n else float("nan")
        own = f.task_cpu / n if n else float("nan")
        share = f.throughput * c / budget if f.throughput else 0.0
        print(
            f"  {r.topology:6} status {r.status}: {n} tasks, throughput {f.throughput:.1f}/s = "
            f"{100 * share:.1f}% of ideal [{'ok' if share >= 0.9 else 'BELOW 90%'}]; "
            f"CPU per task (cgroup, workers) {per_task * 1000:.2f} ms = "
            f"{100 * (per_task / c - 1):+.1f}% vs c "
            f"[{'ok' if abs(per_task / c - 1) <= 0.05 else 'OFF BY MORE THAN 5%'}]; "
            f"the tasks' own CPU {own * 1000:.2f} ms (cgroup {100 * (per_task / own - 1):+.1f}% "
            f"above it; quota used by tasks {100 * f.throughput * own / budget:.1f}%); "
            f"coordination {f.cpu_coordination:.2f} s; host busy outside the run "
            f"{f.outside_cores or 0:.2f} cores, stolen {f.steal_cores or 0:.2f} cores"
        )


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "scenarios" / "cpu.yaml")
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    sc = scenario.load(path)
    runtime = DockerRuntime.connect()
    image = runtime.ensure_image(sc)
    c_before = calibrate(image, sc, k)
    results = measure(sc, runtime)
    c_after = calibrate(image, sc, k)
    # This machine's speed drifts (a shared VM): c is taken on both sides of the runs.
    c = (c_before + c_after) / 2
    budget = sc.resources.cpus
    print(f"1. task {sc.workload.task} {dict(sc.workload.params)}: c = {c * 1000:.2f} ms CPU "
          f"(alone, {k} runs before: {c_before * 1000:.2f} ms, after: {c_after * 1000:.2f} ms); "
          f"budget C = {budget:g} CPUs; ideal C/c = {budget / c:.1f} tasks/s")
    report(results, c, budget)
    # 2. A task whose CPU cost is known by construction: it spins until its process has used
    # cpu_ms of CPU, so c does not depend on how fast the machine is at the moment.
    known = 0.025
    sc2 = dataclasses.replace(sc, workload=dataclasses.replace(sc.workload,
                                                               params={"cpu_ms": known * 1000}))
    print(f"2. task cpu {{'cpu_ms': {known * 1000:g}}}: c = {known * 1000:g} ms by construction; "
          f"ideal C/c = {budget / known:.1f} tasks/s")
    report(measure(sc2, runtime), known, budget)

if __name__ == "__main__":
    main()
