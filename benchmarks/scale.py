"""Deploy at scale and a million tasks: the harness's own costs.

Default mode: one multi deployment of 64 worker containers (plus Redis and the feeder) and
a small no-op batch, through topo's own run loop; prints the time from the deploy call to
every container started and to every worker ready, the teardown time, and each container's
own start and ready times (spread over the 64). ``--image TAG`` deploys that worker image
instead of the one built from this checkout (an older build, to compare in one sitting).

``--agent-cpu``: what one worker agent costs to start, measured inside its container with
the quota it has among 64 (2/64 CPU): a few worker containers whose agent exits at its
ready line after printing its own CPU seconds (user + system, every thread) and the time
since its python3 started. Compare images with ``--image``.

``--import-cost``: where that start-up CPU goes: in one container of the worker image with
the same quota (2/64 CPU), each of a few start-up steps run as its own ``python3``, in
turn, several rounds interleaved; prints each one's CPU seconds (user + system of the
child, from getrusage): the bare interpreter, the module every agent shares
(topo.agent.common: protocol, workloads and the event files), the worker's imports, psutil
(which single's PID 1 still imports; the worker and its telemetry no longer do), redis-py
imported plainly (the worker no longer imports it either), topo's event protocol, and the
protocol's own standard-library imports, the floor its import cost can reach.

``--states``: what one look at the containers' states costs (the run engine looks 4 times
a second, beside the workload): a 64-worker deployment, then in turn, several rounds,
topo's ``states()`` (a sparse listing, an inspect only of what changed) and a listing that
inspects every container (what it did before); prints each one's wall time, this process's
CPU and the engine's (dockerd's own CPU counter, read from /proc).

``--floor``: the engine's own floor under that deploy, in one sitting, interleaved: as many
idle containers (``sleep``, no agent) created and started straight through the engine's API
on a new internal bridge network, the same number at a time, with no line of topo's deploy
code; topo's own deploy of the 64-worker plan with ``sleep`` in place of every agent; and
topo's deploy as it is. Prints each one's time to every container started (and to every
worker ready), its teardown, and the CPU-s of dockerd, containerd and the shims meanwhile
(with their ended children: the per-container DNS set-up, iptables, runc).

``--million``: a 1,000,000-task no-op batch in each topology (2 workers, multi at prefetch
100), through ``topo.engine.compare`` with the result file saved as ``topo compare`` does;
prints each topology's makespan and this process's peak RSS (VmHWM, reset between the
topologies).

Run it under the shared Docker lock:
  flock /tmp/topo-docker.lock .venv/bin/python benchmarks/scale.py [--workers 64] [--image TAG]
  flock /tmp/topo-docker.lock .venv/bin/python benchmarks/scale.py --agent-cpu [--image TAG]
  flock /tmp/topo-docker.lock .venv/bin/python benchmarks/scale.py --import-cost [--image TAG]
  flock /tmp/topo-docker.lock .venv/bin/python benchmarks/scale.py --states [--workers 64]
  flock /tmp/topo-docker.lock .venv/bin/python benchmarks/scale.py --floor [ROUNDS]
  flock /tmp/topo-docker.lock .venv/bin/python benchmarks/scale.py --million [--tasks N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _common  # noqa: F401  (puts the checkout's topo first on the path)

from topo import cleanup
from topo import plan as planning
from topo import results as result_files
from topo import engine as run
from topo.analysis import figures as stats
from topo.engine.lifecycle import prepare_run_dir
from topo.model import (
    Deployment, MultiSpec, Resources, RunResult, RunSpec, Scenario, SingleSpec, TopologyPlan,
    Workload,
)
from topo.runtime import docker as docker_runtime
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


def _spread(values: list[float], digits: int = 2) -> str:
    if not values:
        return "n/a"
    d = digits
    return (f"min {min(values):6.{d}f}  median {statistics.median(values):6.{d}f}  "
            f"max {max(values):6.{d}f}  (spread {max(values) - min(values):.{d}f} s, "
            f"n={len(values)})")


def _scenario(workers: int, cpus: float, memory_mib: int) -> Scenario:
    return Scenario(
        name="scale", workload=Workload(task="noop", tasks=workers * 4), workers=workers,
        resources=Resources(cpus=cpus, memory=memory_mib * MIB), single=None, multi=MultiSpec(),
        run=RunSpec(repeat=1, timeout=300),
    )


def deploy_mode(workers: int, memory_mib: int, image: str | None) -> None:
    rt = DockerRuntime.connect()
    sc = _scenario(workers, 2, memory_mib)
    image = image or rt.ensure_image(sc)
    print(f"image {image}; {docker_runtime.DEPLOY_POOL} containers deployed at a time")
    _deploy_once(rt, sc, image, memory_mib, verbose=True)


def _deploy_once(rt: DockerRuntime, sc: Scenario, image: str, memory_mib: int,
                 verbose: bool) -> dict[str, float]:
    """One multi deployment through topo's run loop; its figures (s since the deploy call,
    and the engine's CPU-s from the deploy call to every container started)."""
    runtime = _Recording(rt.client)
    workers = sc.workers
    run_id = run.new_run_id()
    name = f"topo-{run_id}-m0"
    p = planning.plan(sc, "multi", run_id, name, image, "pw-" + run_id)
    phases: dict[str, float] = {}
    engine: dict[str, float] = {}

    def at(done: int, phase: str) -> None:
        if phase not in phases and phase == "ready":
            engine["started"] = _engine_cpu()
        phases.setdefault(phase, time.time())

    with tempfile.TemporaryDirectory(prefix="topo-bench-") as out:
        engine["before"] = _engine_cpu()
        r = run.run_one(runtime, p, Path(out) / name, index=0, warmup=False, timeout=300,
                        progress=at)
    d = runtime.deployment
    if d is None or runtime.teardown_span is None:
        raise SystemExit(f"deploy failed: {r.error}")
    t0 = r.t_deploy
    figures = {"started": phases["ready"] - t0, "ready": (r.t_ready or t0) - t0,
               "teardown": runtime.teardown_span[1] - runtime.teardown_span[0],
               "engine": engine.get("started", float("nan")) - engine["before"]}
    if not verbose:
        return figures
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
    print("per container, since the deploy call (s):")
    print(f"  started  {_spread(starts)}")
    print(f"  ready    {_spread(readies)}")
    own = [w.t_ready - started[w.container] for w in r.workers if w.container in started]
    print(f"  ready - own start  {_spread(own)}")
    return figures


def _engine_cpu() -> float:
    """CPU seconds (user + system, with their ended children) of the engine's processes
    here: dockerd, containerd and every containerd shim (one per container, alive while it
    is, with runc as its child); NaN if none is found here. A reexec (the DNS set-up in a
    container's namespace), iptables or runc is a child that has ended by now: its CPU is in
    the parent's children times."""
    total = _cpu_of(lambda name: name in ("dockerd", "containerd")
                    or name.startswith("containerd-shim"), children=True)
    return float("nan") if total is None else total


def _cpu_of(chosen: Callable[[str], bool], children: bool) -> float | None:
    """CPU seconds (user + system, and with ``children`` their ended children's) of every
    process here whose name is ``chosen``; None if there is none."""
    import psutil

    total, found = 0.0, False
    for proc in psutil.process_iter(["name", "cpu_times"]):
        t = proc.info["cpu_times"]
        if t is not None and chosen(proc.info["name"] or ""):
            found = True
            total += t.user + t.system + (t.children_user + t.children_system if children else 0.0)
    return total if found else None


def _bare_once(rt: DockerRuntime, containers: int, image: str, cpus: float,
               memory: int) -> dict[str, float]:
    """The engine floor: ``containers`` idle containers (``sleep``, no agent) on a new
    internal bridge network, created and started straight through the engine's API,
    ``DEPLOY_POOL`` at a time, each with the quota and memory limit of one of topo's
    workers; then removed, with the network. No line of topo's deploy code runs."""
    from concurrent.futures import ThreadPoolExecutor

    api = rt.client.api
    run_id = run.new_run_id()
    labels = {planning.MANAGED: "true", planning.RUN: run_id,
              planning.OWNER: cleanup.owner_label()}
    name = f"topo-{run_id}-floor"
    engine0, t0 = _engine_cpu(), time.time()
    api.create_network(name, driver="bridge", internal=True, labels=labels,
                       check_duplicate=True)

    host = api.create_host_config(network_mode=name, nano_cpus=int(cpus * 1e9),
                                  mem_limit=memory, memswap_limit=memory)

    def one(i: int) -> str:
        cid = api.create_container(image, ["sleep", "600"], name=f"{name}-{i}",
                                   labels=labels, host_config=host)["Id"]
        api.start(cid)
        return str(cid)

    try:
        with ThreadPoolExecutor(max_workers=docker_runtime.DEPLOY_POOL) as pool:
            list(pool.map(one, range(containers)))
        started, engine = time.time() - t0, _engine_cpu() - engine0
    finally:
        t1 = time.time()
        rt.remove_labelled(f"{planning.RUN}={run_id}")  # as topo's teardown: containers, network
        teardown = time.time() - t1
    return {"started": started, "engine": engine, "teardown": teardown}


def _idle_once(rt: DockerRuntime, sc: Scenario, image: str) -> dict[str, float]:
    """topo's own deploy of the same plan (Redis first and waited for, then the rest with
    every option topo gives them), except that the workers and the feeder run ``sleep``
    instead of an agent: the engine's cost of topo's containers, without their agents."""
    runtime = DockerRuntime(rt.client)
    run_id = run.new_run_id()
    name = f"topo-{run_id}-m0"
    p = planning.plan(sc, "multi", run_id, name, image, "pw-" + run_id)
    idle = tuple(dataclasses.replace(c, command=("sleep", "600")) if c.role != "redis" else c
                 for c in p.containers)
    p = dataclasses.replace(p, containers=idle)
    with tempfile.TemporaryDirectory(prefix="topo-bench-") as out:
        run_dir = Path(out) / name
        prepare_run_dir(run_dir)
        engine0, t0 = _engine_cpu(), time.time()
        d = runtime.deploy(p, str(run_dir))
        started, engine = time.time() - t0, _engine_cpu() - engine0
        t1 = time.time()
        runtime.teardown(d, name)
    return {"started": started, "engine": engine, "teardown": time.time() - t1}


def floor_mode(workers: int, rounds: int, memory_mib: int, image: str | None) -> None:
    """topo's deploy of ``workers`` workers against the engine floor (as many bare idle
    containers, on the same kind of network), interleaved, ``rounds`` of each."""
    rt = DockerRuntime.connect()
    sc = _scenario(workers, 2, memory_mib)
    image = image or rt.ensure_image(sc)
    count = workers + 2  # redis and the feeder
    rows: dict[str, list[dict[str, float]]] = {"bare containers": [], "topo, no agents": [],
                                               "topo deploy": []}
    for _ in range(rounds):
        rows["bare containers"].append(
            _bare_once(rt, count, image, 2 / workers, memory_mib * MIB // workers))
        rows["topo, no agents"].append(_idle_once(rt, sc, image))
        rows["topo deploy"].append(_deploy_once(rt, sc, image, memory_mib, verbose=False))
    print(f"image {image}; {count} containers, {docker_runtime.DEPLOY_POOL} at a time, on an "
          f"internal bridge network; {rounds} rounds, interleaved; s (engine: CPU-s of "
          f"dockerd + containerd + shims until every container started)")
    for way, figs in rows.items():
        cols = []
        for key in ("started", "ready", "teardown", "engine"):
            v = [f[key] for f in figs if key in f]
            if v:
                cols.append(f"{key} " + " / ".join(f"{x:5.2f}" for x in v))
        print(f"  {way:16} " + "   ".join(cols))


# The worker agent, run as usual, except that at its ready line it prints its own CPU seconds
# (every thread, so the telemetry's first pass too when it ran by then) and the seconds since
# its python3 started, then exits.
_AT_READY = """
import json, os, resource, runpy
import topo.agent.common as common
announce = common.announce_ready
def ready(*args, **kw):
    announce(*args, **kw)
    r = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/stat") as f:
        started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
    with open("/proc/uptime") as f:
        up = float(f.read().split()[0])
    print(json.dumps({"cpu": r.ru_utime + r.ru_stime, "wall": up - started}), flush=True)
    os._exit(0)
common.announce_ready = ready
runpy.run_module("topo.agent.worker", run_name="__main__", alter_sys=True)
"""


def agent_cpu_mode(agents: int, share: int, image: str | None) -> None:
    """``agents`` worker containers with 2/``share`` CPU each, started together (the host
    has CPU to spare, so each one's quota is its limit, as among ``share`` at once)."""
    runtime = DockerRuntime.connect()
    sc = _scenario(agents, 2 * agents / share, 2048 * agents // share)
    image = image or runtime.ensure_image(sc)
    run_id = run.new_run_id()
    name = f"topo-{run_id}-m0"
    p = planning.plan(sc, "multi", run_id, name, image, "pw-" + run_id)
    hooked = tuple(dataclasses.replace(c, command=("python3", "-c", _AT_READY))
                   if c.role == "worker" else c for c in p.containers)
    p = dataclasses.replace(p, containers=hooked)
    with tempfile.TemporaryDirectory(prefix="topo-bench-") as out:
        run_dir = Path(out) / name
        prepare_run_dir(run_dir)
        d = runtime.deploy(p, str(run_dir))
        try:
            docs = []
            for c in d.containers:
                if c.role == "worker":
                    box = runtime.client.containers.get(c.id)
                    box.wait(timeout=120)
                    docs.append(json.loads(box.logs(stderr=False).decode().strip().splitlines()[-1]))
        finally:
            runtime.teardown(d, name)
    print(f"image {image}; {agents} worker agents, {2 / share:.4f} CPUs each, started together")
    print(f"  CPU-s to ready           {_spread([x['cpu'] for x in docs])}")
    print(f"  python3 start to ready   {_spread([x['wall'] for x in docs])}")


# Run in the worker image by python3 -c, with the steps as its argument (JSON): each step
# its own python3, ``rounds`` times in turn; the CPU of each child from RUSAGE_CHILDREN.
_STEPS = """
import json, resource, subprocess, sys
steps, rounds = json.loads(sys.argv[1]), int(sys.argv[2])
cpu = {name: [] for name in steps}
for _ in range(rounds):
    for name, code in steps.items():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(["python3", "-c", code], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
print(json.dumps(cpu))
"""
IMPORT_STEPS = {
    "interpreter (pass)": "pass",
    "import topo.agent.common": "import topo.agent.common",
    "import topo.agent.worker": "import topo.agent.worker",
    "import redis (plain)": "import redis",
    "import psutil": "import psutil",
    "import topo.agent.protocol": "import topo.agent.protocol",
    "import json, os, socket": "import json, os, socket",
}


def import_cost_mode(share: int, rounds: int, image: str | None) -> None:
    """Each start-up step's CPU-s in the worker image, at the quota of one of ``share``."""
    runtime = DockerRuntime.connect()
    image = image or runtime.ensure_image(_scenario(1, 2 / share, 32))
    run_id = run.new_run_id()
    labels = {planning.MANAGED: "true", planning.RUN: run_id,
              planning.OWNER: cleanup.owner_label()}
    out = runtime.client.containers.run(
        image, ["python3", "-c", _STEPS, json.dumps(IMPORT_STEPS), str(rounds)],
        nano_cpus=int(2e9 / share), network_mode="none", read_only=True, remove=True,
        labels=labels, stdout=True, stderr=True)
    cpu = json.loads(bytes(out).decode().strip().splitlines()[-1])
    print(f"image {image}; {2 / share:.4f} CPUs; {rounds} rounds, steps interleaved; CPU-s")
    for name, values in cpu.items():
        print(f"  {name:28} {_spread(values, 3)}")  # steps 10 ms apart matter here


def _dockerd_cpu() -> float | None:
    """CPU seconds of the local dockerd (user + system), None if it is not found here."""
    return _cpu_of(lambda name: name == "dockerd", children=False)


def states_mode(workers: int, rounds: int, looks: int) -> None:
    """topo's states() against a full listing (an inspect per container), interleaved."""
    runtime = DockerRuntime.connect()
    sc = _scenario(workers, 2, 2048)
    image = runtime.ensure_image(sc)
    run_id = run.new_run_id()
    name = f"topo-{run_id}-m0"
    p = planning.plan(sc, "multi", run_id, name, image, "pw-" + run_id)
    label: dict[str, str | list[str] | bool] = {"label": f"{planning.DEPLOYMENT}={name}"}
    ways: dict[str, Callable[[Deployment], object]] = {
        "states() (sparse + events)": lambda d: runtime.states(d),
        "list + inspect each": lambda d: runtime.client.containers.list(all=True, filters=label),
    }
    figures: dict[str, list[tuple[float, float, float]]] = {k: [] for k in ways}
    with tempfile.TemporaryDirectory(prefix="topo-bench-") as out:
        run_dir = Path(out) / name
        prepare_run_dir(run_dir)
        d = runtime.deploy(p, str(run_dir))
        try:
            runtime.states(d)  # the first look inspects everything once
            for _ in range(rounds):
                for way, look in ways.items():
                    engine0, me0, t0 = _dockerd_cpu(), time.process_time(), time.perf_counter()
                    for _ in range(looks):
                        look(d)
                    wall, me = time.perf_counter() - t0, time.process_time() - me0
                    engine1 = _dockerd_cpu()
                    eng = (engine1 - engine0) if engine0 is not None and engine1 is not None else float("nan")
                    figures[way].append((wall / looks * 1e3, me / looks * 1e3, eng / looks * 1e3))
        finally:
            runtime.teardown(d, name)
    print(f"{len(d.containers)} containers; {rounds} rounds of {looks} looks, ways interleaved; "
          f"ms per look, median (min-max)")
    for way, rows in figures.items():
        cols = []
        for i, what in enumerate(("wall", "topo CPU", "dockerd CPU")):
            v = [r[i] for r in rows]
            cols.append(f"{what} {statistics.median(v):6.1f} ({min(v):.1f}-{max(v):.1f})")
        print(f"  {way:28} " + "   ".join(cols))


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
    ap.add_argument("--image", default=None,
                    help="worker image to deploy (default: built from this checkout)")
    ap.add_argument("--deploy-pool", type=int, default=None,
                    help="containers created and started at a time (default: topo's)")
    ap.add_argument("--agent-cpu", type=int, nargs="?", const=8, default=None, metavar="N",
                    help="CPU-s and time to ready of N agents (default 8) at 2/64 CPU each")
    ap.add_argument("--import-cost", type=int, nargs="?", const=3, default=None,
                    metavar="ROUNDS", help="CPU-s of each start-up step at 2/64 CPU "
                                           "(default 3 rounds)")
    ap.add_argument("--memory", type=int, default=None,
                    help="MiB for all workers (default 2048; --million: 4096, since the "
                         "process pool holds a future per task in its container)")
    ap.add_argument("--floor", type=int, nargs="?", const=3, default=None, metavar="ROUNDS",
                    help="topo's deploy against as many bare containers (the engine floor), "
                         "interleaved (default 3 rounds)")
    ap.add_argument("--states", action="store_true",
                    help="cost of one look at the containers' states (--workers of them)")
    a = ap.parse_args()
    if a.deploy_pool:
        docker_runtime.DEPLOY_POOL = a.deploy_pool
    if a.floor:
        floor_mode(a.workers, a.floor, a.memory or 2048, a.image)
    elif a.states:
        states_mode(a.workers, 5, 20)
    elif a.million:
        million_mode(a.tasks, a.prefetch, a.memory or 4096)
    elif a.import_cost:
        import_cost_mode(64, a.import_cost, a.image)
    elif a.agent_cpu:
        agent_cpu_mode(a.agent_cpu, 64, a.image)
    else:
        deploy_mode(a.workers, a.memory or 2048, a.image)


if __name__ == "__main__":
    main()
