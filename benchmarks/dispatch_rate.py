"""No-op dispatch rate: how many empty tasks per second the multi topology's reliable queue
moves with 2 worker containers, and how many Redis commands it spends per task.

Each variant (prefetch 1 and batched, and the single process-pool with ``--single``) runs a
batch of no-op tasks once per repeat, the variants interleaved within a repeat, so that a
load change on the machine spreads over all of them. Per variant it prints the median
tasks/s over the repeats with their range, the steady rate (median completion rate between
10% and 90% of the batch), and Redis commands per task, read from ``INFO commandstats`` in
the Redis container after the batch (``CONFIG RESETSTAT`` once the containers are deployed,
so the count covers the workers' start, the feeder and the whole batch).

Goal (issue 12): >= 40,000 tasks/s batched and >= 5,000 tasks/s at prefetch 1, 2 workers,
steady over 200,000 tasks.

``--image A,B`` deploys those worker images instead of this checkout's ('.' names it), each
variant once per image in every repeat: an older build beside this one, in one sitting.

``--profile`` runs no container: one worker process's loop (topo.agent.worker) in this
process under cProfile against a redis-server on loopback (apt: redis-server), and prints
where its time goes: the event line per task, the Redis link, the task, the rest.

Usage (Docker runs under the shared lock):
  flock /tmp/topo-docker.lock .venv/bin/python benchmarks/dispatch_rate.py \\
      [--tasks 200000] [--prefetch 1,100,1000] [--repeat 3] [--single] [--image .,TAG]
  .venv/bin/python benchmarks/dispatch_rate.py --profile [--tasks 100000] [--prefetch 100]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import os
import pstats
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import redis
from _common import ROOT  # noqa: F401  (puts this checkout's topo first on sys.path)

from topo import engine as run
from topo.analysis import figures as stats
from topo.agent import common, reliable, resp, worker
from topo.agent.protocol import AgentConfig, QueueKind
from topo.runtime.docker import DockerRuntime
from topo.model import MultiSpec, Resources, RunResult, RunSpec, Scenario, SingleSpec, Workload


@dataclasses.dataclass(frozen=True)
class Measured:
    throughput: float
    steady: float | None
    commands: int | None  # Redis commands during the run (multi only)
    completed: int
    status: str
    cpu_task: float | None = None  # CPU seconds per completed task: all containers (cgroup)
    cpu_workers_task: float | None = None  # the worker containers' share of it


class RedisCommands:
    """Progress hook: reset Redis' command counts once deployed, read them before teardown."""

    def __init__(self, runtime: DockerRuntime, run_id: str) -> None:
        self.runtime, self.run_id = runtime, run_id
        self.total: int | None = None
        self.by_command: dict[str, int] = {}

    def __call__(self, p: run.Progress) -> None:
        if p.phase == "ready" and p.completed == 0 and self.total is None:
            self._redis_cli("CONFIG", "RESETSTAT")
            self.total = 0
        elif p.phase == "teardown":
            out = self._redis_cli("INFO", "commandstats")
            self.by_command = _commandstats(out) if out else {}
            self.total = sum(self.by_command.values()) if out else None

    def _redis_cli(self, *args: str) -> str | None:
        found = self.runtime.client.containers.list(
            filters={"label": [f"topo.run={self.run_id}", "topo.role=redis"]})
        if not found:
            return None
        c = found[0]
        cmd = list(c.attrs["Config"]["Cmd"])
        auth = ["-a", cmd[cmd.index("--requirepass") + 1], "--no-auth-warning"] \
            if "--requirepass" in cmd else []
        code, out = c.exec_run(["redis-cli", *auth, *args])
        return out.decode() if code == 0 and isinstance(out, bytes) else None


def _commandstats(text: str) -> dict[str, int]:
    """``cmdstat_evalsha:calls=12,usec=...`` lines -> {command: calls}; the two commands
    this benchmark sends itself (CONFIG, INFO) are left out."""
    calls = {}
    for line in text.splitlines():
        if line.startswith("cmdstat_"):
            name, fields = line[len("cmdstat_"):].split(":", 1)
            if name.split("|")[0] not in ("config", "info"):  # Redis 7: config|resetstat
                calls[name] = int(dict(f.split("=") for f in fields.split(","))["calls"])
    return calls


def measure(sc: Scenario, runtime: DockerRuntime) -> tuple[Measured, dict[str, int]]:
    run_id = run.new_run_id()
    hook = RedisCommands(runtime, run_id)
    with tempfile.TemporaryDirectory(prefix="topo-bench-") as out:
        (r,) = run.compare(sc, runtime, Path(out), lambda res, complete: None,
                           progress=hook, run_id=run_id)
    return _figures(r, hook.total if sc.multi else None), hook.by_command


def _figures(r: RunResult, commands: int | None) -> Measured:
    f = stats.run_figures(r)
    done = f.ledger.completed
    return Measured(f.throughput or 0.0, f.steady_rate, commands, done, r.status,
                    f.cpu_per_task, f.cpu_workers / done if done else None)


def variants(tasks: int, prefetches: list[int], single: bool) -> list[tuple[str, Scenario]]:
    base = Scenario(
        name="dispatch", workload=Workload(task="noop", tasks=tasks), workers=2,
        resources=Resources(cpus=2, memory=512 * 2**20), single=SingleSpec(), multi=None,
        run=RunSpec(repeat=1, timeout=900),
    )
    multi = [(f"multi prefetch {p}",
              dataclasses.replace(base, single=None, multi=MultiSpec(prefetch=p)))
             for p in prefetches]
    return ([("single process-pool", base)] if single else []) + multi


def report(label: str, runs: list[Measured], tasks: int) -> str:
    rates = [m.throughput for m in runs]
    steady = [m.steady for m in runs if m.steady is not None]
    cmds = [m.commands / m.completed for m in runs if m.commands and m.completed]
    ok = sum(m.status == "ok" and m.completed == tasks for m in runs)
    cpu = [m.cpu_task * 1e6 for m in runs if m.cpu_task is not None]
    cpu_w = [m.cpu_workers_task * 1e6 for m in runs if m.cpu_workers_task is not None]
    return (f"{label:22} {statistics.median(rates):>8,.0f} tasks/s "
            f"(range {min(rates):,.0f}-{max(rates):,.0f}, {len(runs)} runs, {ok} complete)"
            + (f"  steady {statistics.median(steady):>8,.0f}/s" if steady else "")
            + (f"  {statistics.median(cmds):.3f} Redis commands/task" if cmds else "")
            + (f"  CPU/task {statistics.median(cpu):.1f} us (range {min(cpu):.1f}-{max(cpu):.1f}"
               f"; workers {statistics.median(cpu_w):.1f})" if cpu and cpu_w else ""))


class _Pinned(DockerRuntime):
    """The real runtime, deploying a given worker image (an older build, to compare in one
    sitting) instead of the one built from this checkout."""

    def __init__(self, client: Any, image: str) -> None:
        super().__init__(client)
        self.pinned = image

    def ensure_image(self, scenario: Scenario) -> str:
        if self.image_id(self.pinned) is None:
            raise SystemExit(f"no image {self.pinned} on this engine")
        return self.pinned


def docker_main(args: argparse.Namespace) -> None:
    runtime = DockerRuntime.connect()
    runtimes = {"": runtime} if not args.image else {
        f" [{tag}]": runtime if tag == "." else _Pinned(runtime.client, tag)
        for tag in args.image}
    chosen = [(label + suffix, sc, rt) for label, sc in
              variants(args.tasks, args.prefetch, args.single) for suffix, rt in runtimes.items()]
    measured: dict[str, list[Measured]] = {label: [] for label, _, _ in chosen}
    for i in range(args.repeat):
        for label, sc, rt in chosen:
            m, by_command = measure(sc, rt)
            measured[label].append(m)
            detail = ", ".join(f"{k} {v / max(m.completed, 1):.3f}"
                               for k, v in sorted(by_command.items(), key=lambda kv: -kv[1]))
            cpu = "" if m.cpu_task is None else f", CPU/task {m.cpu_task * 1e6:.1f} us"
            print(f"  repeat {i + 1} {label:22} {m.throughput:>8,.0f} tasks/s, "
                  f"{m.completed} done, {m.status}{cpu}"
                  + (f"; per task: {detail}" if detail else ""), flush=True)
    print(f"\n{args.tasks:,} no-op tasks, 2 workers, cpus=2, median of {args.repeat} "
          "interleaved repeats:")
    for label, _, _ in chosen:
        print(report(label, measured[label], args.tasks))


# --------------------------------------------------------------------------- --profile

def profile(tasks: int, prefetch: int) -> None:
    """One worker's loop, in this process, against a loopback redis-server: its rate, then
    the same under cProfile with the share of each part of the loop."""
    with tempfile.TemporaryDirectory(prefix="topo-bench-") as folder, \
            _loopback_redis(Path(folder)) as port:
        common.RUN_DIR = folder  # the event file goes here (read when it is opened)
        os.mkdir(os.path.join(folder, common.EVENTS))
        plain = _drain(port, tasks, prefetch, None)
        prof = cProfile.Profile()
        profiled = _drain(port, tasks, prefetch, prof)
    st = pstats.Stats(prof)
    entries = st.stats.items()  # type: ignore[attr-defined]
    cum = {f"{Path(k[0]).stem}.{k[2]}": v[3] for k, v in entries}
    total = cum["worker.step_reliable"]
    print(f"one worker, loopback Redis, prefetch {prefetch}: {plain:,.0f} tasks/s "
          f"({profiled:,.0f} under cProfile); share of the loop's time under cProfile:")
    for label, keys in PARTS:
        for key in keys:
            if key in cum:
                print(f"  {label:36} {100 * cum[key] / total:5.1f}%  ({key})")


# The parts of the loop, by the functions that do them (the older names too, so the same
# script profiles an older checkout: PYTHONPATH=<its folder>).
PARTS = [
    ("run a task, make its line", ("common.run", "common.task_record")),
    ("  the task (workloads noop)", ("workloads.noop",)),
    ("  the core it ran on", ("common.cpu_num", "__init__.cpu_num")),
    ("write its line (write(2))", ("common.write", "common.emit")),
    ("take (script, acks)", ("reliable.take",)),
    ("mark (HSET write)", ("reliable.mark",)),
    ("flush (time bound)", ("reliable.flush",)),
    ("reaper check", ("worker.maybe_reap",)),
]


def _drain(port: int, tasks: int, prefetch: int, prof: cProfile.Profile | None) -> float:
    client = redis.Redis(port=port)
    client.flushall()
    for start in range(0, tasks, 10_000):
        client.lpush(reliable.QUEUE, *range(start, min(start + 10_000, tasks)))
    cfg = AgentConfig(container=f"w{prefetch}", task="noop", params={}, seed=0, tasks=tasks,
                      prefetch=prefetch, queue=QueueKind.RELIABLE)
    w = worker.Worker(cfg, common.Events(f"bench-{os.getpid()}"), lambda: resp.Redis(port=port))
    w.begin_reliable()
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    steps = max(1, 100 // prefetch)  # between checks: a check is a round trip of its own
    while client.llen(reliable.QUEUE):
        for _ in range(steps):
            w.step_reliable()  # on an empty queue this would wait a second (TAKE_WAIT)
    w.queue.take(0, w._done)  # the last acks
    if prof is not None:
        prof.disable()
    return tasks / (time.perf_counter() - t0)


@contextlib.contextmanager
def _loopback_redis(folder: Path) -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                             "--save", "", "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=None,
                    help="batch size (200,000; with --profile 100,000)")
    ap.add_argument("--prefetch", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1, 100, 1000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--image", type=lambda s: s.split(","), default=None,
                    help="worker images to deploy, comma-separated, interleaved in every "
                         "repeat ('.' = the one built from this checkout)")
    ap.add_argument("--single", action="store_true", help="also the single process-pool")
    ap.add_argument("--profile", action="store_true", help="cProfile one worker, no Docker")
    args = ap.parse_args()
    if args.profile:
        for p in args.prefetch:
            profile(args.tasks or 100_000, p)
    else:
        args.tasks = args.tasks or 200_000
        docker_main(args)


if __name__ == "__main__":
    main()

