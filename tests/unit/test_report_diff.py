"""``topo diff``: regressions between two reports, and safe ``--fail-if`` thresholds."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from topo.model import Spread
from topo.analysis import diff as diffs
from topo.report import diff as diff_report

from .test_report_markdown import LOST, MEMORY, SCENARIO, THROUGHPUT, model

A = model(rows=(THROUGHPUT, MEMORY, LOST))


def spread(value: float) -> Spread:
    return Spread(value, value, value, 3)


def test_regressions_are_moves_the_worse_way_beyond_ten_percent() -> None:
    b = model(rows=(
        replace(THROUGHPUT, single=spread(17.0), multi=spread(18.0)),  # -15%, +20%
        replace(MEMORY, single=spread(32.0), multi=spread(40.0)),  # +6.7%, +29%
        replace(LOST, multi=spread(3)),  # from 0 to 3
    ))
    changes = {(c.key, c.topology): c for c in diffs.diff(A, b)}
    flags = {k: (c.regression, c.improvement) for k, c in changes.items()}
    assert flags == {
        ("throughput", "single"): (True, False), ("throughput", "multi"): (False, True),
        ("peak_memory", "single"): (False, False), ("peak_memory", "multi"): (True, False),
        ("lost", "single"): (False, False), ("lost", "multi"): (True, False),
    }
    assert changes["throughput", "single"].change == pytest.approx(-0.15)
    assert changes["lost", "multi"].change is None


def test_the_table_flags_regressions_and_colours_only_when_asked() -> None:
    b = model(rows=(replace(THROUGHPUT, single=spread(10.0)),))
    plain = diff_report.render_table(diffs.report("a.json", A, "b.json", b))
    assert "REGRESSION" in plain and "\033[" not in plain
    assert plain.rstrip().endswith("1 regression(s) beyond 10%")
    coloured = diff_report.render_table(diffs.report("a.json", A, "b.json", b), color=True)
    assert "\033[31mREGRESSION\033[0m" in coloured


def test_json_lists_every_change() -> None:
    doc = json.loads(diff_report.render_json(diffs.report("a", A, "b", A, (True, False))))
    assert (doc["schema"], doc["version"], doc["regressions"]) == ("topo.diff", 1, 0)
    assert doc["notes"] == ["INCOMPLETE: B is a partial result (complete: false)"]
    assert len(doc["changes"]) == 6


def test_caveats_name_a_partial_file_and_another_scenario() -> None:
    other = model(scenario=replace(SCENARIO, sha256="ef" * 32))
    assert diffs.caveats(A, other, (True, False)) == [
        "INCOMPLETE: B is a partial result (complete: false)",
        f"A and B ran different scenario files (demo {'ab' * 6}, demo {'ef' * 6})",
    ]
    assert diffs.caveats(A, A) == []


@pytest.mark.parametrize(("text", "fails"), [
    ("multi.throughput < 0.9 * single.throughput", True),  # 15 < 18
    ("multi.throughput < 0.5 * single.throughput", False),
    ("single.throughput - multi.throughput > 4", True),
    ("multi.peak_memory / single.peak_memory >= 1.1", False),
    ("single.lost > 0 or multi.lost > 0", False),
    ("multi.throughput < single.throughput and multi.peak_memory > 30", True),
    ("10 < multi.throughput < 20", True),
    ("10 < multi.throughput < 12", False),
    ("-multi.throughput < -16", False),
])
def test_thresholds_fail_when_their_expression_is_true(text: str, fails: bool) -> None:
    assert (diffs.failure(diffs.parse_threshold(text), A) is not None) is fails


def test_a_failure_shows_the_values() -> None:
    failure = diffs.failure(diffs.parse_threshold("multi.throughput < single.throughput"), A)
    assert failure == (
        "multi.throughput < single.throughput"
        " (multi.throughput = 15 tasks/s, single.throughput = 20 tasks/s)")


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')",
    "open('/etc/passwd')",
    "single.throughput.__class__",
    "single.throughput ** 99",
    "x.throughput > 1",
    "single > 1",
    "single.throughput > True",
    "single.throughput > 'a'",
    "[single.throughput][0] > 1",
    "(lambda: 1)() > 0",
    "not single.throughput",
    "single.throughput if 1 else 2",
    "single.throughput >",
])
def test_anything_but_the_small_language_is_refused(text: str) -> None:
    with pytest.raises(diffs.ThresholdError):
        diffs.failure(diffs.parse_threshold(text), A)


def test_an_unknown_figure_is_an_error_and_an_unmeasured_one_fails() -> None:
    with pytest.raises(diffs.ThresholdError, match="no figure 'speed'"):
        diffs.failure(diffs.parse_threshold("multi.speed > 1"), A)
    gap = model(rows=(replace(THROUGHPUT, multi=None),))
    failure = diffs.failure(diffs.parse_threshold("multi.throughput < 1"), gap)
    assert failure == "multi.throughput < 1: multi.throughput was not measured"


def test_division_by_zero_fails_the_threshold_instead_of_crashing() -> None:
    failure = diffs.failure(diffs.parse_threshold("single.lost / multi.lost > 1"), A)
    assert failure is not None and "division by zero" in failure
