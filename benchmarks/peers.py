"""topo's queue next to the queue libraries teams already run, in one sitting.

Each variant runs the same batch through topo's own pipeline (same image family, same Redis
container spec, same budget: 2 CPUs, 512 MiB): no-op tasks, then 10 ms CPU tasks.

- ``topo p1`` / ``topo p100``: topo's reliable queue, prefetch 1 and 100, 2 worker containers;
- ``celery solo``: ``multi.queue: celery``, 2 containers of ``celery worker --pool solo``;
- ``celery prefork``: ``single.pool: celery-prefork``, ONE container, ``--concurrency 2``
  (Celery's prefork parent plus 2 children; the multi topology has no prefork variant);
- ``rq``: 2 containers of ``rq.SimpleWorker``; ``dramatiq``: 2 containers, 1 worker thread;
- ``bare``: the same CPU tasks in one process of the worker image with no queue and no pool,
  in a container limited to one worker's share (1 CPU); ``2 x bare`` is the physical
  reference for 2 workers.

Variants are interleaved: every repeat runs each of them once, in the same order.

Printed per variant and workload: tasks/s (median of the repeats), CPU per task (every
container of the run: workers, Redis, feeder), Redis commands per task (``INFO
commandstats`` summed, ``CONFIG RESETSTAT`` once Redis answers after deploy, so the workers'
start-up and idle polling are counted too; the harness's own INFO/CONFIG/AUTH are not), and
the ratios to ``2 x bare`` (CPU tasks) and to ``topo p1``.

Usage (under the shared Docker lock):
  flock /tmp/topo-docker.lock .venv/bin/python benchmarks/peers.py [--quick] [--repeats R]
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
from topo.analysis import figures as figures_of
from topo.model import MultiSpec, Resources, RunSpec, Scenario, SingleSpec, Workload

BUDGET = Resources(cpus=2, memory=512 * 2**20)
WORKERS = 2
CPU_PARAMS = {"cpu_ms": 10}
OWN = ("cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config", "cmdstat_auth")

BARE = """
import json, time
from topo import workloads
run = workloads.bind("cpu", {params}, 0, None)
run(0)
t0, c0 = time.perf_counter(), time.process_time()
for i in range({n}):
    run(i)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({{"rate": {n} / wall, "cpu": cpu / {n}}}))
"""


@dataclasses.dataclass(frozen=True)
class Variant:
    label: str
    single: SingleSpec | None
    multi: MultiSpec | None


VARIANTS = (
    Variant("topo p1", None, MultiSpec(prefetch=1)),
    Variant("topo p100", None, MultiSpec(prefetch=100)),
    Variant("celery solo", None, MultiSpec(queue="celery")),
    Variant("celery prefork", SingleSpec(pool="celery-prefork"), None),
    Variant("rq", None, MultiSpec(queue="rq")),
    Variant("dramatiq", None, MultiSpec(queue="dramatiq")),
)


@dataclasses.dataclass(frozen=True)
class Figure:
    rate: float
    cpu_ms: float | None
    commands: float | None


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
            code, out = found[0].exec_run(["redis-cli", "-a", password, "--no-auth-warning", *argv])
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
    return Figure(f.throughput, cpu_ms, per_task)


def bare(runtime: DockerRuntime, tasks: int) -> Figure:
    """The CPU tasks in one process, no queue, no pool: one worker's share of the budget."""
    image = runtime.ensure_image(dataclasses.replace(_scenario(), multi=MultiSpec()))
    code = BARE.format(params=json.dumps(CPU_PARAMS), n=tasks)
    c = runtime.client.containers.run(
        image, ["python3", "-c", code], detach=True, network_mode="none", user="10001:10001",
        nano_cpus=int(BUDGET.cpus / WORKERS * 1e9), mem_limit=BUDGET.memory // WORKERS,
        labels={"topo.managed": "true", "topo.role": "bench", "topo.owner": cleanup.owner_label()})
    try:
        status = c.wait(timeout=600)["StatusCode"]
        out = c.logs().decode()
    finally:
        c.remove(force=True)
    if status != 0:
        raise SystemExit(f"bare run failed: {out[-300:]}")
    doc = json.loads(out.strip().splitlines()[-1])
    return Figure(doc["rate"], doc["cpu"] * 1000, 0.0)


def _scenario() -> Scenario:
    return Scenario(name="peers", workload=Workload(task="noop", tasks=1), workers=WORKERS,
                    resources=BUDGET, single=None, multi=None)


def sitting(runtime: DockerRuntime, repeats: int, noop: int, cpu: int,
            say: Callable[[str], None]) -> dict[tuple[str, str], list[Figure]]:
    got: dict[tuple[str, str], list[Figure]] = {}
    for i in range(repeats):
        got.setdefault(("bare", "cpu"), []).append(bare(runtime, cpu))
        say(f"repeat {i + 1}: bare {got[('bare', 'cpu')][-1].rate:.0f}/s")
        for v in VARIANTS:
            for task, params, n in (("noop", {}, noop), ("cpu", CPU_PARAMS, cpu)):
                fig = measure(runtime, v, task, params, n)
                if fig is None:
                    continue
                got.setdefault((v.label, task), []).append(fig)
                say(f"repeat {i + 1}: {v.label} {task} {fig.rate:,.0f}/s")
    return got


def _median(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def table(got: dict[tuple[str, str], list[Figure]]) -> str:
    def med(key: tuple[str, str]) -> Figure:
        figs = got[key]
        return Figure(statistics.median(f.rate for f in figs), _median([f.cpu_ms for f in figs]),
                      _median([f.commands for f in figs]))

    reference = 2 * med(("bare", "cpu")).rate
    lines = [f"{'variant':16} {'task':5} {'tasks/s':>9} {'spread':>13} {'CPU ms/task':>11} "
             f"{'Redis cmd/task':>14} {'x 2 bare':>8} {'x topo p1':>9}"]
    for (label, task) in got:
        m = med((label, task))
        rates = [f.rate for f in got[(label, task)]]
        topo = med(("topo p1", task)).rate if ("topo p1", task) in got else None
        cells = [
            f"{label:16} {task:5} {m.rate:9,.0f} {min(rates):6,.0f}-{max(rates):<6,.0f}",
            f"{m.cpu_ms:11.3f}" if m.cpu_ms is not None else f"{'-':>11}",
            f"{m.commands:14.2f}" if m.commands is not None else f"{'-':>14}",
            f"{m.rate / reference:8.3f}" if task == "cpu" and label != "bare" else f"{'-':>8}",
            f"{m.rate / topo:9.3f}" if topo and label != "bare" else f"{'-':>9}",
        ]
        lines.append(" ".join(cells))
    lines.append(f"2 x bare (the physical reference for 2 workers of 1 CPU): {reference:,.0f} tasks/s")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller batches, one repeat")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    repeats = args.repeats or (1 if args.quick else 2)
    noop, cpu = (1000, 200) if args.quick else (3000, 400)
    runtime = DockerRuntime.connect()
    t0 = time.time()
    got = sitting(runtime, repeats, noop, cpu, lambda s: print(s, flush=True))
    print(f"\n{noop} no-op and {cpu} CPU tasks ({CPU_PARAMS['cpu_ms']} ms) per run, "
          f"{repeats} repeat(s) interleaved, budget {BUDGET.cpus:g} CPUs / "
          f"{BUDGET.memory >> 20} MiB, {WORKERS} workers; {time.time() - t0:.0f} s in all")
    print(table(got))


if __name__ == "__main__":
    main()
