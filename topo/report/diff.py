"""Two saved comparisons, figure by figure: what got worse, what is noise; and the CI gate.

A change is a regression when a figure with a direction moved the worse way by more than the
tolerance (10% of its value in A unless told otherwise) AND the repeats support it: B's
range (min to max over its repeats) lies entirely on the worse side of A's range. With
fewer than 2 repeats on a side there is no range, so a large move is called "within
noise", and the table says why. ``--fail-if`` expressions live in ``topo.report.threshold``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from topo.model import TOPOLOGIES, Comparison, FigureRow, Spread
from topo.report import INCOMPLETE
from topo.report.table import MISSING, numbers
from topo.report.threshold import Threshold, ThresholdError, failure, parse_threshold

__all__ = ["Change", "Threshold", "ThresholdError", "caveats", "diff", "failure",
           "parse_threshold", "regressions", "render_json", "render_table"]

SCHEMA = "topo.diff"
VERSION = 1
TOLERANCE = 0.10
RED, GREEN, RESET = "\033[31m", "\033[32m", "\033[0m"


# --------------------------------------------------------------------------- diff


@dataclass(frozen=True)
class Change:
    key: str
    label: str
    unit: str
    topology: str  # single | multi
    a: float  # medians
    b: float
    change: float | None  # (b - a) / a; None when a is 0
    regression: bool  # worse beyond the tolerance, and the ranges agree
    improvement: bool  # better beyond the tolerance, and the ranges agree
    noise: str  # why a move beyond the tolerance is not called either way; "" otherwise


def diff(a: Comparison, b: Comparison, tolerance: float = TOLERANCE) -> tuple[Change, ...]:
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


def caveats(a: Comparison, b: Comparison, complete: tuple[bool, bool] = (True, True)) -> list[str]:
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


def render_table(
    changes: Sequence[Change], a: str, b: str, *, notes: Sequence[str] = (),
    color: bool = False, tolerance: float = TOLERANCE, fmt: str = "simple",
) -> str:
    """One line per figure and topology; regressions flagged (in red if ``color``),
    improvements (in green), large moves the repeats do not support marked "noise" with
    the reason; ``notes`` (``caveats``) under the header. ``fmt`` is a tabulate format
    ("simple" for the terminal, "github" for Markdown)."""
    from tabulate import tabulate

    rows = [[c.label, c.topology, *numbers(c.a, c.b), _percent(c), _flag(c, color), c.noise]
            for c in changes]
    table = tabulate(rows, headers=("figure", "topology", "A", "B", "change", "", "why"),
                     tablefmt=fmt,
                     colalign=("left", "left", "right", "right", "right", "left", "left"),
                     disable_numparse=True)
    head = [f"A: {a}", f"B: {b}", *(f"{RED}{n}{RESET}" if color else n for n in notes)]
    if fmt == "github":
        head = [f"{line}  " for line in head]  # Markdown line breaks
    return "\n".join(head) + f"\n\n{table}\n\n{summary(changes, tolerance)}\n"


def _flag(c: Change, color: bool) -> str:
    flag = "REGRESSION" if c.regression else "better" if c.improvement else (
        "noise" if c.noise else "")
    if color and (c.regression or c.improvement):
        flag = f"{RED if c.regression else GREEN}{flag}{RESET}"
    return flag


def summary(changes: Sequence[Change], tolerance: float = TOLERANCE) -> str:
    """One line: how many regressions beyond the tolerance, how many moves within noise."""
    found = regressions(changes)
    noisy = sum(bool(c.noise) for c in changes)
    head = (f"{len(found)} regression(s) beyond {tolerance:.0%}" if found
            else f"no regression beyond {tolerance:.0%}")
    return head + (f"; {noisy} larger move(s) within noise" if noisy else "")


def describe(c: Change) -> str:
    """A regression in one line, with its unit: for the CI log."""
    x, y = numbers(c.a, c.b)
    return f"{c.label.split(' (')[0]}, {c.topology}: {x} -> {y} {c.unit} ({_percent(c)})"


def _percent(c: Change) -> str:
    if c.change is None:
        return MISSING if c.a == c.b else "from 0"
    return f"{c.change:+.1%}"


def render_json(changes: Sequence[Change], a: str, b: str, notes: Sequence[str] = (),
                tolerance: float = TOLERANCE) -> str:
    """Schema ``topo.diff`` version 1 (docs/result-schema.md)."""
    doc = {"schema": SCHEMA, "version": VERSION, "a": a, "b": b, "tolerance": tolerance,
           "notes": list(notes), "changes": [asdict(c) for c in changes],
           "regressions": len(regressions(changes))}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
