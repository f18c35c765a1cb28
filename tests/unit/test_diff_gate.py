"""``topo diff`` as a CI gate: regressions the repeats support, noise said as such, units in
``--fail-if`` expressions and messages, ``a.``/``b.`` names, exit codes on saved results.

The expected values are worked out by hand from the spreads written here; the gate fixtures
(tests/golden/gate/) are real results measured on the engine (see its README.md).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from topo.model import FigureRow, Spread
from topo.analysis import diff as diffs
from topo.analysis import threshold
from topo.report.model import Change

from .test_report_cli import topo
from .test_report_markdown import MEMORY, THROUGHPUT, comparison

GATE = Path(__file__).resolve().parents[1] / "golden" / "gate"
BASE_1, BASE_2, SLOW = (str(GATE / f"{n}.result.json") for n in ("base-1", "base-2", "slow"))
P95 = FigureRow("service_p95", "service time p95 (ms)", "ms", Spread(40.0, 38.0, 41.0, 3),
                Spread(63.0, 60.0, 66.0, 3), None, False)
A = comparison(rows=(THROUGHPUT, MEMORY, P95))


def change(a: FigureRow, b: FigureRow, topology: str = "multi", tolerance: float = 0.10
           ) -> Change:
    found = diffs.diff(comparison(rows=(a,)), comparison(rows=(b,)), tolerance)
    return next(c for c in found if c.topology == topology)


def test_a_large_move_with_one_repeat_each_is_noise_and_says_why() -> None:
    # the case: +27% between two single-repeat runs was called "better"
    a = replace(THROUGHPUT, multi=Spread(15.0, 15.0, 15.0, 1))
    b = replace(THROUGHPUT, multi=Spread(19.05, 19.05, 19.05, 1))
    c = change(a, b)
    assert (c.regression, c.improvement, c.noise) == (False, False, "1 repeat each: no interval")
    uneven = change(replace(a, multi=Spread(15.0, 14.0, 16.0, 3)), b)
    assert uneven.noise == "3 repeat(s) in A, 1 in B: no interval"


def test_a_regression_needs_the_ranges_apart_not_just_the_medians() -> None:
    # multi throughput A 14-16 (median 15); B median 12 is -20%, beyond 10%
    overlapping = change(THROUGHPUT, replace(THROUGHPUT, multi=Spread(12.0, 10.0, 14.5, 3)))
    assert not overlapping.regression
    assert overlapping.noise == "ranges overlap: A 14.0-16.0, B 10.0-14.5 tasks/s"
    apart = change(THROUGHPUT, replace(THROUGHPUT, multi=Spread(12.0, 11.0, 13.9, 3)))
    assert apart.regression and apart.noise == ""


def test_the_tolerance_is_the_users() -> None:
    b = replace(THROUGHPUT, multi=Spread(12.0, 11.0, 13.9, 3))  # -20%
    assert change(THROUGHPUT, b, tolerance=0.25).regression is False
    assert change(THROUGHPUT, b, tolerance=0.19).regression is True


@pytest.mark.parametrize(("text", "fails"), [
    ("multi.service_p95 > 50ms", True),  # 63 ms
    ("multi.service_p95 > 70ms", False),
    ("multi.service_p95 > 0.05s", True),
    ("multi.service_p95 > 62000us", True),
    ("multi.service_p95 > 50", True),  # a bare number is in the row's unit, ms
    ("multi.peak_memory > 30MiB", True),  # 31 MiB
    ("multi.peak_memory > 32.5MB", True),  # 31 MiB = 32.51 MB
    ("multi.peak_memory > 32.6MB", False),
    ("multi.peak_memory < 0.5GiB", True),
    ("b.multi.service_p95 > 1.5 * a.multi.service_p95", False),  # same result on both sides
    ("b.multi.throughput / a.multi.throughput < 0.9", False),
    ("multi.service_p95 - single.service_p95 > 20ms", True),  # 23 ms
    ("2s > 1500ms", True),
])
def test_units_in_thresholds(text: str, fails: bool) -> None:
    assert (threshold.failure(threshold.parse_threshold(text), A, A) is not None) is fails


def test_a_and_b_name_the_two_results() -> None:
    slower = comparison(rows=(replace(P95, multi=Spread(90.0, 88.0, 92.0, 3)),))
    rule = threshold.parse_threshold("b.multi.service_p95 > 1.2 * a.multi.service_p95")
    assert threshold.failure(rule, slower, A) == (
        "b.multi.service_p95 > 1.2 * a.multi.service_p95"
        " (b.multi.service_p95 = 90 ms, a.multi.service_p95 = 63 ms)")
    assert threshold.failure(rule, A, slower) is None


def test_a_failure_shows_figures_in_the_unit_the_user_wrote() -> None:
    assert threshold.failure(threshold.parse_threshold("multi.service_p95 > 0.05s"), A) == (
        "multi.service_p95 > 0.05s (multi.service_p95 = 0.063 s (63 ms))")
    assert threshold.failure(threshold.parse_threshold("multi.peak_memory > 0.03GB"), A) == (
        "multi.peak_memory > 0.03GB (multi.peak_memory = 0.033 GB (31 MiB))")


@pytest.mark.parametrize(("text", "message"), [
    ("multi.service_p95 > 512MiB", "cannot compare a time (ms) with a size (MiB)"),
    ("multi.service_p95 * 2s > 1", "cannot multiply a time by a time"),
    ("c.multi.throughput > 1", "names are"),
    ("a.throughput > 1", "names are"),
    ("multi.service_p95 > 50 parsecs", "is not an expression"),
    ("multi.service_p95 > 50xs", "is not an expression"),
    ("multi.service_p95 > xs", "unknown name"),
])
def test_units_that_do_not_go_together_are_refused(text: str, message: str) -> None:
    with pytest.raises(threshold.ThresholdError, match=re.escape(message)):
        threshold.failure(threshold.parse_threshold(text), A, A)


def test_a_names_need_a_baseline() -> None:
    with pytest.raises(threshold.ThresholdError, match="needs a baseline result A"):
        threshold.failure(threshold.parse_threshold("a.multi.throughput > 1"), A)


# --------------------------------------------------------------------------- on saved results


def test_two_results_of_the_same_scenario_pass_the_gate_within_noise() -> None:
    p = topo("diff", BASE_1, BASE_2, "--fail-on-regression")
    assert p.returncode == 0, p.stderr
    assert "noise" in p.stdout and "ranges overlap" in p.stdout
    assert p.stdout.rstrip().endswith("larger move(s) within noise")
    assert p.stdout.rstrip().splitlines()[-1].startswith("no regression beyond 10%")


def test_twice_the_task_cost_fails_the_gate_with_units() -> None:
    p = topo("diff", BASE_1, SLOW, "--fail-on-regression", "-q")
    assert p.returncode == 3, p.stderr
    # measured: 41.1 and 41.4 ms of CPU per task with cpu_ms 40, 80.7 and 81.5 with 80
    assert "regression beyond 10%: CPU per task, single: 41.1 -> 80.7 ms (+96.4%)" in p.stderr
    assert "regression beyond 10%: CPU per task, multi: 41.4 -> 81.5 ms (+97.1%)" in p.stderr


def test_without_the_flag_a_regression_is_reported_but_exits_0() -> None:
    p = topo("diff", BASE_1, SLOW)
    assert p.returncode == 0 and "REGRESSION" in p.stdout and p.stderr == ""


def test_fail_if_over_both_results_with_units() -> None:
    p = topo("diff", BASE_1, SLOW, "--fail-if", "b.multi.cpu_per_task > 1.5 * a.multi.cpu_per_task",
             "--fail-if", "multi.peak_memory > 1GiB")
    assert p.returncode == 3
    assert p.stderr.splitlines() == [
        "threshold failed: b.multi.cpu_per_task > 1.5 * a.multi.cpu_per_task"
        " (b.multi.cpu_per_task = 81.5 ms, a.multi.cpu_per_task = 41.4 ms)"]


def test_a_threshold_mixing_kinds_is_a_usage_error() -> None:
    p = topo("diff", BASE_1, SLOW, "--fail-if", "multi.peak_memory > 2s")
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
    assert "cannot compare a size (MiB) with a time (s)" in p.stderr
