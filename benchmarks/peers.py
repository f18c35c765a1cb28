"""topo's queue next to the queue libraries teams already run, in one sitting.

Each variant runs the same batch through topo's own pipeline (same image family, same Redis
container spec, same budget: 2 CPUs, 512 MiB): no-op tasks, then 10 ms CPU tasks.

- ``single pool`` / ``single superv``: the single topology, ONE container of 2 CPUs, a
  ProcessPoolExecutor of 2 processes / topo's supervisor pool of 2;
- ``topo p1`` / ``topo p10`` / ``topo p100``: topo's reliable queue, prefetch 1, 10 and 100,
  2 worker containers;
- ``celery solo``: ``multi.queue: celery``, 2 containers of ``celery worker --pool solo``;
- ``celery prefork``: ``single.pool: celery-prefork``, ONE container, ``--concurrency 2``
  (Celery's prefork parent plus 2 children; the multi topology has no prefork variant);
- ``rq``: 2 containers of ``rq.SimpleWorker``; ``dramatiq``: 2 containers, 1 worker thread;
- ``bare x2``: the physical reference. The same CPU tasks in two processes with a static
  split of the ids (no queue, no pool, no event line), in ONE container of the whole budget
  (2 CPUs), released together; rate = tasks / (release .. the last process's end). Every
  CPU-task ratio is to it. ``bare``: one such process in a container of one worker's share
  (1 CPU), half the tasks; ``2 x bare`` (its rate doubled) is printed for comparison only:
  it assumes two CPUs give twice one, which a shared machine need not.

Throughput of the topologies is topo's own: completed / makespan, from the batch's release
to the last completion. A worker that holds prefetched tasks while the other is idle makes
a tail of up to prefetch x 10 ms: 1 s at prefetch 100, which would be 10% of a 2,000-task
run of 10 s. So ``--cpu`` compares p1 (a tail of at most one task, 10 ms) and p10 (at most
100 ms, half that on average: under 0.5%) and leaves p100 out (it is there for no-op
dispatch); its batch of 2,000 CPU tasks, a multiple of 2 x 10, makes every run about 10 s on
a free 2-CPU budget.

CPU per task counts every container of the run in the makespan window (workers, Redis,
feeder); "outside cores" is the host's CPU busy outside the run's containers in that window
(the harness reading events and sampling, the engine, anything else on the machine): on a
2-core machine it competes with a 2-CPU budget, where the bare runs' harness only waits.
Note that in the multi topology Redis and the feeder have quotas of their own,
outside the 2-CPU budget, so only the workers' part limits its throughput, while in single
PID 1 shares the budget with the pool. The second table splits it (see ``breakdown``).

Variants are interleaved: every repeat runs each of them once, in the same order.

Printed per variant and workload: tasks/s (median of the repeats), CPU per task, Redis
commands per task (``INFO commandstats`` summed, ``CONFIG RESETSTAT`` once Redis answers
after deploy, so the workers' start-up and idle polling are counted too; the harness's own
INFO/CONFIG/AUTH are not), and the ratios to ``bare x2`` (CPU tasks) and to ``topo p1``.

Usage (under the shared Docker lock):
  flock /tmp/topo-docker.lock .venv/bin/python benchmarks/peers.py [--quick] [--repeats R]
  flock /tmp/topo-docker.lock .venv/bin/python benchmarks/peers.py --cpu [--cpu-tasks N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from _common import DockerRuntime  # noqa: I001  (puts the repository on sys.path)

from topo import cleanup, engine as run
from topo.agent.protocol import PoolKind, QueueKind
from topo.analysis import figures as figures_of
from topo.model import (
    MultiSpec, Resources, RunFigures, RunSpec, Scenario, SingleSpec, Workload,
)

BUDGET = Resources(cpus=2, memory=512 * 2**20)
WORKERS = 2
CPU_PARAMS = {"cpu_ms": 10}
# --cpu: the acceptance comparison only, both topologies against the bare references.
CPU_VARIANTS = ("single pool", "single superv", "topo p1", "topo p10")
OWN = ("cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config", "cmdstat_auth")

# The bare reference: K processes forked in one container of K CPUs, each with a static
# share of the task ids (i::K: no queue, no pool, no event line), released together once
# both have imported the task; rate = tasks / (release .. last child's end), CPU = the
# children's rusage, read by the parent (outside the code measured).
BARE = """
import json, os, time
from topo import workloads
run = workloads.bind("cpu", {params}, 0, None)
run(0)
k, n = {k}, {n}
go_r, go_w = os.pipe()
kids = []
for j in range(k):
    pid = os.fork()
    if pid == 0:
        os.close(go_w)
        os.read(go_r, 1)
        for i in range(j, n, k):
            run(i)
        os._exit(0)
    kids.append(pid)
t0 = time.perf_counter()
os.write(go_w, b"x" * k)
cpu = 0.0
for pid in kids:
    _, status, ru = os.wait4(pid, 0)
    assert status == 0, status
    cpu += ru.ru_utime + ru.ru_stime
wall = time.perf_counter() - t0
print(json.dumps({{"rate": n / wall, "cpu": cpu / n}}))
"""


@dataclasses.dataclass(frozen=True)
class Variant:
    label: str
    single: SingleSpec | None
    multi: MultiSpec | None


VARIANTS = (
    Variant("single pool", SingleSpec(pool=PoolKind.PROCESS_POOL), None),
    Variant("single superv", SingleSpec(pool=PoolKind.SUPERVISOR), None),
    Variant("topo p1", None, MultiSpec(prefetch=1)),
    Variant("topo p10", None, MultiSpec(prefetch=10)),
    Variant("topo p100", None, MultiSpec(prefetch=100)),
    Variant("celery solo", None, MultiSpec(queue=QueueKind.CELERY)),
    Variant("celery prefork", SingleSpec(pool=PoolKind.CELERY_PREFORK), None),
    Variant("rq", None, MultiSpec(queue=QueueKind.RQ)),
    Variant("dramatiq", None, MultiSpec(queue=QueueKind.DRAMATIQ)),
)


@dataclasses.dataclass(frozen=True)
class Figure:
    rate: float
    cpu_ms: float | None
    commands: float | None
    parts: tuple[tuple[str, float], ...] = ()  # CPU ms per task, by where it was spent
    outside: float | None = None  # host cores busy outside the run's containers (harness...)


class RedisStats:
    """CONFIG RESETSTAT after deploy and INFO commandstats before teardown, in the run's
    Redis container, by ``redis-cli`` inside it (the harness reaches no container network)."""

    def __init__(self, runtime: DockerRuntime, run_id: str) -> None:
        self.runtime = runtime
        self.run_id = run_id
        self.commands: int | None = None
        self._reset = False

    def __call__(self, p: run.Progress) -> None:
        if p.phase == "ready" and not self._reset:
            self._reset = self._cli("CONFIG", "RESETSTAT") is not None
        elif p.phase == "teardown" and self.commands is None:
            out = self._cli("INFO", "commandstats")
            self.commands = None if out is None or not self._reset else count_commands(out)

    def _cli(self, *argv: str) -> str | None:
        found = self.runtime.client.containers.list(
            filters={"label": ["topo.role=redis", f"topo.run={self.run_id}"]})
        if not found:
            return None
        args = found[0].attrs["Args"]
        password = args[args.index("--requirepass") + 1]
        for _ in range(50):  # Redis may not listen yet right after deploy
            code, raw = found[0].exec_run(["redis-cli", "-a", password, "--no-auth-warning", *argv])
            out = raw if isinstance(raw, bytes) else b"".join(raw)  # not streamed: bytes
            if code == 0 and b"LOADING" not in out and b"refused" not in out:
                return out.decode()
            time.sleep(0.1)
        return None


def count_commands(info: str) -> int:
    """Calls summed over ``INFO commandstats`` lines, without the harness's own commands."""
    total = 0
    for line in info.splitlines():
        name, _, rest = line.strip().partition(":")
        if name.startswith("cmdstat_") and name not in OWN:
            total += int(rest.split(",")[0].split("=")[1])
    return total


def measure(runtime: DockerRuntime, v: Variant, task: str, params: dict[str, Any],
            tasks: int) -> Figure | None:
    sc = Scenario(name="peers", workload=Workload(task=task, tasks=tasks, params=params),
                  workers=WORKERS, resources=BUDGET, single=v.single, multi=v.multi,
                  run=RunSpec(repeat=1, timeout=600))
    run_id = run.new_run_id()
    redis_stats = RedisStats(runtime, run_id)
    with tempfile.TemporaryDirectory(prefix="topo-bench-") as out:
        (r,) = run.compare(sc, runtime, Path(out), lambda rs, complete: None,
                           progress=redis_stats, run_id=run_id)
    f = figures_of.run_figures(r)
    if r.status != "ok" or f.throughput is None or f.ledger.completed != tasks:
        print(f"{v.label} {task}: status {r.status}, {f.ledger.completed}/{tasks} completed "
              f"({r.error}); left out", flush=True)
        return None
    per_task = None if redis_stats.commands is None else redis_stats.commands / tasks
    cpu_ms = None if f.cpu_per_task is None else f.cpu_per_task * 1000
    return Figure(f.throughput, cpu_ms, per_task, breakdown(f), f.outside_cores)


def breakdown(f: RunFigures) -> tuple[tuple[str, float], ...]:
    """CPU ms per completed task in the makespan window, by where it went: the task threads
    during tasks; the worker containers' other threads (telemetry, heartbeat, PID 1; from
    the in-container per-thread counters); the rest of the worker cgroups (the task threads
    between tasks: taking, recording, acknowledging); Redis's and the feeder's cgroups."""
    n = f.ledger.completed
    by_role: dict[str, float] = {}
    for c in f.containers:
        by_role[c.role] = by_role.get(c.role, 0.0) + c.cpu
    agents = f.cpu_agents
    between = f.cpu_workers - f.task_cpu - (agents or 0.0)
    parts = [("task", f.task_cpu), ("agents", agents), ("between", between),
             ("redis", by_role.get("redis")), ("feeder", by_role.get("feeder"))]
    return tuple((name, cpu * 1000 / n) for name, cpu in parts if cpu is not None)


def bare(runtime: DockerRuntime, tasks: int, k: int = 1) -> Figure:
    """The CPU tasks in ``k`` processes with a static split, no queue, no pool, in one
    container of ``k`` workers' share of the budget (k = 1: one worker's, 1 CPU)."""
    image = runtime.ensure_image(dataclasses.replace(_scenario(), multi=MultiSpec()))
    code = BARE.format(params=json.dumps(CPU_PARAMS), n=tasks, k=k)
    c = runtime.client.containers.run(
        image, ["python3", "-c", code], detach=True, network_mode="none", user="10001:10001",
        nano_cpus=int(BUDGET.cpus * k / WORKERS * 1e9), mem_limit=BUDGET.memory * k // WORKERS,
        labels={"topo.managed": "true", "topo.role": "bench", "topo.owner": cleanup.owner_label()})
    try:
        status = c.wait(timeout=600)["StatusCode"]
        out = bytes(c.logs()).decode()
    finally:
        c.remove(force=True)
    if status != 0:
        raise SystemExit(f"bare run failed: {out[-300:]}")
    doc = json.loads(out.strip().splitlines()[-1])
    return Figure(doc["rate"], doc["cpu"] * 1000, 0.0, (("task", doc["cpu"] * 1000),))


def _scenario() -> Scenario:
    return Scenario(name="peers", workload=Workload(task="noop", tasks=1), workers=WORKERS,
                    resources=BUDGET, single=None, multi=None)


def sitting(runtime: DockerRuntime, repeats: int, noop: int, cpu: int, cpu_only: bool,
            say: Callable[[str], None]) -> dict[tuple[str, str], list[Figure]]:
    got: dict[tuple[str, str], list[Figure]] = {}

    def keep(label: str, task: str, fig: Figure | None, i: int) -> None:
        if fig is not None:
            got.setdefault((label, task), []).append(fig)
            say(f"repeat {i + 1}: {label} {task} {fig.rate:,.0f}/s {fig.cpu_ms or 0:.3f} ms/task")

    workloads = (("cpu", CPU_PARAMS, cpu),) if cpu_only else (
        ("noop", {}, noop), ("cpu", CPU_PARAMS, cpu))
    variants = CPU_VARIANTS if cpu_only else tuple(v.label for v in VARIANTS)
    for i in range(repeats):
        keep("bare", "cpu", bare(runtime, cpu // WORKERS, 1), i)
        keep("bare x2", "cpu", bare(runtime, cpu, WORKERS), i)
        for v in VARIANTS:
            if v.label not in variants:
                continue
            for task, params, n in workloads:
                keep(v.label, task, measure(runtime, v, task, params, n), i)
    return got


def _median(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def table(got: dict[tuple[str, str], list[Figure]]) -> str:
    def med(key: tuple[str, str]) -> Figure:
        figs = got[key]
        return Figure(statistics.median(f.rate for f in figs), _median([f.cpu_ms for f in figs]),
                      _median([f.commands for f in figs]))

    reference = med(("bare x2", "cpu")).rate
    lines = [f"{'variant':16} {'task':5} {'tasks/s':>9} {'spread':>13} {'CPU ms/task':>11} "
             f"{'Redis cmd/task':>14} {'x bare x2':>9} {'x topo p1':>9}"]
    for (label, task) in got:
        m = med((label, task))
        rates = [f.rate for f in got[(label, task)]]
        topo = med(("topo p1", task)).rate if ("topo p1", task) in got else None
        cells = [
            f"{label:16} {task:5} {m.rate:9,.0f} {min(rates):6,.0f}-{max(rates):<6,.0f}",
            f"{m.cpu_ms:11.3f}" if m.cpu_ms is not None else f"{'-':>11}",
            f"{m.commands:14.2f}" if m.commands is not None else f"{'-':>14}",
            f"{m.rate / reference:9.3f}" if task == "cpu" else f"{'-':>9}",
            f"{m.rate / topo:9.3f}" if topo and not label.startswith("bare") else f"{'-':>9}",
        ]
        lines.append(" ".join(cells))
    lines.append(f"bare x2 (2 processes, static split, one container of {BUDGET.cpus:g} CPUs; the physical "
                 f"reference): {reference:,.0f} tasks/s; 2 x bare (1 process on 1 CPU, doubled): "
                 f"{2 * med(('bare', 'cpu')).rate:,.0f} tasks/s")
    return "\n".join(lines)


def parts_table(got: dict[tuple[str, str], list[Figure]]) -> str:
    """Where the CPU of each CPU-task variant went, ms per task, medians of the repeats."""
    names = ("task", "agents", "between", "redis", "feeder")
    lines = [f"{'CPU ms/task':16} " + " ".join(f"{n:>8}" for n in names) + f" {'total':>8}"
             f" {'outside cores':>13}"]
    for (label, task), figs in got.items():
        if task != "cpu":
            continue
        cells = []
        for n in names:
            vals = [dict(f.parts)[n] for f in figs if n in dict(f.parts)]
            cells.append(f"{statistics.median(vals):8.3f}" if vals else f"{'-':>8}")
        total = _median([f.cpu_ms for f in figs])
        outside = _median([f.outside for f in figs])
        lines.append(f"{label:16} " + " ".join(cells) + f" {total or 0:8.3f}"
                     + (f" {outside:13.2f}" if outside is not None else f" {'-':>13}"))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller batches, one repeat")
    ap.add_argument("--cpu", action="store_true",
                    help="CPU tasks only: the bare references, single pool, topo p1 and p10")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--cpu-tasks", type=int, default=None, help="CPU tasks per run")
    ap.add_argument("--cpus", type=float, default=2.0,
                    help="the budget's CPUs (default 2): below the host's cores, the harness, "
                         "the engine and Redis no longer take their CPU out of the budget's")
    args = ap.parse_args()
    global BUDGET
    BUDGET = dataclasses.replace(BUDGET, cpus=args.cpus)
    repeats = args.repeats or (1 if args.quick else 2)
    noop, cpu = (1000, 400) if args.quick else (3000, 2000)
    cpu = args.cpu_tasks or cpu
    if cpu % (WORKERS * 10) or cpu <= 0:
        raise SystemExit(f"--cpu-tasks must be a positive multiple of {WORKERS * 10}")
    runtime = DockerRuntime.connect()
    t0 = time.time()
    got = sitting(runtime, repeats, noop, cpu, args.cpu, lambda s: print(s, flush=True))
    print(f"\n{noop} no-op and {cpu} CPU tasks ({CPU_PARAMS['cpu_ms']} ms) per run, "
          f"{repeats} repeat(s) interleaved, budget {BUDGET.cpus:g} CPUs / "
          f"{BUDGET.memory >> 20} MiB, {WORKERS} workers; {time.time() - t0:.0f} s in all")
    print(table(got))
    print()
    print(parts_table(got))


if __name__ == "__main__":
    main()
