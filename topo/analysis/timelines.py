"""What the plots and the process tree show, computed from the raw runs.

Pure: RunResults in, series of plain numbers out (``topo.report.model.Plots``), so that the
drawing code only draws. Times are seconds since the run's deploy.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from topo.analysis.rates import bucket_rates, bucket_width
from topo.ledger import completion_times
from topo.model import TOPOLOGIES, RunResult, Sample
from topo.report.model import CoreShare, CoresPanel, Line, Plots, ProcessRow

NO_FAULT = "no fault"
CPU_WINDOW = 0.5  # seconds: a rate over 10 Hz samples is mostly noise below this
MIB = 1024 * 1024

Series = tuple[list[float], list[float]]


def measured(results: Sequence[RunResult]) -> list[RunResult]:
    return [r for r in results if not r.warmup]


def condition(result: RunResult) -> str:
    """The fault a run injected, or "no fault"."""
    return result.fault.name if result.fault else NO_FAULT


def representative(results: Sequence[RunResult], topology: str) -> RunResult | None:
    """The run that stands for a topology: its first no-fault run, else its first run."""
    mine = [r for r in measured(results) if r.topology == topology]
    return next((r for r in mine if r.fault is None), mine[0] if mine else None)


def throughput_timeline(result: RunResult) -> Series:
    """(seconds since deploy at each bucket's middle, completions per second)."""
    times = completion_times(result.records, result.task_count)
    start = result.t_available
    if start is None or not times or times[-1] <= start:
        return [], []
    # Whole buckets only, as rates.steady_rate counts them: a last partial bucket would
    # draw a drop that did not happen.
    width = bucket_width(times[-1] - start)
    rates = bucket_rates(times, start, times[-1], width)
    offset = start - result.t_deploy
    return [offset + (i + 0.5) * width for i in range(len(rates))], rates


def fault_marks(result: RunResult) -> list[tuple[float, float | None]]:
    """(injection time, end of a pause/partition or None), in seconds since deploy."""
    return [
        (e.t - result.t_deploy, None if e.t_end is None else e.t_end - result.t_deploy)
        for e in result.fault_events
        if e.status == "injected" and e.t is not None
    ]


def _by_container(samples: Sequence[Sample]) -> dict[str, list[Sample]]:
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        grouped[s.container].append(s)
    return {name: sorted(series, key=lambda s: s.t) for name, series in grouped.items()}


def cpu_cores(
    samples: Sequence[Sample], t0: float, window: float = CPU_WINDOW
) -> dict[str, Series]:
    """Cores used by each container over time: the derivative of its cumulative CPU over
    at least ``window`` seconds, at the middle of that span, in seconds since ``t0``.
    A drop of the counter (a container re-created) counts as 0, not as negative use."""
    out = {}
    for name, series in _by_container(samples).items():
        xs, ys = [], []
        j = 0
        for i in range(1, len(series)):
            while j + 1 < i and series[i].t - series[j + 1].t >= window:
                j += 1
            dt = series[i].t - series[j].t
            if dt <= 0:
                continue
            xs.append((series[i].t + series[j].t) / 2 - t0)
            ys.append(max(0.0, (series[i].cpu - series[j].cpu) / dt))
        out[name] = (xs, ys)
    return out


def memory_total(result: RunResult) -> Series:
    """(seconds since deploy, MiB summed over the containers sampled in one pass)."""
    per_pass: dict[float, int] = defaultdict(int)
    for s in result.samples:
        per_pass[s.t] += s.memory
    ts = sorted(per_pass)
    return [t - result.t_deploy for t in ts], [per_pass[t] / MIB for t in ts]


def core_counts(results: Sequence[RunResult]) -> dict[str, Counter[int]]:
    """Task attempts per CPU core (TaskRecord.core) for each topology, over measured runs."""
    counts: dict[str, Counter[int]] = {t: Counter() for t in TOPOLOGIES}
    for r in measured(results):
        counts[r.topology].update(rec.core for rec in r.records if rec.core is not None)
    return {t: c for t, c in counts.items() if c}


def short_name(container: str) -> str:
    """"topo-6dea6f79-m0-w3" -> "w3": the part that differs inside one deployment."""
    return container.rsplit("-", 1)[-1]



def process_tree(results: Sequence[RunResult]) -> tuple[ProcessRow, ...]:
    """Each topology's processes (first measured run without a fault), parents first, with
    the peak RSS and PSS its telemetry saw, in MiB."""
    rows: list[ProcessRow] = []
    for topology in TOPOLOGIES:
        run = next((r for r in results if r.topology == topology and r.fault is None
                    and not r.warmup and r.processes), None)
        if run is None:
            continue
        peak: dict[tuple[str, int], tuple[int, str, int, int | None]] = {}
        for p in run.processes:
            ppid, name, rss, pss = peak.get((p.container, p.pid), (p.ppid, p.name, 0, None))
            if p.pss is not None:
                pss = max(pss or 0, p.pss)
            peak[(p.container, p.pid)] = (ppid, name, max(rss, p.rss), pss)
        for (container, pid), (ppid, name, rss, pss) in sorted(
                peak.items(), key=lambda kv: (kv[0][0], kv[1][0] != 0, kv[0][1])):
            short = container.removeprefix(container.rsplit("-", 1)[0] + "-")
            rows.append(ProcessRow(topology, short, pid, ppid, name, rss / MIB,
                                   None if pss is None else pss / MIB))
    return tuple(rows)


# --------------------------------------------------------------------------- plots


def plots(results: Sequence[RunResult]) -> Plots:
    """Every series the HTML report draws."""
    ids, shares, top = _core_spread(results)
    return Plots(throughput=_throughput(results), cores=_cores(results), core_ids=ids,
                 core_shares=shares, core_top=top, memory=_memory(results))


def _throughput(results: Sequence[RunResult]) -> tuple[tuple[str, tuple[Line, ...]], ...]:
    # One panel per fault condition, a line per run; the no-fault runs first, then each
    # fault in the order its runs came.
    lines = [(condition(r), _line(r.topology, r.topology, throughput_timeline(r),
                                  fault_marks(r))) for r in measured(results)]
    drawn = [(cond, line) for cond, line in lines if line.xs]
    conditions = dict.fromkeys(sorted((c for c, _ in drawn), key=lambda c: c != NO_FAULT))
    return tuple((cond, tuple(line for c, line in drawn if c == cond)) for cond in conditions)


def _line(label: str, topology: str, series: Series,
          marks: Sequence[tuple[float, float | None]] = ()) -> Line:
    return Line(label, topology, tuple(series[0]), tuple(series[1]), tuple(marks))


def _cores(results: Sequence[RunResult]) -> tuple[CoresPanel, ...]:
    # Each topology's representative run, a line per container, with the budget and (where
    # it differs) the worker containers' quota.
    panels = []
    for r in (representative(results, t) for t in TOPOLOGIES):
        if r is None or not r.samples:
            continue
        series = cpu_cores(r.samples, r.t_deploy)
        lines = tuple(_line(short_name(name), r.topology, series[name])
                      for name in sorted(series, key=short_name))
        top = max((max(ys, default=0.0) for _, ys in series.values()), default=0.0)
        if r.budget_cpus:
            top = max(top, r.budget_cpus)
        quotas = {c.cpus for c in r.containers if c.role == "worker"}
        quota = quotas.pop() if len(quotas) == 1 and r.budget_cpus not in quotas else None
        panels.append(CoresPanel(
            title=f"{r.topology} ({condition(r)}, run {r.index + 1})", lines=lines,
            budget=r.budget_cpus or None, quota=quota, top=top * 1.15 or 1))
    return tuple(panels)


def _core_spread(results: Sequence[RunResult]) -> tuple[tuple[int, ...], tuple[CoreShare, ...],
                                                        float]:
    counts = core_counts(results)
    if not counts:
        return (), (), 0.0
    cores = tuple(sorted(set().union(*counts.values())))
    shares = tuple(
        CoreShare(topology, sum(c.values()),
                  tuple(100 * c[core] / sum(c.values()) for core in cores))
        for topology, c in counts.items())
    top = 125 * max(max(c.values()) / sum(c.values()) for c in counts.values())
    return cores, shares, top


def _memory(results: Sequence[RunResult]) -> tuple[Line, ...]:
    # A line per no-fault run (every run when none was fault-free).
    runs = [r for r in measured(results) if r.samples]
    calm = [r for r in runs if r.fault is None] or runs
    return tuple(_line(r.topology, r.topology, memory_total(r)) for r in calm)
