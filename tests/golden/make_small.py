"""Writes the golden result files (run from the repository root):

    .venv/bin/python -m tests.golden.make_small                     # the hand-made ones
    .venv/bin/python -m tests.golden.make_small RESULT.json        # crash.result.json

crash.result.json is a real `topo compare scenarios/crash.yaml` result, trimmed: every
third sampling pass (and each container's last sample) is kept.

- small.result.json: 3 repeats of both topologies, 120 cpu tasks on 2 workers, and a pause
  fault in its own runs; every figure has an interval, the blast radius has a band.
- small-regressed.result.json: the same scenario where multi's tasks take 30% longer, and
  only the first 7 of 12 runs were made (``complete: false``), for ``topo diff`` and the
  INCOMPLETE markers.

Times are made up but consistent (tasks back to back per worker, samples at 5 Hz), so the
statistics behave as on a real run. Deterministic: the same files every time.

The pause runs hold the paths a clean run never takes: in multi the reliable queue requeues
the frozen worker's task (a re-delivery: ``retried`` 1, and a ``requeue`` signal), the other
worker does it, and the frozen one finishes it too when it wakes (``duplicated`` 1).
tests/unit/test_golden_inputs.py checks these counts and the throughput against figures
worked out by hand from the parameters below.
"""

from __future__ import annotations

import json
import re
import sys
from collections import deque
from pathlib import Path
from typing import Any

from topo import plan as planning
from topo import results
from topo.model import (
    ContainerSpec, Fault, FaultEvent, MultiSpec, RedisSpec, Resources, RunResult, RunSpec, Sample, Scenario,
    Signal, SingleSpec, TaskRecord, WorkerInfo, Workload,
)

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
T0 = 1_800_000_000.0
# 1.55 s, not a multiple of a task's duration: no two workers free at the same instant after it
PAUSE = Fault(name="one worker freezes", kind="pause", at_fraction=0.5, duration=1.55)
TASKS = 120
DURATION = {"single": 0.1, "multi": 0.11}  # seconds per task
TASK_CPU = 0.09  # CPU seconds per task: 2 workers at ~0.9 cores each on a 2-CPU budget
IDLE = 0.05  # cores a worker process uses besides its tasks
HEARTBEAT = 0.5  # seconds before the reliable queue requeues a frozen worker's task
SCENARIO = Scenario(
    name="small",
    workload=Workload(task="cpu", tasks=TASKS, params={"cpu_ms": 90}, seed=7),
    workers=2,
    resources=Resources(cpus=2.0, memory=256 * MIB),
    single=SingleSpec(pool="process-pool"),
    multi=MultiSpec(queue="reliable", redis=RedisSpec(cpus=0.5, memory=64 * MIB)),
    faults=(PAUSE,),
    run=RunSpec(repeat=3, warmup=0, timeout=60.0),
    description="Hand-made golden result: 120 cpu tasks on 2 workers, a pause fault.",
    source="tests/golden/small.yaml",
    sha256="5" * 64,
)
HOST = {
    "hostname": "golden-host",
    "python": "3.11.7",
    "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
    "cpus": 2,
    "engine": {"engine": "20.10.24+dfsg1", "api": "1.41", "cgroup_version": "1",
               "cgroup_driver": "cgroupfs", "storage_driver": "overlay2", "kernel": "6.1.0",
               "os": "Debian GNU/Linux 12 (bookworm)", "cpus": 2, "memory": 8 * 1024 * MIB},
}
STARTUP = {"single": 0.6, "multi": 2.4}
MEMORY = {"single": 30 * MIB, "worker": 18 * MIB, "redis": 4 * MIB, "feeder": 9 * MIB}
SAMPLE_HZ = 5


def run(topology: str, index: int, fault: Fault | None, t_deploy: float, slow: float) -> RunResult:
    """One run: two workers take task ids from one queue, back to back, the one free first
    taking the next (worker 0 on a tie). A pause freezes worker 0 mid-task; in multi the
    reliable queue puts that task back at the head of the queue HEARTBEAT s later, worker 1
    takes it when it is next free, and worker 0 still finishes it when it wakes."""
    deployment = f"topo-golden-{topology[0]}{index}{'f' if fault else ''}"
    plan = planning.plan(SCENARIO, topology, "golden", deployment, "topo-worker:golden", "pw")
    workers = plan.worker_containers
    duration = DURATION[topology] * (1 + 0.03 * index) * slow
    t_ready = t_deploy + STARTUP[topology] + 0.05 * index
    t_available = t_ready + 0.1
    names = [f"{workers[0].name}/{7 + w}" if topology == "single" else f"{workers[w].name}/1"
             for w in range(2)]
    pause_at = t_available + PAUSE.at_fraction * TASKS / 2 * duration + 0.03 if fault else None
    signals = [Signal(t=t_ready - 0.1, kind="ready", container=n.split("/")[0], detail=n)
               for n in names]
    records, requeues = _schedule(names, t_available, duration, pause_at, topology == "multi")
    signals += requeues
    t_end = max(r.end for r in records) + 0.3
    records.sort(key=lambda r: r.end)
    return RunResult(
        topology=topology, index=index, warmup=False, status="ok", error=None,
        task_count=TASKS, t_deploy=t_deploy, t_ready=t_ready,
        t_available=t_available, t_end=t_end, records=tuple(records),
        samples=samples(plan.containers, records, t_deploy, t_ready, t_end),
        workers=tuple(
            WorkerInfo(worker=n, container=n.split("/")[0], t_ready=t_ready - 0.1, cpu_count=2,
                       affinity=2, quota=workers[0].cpus)
            for n in names
        ),
        containers=plan.containers, retried=len(requeues), budget_cpus=plan.budget_cpus,
        budget_memory=plan.budget_memory, fault=fault,
        fault_events=(
            (FaultEvent(name=PAUSE.name, kind="pause", status="injected", t=pause_at,
                        t_end=pause_at + PAUSE.duration, target=names[0]),)
            if pause_at is not None else ()
        ),
        signals=tuple(sorted(signals, key=lambda x: x.t)),
    )


def _schedule(
    names: list[str], t_available: float, duration: float, pause_at: float | None,
    requeue: bool,
) -> tuple[list[TaskRecord], list[Signal]]:
    """Task records of both workers, and the requeue signal of a re-delivered task."""
    queue = deque(range(TASKS))
    back: tuple[int, float] | None = None  # (task, time it is back on the queue)
    clock = [t_available, t_available]
    records: list[TaskRecord] = []
    signals: list[Signal] = []
    while queue or back:
        w = 0 if clock[0] <= clock[1] else 1
        if back is not None and clock[w] >= back[1]:
            task, back = back[0], None
        elif queue:
            task = queue.popleft()
        else:  # only the requeued task is left: wait for it
            clock[w] = back[1]  # type: ignore[index]
            continue
        start, end = clock[w], clock[w] + duration
        if pause_at is not None and w == 0 and start <= pause_at < end:
            end += PAUSE.duration  # frozen mid-task: it finishes late
            if requeue:
                back = (task, pause_at + HEARTBEAT)
                signals.append(Signal(t=back[1], kind="requeue",
                                      container=names[0].split("/")[0], detail=str(task)))
        records.append(_record(task, names[w], start, end, w))
        clock[w] = end
    return records, signals


def _record(task: int, worker: str, start: float, end: float, w: int) -> TaskRecord:
    return TaskRecord(id=task, worker=worker, ok=True, start=round(start, 4), end=round(end, 4),
                      cpu=TASK_CPU, core=(w + task // 20) % 2)


def samples(
    containers: tuple[ContainerSpec, ...], records: list[TaskRecord], t_deploy: float,
    t_ready: float, t_end: float,
) -> tuple[Sample, ...]:
    """Samples at SAMPLE_HZ: a container's CPU grows with its tasks' CPU as they run, plus
    what its processes use while idle; memory steps up once work starts."""
    out = []
    for step in range(int((t_end - t_deploy) * SAMPLE_HZ) + 1):
        t = round(t_deploy + step / SAMPLE_HZ, 3)
        for c in containers:
            mine = [r for r in records if r.worker.startswith(c.name + "/")]
            busy = sum(r.cpu * min(1.0, max(0.0, (t - r.start) / (r.end - r.start)))
                       for r in mine if r.start is not None)
            idle = IDLE * max(1, c.processes) * max(0.0, t - t_ready)
            cpu = 0.05 + busy + (0.004 * step if c.role == "redis" else idle)
            started = any(r.start is not None and r.start <= t for r in mine)
            memory = MEMORY[c.role] + (2 * MIB if started else 0)
            out.append(Sample(t=t, container=c.name, cpu=round(cpu, 6), memory=memory))
    return tuple(out)


def result(slow_multi: float) -> list[RunResult]:
    """Runs in the order topo makes them: alternating topologies, each fault in its own run."""
    runs, t = [], T0
    for index in range(SCENARIO.run.repeat):
        for fault in (None, PAUSE):
            for topology in ("single", "multi"):
                r = run(topology, index, fault, t, slow_multi if topology == "multi" else 1.0)
                runs.append(r)
                t = r.t_end + 5
    return runs


def write(name: str, doc: dict[str, Any]) -> None:
    text = json.dumps(doc, indent=1, sort_keys=True)
    # One line per flat object (records, samples…): short, and still a readable diff.
    text = re.sub(r"\{\n\s+([^{}\[\]]*?)\n\s+\}",
                  lambda m: "{" + " ".join(x.strip() for x in m.group(1).splitlines()) + "}", text)
    (HERE / name).write_text(text + "\n")


def hand_made(runs: list[RunResult], complete: bool) -> dict[str, Any]:
    doc = results.to_json(SCENARIO, runs, HOST, complete)
    doc["created"] = "2027-01-15T10:00:00Z"
    doc["topo_version"] = "0.1.0"
    return doc


def trimmed(path: Path, every: int = 3) -> dict[str, Any]:
    """A real result with every ``every``-th sampling pass (and each container's last)."""
    doc = json.loads(path.read_text())
    for r in doc["runs"]:
        passes = sorted({s["t"] for s in r["samples"]})
        last: dict[str, float] = {}
        for s in r["samples"]:
            last[s["container"]] = max(s["t"], last.get(s["container"], s["t"]))
        keep = set(passes[::every]) | set(last.values())
        r["samples"] = [s for s in r["samples"] if s["t"] in keep]
    return doc


def main() -> None:
    if len(sys.argv) > 1:
        write("crash.result.json", trimmed(Path(sys.argv[1])))
        return
    write("small.result.json", hand_made(result(1.0), complete=True))
    # Interrupted during its second repeat: 7 of 12 runs.
    write("small-regressed.result.json", hand_made(result(1.3)[:7], complete=False))


if __name__ == "__main__":
    main()

