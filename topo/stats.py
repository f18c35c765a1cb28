"""Figures of a run and the comparison of two topologies (metrics.md).

Pure and stdlib-only: it reads RunResults and returns RunFigures / Comparison, so a saved
result file can be re-reported without Docker.

Units: RunFigures keeps SI units (seconds, CPU seconds, bytes, utilisation as a fraction).
FigureRow values are already in the row's ``unit`` (ms, MiB, %, ...); a report formats them
and never converts.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from topo.ledger import build_ledger, completion_times
from topo.model import (
    WORKER_ROLES,
    FaultStatus,
    ProcSample,
    Quantiles,
    WorkerInfo,
    TOPOLOGIES,
    Comparison,
    ContainerFigures,
    ContainerSpec,
    FigureRow,
    Ratio,
    Role,
    RunFigures,
    RunResult,
    RunStatus,
    Sample,
    Scenario,
    Spread,
)

COORDINATION_ROLES = (Role.REDIS, Role.FEEDER)
MAX_BUCKET = 1.0  # seconds: metrics.md asks for buckets of at most 1 s
MIN_BUCKET = 0.05  # seconds: finer than the ~10 Hz sampling would only show noise
BUCKETS_PER_MAKESPAN = 20  # short runs still get enough buckets for a median
MIN_STEADY_BUCKETS = 3  # fewer buckets make a "median rate" meaningless
STEADY_FROM, STEADY_TO = 0.1, 0.9  # fractions of completions bounding the steady state
SPREAD_LIMIT = 1.2  # max/min throughput across repeats above which we warn
MIB = 1024 * 1024
_EPS = 1e-9  # absorbs float error when a time falls exactly on a bucket edge


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
        **_latency(result),
        cores=_cores(result),
        **_footprint(result.processes, _worker_containers(result)),
        **_disturbance(result.host, window, spent),
        cpu_agents=agent_cpu(result, window),
    )


def _disturbance(host: Sequence[tuple[float, float, float]], window: tuple[float, float] | None,
                 spent: float) -> dict[str, float | None]:
    """How much else the host did during the makespan: CPU busy outside the run's containers
    (the harness, the engine, anything else) and CPU its hypervisor stole, in cores."""
    if window is None or len(host) < 2 or window[1] <= window[0]:
        return {"outside_cores": None, "steal_cores": None}
    span = window[1] - window[0]
    busy = [Sample(t, "host", b, 0) for t, b, _ in host]
    steal = [Sample(t, "host", s, 0) for t, _, s in host]
    outside = cumulative_at(busy, window[1]) - cumulative_at(busy, window[0]) - spent
    stolen = cumulative_at(steal, window[1]) - cumulative_at(steal, window[0])
    return {"outside_cores": max(0.0, outside) / span, "steal_cores": stolen / span}


def quantiles(values: Sequence[float]) -> Quantiles | None:
    """p50, p95, p99 (linear interpolation between order statistics) and max."""
    if not values:
        return None
    ordered = sorted(values)

    def q(p: float) -> float:
        pos = p * (len(ordered) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return Quantiles(q(0.50), q(0.95), q(0.99), ordered[-1], len(ordered))


def _latency(result: RunResult) -> dict[str, Quantiles | None]:
    """Queue wait (available -> first start) per task, service time per completed task
    (its first successful attempt)."""
    first_start: dict[int, float] = {}
    service: dict[int, float] = {}
    for rec in result.records:
        if rec.start is None or not 0 <= rec.id < result.task_count:
            continue
        first_start[rec.id] = min(rec.start, first_start.get(rec.id, rec.start))
        if rec.ok and rec.id not in service:
            service[rec.id] = rec.end - rec.start
    wait = ([t - result.t_available for t in first_start.values()]
            if result.t_available is not None else [])
    return {"wait": quantiles(wait), "service": quantiles(list(service.values()))}


def _cores(result: RunResult) -> tuple[tuple[int, int], ...]:
    counts: dict[int, int] = defaultdict(int)
    for rec in result.records:
        if rec.ok and rec.core is not None:
            counts[int(rec.core)] += 1
    return tuple(sorted(counts.items()))


def _worker_containers(result: RunResult) -> set[str]:
    return {c.name for c in result.containers if c.role in WORKER_ROLES}


def _footprint(processes: Sequence[ProcSample], containers: set[str]) -> dict[str, int | None]:
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

    return {"rss_sum": peak_sum(rss), "pss_sum": peak_sum(pss)}


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
    for key, points in per_thread.items():
        points.sort()
        # the first pass that saw the process without this thread: it had ended by then
        gone = min((t for t in passes[key[:2]] if t > points[-1][0]), default=math.inf)
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


def bucket_rates(times: Sequence[float], start: float, end: float, width: float) -> list[float]:
    """Completions per second in consecutive buckets of ``width`` s from ``start``.

    Only whole buckets that end by ``end`` are kept: a partial bucket would understate its
    rate. Buckets are half-open, [start + i*width, start + (i+1)*width).
    """
    counts = [0] * max(0, int((end - start) / width + _EPS))
    for t in times:
        i = math.floor((t - start) / width + _EPS)
        if 0 <= i < len(counts):
            counts[i] += 1
    return [n / width for n in counts]


def bucket_width(makespan: float) -> float:
    """Timeline bucket width: makespan/20, at most 1 s and at least 0.05 s."""
    return max(MIN_BUCKET, min(MAX_BUCKET, makespan / BUCKETS_PER_MAKESPAN))


def steady_rate(
    times: Sequence[float], makespan: float | None, width: float | None = None
) -> float | None:
    """Median bucket rate between the 10% and 90% completion times (sorted ``times``).

    The 10% time is the k-th completion with k = ceil(0.1·n), likewise for 90%. Buckets are
    ``width`` s wide, by default ``bucket_width(makespan)``. None when fewer than 3 whole
    buckets fit between them.
    """
    if makespan is None or not times:
        return None
    low = times[_rank(len(times), STEADY_FROM)]
    high = times[_rank(len(times), STEADY_TO)]
    rates = bucket_rates(times, low, high, width or bucket_width(makespan))
    return statistics.median(rates) if len(rates) >= MIN_STEADY_BUCKETS else None


def _rank(n: int, fraction: float) -> int:
    # 0-based index of the ceil(fraction*n)-th item; _EPS keeps 0.1*30 from rounding to 4.
    return max(0, math.ceil(fraction * n - _EPS) - 1)


# --------------------------------------------------------------------------- containers


def _samples_by_container(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        grouped[sample.container].append(sample)
    for series in grouped.values():
        series.sort(key=lambda s: s.t)
    return grouped


def cumulative_at(series: Sequence[Sample], t: float) -> float:
    """Cumulative CPU of one container at time ``t`` (``series`` sorted by time).

    Linear between the samples around ``t``; before the first or after the last sample it
    is that sample's value, since nothing better is known. 0.0 without samples.
    """
    if not series:
        return 0.0
    i = bisect.bisect_right([s.t for s in series], t)
    if i == 0:
        return series[0].cpu
    if i == len(series):
        return series[-1].cpu
    before, after = series[i - 1], series[i]  # before.t <= t < after.t, so no zero division
    return before.cpu + (after.cpu - before.cpu) * (t - before.t) / (after.t - before.t)


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


# --------------------------------------------------------------------------- repeats


def spread(values: Iterable[float | None]) -> Spread | None:
    """Median, min and max of the values that were measured (None values are skipped)."""
    measured = [v for v in values if v is not None]
    if not measured:
        return None
    return Spread(statistics.median(measured), min(measured), max(measured), len(measured))


def bootstrap_ratio(
    single: Sequence[float], multi: Sequence[float], *, iterations: int = 2000, seed: int = 0
) -> Ratio:
    """median(multi) / median(single) with a 95% percentile bootstrap interval.

    The interval needs at least 2 values on each side, else ci_low/ci_high are None.
    Seeded, so a report of the same results is the same report. Raises ValueError when a
    side is empty or median(single) is 0; ``ratio_of`` is the wrapper that returns None.
    """
    if not single or not multi or statistics.median(single) == 0:
        raise ValueError("ratio needs values on both sides and a non-zero single median")
    value = statistics.median(multi) / statistics.median(single)
    if len(single) < 2 or len(multi) < 2:
        return Ratio(value, None, None)
    rng = random.Random(seed)
    ratios = []
    for _ in range(iterations):
        denominator = statistics.median(rng.choices(single, k=len(single)))
        # A resample whose median is 0 has no ratio; it is skipped rather than made infinite.
        if denominator != 0:
            ratios.append(statistics.median(rng.choices(multi, k=len(multi))) / denominator)
    if not ratios:
        return Ratio(value, None, None)
    ratios.sort()
    return Ratio(value, _quantile(ratios, 0.025), _quantile(ratios, 0.975))


def ratio_of(single: Sequence[float], multi: Sequence[float], **kwargs: int) -> Ratio | None:
    """``bootstrap_ratio`` or None when no ratio exists (a side empty, single median 0)."""
    try:
        return bootstrap_ratio(single, multi, **kwargs)
    except ValueError:
        return None


def _quantile(ordered: Sequence[float], q: float) -> float:
    # Linear interpolation between closest ranks (numpy's default), on sorted values.
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class _RowDef:
    key: str
    label: str
    unit: str
    higher_is_better: bool | None
    get: Callable[[RunFigures], float | None]


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _in_window(figures: RunFigures, value: float) -> float | None:
    # Window CPU is 0.0 when there was no window; a row must show "not measured" instead.
    return None if figures.makespan is None else value


def _q(q: Quantiles | None, which: str) -> float | None:
    return None if q is None else 1000 * float(getattr(q, which))


ROWS: tuple[_RowDef, ...] = (
    _RowDef("completed", "tasks completed", "tasks", True, lambda f: f.ledger.completed),
    _RowDef("failed", "tasks failed", "tasks", False, lambda f: f.ledger.failed),
    _RowDef("lost", "tasks lost", "tasks", False, lambda f: f.ledger.lost),
    _RowDef("duplicated", "tasks duplicated", "tasks", False, lambda f: f.ledger.duplicated),
    _RowDef("retried", "re-deliveries", "tasks", False, lambda f: f.ledger.retried),
    _RowDef("makespan", "makespan (s)", "s", False, lambda f: f.makespan),
    _RowDef("throughput", "throughput (tasks/s)", "tasks/s", True, lambda f: f.throughput),
    _RowDef("steady_rate", "steady rate (tasks/s)", "tasks/s", True, lambda f: f.steady_rate),
    _RowDef(
        "cpu_workers", "CPU workers (s)", "s", None, lambda f: _in_window(f, f.cpu_workers)
    ),
    _RowDef(
        "cpu_coordination",
        "CPU redis/feeder (s)",
        "s",
        False,
        lambda f: _in_window(f, f.cpu_coordination),
    ),
    _RowDef("task_cpu", "CPU in tasks (s)", "s", None, lambda f: f.task_cpu),
    # Part of the overhead below, measured where it is spent: the agents' own threads.
    _RowDef("cpu_agents", "agent threads CPU (s)", "s", False,
            lambda f: None if f.cpu_agents is None else _in_window(f, f.cpu_agents)),
    # metrics.md: coordination overhead = Redis CPU + (worker CPU - task CPU).
    _RowDef(
        "overhead",
        "coordination overhead (s)",
        "s",
        False,
        lambda f: _in_window(f, f.cpu_coordination + f.cpu_workers - f.task_cpu),
    ),
    _RowDef("mean_cores", "mean cores used", "cores", None, lambda f: f.mean_cores),
    _RowDef("utilisation", "utilisation (%)", "%", None, lambda f: _scaled(f.utilisation, 100)),
    _RowDef(
        "cpu_per_task", "CPU per task (ms)", "ms", False, lambda f: _scaled(f.cpu_per_task, 1000)
    ),
    _RowDef("peak_memory", "peak memory (MiB)", "MiB", False, lambda f: f.peak_memory / MIB),
    _RowDef("pss_sum", "workers' memory, PSS (MiB)", "MiB", False,
            lambda f: _scaled(f.pss_sum, 1 / MIB)),
    _RowDef("rss_sum", "workers' memory, summed RSS (MiB)", "MiB", None,
            lambda f: _scaled(f.rss_sum, 1 / MIB)),
    _RowDef("wait_p50", "queue wait p50 (ms)", "ms", False, lambda f: _q(f.wait, "p50")),
    _RowDef("wait_p95", "queue wait p95 (ms)", "ms", False, lambda f: _q(f.wait, "p95")),
    _RowDef("wait_p99", "queue wait p99 (ms)", "ms", False, lambda f: _q(f.wait, "p99")),
    _RowDef("service_p50", "service time p50 (ms)", "ms", False, lambda f: _q(f.service, "p50")),
    _RowDef("service_p95", "service time p95 (ms)", "ms", False, lambda f: _q(f.service, "p95")),
    _RowDef("service_p99", "service time p99 (ms)", "ms", False, lambda f: _q(f.service, "p99")),
    _RowDef("service_max", "service time max (ms)", "ms", False, lambda f: _q(f.service, "max")),
    _RowDef("outside_cores", "host CPU outside the run (cores)", "cores", None,
            lambda f: f.outside_cores),
    _RowDef("steal_cores", "CPU stolen by the hypervisor (cores)", "cores", None,
            lambda f: f.steal_cores),
    _RowDef("startup_ready", "start-up to ready (s)", "s", False, lambda f: f.startup_ready),
    _RowDef(
        "startup_first", "start-up to first task (s)", "s", False, lambda f: f.startup_first
    ),
)


def compare(scenario: Scenario, results: Sequence[RunResult]) -> Comparison:
    """Rows and warnings from the measured (non-warm-up) runs without a fault, and one
    blast radius per measured fault run.

    ``Comparison.runs`` holds the figures of the no-fault runs only: a fault run's speed
    is the fault's doing, so it is reported as blast radius, never mixed into the rows.
    """
    # blast builds on the rate helpers of this module; importing it here, not at the top,
    # keeps the two modules free of an import cycle.
    from topo.blast import blast_radius

    measured = [r for r in results if not r.warmup]
    baseline = [r for r in measured if r.fault is None]
    faulty = [r for r in measured if r.fault is not None]
    runs = tuple(run_figures(r) for r in baseline)
    rows = tuple(figure_row(definition, runs) for definition in ROWS)
    found = warnings(baseline, runs) + fault_warnings(faulty)
    blast = tuple(blast_radius(r, scenario.workers) for r in faulty)
    return Comparison(scenario, runs, rows, tuple(dict.fromkeys(found)), blast)


def figure_row(definition: _RowDef, runs: Sequence[RunFigures]) -> FigureRow:
    """One figure across the repeats of both topologies, with the multi/single ratio."""
    measured = {
        t: [v for v in (definition.get(f) for f in runs if f.topology == t) if v is not None]
        for t in TOPOLOGIES
    }
    return FigureRow(
        key=definition.key,
        label=definition.label,
        unit=definition.unit,
        single=spread(measured["single"]),
        multi=spread(measured["multi"]),
        ratio=ratio_of(measured["single"], measured["multi"]),
        higher_is_better=definition.higher_is_better,
    )


# --------------------------------------------------------------------------- warnings


def warnings(results: Sequence[RunResult], runs: Sequence[RunFigures]) -> tuple[str, ...]:
    """Doubts about the figures, each with advice; ``runs[i]`` are the figures of
    ``results[i]``, the no-fault runs. Repeated warnings (the same container in every
    repeat) appear once."""
    found: list[str] = []
    for result, figures in zip(results, runs):
        found.extend(_run_warnings(result, figures))
    found.extend(_repeat_warnings(runs))
    return tuple(dict.fromkeys(found))


def fault_warnings(results: Iterable[RunResult]) -> tuple[str, ...]:
    """A fault that could not be injected: its blast radius describes a run without it.

    A fault run that failed or lost tasks gets no warning: that is the damage being measured.
    """
    found = []
    for result in results:
        for event in result.fault_events:
            if event.status == FaultStatus.FAILED:
                found.append(
                    f"{result.topology} run {result.index + 1}: fault {event.name!r} could not"
                    f" be injected ({event.error or 'no error text'}); its blast radius"
                    " describes a run without it — read the run's log and rerun"
                )
    return tuple(found)


# A quiet host spends about 0.05-0.1 cores outside a run's containers (topo's own sampling,
# the engine); well above that, something else competed for the CPUs.
BUSY_HOST_CORES = 0.3
STOLEN_CORES = 0.05


def _run_warnings(result: RunResult, figures: RunFigures) -> list[str]:
    name = f"{result.topology} run {result.index + 1}"
    found = []
    if result.status != RunStatus.OK:
        found.append(
            f"{name} ended {result.status!r} ({result.error or 'no error text'}); its figures"
            " cover only what happened before that — read the run's log and rerun"
        )
    if (figures.outside_cores or 0.0) > BUSY_HOST_CORES:
        found.append(
            f"{name}: the host was busy with other work ({figures.outside_cores:.2f} cores on"
            " average outside the run's containers); its figures may be disturbed — rerun on"
            " a quieter machine"
        )
    if (figures.steal_cores or 0.0) > STOLEN_CORES:
        found.append(
            f"{name}: the hypervisor took {figures.steal_cores:.2f} cores from this host during"
            " the run, so the machine's speed varied; compare runs with repeats, not one run"
        )
    ledger = figures.ledger
    # In a fault run, failed and lost tasks are the damage measured, not a doubt.
    if result.fault is None and (ledger.failed or ledger.lost):
        found.append(
            f"{name} failed {ledger.failed} and lost {ledger.lost} tasks with no fault"
            " injected; read the errors in the result's task records before trusting it"
        )
    specs = {c.name: c for c in result.containers}
    for container in figures.oversubscribed if result.workers else ():  # none started: moot
        found.append(_oversubscribed_warning(result, specs[container]))
    return found


def _oversubscribed_warning(result: RunResult, spec: ContainerSpec) -> str:
    mine = [w for w in starting_workers(result.workers, result.t_available)
            if w.container == spec.name]
    said = "/".join(map(str, sorted({w.cpu_count for w in mine}))) or "?"
    # The run's own prefix would make the same warning differ in every repeat.
    name = spec.name.removeprefix(spec.labels.get("topo.deployment", "\0") + "-")
    name = "the container" if name == "single" else f"container {name}"
    if spec.processes == 0:  # sized "auto", inside the container
        return (
            f"{result.topology}: the pool sized \"auto\" in {name} started {len(mine)}"
            f" processes for a quota of {spec.cpus:g} CPUs: os.cpu_count() inside a container"
            f" reports the host's cores ({said}), not the quota — size the pool from the quota"
        )
    return (
        f"{result.topology}: {name} runs {spec.processes} busy worker processes on a quota"
        f" of {spec.cpus:g} CPUs, so they take turns (see throttling); os.cpu_count() says"
        f" {said} in there, so a pool sized \"auto\" would not size from the quota either"
    )


def _repeat_warnings(runs: Sequence[RunFigures]) -> list[str]:
    found = []
    for topology in TOPOLOGIES:
        mine = [f for f in runs if f.topology == topology]
        if len(mine) == 1:
            found.append("no confidence interval with one repeat; set run.repeat ≥ 3")
        rates = [f.throughput for f in mine if f.throughput]
        if len(rates) >= 2 and max(rates) / min(rates) > SPREAD_LIMIT:
            found.append(
                f"{topology}: throughput max/min across repeats is"
                f" {max(rates) / min(rates):.2f}; spread is high; rerun with more repeats"
                " on a quieter machine"
            )
    return found


# --------------------------------------------------------------------------- verdict

_SPEED_KEYS = ("makespan", "throughput", "steady_rate", "startup_ready", "startup_first")


def verdict(row: FigureRow) -> str | None:
    """One line naming the better topology, only when the 95% interval excludes 1.

    Factors are always ≥ 1 and name the winner: a makespan ratio of 0.8 reads "multi is
    1.25× faster". A row without a direction states the ratio instead.
    """
    ratio = row.ratio
    if ratio is None or not ratio.significant or ratio.ci_low is None or ratio.ci_high is None:
        return None
    name = row.label.split(" (")[0]
    if row.higher_is_better is None:
        return (
            f"{name}: multi/single = {ratio.value:.2f}"
            f" (95% CI {ratio.ci_low:.2f}–{ratio.ci_high:.2f})"
        )
    multi_wins = (ratio.value > 1) == row.higher_is_better
    # The winner's factor is the ratio or its inverse, whichever is ≥ 1; so is its interval.
    factor, low, high = ratio.value, ratio.ci_low, ratio.ci_high
    if factor < 1:
        factor, low, high = 1 / factor, 1 / high, 1 / low
    winner = "multi" if multi_wins else "single"
    claim = "faster" if row.key in _SPEED_KEYS else "better"
    return f"{name}: {winner} is {factor:.2f}× {claim} (95% CI {low:.2f}–{high:.2f})"
