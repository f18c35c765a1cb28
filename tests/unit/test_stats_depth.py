"""Latency percentiles, per-core spread and the copy-on-write-aware memory footprint."""

from __future__ import annotations

import math
import random

import pytest

from topo.model import ProcSample, Quantiles, Ratio, TaskRecord
from topo.analysis.figures import run_figures
from topo.analysis.rates import bootstrap_ratio, quantiles

from .test_stats import MIB, result, spec


def test_quantiles_interpolate_between_order_statistics() -> None:
    assert quantiles([]) is None
    assert quantiles([7.0]) == Quantiles(7.0, 7.0, 7.0, 7.0, 1)
    q = quantiles([float(v) for v in range(1, 102)])  # 1..101: p50 = 51, p95 = 96, p99 = 100
    assert q is not None
    assert (q.p50, q.p95, q.p99, q.max, q.n) == (51.0, 96.0, 100.0, 101.0, 101)
    q2 = quantiles([0.0, 10.0])
    assert q2 is not None and q2.p50 == 5.0 and q2.p95 == pytest.approx(9.5)


def test_queue_wait_uses_first_start_and_service_the_first_success() -> None:
    records = (
        TaskRecord(0, "w/1", False, 100.5, 101.0, error="boom"),  # first attempt failed
        TaskRecord(0, "w/2", True, 102.0, 102.5),  # retried: wait counts from 100.5
        TaskRecord(1, "w/1", True, 101.0, 103.0),
        TaskRecord(1, "w/2", True, 101.5, 101.6),  # a duplicate: service is the first one's
        TaskRecord(2, "w/3", False, None, 104.0),  # never started: no wait, no service
    )
    f = run_figures(result(records=records, task_count=3))
    assert f.wait is not None and f.service is not None
    assert f.wait.n == 2 and f.wait.max == pytest.approx(1.0) and f.wait.p50 == pytest.approx(0.75)
    assert f.service.n == 2 and f.service.p50 == pytest.approx(1.25)  # 0.5 and 2.0
    assert f.service.max == pytest.approx(2.0)


def test_cores_count_completed_tasks_per_core() -> None:
    records = tuple(TaskRecord(i, "w/1", True, 100.0 + i, 100.5 + i, core=i % 3) for i in range(7))
    records += (TaskRecord(7, "w/1", False, 108.0, 108.5, core=2),)  # failures do not count
    f = run_figures(result(records=records, task_count=8))
    assert f.cores == ((0, 3), (1, 2), (2, 2))


def test_footprint_pss_shows_sharing_that_summed_rss_double_counts() -> None:
    # One container, a parent and 3 forked workers: 30 MiB RSS each, of which 20 MiB shared.
    def proc(t: float, pid: int, rss: int, pss: int, container: str = "single") -> ProcSample:
        return ProcSample(t, container, pid, 1 if pid > 1 else 0, "python3", 0.0, rss * MIB,
                          uss=None, pss=pss * MIB)

    passes = [proc(1.0, pid, 30, 15) for pid in (1, 7, 8, 9)]  # 20 MiB shared by 4: 5 each
    passes += [proc(2.0, pid, 31, 16) for pid in (1, 7, 8, 9)]  # the peak pass
    passes += [proc(2.0, 1, 500, 500, container="redis")]  # not a worker container
    f = run_figures(result(processes=tuple(passes)))
    assert f.rss_sum == 4 * 31 * MIB
    assert f.pss_sum == 4 * 16 * MIB


def test_footprint_adds_each_containers_own_peak() -> None:
    procs = (
        ProcSample(1.0, "w0", 1, 0, "python3", 0.0, 40 * MIB, pss=40 * MIB),
        ProcSample(2.0, "w0", 1, 0, "python3", 0.0, 30 * MIB, pss=30 * MIB),
        ProcSample(1.5, "w1", 1, 0, "python3", 0.0, 20 * MIB, pss=20 * MIB),
    )
    f = run_figures(result(topology="multi", processes=procs,
                           containers=(spec("w0"), spec("w1"), spec("redis", "redis"))))
    assert f.pss_sum == 60 * MIB and f.rss_sum == 60 * MIB


def test_disturbance_is_host_cpu_outside_the_containers_and_steal_in_the_window() -> None:
    from topo.analysis.comparison import compare

    from .test_stats import series

    # window [100.0, 105.0] (t_available .. last completion); the worker container used 2.0
    # CPU s in it; the host was busy 4.5 s and had 0.5 s stolen over the same 5 s
    records = (TaskRecord(0, "w/1", True, 100.0, 105.0, cpu=2.0),)
    host = ((99.0, 1000.0, 10.0), (100.0, 1000.0, 10.0), (105.0, 1004.5, 10.5), (106.0, 1005.0, 10.6))
    samples = series("single", (100.0, 0.0), (105.0, 2.0))
    r = result(records=records, task_count=1, host=host, samples=samples)
    f = run_figures(r)
    assert f.outside_cores == pytest.approx((4.5 - 2.0) / 5)
    assert f.steal_cores == pytest.approx(0.1)
    text = "\n".join(compare(_scenario(), [r]).warnings)
    assert "the host was busy with other work (0.50 cores" in text
    assert "the hypervisor took 0.10 cores" in text
    quiet = result(records=records, task_count=1, samples=samples,
                   host=((100.0, 0.0, 0.0), (105.0, 2.25, 0.0)))
    assert run_figures(quiet).outside_cores == pytest.approx(0.05)
    assert not any("busy" in w for w in compare(_scenario(), [quiet]).warnings)


def _scenario():  # type: ignore[no-untyped-def]
    from topo.model import Resources, RunSpec, Scenario, SingleSpec, Workload

    return Scenario(name="s", workload=Workload(task="noop", tasks=1), workers=4,
                    resources=Resources(cpus=4.0, memory=2**30), single=SingleSpec(), multi=None,
                    run=RunSpec(repeat=1))


# --------------------------------------------------------------------------- against independent answers

# 11 latencies, sorted: 0.013 0.044 0.05 0.075 0.12 0.2 0.31 0.5 0.9 1.7 2.2
LATENCIES = [0.2, 0.013, 0.9, 0.05, 1.7, 0.31, 0.044, 0.5, 2.2, 0.12, 0.075]


def test_quantiles_by_hand_and_against_numpy() -> None:
    q = quantiles(LATENCIES)
    assert q is not None
    # rank positions p·(n-1) with n = 11: p50 at 5 -> 0.2; p95 at 9.5 -> 1.7 + 0.5·(2.2 - 1.7);
    # p99 at 9.9 -> 1.7 + 0.9·0.5
    assert (q.p50, q.p95, q.p99, q.max, q.n) == pytest.approx((0.2, 1.95, 2.15, 2.2, 11))
    numpy = pytest.importorskip("numpy")  # matplotlib's dependency; numpy's default is linear
    rng = random.Random(11)
    skewed = [rng.lognormvariate(0.0, 1.0) for _ in range(997)]
    q = quantiles(skewed)
    assert q is not None
    assert [q.p50, q.p95, q.p99, q.max] == pytest.approx(
        list(numpy.percentile(skewed, [50, 95, 99, 100])), rel=1e-12)


def test_bootstrap_interval_of_two_values_each_is_the_extreme_ratios() -> None:
    # Resampling 2 values gives a median of a, (a+b)/2, (a+b)/2 or b: 16 equally likely
    # (single, multi) pairs. The extremes 2/3 (median 2 over 3) and 6/1 each have
    # probability 1/16 = 6.25% > 2.5%, so they are the 95% interval's ends.
    assert bootstrap_ratio([1.0, 3.0], [2.0, 6.0]) == Ratio(2.0, 2 / 3, 6.0)


def _median_atoms(values: list[float]) -> list[tuple[float, float]]:
    """Exact distribution of the median of n (odd) draws with replacement from ``values``
    (distinct): P(median <= v_k) = P(at least (n+1)/2 of n draws are <= v_k)."""
    n, ordered = len(values), sorted(values)
    need = (n + 1) // 2
    cdf = [sum(math.comb(n, j) * (k / n) ** j * (1 - k / n) ** (n - j) for j in range(need, n + 1))
           for k in range(1, n + 1)]
    return [(v, c - (cdf[i - 1] if i else 0.0)) for i, (v, c) in enumerate(zip(ordered, cdf))]


def _ratio_quantile(single: list[float], multi: list[float], p: float) -> float:
    """The p-quantile of median(multi resample) / median(single resample), exactly."""
    atoms: dict[float, float] = {}
    for a, pa in _median_atoms(single):
        for b, pb in _median_atoms(multi):
            atoms[b / a] = atoms.get(b / a, 0.0) + pa * pb
    total = 0.0
    for ratio in sorted(atoms):
        total += atoms[ratio]
        if total >= p:
            return ratio
    return max(atoms)


def test_bootstrap_interval_agrees_with_the_exact_resampling_distribution() -> None:
    single = [10.0, 11.0, 12.0, 13.0, 15.0, 16.0, 18.0]
    multi = [13.0, 14.0, 15.0, 17.0, 19.0, 21.0, 22.0]
    ratio = bootstrap_ratio(single, multi)
    assert ratio.value == 17.0 / 13.0
    # 2000 resamples estimate the 2.5% point within about 3.5 standard errors of the empirical
    # distribution function (sqrt(0.025 · 0.975 / 2000) = 0.0035): between the exact 1.3% and
    # 3.7% points, well below the exact 5% point a 90% interval would give.
    assert ratio.ci_low is not None and ratio.ci_high is not None
    assert _ratio_quantile(single, multi, 0.013) <= ratio.ci_low <= _ratio_quantile(single, multi, 0.037)
    assert _ratio_quantile(single, multi, 0.963) <= ratio.ci_high <= _ratio_quantile(single, multi, 0.987)
    assert _ratio_quantile(single, multi, 0.037) < _ratio_quantile(single, multi, 0.05)
    assert _ratio_quantile(single, multi, 0.95) < _ratio_quantile(single, multi, 0.963)
