"""Every report format of the golden result files, against snapshots in tests/golden.

After an intended change of a report (or of the figures behind it), regenerate with

    TOPO_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_report_golden.py

and read the diff of tests/golden before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from topo import report, results
from topo.analysis import build_report
from topo.analysis import diff as diffs
from topo.report import diff as diff_report
from topo.report.model import Report

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = ("crash", "small", "small-regressed")
FORMATS = (("table", "table.txt"), ("md", "md"), ("json", "comparison.json"))


def _load(case: str) -> Report:
    sc, runs, document = results.load(GOLDEN / f"{case}.result.json")
    # No local CPU model: the snapshot must not depend on the machine that checks it.
    return build_report(sc, runs, results.provenance(document))


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TOPO_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing; run with TOPO_UPDATE_GOLDEN=1 to create it"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from its snapshot (TOPO_UPDATE_GOLDEN=1 updates it)"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("fmt", "suffix"), FORMATS)
def test_report_matches_snapshot(case: str, fmt: str, suffix: str) -> None:
    check(f"{case}.{suffix}", report.render(_load(case), fmt))


@pytest.mark.parametrize(("fmt", "suffix"), (("table", "txt"), ("json", "json")))
def test_diff_matches_snapshot(fmt: str, suffix: str) -> None:
    a, b = _load("small"), _load("small-regressed")
    model = diffs.report("small.result.json", a, "small-regressed.result.json", b,
                         (a.complete, b.complete))
    text = diff_report.render_table(model) if fmt == "table" else diff_report.render_json(model)
    check(f"small-regressed.diff.{suffix}", text)


def test_the_partial_result_is_marked_incomplete_in_every_format() -> None:
    model = _load("small-regressed")
    assert model.complete is False

    def render(fmt: str) -> str:
        return report.render(model, fmt)

    assert render("table").startswith("INCOMPLETE: ")
    assert "> **INCOMPLETE**: " in render("md").splitlines()[2]
    assert '<p class="incomplete" id="incomplete">INCOMPLETE: ' in render("html")
    assert '"complete": false' in render("json")


def test_a_complete_result_has_no_incomplete_marker() -> None:
    model = _load("small")
    for fmt in report.FORMATS:
        assert "INCOMPLETE" not in report.render(model, fmt)
