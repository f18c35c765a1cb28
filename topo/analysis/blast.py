"""Blast radius of one fault in one run (metrics.md, "Blast radius").

Pure and stdlib-only, like ``topo.analysis.figures``; it shares the rate helpers of ``topo.analysis.rates``. Times are host
wall-clock seconds; ``tf`` is the injection time of the run's first FaultEvent. Rates count
first completions only: a duplicate adds no throughput.

Where metrics.md leaves room, these are the definitions:

- **window**: ``[tf, tf + window]``, window = max(5 s, 10 × the median service time of the
  run's ok attempts), so that a live worker completes several tasks in it.
- **worker identity**: in ``single`` the process, ``"<container>/<pid>"``; in ``multi`` the
  container, whose one process keeps that identity across restarts.
- **workers affected**: identities with evidence in the window, capped at N:
  the fault's target for kill-worker, kill-container, pause and partition (``"<c>/<pid>"``
  that process, ``"<c>"`` every worker of c; oom and kill-redis name no victim the harness
  chose, so only their evidence counts); a failure record of an attempt the worker started;
  a failure the harness wrote naming only ``"<c>"`` (a broken pool failing every pending
  task) marks every worker of c, while one with no start naming another worker (a reaper
  writing off a dead worker's task) marks nobody; an ``exit`` with a non-zero code or an
  ``oom`` of a worker container marks every worker of it (exit code 0 is a worker that
  finished its batch); a ``requeue`` marks the worker the task was taken from; and silence:
  an identity that completed a task before tf and none in ``[tf + 2 s̃, stop]`` (s̃ the
  median service time: the task in flight at tf may still finish), stop = the window's end
  or the end of the batch if sooner (its last record, or the run's end when tasks were
  lost), checked only when that interval is at least 2 s̃ long. "Every worker of c" is c's planned
  processes, else the identities seen in c; 1 in multi.
- **throughput dip**: buckets of 0.5 s from tf until the batch's 90% completion (the last
  completion if it never got there; the drain at the end is not the fault's); 1 − lowest rate /
  steady rate before tf, clamped to [0, 1]. The steady rate before tf is
  ``rates.steady_rate`` of the completions in ``[t_available, tf)`` with the same 0.5 s
  buckets, so both sides are quantised alike; it needs 3 whole buckets between the 10% and
  90% pre-fault completions (about 2 s of running before tf). A batch that never completed
  every task always gets the first bucket, so one that stops dead dips 100%. None when the
  pre-fault rate is unknown, when every task had completed before tf, or when the batch
  finished less than one bucket after tf.
- **time to recover**: the trailing rate at t counts completions in ``(t − 1 s, t]``; from
  tf to the same end as the dip, the first t at which it is back at ≥ 90% of the steady rate
  after having dropped below it, minus tf. 0.0 when it never dropped and the batch
  completed; None ("never") when it did not come back before the last completion. None too
  whenever the dip is None: there is then no rate to recover to, or too little time.
- **time to detect**: the earliest failure record or exit (non-zero), oom, requeue, error or
  stall signal at or after tf, minus tf; None if there is none.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Sequence

from topo.ledger import build_ledger, completion_times
from topo.model import BlastRadius, FaultStatus, RunResult, Signal, TaskRecord
from topo.analysis.figures import WORKER_ROLES
from topo.analysis.rates import bucket_rates, steady_rate

INJECTED = "injected"
BUCKET = 0.5  # s: dip buckets, and the buckets of the steady rate the dip is measured against
ROLLING = 1.0  # s: trailing window of the recovery rate
RECOVERED = 0.9  # share of the pre-fault steady rate that counts as recovered
MIN_WINDOW = 5.0  # s
WINDOW_SERVICES = 10  # window = max(MIN_WINDOW, this many median service times)
SILENCE_SERVICES = 2  # shorter spans cannot tell a dead worker from one between tasks
TARGETED_KINDS = ("kill-worker", "kill-container", "pause", "partition")
# "restart": the container died and its restart policy brought it back between two polls.
AFFECTING_SIGNALS = ("exit", "restart", "oom", "requeue")
DETECTING_SIGNALS = ("exit", "restart", "oom", "requeue", "error", "stall")
_EPS = 1e-9  # absorbs float error when a time falls exactly on a bucket or window edge


def blast_radius(result: RunResult, workers: int, window: float | None = None) -> BlastRadius:
    """The damage ``result.fault`` did in this run; ``workers`` is the scenario's N.

    ``window`` (s) bounds the evidence of affected workers, by default ``default_window``.
    A fault that was not injected (not-applicable, failed, not-reached) still gets its
    ledger counts, with 0 workers affected and no dip, detection or recovery. Raises
    ValueError for a run without a fault.
    """
    fault = result.fault
    if fault is None:
        raise ValueError("a blast radius needs a fault run; this run injected no fault")
    event = result.fault_events[0] if result.fault_events else None
    status = event.status if event is not None else FaultStatus.NOT_REACHED
    ledger = build_ledger(result.task_count, result.records, result.retried)
    tf = event.t if event is not None and status == INJECTED else None
    affected, dip, detect, recover = 0, None, None, None
    replace_after, whole = None, False
    if tf is not None:
        target = event.target if event is not None and fault.kind in TARGETED_KINDS else None
        span = default_window(result) if window is None else window
        affected = workers_affected(result, tf, tf + span, workers, target)
        dip, recover = _dip_and_recovery(result, tf)
        detect = time_to_detect(result, tf)
        if fault.kind in ("kill-worker", "kill-container") and target and "/" not in target:
            whole, replace_after = True, time_to_replace(result, tf, target)
    return BlastRadius(
        fault=fault.name,
        kind=fault.kind,
        topology=result.topology,
        index=result.index,
        status=status,
        workers=workers,
        workers_affected=affected,
        failed=ledger.failed,
        lost=ledger.lost,
        duplicated=ledger.duplicated,
        retried=ledger.retried,
        throughput_dip=dip,
        time_to_detect=detect,
        time_to_recover=recover,
        survived=ledger.completed == result.task_count and result.status == "ok",
        time_to_replace=replace_after,
        replaced=whole,
    )


def time_to_replace(result: RunResult, tf: float, container: str) -> float | None:
    """Seconds from ``tf`` (the kill of ``container``) to the first task that container
    completed after it came back: a task started after the kill can only have run in its
    replacement (Docker's restart keeps the name; under Swarm the agent names itself after
    the service). None when it never did."""
    ends = [r.end for r in result.records
            if r.ok and r.start is not None and r.start >= tf
            and _container(r.worker) == container]
    return min(ends) - tf if ends else None


def default_window(result: RunResult) -> float:
    """max(5 s, 10 × median service time of the ok attempts); 5 s without any."""
    service = _median_service(result.records)
    return MIN_WINDOW if service is None else max(MIN_WINDOW, WINDOW_SERVICES * service)


def timeline(result: RunResult, bucket: float = BUCKET) -> list[tuple[float, float]]:
    """(bucket start in s since t_available, completions/s) up to the last completion.

    Unlike the steady rate, the last bucket is kept although partial, so that every
    completion is plotted; its rate is over the full width. Empty without completions or
    without t_available.
    """
    times = completion_times(result.records, result.task_count)
    start = result.t_available
    if start is None or not times or times[-1] < start:
        return []
    count = math.floor((times[-1] - start) / bucket + _EPS) + 1
    rates = bucket_rates(times, start, start + count * bucket, bucket)
    return [(i * bucket, rate) for i, rate in enumerate(rates)]


def time_to_detect(result: RunResult, tf: float) -> float | None:
    """Seconds from tf to the first failure record or damage signal; None if none came."""
    signs = [r.end for r in result.records if not r.ok and r.end >= tf]
    signs += [s.t for s in result.signals if _is_damage(s, DETECTING_SIGNALS) and s.t >= tf]
    return min(signs) - tf if signs else None


# --------------------------------------------------------------------------- workers


def workers_affected(
    result: RunResult, tf: float, until: float, workers: int, target: str | None = None
) -> int:
    """Worker identities with evidence of damage in ``[tf, until]`` (module docstring),
    at most ``workers``. ``target`` is what the fault hit, if the harness chose it."""
    hit = _Hits(result)
    if target:
        hit.mark(target)
    for record in result.records:
        # A failure with no start that names a worker is a reaper writing off another
        # worker's task: it says nothing about the worker named.
        started_here = record.start is not None or "/" not in record.worker
        if not record.ok and tf <= record.end <= until and started_here:
            hit.mark(record.worker)
    for signal in result.signals:
        if tf <= signal.t <= until and _is_damage(signal, AFFECTING_SIGNALS):
            hit.mark(signal.container)
    for identity in _silent(result, tf, until):
        hit.mark(identity)
    return min(hit.count(), workers)


class _Hits:
    """Identities hit one by one, and worker containers hit as a whole."""

    def __init__(self, result: RunResult) -> None:
        self.multi = result.topology == "multi"
        seen = {w.worker for w in result.workers} | {r.worker for r in result.records}
        self.seen = {s for s in seen if "/" in s}
        self.processes = {c.name: c.processes for c in result.containers}
        # Signals also name redis and the feeder; only containers that host workers count.
        self.worker_containers = {
            c.name for c in result.containers if c.role in WORKER_ROLES
        } | {_container(s) for s in seen}
        self.processes_hit: set[str] = set()
        self.containers_hit: set[str] = set()

    def mark(self, name: str) -> None:
        container, _, pid = name.partition("/")
        if container not in self.worker_containers:
            return
        if pid and not self.multi:
            self.processes_hit.add(name)
        else:
            self.containers_hit.add(container)

    def count(self) -> int:
        alone = {p for p in self.processes_hit if _container(p) not in self.containers_hit}
        return len(alone) + sum(self._size(c) for c in self.containers_hit)

    def _size(self, container: str) -> int:
        if self.multi:
            return 1
        inside = sum(1 for s in self.seen if _container(s) == container)
        return self.processes.get(container) or inside or 1


def _silent(result: RunResult, tf: float, until: float) -> set[str]:
    # Identities that completed tasks before tf and none in [tf, stop] (module docstring).
    service = _median_service(result.records)
    stop = min(until, _batch_end(result))
    if service is None:
        return set()
    # A worker finishing the task it held when the fault struck proves little (it may have
    # run it before a Redis died, say): only completions after that grace show it working.
    grace = SILENCE_SERVICES * service
    if stop - (tf + grace) < SILENCE_SERVICES * service:
        return set()
    multi = result.topology == "multi"
    before: set[str] = set()
    during: set[str] = set()
    for record in result.records:
        identity = _container(record.worker) if multi else record.worker
        if record.ok and record.end < tf:
            before.add(identity)
        elif record.ok and tf + grace <= record.end <= stop:
            during.add(identity)
    return before - during


def _batch_end(result: RunResult) -> float:
    # A lost task had no record at all: the batch was still waiting for it until the run ended.
    last = max((r.end for r in result.records), default=result.t_end)
    ledger = build_ledger(result.task_count, result.records)
    return max(last, result.t_end) if ledger.lost else last


# --------------------------------------------------------------------------- rates


def _dip_and_recovery(result: RunResult, tf: float) -> tuple[float | None, float | None]:
    times = completion_times(result.records, result.task_count)
    before = [t for t in times if t < tf]
    after = [t for t in times if t >= tf]
    finished = len(times) == result.task_count
    steady = _steady_before(before, result.t_available, tf)
    if steady is None or steady <= 0 or len(before) == result.task_count:
        return None, None
    last = after[-1] if after else tf
    # The drain at the end of a batch (fewer tasks left than workers) is not the fault's
    # doing: look no further than the batch's 90% completion, as the steady rate does.
    k90 = math.ceil(0.9 * result.task_count) - 1
    if len(times) > k90 and times[k90] >= tf + BUCKET:
        last = min(last, times[k90])
    rates = bucket_rates(after, tf, last, BUCKET)
    if not rates and not finished:
        # The batch was still owed tasks: its first bucket after tf is a real measurement.
        rates = bucket_rates(after, tf, tf + BUCKET, BUCKET)
    if not rates:
        return None, None
    dip = min(1.0, max(0.0, 1.0 - min(rates) / steady))
    return dip, _recovery(times, tf, last, RECOVERED * steady, finished)


def _steady_before(before: Sequence[float], t_available: float | None, tf: float) -> float | None:
    if t_available is None or tf <= t_available:
        return None
    return steady_rate(before, tf - t_available, width=BUCKET)


def _recovery(
    times: Sequence[float], tf: float, last: float, threshold: float, finished: bool
) -> float | None:
    # The trailing rate only changes when a completion enters (t = c) or leaves
    # (t = c + ROLLING) its window, so those instants are the only ones to look at.
    instants = sorted(
        {tf}
        | {c for c in times if tf <= c <= last}
        | {c + ROLLING for c in times if tf <= c + ROLLING <= last}
    )
    dropped = False
    for t in instants:
        inside = bisect.bisect_right(times, t + _EPS) - bisect.bisect_right(
            times, t - ROLLING + _EPS
        )
        if inside / ROLLING < threshold - _EPS:
            dropped = True
        elif dropped:
            return t - tf
    # An unfinished batch's rate fell to 0 after its last completion and stayed there.
    return 0.0 if finished and not dropped else None


# --------------------------------------------------------------------------- helpers


def _median_service(records: Iterable[TaskRecord]) -> float | None:
    services = [r.end - r.start for r in records if r.ok and r.start is not None]
    return statistics.median(services) if services else None


def _container(worker: str) -> str:
    return worker.partition("/")[0]


def _is_damage(signal: Signal, kinds: tuple[str, ...]) -> bool:
    # A worker that exits 0 has finished its batch; only other exits are damage.
    return signal.kind in kinds and not (signal.kind == "exit" and signal.detail == "0")
