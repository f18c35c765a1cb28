"""Figures of one run and the comparison of repeats, checked against literal answers."""

from __future__ import annotations

import dataclasses

import pytest

from topo.model import (
    ContainerSpec,
    Fault,
    FaultEvent,
    FigureRow,
    MultiSpec,
    Ratio,
    Resources,
    RunResult,
    Sample,
    Scenario,
    SingleSpec,
    Spread,
    TaskRecord,
    WorkerInfo,
    Workload,
)
from topo.analysis.comparison import compare
from topo.analysis.figures import oversubscribed, peak_memory, run_figures
from topo.analysis.rates import (
    bootstrap_ratio,
    bucket_rates,
    cumulative_at,
    ratio_of,
    spread,
    steady_rate,
)
from topo.analysis.verdict import verdict

MIB = 1024 * 1024


def summary(s: Spread | None) -> Spread | None:
    """Median, min, max and n only: what these tests computed by hand."""
    return None if s is None else Spread(s.median, s.low, s.high, s.n)


def spec(name: str, role: str = "worker", cpus: float = 1.0, processes: int = 1) -> ContainerSpec:
    return ContainerSpec(name, role, ("run",), cpus, 512 * MIB, processes=processes)


def done(task: int, end: float, cpu: float = 0.0) -> TaskRecord:
    return TaskRecord(task, "w/1", True, end - 0.25, end, cpu)


def result(**changes: object) -> RunResult:
    """A run of 10 tasks that all finished, with no samples; ``changes`` override fields."""
    base = RunResult(
        topology="single",
        index=0,
        warmup=False,
        status="ok",
        error=None,
        task_count=10,
        t_deploy=90.0,
        t_ready=95.0,
        t_available=100.0,
        t_end=110.0,
        records=tuple(done(i, 100.0 + 0.5 * (i + 1)) for i in range(10)),
        samples=(),
        workers=(),
        containers=(spec("single", "single", cpus=4.0, processes=4),),
        budget_cpus=4.0,
        budget_memory=1024 * MIB,
    )
    return dataclasses.replace(base, **changes)


def series(name: str, *points: tuple[float, float], memory: int = 0) -> tuple[Sample, ...]:
    return tuple(Sample(t, name, cpu, memory) for t, cpu in points)


def scenario(**changes: object) -> Scenario:
    base = Scenario(
        name="demo",
        workload=Workload(task="cpu", tasks=10),
        workers=4,
        resources=Resources(cpus=4.0, memory=1024 * MIB),
        single=SingleSpec(),
        multi=MultiSpec(),
    )
    return dataclasses.replace(base, **changes)


# --------------------------------------------------------------------------- one run


def test_makespan_throughput_and_startup_from_known_times():
    figures = run_figures(result())  # completions at 100.5, 101.0, ..., 105.0
    assert figures.makespan == 5.0
    assert figures.throughput == 2.0
    assert figures.startup_ready == 5.0
    assert figures.startup_first == 10.5
    assert figures.ledger.completed == 10


def test_duplicate_completion_does_not_extend_the_makespan():
    records = result().records + (done(3, 109.0),)
    figures = run_figures(result(records=records))
    assert figures.makespan == 5.0
    assert figures.ledger.duplicated == 1


def test_nothing_measurable_without_completions_or_availability():
    empty = run_figures(result(records=(), t_ready=None))
    assert (empty.makespan, empty.throughput, empty.steady_rate) == (None, None, None)
    assert (empty.startup_ready, empty.startup_first) == (None, None)
    assert (empty.mean_cores, empty.utilisation, empty.cpu_per_task) == (None, None, None)
    assert empty.ledger.lost == 10
    unavailable = run_figures(result(t_available=None))
    assert unavailable.makespan is None
    assert unavailable.startup_first == 10.5


def test_steady_rate_of_an_even_stream():
    # 40 tasks, one every 0.25 s over 10 s: width 0.5 s, 2 per bucket between 1.0 and 9.0.
    times = [0.25 * (i + 1) for i in range(40)]
    assert steady_rate(times, makespan=10.0) == 4.0


def test_steady_rate_ignores_a_slow_tail():
    # 20 tasks at 4/s, then 2 stragglers; the 90% time is the 18th completion (4.5 s).
    times = [0.25 * (i + 1) for i in range(20)] + [15.0, 20.0]
    assert steady_rate(times, makespan=20.0) == 4.0


def test_steady_rate_needs_three_buckets():
    # width 1.1/20 = 0.055 s: only one whole bucket between 1.0 and 1.1.
    assert steady_rate([1.0, 1.1], makespan=1.1) is None
    assert steady_rate([], makespan=None) is None


def test_bucket_rates_keep_whole_half_open_buckets():
    rates = bucket_rates([0.1, 0.2, 0.5, 1.4, 1.5, 1.7], start=0.0, end=1.6, width=0.5)
    assert rates == [4.0, 2.0, 2.0]


def test_cpu_in_window_is_interpolated_between_samples():
    samples = series("w1", (0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0))
    assert cumulative_at(samples, 0.5) == 0.5
    assert cumulative_at(samples, -1.0) == 0.0  # clamped to the first sample
    assert cumulative_at(samples, 9.0) == 3.0  # clamped to the last sample
    assert cumulative_at((), 1.0) == 0.0


def test_cpu_figures_of_workers_and_coordination():
    samples = series("w1", (0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)) + series(
        "redis", (0.0, 0.0), (1.0, 0.5), (2.0, 0.5), (3.0, 0.5)
    )
    run = result(
        topology="multi",
        task_count=2,
        t_deploy=-1.0,
        t_ready=0.0,
        t_available=0.5,
        records=(
            done(0, 1.5, cpu=0.75),
            done(1, 2.5, cpu=0.5),
            TaskRecord(1, "w1/2", False, 2.0, 2.2, 9.0),
        ),
        samples=samples,
        containers=(spec("w1"), spec("redis", "redis", cpus=0.5, processes=0)),
        budget_cpus=2.0,
    )
    figures = run_figures(run)  # window [0.5, 2.5]
    assert figures.makespan == 2.0
    assert figures.cpu_workers == 2.0
    assert figures.cpu_coordination == 0.25
    assert figures.task_cpu == 1.25  # the failed attempt's CPU is not task work
    assert figures.mean_cores == 1.0  # the workers only: Redis has a quota of its own
    assert figures.utilisation == 0.5  # of the 2-CPU budget the workers share
    assert figures.cpu_per_task == 1.125
    w1, redis = figures.containers
    assert (w1.name, w1.role, w1.cpu, w1.cpu_total) == ("w1", "worker", 2.0, 3.0)
    assert (redis.cpu, redis.cpu_total) == (0.25, 0.5)


def test_peak_memory_is_the_peak_of_sums_not_the_sum_of_peaks():
    samples = (
        Sample(0.0, "a", 0.0, 100 * MIB),
        Sample(0.0, "b", 0.0, 300 * MIB),
        Sample(1.0, "a", 0.0, 300 * MIB),
        Sample(1.0, "b", 0.0, 100 * MIB),
        Sample(2.0, "a", 0.0, 50 * MIB),
        Sample(2.0, "b", 0.0, 0, running=False),
    )
    assert peak_memory(samples) == 400 * MIB
    run = result(
        samples=samples,
        containers=(spec("a"), spec("b")),
        t_available=0.5,
        records=(done(0, 1.5),),
        task_count=1,
    )
    figures = run_figures(run)
    a, b = figures.containers
    assert a.peak_memory + b.peak_memory == 600 * MIB
    assert figures.peak_memory == 400 * MIB
    assert a.mean_memory == 300 * MIB  # only the sample at t=1 is inside [0.5, 1.5]
    assert b.mean_memory == 100 * MIB


def test_mean_memory_falls_back_to_all_samples_when_none_is_in_the_window():
    samples = (Sample(0.0, "a", 0.0, 100), Sample(10.0, "a", 0.0, 301))
    run = result(
        samples=samples,
        containers=(spec("a"),),
        t_available=2.0,
        records=(done(0, 3.0),),
        task_count=1,
    )
    figures = run_figures(run)
    assert figures.containers[0].mean_memory == 200  # round(200.5) to even


def test_throttling_is_the_last_cumulative_value():
    samples = (
        Sample(0.0, "a", 0.0, 0, throttled_periods=1, throttled=0.1),
        Sample(1.0, "a", 1.0, 0, throttled_periods=7, throttled=0.75),
    )
    (a,) = run_figures(result(samples=samples, containers=(spec("a"),))).containers
    assert (a.throttled_periods, a.throttled) == (7, 0.75)


def test_oversubscribed_when_processes_exceed_whole_cpus_of_the_quota():
    containers = (
        spec("single", "single", cpus=2.0, processes=4),
        spec("w1", cpus=1.5, processes=2),  # ceil(1.5) = 2: fits
        spec("unlimited", cpus=0.0, processes=8),  # no quota at all
        spec("redis", "redis", cpus=0.5, processes=0),
    )
    assert oversubscribed(containers) == ("single",)


# --------------------------------------------------------------------------- repeats


def test_spread_of_one_and_of_several_values():
    assert spread([5.0]) == Spread(5.0, 5.0, 5.0, 1, 5.0, None, (5.0,))
    # mean 2, deviations 1, -1, 0: sample variance 2 / 2 = 1
    assert spread([3.0, None, 1.0, 2.0]) == Spread(2.0, 1.0, 3.0, 3,
                                                   2.0, 1.0, (3.0, 1.0, 2.0))
    assert spread([]) is None
    assert spread([None]) is None


def test_bootstrap_interval_excludes_one_for_clearly_different_samples():
    single = [1.0, 1.1, 0.9, 1.05, 0.95]
    multi = [2.0, 2.1, 1.9, 2.05, 1.95]
    ratio = bootstrap_ratio(single, multi)
    assert ratio.value == 2.0
    assert ratio.ci_low is not None and ratio.ci_high is not None
    assert 1.9 / 1.1 <= ratio.ci_low <= 2.0 <= ratio.ci_high <= 2.1 / 0.9
    assert ratio.significant
    assert bootstrap_ratio(single, multi) == ratio  # seeded: the same report twice


def test_bootstrap_interval_contains_one_for_overlapping_samples():
    ratio = bootstrap_ratio([1.0, 2.0, 3.0], [1.5, 2.0, 2.5])
    assert ratio.value == 1.0
    assert not ratio.significant


def test_no_interval_with_one_repeat():
    assert bootstrap_ratio([2.0], [3.0, 3.0]) == Ratio(1.5, None, None)
    assert bootstrap_ratio([2.0, 2.0], [3.0]) == Ratio(1.5, None, None)


def test_zero_or_missing_denominator_gives_no_ratio():
    with pytest.raises(ValueError):
        bootstrap_ratio([0.0, 0.0], [1.0, 1.0])
    assert ratio_of([0.0, 0.0], [1.0, 1.0]) is None
    assert ratio_of([], [1.0]) is None
    assert ratio_of([1.0], []) is None


def test_resamples_with_a_zero_median_are_skipped_not_infinite():
    ratio = bootstrap_ratio([0.0, 4.0], [2.0, 2.0])
    assert ratio.value == 1.0
    assert ratio.ci_high is not None and ratio.ci_high <= 1.0


# --------------------------------------------------------------------------- comparison


def repeats(topology: str, makespans: list[float]) -> list[RunResult]:
    """Repeats of 10 tasks whose last completion sets the makespan from t_available=100."""
    runs = []
    for index, makespan in enumerate(makespans):
        records = tuple(done(i, 100.0 + makespan * (i + 1) / 10) for i in range(10))
        runs.append(result(topology=topology, index=index, records=records))
    return runs


def row(comparison, key: str) -> FigureRow:
    return next(r for r in comparison.rows if r.key == key)


def test_compare_rows_spreads_ratios_and_units():
    warmup = dataclasses.replace(repeats("single", [50.0])[0], warmup=True)
    results = [warmup, *repeats("single", [5.0, 4.0, 5.0]), *repeats("multi", [2.5, 2.5, 2.0])]
    comparison = compare(scenario(), results)
    assert len(comparison.runs) == 6  # the warm-up is not measured
    throughput = row(comparison, "throughput")
    assert summary(throughput.single) == Spread(2.0, 2.0, 2.5, 3)
    assert summary(throughput.multi) == Spread(4.0, 4.0, 5.0, 3)
    assert throughput.ratio is not None and throughput.ratio.value == 2.0
    assert throughput.higher_is_better is True
    assert summary(row(comparison, "makespan").single) == Spread(5.0, 4.0, 5.0, 3)
    assert summary(row(comparison, "completed").single) == Spread(10, 10, 10, 3)
    assert row(comparison, "lost").ratio is None  # 0 lost in single: no ratio
    units = {r.key: r.unit for r in comparison.rows}
    assert units["cpu_per_task"] == "ms" and units["peak_memory"] == "MiB"
    assert units["utilisation"] == "%"
    expected = {
        "completed", "failed", "lost", "duplicated", "makespan", "throughput", "steady_rate",
        "cpu_workers", "cpu_coordination", "mean_cores", "utilisation", "cpu_per_task",
        "peak_memory", "startup_ready", "startup_first",
    }
    assert expected <= set(units)


def test_compare_converts_to_row_units():
    samples = series("single", (100.0, 0.0), (105.0, 10.0), memory=3 * MIB)
    comparison = compare(scenario(), [result(samples=samples)])
    assert summary(row(comparison, "cpu_per_task").single) == Spread(1000.0, 1000.0, 1000.0, 1)
    assert summary(row(comparison, "utilisation").single) == Spread(50.0, 50.0, 50.0, 1)
    assert summary(row(comparison, "peak_memory").single) == Spread(3.0, 3.0, 3.0, 1)
    assert row(comparison, "throughput").multi is None


def test_warnings_with_advice():
    slow = tuple(done(i, 100.0 + i + 1) for i in range(7))  # 7 tasks in 7 s
    broken = result(index=1, status="timeout", error="batch not done after 300 s", records=slow)
    oversized = result(
        containers=(spec("topo-single", "single", cpus=2.0, processes=8),),
        workers=(WorkerInfo("topo-single/7", "topo-single", 95.0, 16, 16, 2.0),),
    )
    comparison = compare(scenario(), [oversized, broken])
    text = "\n".join(comparison.warnings)
    assert "single run 2 ended 'timeout' (batch not done after 300 s)" in text
    assert "single run 2 failed 0 and lost 3 tasks with no fault injected" in text
    assert "topo-single runs 8 busy worker processes on a quota of 2 CPUs, so they take turns" in text
    assert "os.cpu_count() says 16 in there" in text
    # Throughput 1.0 in the broken run against 2.0: max/min 2.0 > 1.2.
    assert "single: throughput max/min across repeats is 2.00" in text
    assert "spread is high; rerun with more repeats on a quieter machine" in text
    assert "no confidence interval" not in text


KILL = Fault("k", "kill-worker", at_fraction=0.5)


def fault_run(event_status: str = "injected", **changes: object) -> RunResult:
    """A fault run of ``KILL`` that lost its last task."""
    event = FaultEvent("k", "kill-worker", event_status, 102.0, target="w/1",
                       error="no such process" if event_status == "failed" else None)
    return result(records=result().records[:9], fault=KILL, fault_events=(event,), **changes)


def test_one_repeat_and_faults_warnings():
    # Tasks a fault run lost are the damage measured, not a doubt about the figures.
    comparison = compare(scenario(faults=(KILL,)), [result(), fault_run()])
    assert comparison.warnings == ("no confidence interval with one repeat; set run.repeat ≥ 3",)


def test_lost_tasks_in_a_no_fault_run_warn_even_when_the_scenario_has_faults():
    lossy = result(records=result().records[:9])
    comparison = compare(scenario(faults=(KILL,)), [lossy, fault_run()])
    text = "\n".join(comparison.warnings)
    assert "single run 1 failed 0 and lost 1 tasks with no fault injected" in text


def test_a_fault_that_could_not_be_injected_warns():
    comparison = compare(scenario(faults=(KILL,)), [result(), fault_run("failed", index=1)])
    assert comparison.warnings[-1] == (
        "single run 2: fault 'k' could not be injected (no such process); its blast radius"
        " describes a run without it — read the run's log and rerun"
    )


def test_rows_come_from_no_fault_runs_and_fault_runs_give_blast_radii():
    slow_fault = fault_run(status="timeout", t_end=300.0)
    warm_fault = dataclasses.replace(fault_run(), warmup=True)
    comparison = compare(scenario(faults=(KILL,)), [result(), slow_fault, warm_fault])
    assert [f.ledger.completed for f in comparison.runs] == [10]
    assert summary(row(comparison, "lost").single) == Spread(0, 0, 0, 1)
    assert summary(row(comparison, "throughput").single) == Spread(2.0, 2.0, 2.0, 1)
    (radius,) = comparison.blast  # the warm-up is not measured
    assert (radius.fault, radius.kind, radius.topology, radius.status) == (
        "k", "kill-worker", "single", "injected")
    assert (radius.workers, radius.lost, radius.survived) == (4, 1, False)
    assert not any("timeout" in w for w in comparison.warnings)  # a fault run's fate is no doubt


def test_quiet_runs_give_no_warnings():
    results = [*repeats("single", [5.0, 5.0]), *repeats("multi", [4.0, 4.5])]
    assert compare(scenario(), results).warnings == ()


# --------------------------------------------------------------------------- verdict


def figure_row(key: str, label: str, ratio: Ratio | None, higher: bool | None) -> FigureRow:
    return FigureRow(key, label, "", None, None, ratio, higher)


def test_verdict_names_the_winner_with_a_factor_of_at_least_one():
    faster = figure_row("throughput", "throughput (tasks/s)", Ratio(1.12, 1.05, 1.19), True)
    assert verdict(faster) == "throughput: multi is 1.12× faster (95% CI 1.05–1.19)"
    shorter = figure_row("makespan", "makespan (s)", Ratio(0.8, 0.75, 0.85), False)
    assert verdict(shorter) == "makespan: multi is 1.25× faster (95% CI 1.18–1.33)"
    heavier = figure_row("peak_memory", "peak memory (MiB)", Ratio(1.4, 1.3, 1.5), False)
    assert verdict(heavier) == "peak memory: single is 1.40× better (95% CI 1.30–1.50)"
    neutral = figure_row("mean_cores", "mean cores used", Ratio(0.5, 0.4, 0.6), None)
    assert verdict(neutral) == "mean cores used: multi/single = 0.50 (95% CI 0.40–0.60)"


def test_no_verdict_when_the_interval_holds_one_or_is_missing():
    assert verdict(figure_row("throughput", "t", Ratio(1.1, 0.95, 1.2), True)) is None
    assert verdict(figure_row("throughput", "t", Ratio(3.0, None, None), True)) is None
    assert verdict(figure_row("throughput", "t", None, True)) is None
