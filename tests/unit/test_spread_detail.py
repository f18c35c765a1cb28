"""Per figure, beside median/min/max/n: the mean, the sample standard deviation and every
run's value (as hyperfine's ``times[]``), in the model and in the JSON report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from topo import results as result_files
from topo.analysis import build_report
from topo.analysis.rates import spread
from topo.report import json as json_report

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "small.result.json"


def test_mean_and_sample_stddev_by_hand() -> None:
    # mean (10 + 12 + 17) / 3 = 13; deviations -3, -1, 4: (9 + 1 + 16) / (3 - 1) = 13
    s = spread([10.0, None, 12.0, 17.0])
    assert s is not None
    assert (s.median, s.low, s.high, s.n) == (12.0, 10.0, 17.0, 3)
    assert s.mean == 13.0
    assert s.stddev == pytest.approx(3.6056, abs=5e-5)
    assert s.values == (10.0, 12.0, 17.0)  # in the order given, the unmeasured one skipped


def test_one_value_has_a_mean_but_no_stddev_and_never_has_neither() -> None:
    one = spread([4.0])
    assert one is not None and (one.mean, one.stddev, one.values) == (4.0, None, (4.0,))
    never = spread([1.0, math.inf])
    assert never is not None and (never.mean, never.stddev) == (None, None)
    assert never.values == (1.0, math.inf)


def _makespans(document: dict, topology: str) -> list[float]:
    """Each no-fault run's makespan straight from the raw records: the batch available to
    the last task's first successful end (docs/metrics.md)."""
    out = []
    for run in document["runs"]:
        if run["topology"] != topology or run["fault"] or run["warmup"]:
            continue
        first_end: dict[int, float] = {}
        for r in run["records"]:
            if r["ok"]:
                first_end[r["id"]] = min(r["end"], first_end.get(r["id"], math.inf))
        out.append(max(first_end.values()) - run["t_available"])
    return out


def test_the_json_report_carries_mean_stddev_and_values_of_a_real_result() -> None:
    sc, runs, document = result_files.load(GOLDEN)
    report = build_report(sc, runs, result_files.provenance(document))
    figure = json.loads(json_report.render(report))["figures"]["makespan"]
    raw = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for topology in ("single", "multi"):
        expected = _makespans(raw, topology)
        assert len(expected) == 3
        got = figure[topology]
        assert got["values"] == pytest.approx(expected)
        mean = sum(expected) / 3
        assert got["mean"] == pytest.approx(mean)
        assert got["stddev"] == pytest.approx(
            math.sqrt(sum((v - mean) ** 2 for v in expected) / 2))
        assert got["n"] == 3 and got["median"] == pytest.approx(sorted(expected)[1])
