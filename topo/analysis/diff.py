"""Two saved reports, figure by figure: what got worse, what is noise; and the CI gate.

A change is a regression when a figure with a direction moved the worse way by more than the
tolerance (10% of its value in A unless told otherwise) AND the repeats support it: B's
range (min to max over its repeats) lies entirely on the worse side of A's range. With
fewer than 2 repeats on a side there is no range, so a large move is called "within
noise", and the change says why. ``--fail-if`` expressions live in
``topo.analysis.threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence

from topo.analysis.threshold import (Figures, FigureRow, Threshold, ThresholdError, failure,
                                     parse_threshold)
from topo.model import TOPOLOGIES, Spread
from topo.report.cells import INCOMPLETE, numbers
from topo.report.model import TOLERANCE, Change, Diff

__all__ = ["Figures", "Threshold", "ThresholdError", "caveats", "describe", "diff", "failure",
           "parse_threshold", "regressions", "report"]


def report(a_name: str, a: Figures, b_name: str, b: Figures,
           complete: tuple[bool, bool] = (True, True), tolerance: float = TOLERANCE) -> Diff:
    """What ``topo diff`` shows: B against A, with the caveats and the regressions counted."""
    changes = diff(a, b, tolerance)
    return Diff(a_name, b_name, changes, tuple(caveats(a, b, complete)),
                len(regressions(changes)), tolerance, sum(bool(c.noise) for c in changes))


def diff(a: Figures, b: Figures, tolerance: float = TOLERANCE) -> tuple[Change, ...]:
    """Every figure measured in both A and B, per topology, in B's order of rows."""
    before = {row.key: row for row in a.rows}
    changes = []
    for row in b.rows:
        old = before.get(row.key)
        if old is None:
            continue
        for topology in TOPOLOGIES:
            x, y = getattr(old, topology), getattr(row, topology)
            if x is not None and y is not None:
                changes.append(_change(row, topology, x, y, tolerance))
    return tuple(changes)


def regressions(changes: Sequence[Change]) -> list[Change]:
    return [c for c in changes if c.regression]


def _change(row: FigureRow, topology: str, a: Spread, b: Spread, tolerance: float) -> Change:
    relative = (b.median - a.median) / abs(a.median) if a.median else None
    worse = better = False
    noise = ""
    big = relative is None or abs(relative) > tolerance
    if row.higher_is_better is not None and a.median != b.median and big:
        up_is_good = row.higher_is_better
        noise = _noise(a, b, b.median > a.median, row.unit)
        worse = not noise and (b.median > a.median) != up_is_good
        better = not noise and (b.median > a.median) == up_is_good
    return Change(row.key, row.label, row.unit, topology, a.median, b.median, relative,
                  worse, better, noise)


def _noise(a: Spread, b: Spread, moved_up: bool, unit: str) -> str:
    """Why a large move of the median is not a finding ("" when the ranges support it)."""
    if a.n < 2 or b.n < 2:
        counts = f"{a.n} repeat each" if a.n == b.n else f"{a.n} repeat(s) in A, {b.n} in B"
        return f"{counts}: no interval"
    apart = b.low > a.high if moved_up else b.high < a.low
    if apart:
        return ""
    x = numbers(a.low, a.high, b.low, b.high)
    return f"ranges overlap: A {x[0]}-{x[1]}, B {x[2]}-{x[3]} {unit}"


def caveats(a: Figures, b: Figures, complete: tuple[bool, bool] = (True, True)) -> list[str]:
    """What makes the two results less comparable: a partial file, another scenario."""
    found = [
        f"{INCOMPLETE}: {side} is a partial result (complete: false)"
        for side, done in zip("AB", complete) if not done
    ]
    sa, sb = a.scenario, b.scenario
    if (sa.sha256 or sb.sha256) and sa.sha256 != sb.sha256:
        found.append(
            f"A and B ran different scenario files ({sa.name} {sa.sha256[:12] or '?'},"
            f" {sb.name} {sb.sha256[:12] or '?'})"
        )
    return found


def describe(c: Change) -> str:
    """A regression in one line, with its unit: for the CI log."""
    x, y = numbers(c.a, c.b)
    change = "from 0" if c.change is None else f"{c.change:+.1%}"
    return f"{c.label.split(' (')[0]}, {c.topology}: {x} -> {y} {c.unit} ({change})"
