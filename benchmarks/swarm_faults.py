"""Faults and counters under Swarm: topo's own node reached the local way (host PIDs,
cgroup files) against the engine's way (the API's kill, the stats API), as any other node
is reached. Same scenario, same sitting, the two ways interleaved (ABBA per round pair).

Per run: how the kill was done, Swarm's replacement (time from the kill to the replacement
task's first completed task), topo's time to recover (the rate back at 90%), the single
batch's fate, CPU per task and peak memory of the worker containers, and the samples taken
(samples of a running worker container per second of the batch: the stats API answers
once a second, the cgroup files are read at 10 Hz).

Usage (on a Swarm manager; on a shared engine hold its lock):
  flock /tmp/topo-docker.lock scripts/single-node-swarm.sh \\
      .venv/bin/python benchmarks/swarm_faults.py [scenario.yaml] [rounds] [first access]
(default scenarios/kill-container.yaml, 1 round, host first)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import ROOT

from topo import engine as run, scenario  # noqa: E402
from topo.analysis.blast import blast_radius  # noqa: E402
from topo.analysis.figures import run_figures  # noqa: E402
from topo.ledger import build_ledger  # noqa: E402
from topo.runtime.docker import DockerRuntime  # noqa: E402
from topo.runtime.swarm import SwarmRuntime  # noqa: E402


class Telling(SwarmRuntime):
    """Keeps how each kill was done (host-pid, exec, engine-api)."""

    hows: list[str]

    def kill(self, deployment, name, pid=None):  # type: ignore[no-untyped-def]
        how = super().kill(deployment, name, pid)
        self.hows.append(how)
        return how


def one(path: Path, access: str) -> None:
    sc = scenario.load(path)
    rt = Telling(DockerRuntime.connect().client, collect="bind", access=access)
    rt.hows = []
    with tempfile.TemporaryDirectory(prefix="topo-bench-") as out:
        results = run.compare(sc, rt, Path(out), lambda r, complete: None)
    hows = iter(rt.hows)
    for r in results:
        f = run_figures(r)
        lg = build_ledger(r.task_count, r.records, r.retried)
        line = (f"{access:6} {r.topology:6} {'fault' if r.fault else 'clean':5} {r.status:7} "
                f"done {lg.completed:4} failed {lg.failed:4} lost {lg.lost:3} "
                f"cpu/task {f.cpu_per_task * 1e3 if f.cpu_per_task else float('nan'):6.1f} ms "
                f"thr {f.throughput or float('nan'):5.1f}/s "
                f"samples/s {_rate(r):4.1f}")
        if r.fault is not None:
            b = blast_radius(r, sc.workers)
            line += (f" | kill by {next(hows, '?'):10} replaced after "
                     f"{_s(b.time_to_replace)} recover {_s(b.time_to_recover)}")
        print(line, flush=True)


def _rate(r: Any) -> float:
    """Samples of a running worker container per container and second, over the batch
    (from its availability to its last completed task)."""
    names = {c.name for c in r.containers if c.role in ("single", "worker")}
    ends = [x.end for x in r.records if x.ok]
    if not names or r.t_available is None or not ends:
        return float("nan")
    span = max(ends) - r.t_available
    n = sum(1 for s in r.samples if s.container in names and s.running
            and r.t_available <= s.t <= max(ends))
    return float(n / len(names) / max(span, 1e-9))


def _s(x: float | None) -> str:
    return "   -  " if x is None else f"{x:5.2f}s"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "scenarios" / "kill-container.yaml"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    first = sys.argv[3] if len(sys.argv) > 3 else "host"
    order = [first, "engine" if first == "host" else "host"]
    for i in range(rounds):
        for access in (order if i % 2 == 0 else order[::-1]):
            one(path, access)


if __name__ == "__main__":
    main()
