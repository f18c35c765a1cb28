"""Figures of one run (metrics.md): throughput, steady rate, CPU, memory, latency, footprint.

Pure and stdlib-only: it reads a RunResult and returns RunFigures, so a saved result file can
be re-reported without Docker.

Units: RunFigures keeps SI units (seconds, CPU seconds, bytes, utilisation as a fraction).
"""

from __future__ import annotations

import math
import statistics
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence

from topo.analysis.rates import _EPS, cumulative_at, quantiles, steady_rate
from topo.ledger import build_ledger, completion_times, latencies
from topo.model import (
    ContainerFigures,
    ContainerSpec,
    ProcSample,
    Quantiles,
    RunFigures,
    RunResult,
    Sample,
    WorkerInfo,
)

WORKER_ROLES = ("single", "worker")
COORDINATION_ROLES = ("redis", "feeder")
MIB = 1024 * 1024


# --------------------------------------------------------------------------- one run


def run_figures(result: RunResult) -> RunFigures:
    """Every figure of one run; a figure that cannot be measured is None, never an error.

    The CPU window is [t_available, last first-completion]. Without a window (nothing
    completed, or the batch never became available) container CPU in the window is 0.0 and
    the figures derived from it are None.
    """
    ledger = build_ledger(result.task_count, result.records, result.retried)
    times = completion_times(result.records, result.task_count)
    makespan = _makespan(result.t_available, times)
    window = None
    if makespan is not None and result.t_available is not None:
        window = (result.t_available, times[-1])
    by_name = _samples_by_container(result.samples)
    containers = tuple(
        container_figures(spec, by_name.get(spec.name, ()), window) for spec in result.containers
    )
    cpu_workers = sum((c.cpu for c in containers if c.role in WORKER_ROLES), 0.0)
    cpu_coordination = sum((c.cpu for c in containers if c.role in COORDINATION_ROLES), 0.0)
    spent = cpu_workers + cpu_coordination
    # Cores and utilisation are of the shared budget, which only the workers draw on;
    # Redis and the feeder have quotas of their own and are reported as coordination.
    mean_cores = cpu_workers / makespan if makespan is not None else None
    wait, service = _latency(result)
    rss_sum, pss_sum = _footprint(result.processes, _worker_containers(result))
    outside_cores, steal_cores = _disturbance(result.host, window, spent)
    return RunFigures(
        topology=result.topology,
        index=result.index,
        status=result.status,
        ledger=ledger,
        makespan=makespan,
        throughput=ledger.completed / makespan if makespan is not None else None,
        steady_rate=steady_rate(times, makespan),
        startup_ready=_since(result.t_deploy, result.t_ready),
        startup_first=_since(result.t_deploy, times[0] if times else None),
        cpu_workers=cpu_workers,
        cpu_coordination=cpu_coordination,
        task_cpu=_task_cpu(result),
        mean_cores=mean_cores,
        utilisation=_divide(mean_cores, result.budget_cpus),
        cpu_per_task=_divide(spent if window else None, ledger.completed),
        peak_memory=peak_memory(result.samples),
        containers=containers,
        oversubscribed=oversubscribed(result.containers, result.workers, result.t_available),
        wait=wait,
        service=service,
        cores=_cores(result),
        rss_sum=rss_sum,
        pss_sum=pss_sum,
        outside_cores=outside_cores,
        steal_cores=steal_cores,
        cpu_agents=agent_cpu(result, window),
    )


def _disturbance(host: Sequence[tuple[float, float, float]], window: tuple[float, float] | None,
                 spent: float) -> tuple[float | None, float | None]:
    """How much else the host did during the makespan: CPU busy outside the run's containers
    (the harness, the engine, anything else) and CPU its hypervisor stole, in cores."""
    if window is None or len(host) < 2 or window[1] <= window[0]:
        return None, None
    span = window[1] - window[0]
    busy = [Sample(t, "host", b, 0) for t, b, _ in host]
    steal = [Sample(t, "host", s, 0) for t, _, s in host]
    outside = cumulative_at(busy, window[1]) - cumulative_at(busy, window[0]) - spent
    stolen = cumulative_at(steal, window[1]) - cumulative_at(steal, window[0])
    return max(0.0, outside) / span, stolen / span


def _latency(result: RunResult) -> tuple[Quantiles | None, Quantiles | None]:
    """Queue wait (available -> first start) per task, service time per completed task
    (its first successful attempt)."""
    first_start, service = latencies(result.records, result.task_count)
    t_av = result.t_available
    wait = array("d", (t - t_av for t in first_start) if t_av is not None else ())
    return quantiles(wait), quantiles(service)


def _cores(result: RunResult) -> tuple[tuple[int, int], ...]:
    counts: dict[int, int] = defaultdict(int)
    for rec in result.records:
        if rec.ok and rec.core is not None:
            counts[int(rec.core)] += 1
    return tuple(sorted(counts.items()))


def _worker_containers(result: RunResult) -> set[str]:
    return {c.name for c in result.containers if c.role in WORKER_ROLES}


def _footprint(processes: Sequence[ProcSample],
               containers: set[str]) -> tuple[int | None, int | None]:
    """Peak summed RSS and PSS of the worker containers' processes. Each container's peak is
    taken over its own telemetry passes, then the peaks are added (passes of different
    containers are not simultaneous). RSS counts pages shared after fork once per process;
    PSS divides them among their sharers, so the two differ by what copy-on-write shares."""
    rss: dict[tuple[str, float], int] = defaultdict(int)
    pss: dict[tuple[str, float], int] = defaultdict(int)
    for p in processes:
        if p.container not in containers:
            continue
        rss[(p.container, p.t)] += p.rss
        if p.pss is not None:
            pss[(p.container, p.t)] += p.pss

    def peak_sum(per_pass: dict[tuple[str, float], int]) -> int | None:
        peaks: dict[str, int] = {}
        for (container, _), total in per_pass.items():
            peaks[container] = max(total, peaks.get(container, 0))
        return sum(peaks.values()) if peaks else None

    return peak_sum(rss), peak_sum(pss)


def agent_cpu(result: RunResult, window: tuple[float, float] | None) -> float | None:
    """CPU seconds in ``window`` of the worker containers' threads that run no task: the
    telemetry thread, a multi worker's heartbeat, single's PID 1 dispatching (every thread of
    a process that announced no task thread), and any thread a task started. Each thread's
    counter comes from the in-container telemetry; the task thread of a process is the one
    its ``ready`` line named. None when the telemetry sent no per-thread figures, or a
    worker did not say which thread is its task thread."""
    if window is None:
        return None
    threads = _agent_threads(result, window[1])
    if threads is None:
        return None
    return sum((cumulative_at(series, window[1]) - cumulative_at(series, window[0])
                for series in threads), 0.0)


def _agent_threads(result: RunResult, t_end: float) -> list[list[Sample]] | None:
    """One growing CPU series per agent thread of the worker containers (see agent_cpu)."""
    task_tid = {(w.container, _pid_of(w.worker)): w.tid for w in result.workers}
    per_thread: dict[tuple[str, int, int], list[tuple[float, float, float | None]]] = (
        defaultdict(list))
    passes: dict[tuple[str, int], set[float]] = defaultdict(set)  # when each process was seen
    workers = _worker_containers(result)
    for p in result.processes:
        if p.container not in workers or not p.threads:
            continue
        key = (p.container, p.pid)
        if key in task_tid and task_tid[key] is None:
            return None  # a worker from before the ready line named its task thread
        passes[key].add(p.t)
        for tid, cpu, born in p.threads:
            if tid != task_tid.get(key):
                per_thread[(p.container, p.pid, tid)].append((p.t, cpu, born))
    if not passes:
        return None
    out = []
    for (container, pid, _), points in per_thread.items():
        points.sort()
        # the first pass that saw the process without this thread: it had ended by then
        gone = min((t for t in passes[container, pid] if t > points[-1][0]), default=math.inf)
        out.append(_thread_series(points, min(gone, t_end)))
    return out


def _thread_series(points: Sequence[tuple[float, float, float | None]],
                   until: float) -> list[Sample]:
    """A thread's CPU counter as a series that only grows. It starts at 0 when the thread
    was born (it used CPU before its first pass); it restarts from 0 when its container
    restarts (the same pid and tid, a new process). After its last pass it is taken to go on
    at its last rate until ``until``: the end of the window, or the pass that found it gone
    (threads end mostly with their process, at the end of the batch, and a process that
    ends with its container is never seen again)."""
    first_t, _, born = points[0]
    series = [(born, 0.0)] if born is not None and born < first_t else []
    series += [(t, cpu) for t, cpu, _ in points]
    out, offset, last = [], 0.0, 0.0
    for t, cpu in series:
        if cpu < last:
            offset += last
        last = cpu
        out.append(Sample(t, "", offset + cpu, 0))
    if len(out) >= 2 and out[-1].t < until:
        a, b = out[-2], out[-1]
        rate = max(0.0, (b.cpu - a.cpu) / (b.t - a.t)) if b.t > a.t else 0.0
        out.append(Sample(until, "", b.cpu + rate * (until - b.t), 0))
    return out


def _pid_of(worker: str) -> int:
    # "<container>/<pid>", the pid as seen inside the container, like the telemetry's
    tail = worker.rpartition("/")[2]
    return int(tail) if tail.isdigit() else -1


def _makespan(t_available: float | None, times: Sequence[float]) -> float | None:
    # A non-positive makespan means clocks disagree (a completion before the batch was
    # available); dividing by it would give nonsense, so it counts as unmeasured.
    if t_available is None or not times or times[-1] <= t_available:
        return None
    return times[-1] - t_available


def _task_cpu(result: RunResult) -> float:
    # Every ok attempt did the work, duplicates included; failed attempts are not task work.
    return sum((r.cpu for r in result.records if r.ok and 0 <= r.id < result.task_count), 0.0)


def _since(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def _divide(numerator: float | None, denominator: float) -> float | None:
    return None if numerator is None or not denominator else numerator / denominator


# --------------------------------------------------------------------------- containers


def _samples_by_container(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        grouped[sample.container].append(sample)
    for series in grouped.values():
        series.sort(key=lambda s: s.t)
    return grouped


def container_figures(
    spec: ContainerSpec, series: Sequence[Sample], window: tuple[float, float] | None
) -> ContainerFigures:
    """CPU, memory and throttling of one container (``series`` sorted by time)."""
    cpu = 0.0
    inside: Sequence[Sample] = ()
    if window is not None:
        cpu = cumulative_at(series, window[1]) - cumulative_at(series, window[0])
        inside = [s for s in series if window[0] <= s.t <= window[1]]
    # Samples at ~10 Hz can all miss a short window; the whole run is then the best guess.
    memory = [s.memory for s in (inside or series)]
    last = series[-1] if series else None
    return ContainerFigures(
        name=spec.name,
        role=spec.role,
        cpu=cpu,
        # Counters start at 0 when the container starts, so the last value is the total.
        cpu_total=last.cpu if last else 0.0,
        peak_memory=max((s.memory for s in series), default=0),
        mean_memory=round(statistics.fmean(memory)) if memory else 0,
        throttled_periods=last.throttled_periods if last else 0,
        throttled=last.throttled if last else 0.0,
    )


def peak_memory(samples: Iterable[Sample]) -> int:
    """Highest sum of memory over the containers sampled in one pass (same ``t``).

    Not the sum of per-container peaks: those need not happen at the same moment.
    """
    per_pass: dict[float, int] = defaultdict(int)
    for sample in samples:
        per_pass[sample.t] += sample.memory
    return max(per_pass.values(), default=0)


def oversubscribed(
    containers: Iterable[ContainerSpec], workers: Iterable[WorkerInfo] = (),
    t_available: float | None = None,
) -> tuple[str, ...]:
    """Names of containers hosting more worker processes than whole CPUs in their quota.

    The count is what the container's workers reported when that is more than planned: a
    pool sized "auto" is only sized inside the container, from os.cpu_count(). A quota of 0
    means no quota (Docker's default), so it is never oversubscribed.
    """
    seen: dict[str, int] = {}
    for w in starting_workers(workers, t_available):
        seen[w.container] = seen.get(w.container, 0) + 1
    return tuple(
        c.name for c in containers
        if c.cpus > 0 and max(c.processes, seen.get(c.name, 0)) > math.ceil(c.cpus - _EPS)
    )


def starting_workers(workers: Iterable[WorkerInfo], t_available: float | None) -> list[WorkerInfo]:
    """The worker processes a run started with: replacements announce themselves later."""
    return [w for w in workers if t_available is None or w.t_ready <= t_available]
