"""Deploy at scale and a million tasks: the harness's own costs.

Default mode: one multi deployment of 64 worker containers (plus Redis and the feeder) and
a small no-op batch, through topo's own run loop; prints the time from the deploy call to
every container started and to every worker ready, the teardown time, and each container's
own start and ready times (spread over the 64).

``--million``: a 1,000,000-task no-op batch in each topology (2 workers, multi at prefetch
100), through ``topo.engine.compare`` with the result file saved as ``topo compare`` does;
prints each topology's makespan and this process's peak RSS (VmHWM, reset between the
topologies).

Run it under the shared Docker lock:
  flock /tmp/topo-docker.lock .venv/bin/python benchmarks/scale.py [--workers 64]
  flock /tmp/topo-docker.lock .venv/bin/python benchmarks/scale.py --million [--tasks N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts the checkout's topo first on the path)

from topo import plan as planning
from topo import results as result_files
from topo import engine as run
from topo.analysis import figures as stats
from topo.model import (
    Deployment, MultiSpec, Resources, RunResult, RunSpec, Scenario, SingleSpec, TopologyPlan,
    Workload,
)
from topo.runtime.docker import DockerRuntime

MIB = 2**20


class _Recording(DockerRuntime):
    """The real runtime, keeping the deployment it made and when its teardown ran."""

    deployment: Deployment | None = None
    teardown_span: tuple[float, float] | None = None

    def deploy(self, plan: TopologyPlan, run_dir: str) -> Deployment:
        self.deployment = super().deploy(plan, run_dir)
        return self.deployment

    def teardown(self, deployment: Deployment | None, deployment_name: str) -> None:
        t0 = time.time()
        super().teardown(deployment, deployment_name)
        self.teardown_span = (t0, time.time())


def _spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"min {min(values):6.2f}  median {statistics.median(values):6.2f}  "
            f"max {max(values):6.2f}  (spread {max(values) - min(values):.2f} s, n={len(values)})")


def deploy_mode(workers: int, memory_mib: int) -> None:
    rt = DockerRuntime.connect()
    runtime = _Recording(rt.client)
    sc = Scenario(
        name="scale", workload=Workload(task="noop", tasks=workers * 4), workers=workers,
        resources=Resources(cpus=2, memory=memory_mib * MIB), single=None, multi=MultiSpec(),
        run=RunSpec(repeat=1, timeout=300),
    )
    image = runtime.ensure_image(sc)
    run_id = run.new_run_id()
    name = f"topo-{run_id}-m0"
    p = planning.plan(sc, "multi", run_id, name, image, "pw-" + run_id)
    phases: dict[str, float] = {}

    def at(done: int, phase: str) -> None:
        phases.setdefault(phase, time.time())

    with tempfile.TemporaryDirectory(prefix="topo-bench-") as out:
        r = run.run_one(runtime, p, Path(out) / name, index=0, warmup=False, timeout=300,
                        progress=at)
    d = runtime.deployment
    if d is None or runtime.teardown_span is None:
        raise SystemExit(f"deploy failed: {r.error}")
    t0 = r.t_deploy
    started = {c.name: t for c in d.containers  # (an older topo kept no start times)
               if c.role == "worker" and (t := getattr(c, "t_started", None)) is not None}
    starts = [t - t0 for t in started.values()]
    readies = [w.t_ready - t0 for w in r.workers]
    print(f"{workers} worker containers (+ redis, feeder), {2 / workers:.3f} CPUs and "
          f"{memory_mib // workers} MiB each; status {r.status}, "
          f"{len(r.workers)} workers ready, {r.task_count} no-op tasks")
    print(f"deploy call -> every container started : {phases['ready'] - t0:6.2f} s")
    print(f"deploy call -> every worker ready      : {(r.t_ready or t0) - t0:6.2f} s")
    print(f"teardown (remove {len(d.containers)} containers + network): "
          f"{runtime.teardown_span[1] - runtime.teardown_span[0]:6.2f} s")
    print(f"per container, since the deploy call (s):")
    print(f"  started  {_spread(starts)}")
    print(f"  ready    {_spread(readies)}")
    own = [w.t_ready - started[w.container] for w in r.workers if w.container in started]
    print(f"  ready - own start  {_spread(own)}")


def _vm(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux: 5 > /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")


def million_mode(tasks: int, prefetch: int, memory_mib: int) -> None:
    runtime = DockerRuntime.connect()
    base = Scenario(
        name="million", workload=Workload(task="noop", tasks=tasks), workers=2,
        resources=Resources(cpus=2, memory=memory_mib * MIB), single=SingleSpec(), multi=None,
        run=RunSpec(repeat=1, timeout=1800),
    )
    variants = [("single process-pool", base),
                (f"multi prefetch {prefetch}", Scenario(**{**base.__dict__, "single": None,
                                                           "multi": MultiSpec(prefetch=prefetch)}))]
    runtime.ensure_image(base)
    print(f"harness RSS before any run: {_vm('VmRSS') / MIB:.0f} MiB")
    for label, sc in variants:
        _reset_peak()
        t0 = time.time()
        with tempfile.TemporaryDirectory(prefix="topo-bench-") as out:
            path = Path(out) / "result.json"

            def save(results: list[RunResult], complete: bool) -> None:
                result_files.save(path, result_files.to_json(sc, results, {}, complete))

            (r,) = run.compare(sc, runtime, Path(out), save)
            f = stats.run_figures(r)
            size = path.stat().st_size
            events = sum(p.stat().st_size for p in Path(out).rglob("*.jsonl"))
        wall = time.time() - t0
        print(f"{label:22} status {r.status}; {f.ledger.completed:,} of {tasks:,} completed, "
              f"lost {f.ledger.lost}, duplicated {f.ledger.duplicated}; makespan "
              f"{f.makespan or float('nan'):.1f} s ({f.throughput or 0:,.0f} tasks/s); "
              f"harness peak RSS {_vm('VmHWM') / MIB:.0f} MiB; wall {wall:.0f} s; "
              f"event files {events / 1e6:.0f} MB, result file {size / 1e6:.0f} MB")
        del r, f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--million", action="store_true", help="1M no-op tasks per topology")
    ap.add_argument("--tasks", type=int, default=1_000_000, help="batch size of --million")
    ap.add_argument("--prefetch", type=int, default=100, help="multi prefetch of --million")
    ap.add_argument("--workers", type=int, default=64, help="worker containers (deploy mode)")
    ap.add_argument("--memory", type=int, default=None,
                    help="MiB for all workers (default 2048; --million: 4096, since the "
                         "process pool holds a future per task in its container)")
    a = ap.parse_args()
    if a.million:
        million_mode(a.tasks, a.prefetch, a.memory or 4096)
    else:
        deploy_mode(a.workers, a.memory or 2048)


if __name__ == "__main__":
    main()
