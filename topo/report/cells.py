"""How every report writes a figure: the same digits for the same value in every format.

Formatting only: the values come from the report model already in their display unit.
"""

from __future__ import annotations

import math

from topo.report.model import Ratio, Spread, Times

MISSING = "—"
INCOMPLETE = "INCOMPLETE"
INCOMPLETE_NOTE = (
    "the result file is partial (complete: false): the comparison was interrupted or is still"
    " running, so these figures cover only the runs it holds"
)


def numbers(*values: float) -> list[str]:
    """Format values that belong together (median, min, max) with the same decimals.

    Whole numbers (task counts) show no decimals; otherwise the largest value gets about
    three significant digits, and the others follow it so that a cell lines up.
    """
    if not all(math.isfinite(v) for v in values):
        return [str(v) for v in values]
    if all(v == int(v) for v in values):
        return [str(int(v)) for v in values]
    magnitude = max(abs(v) for v in values)
    decimals = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2 if magnitude >= 1 else 3
    return [f"{v:.{decimals}f}" for v in values]


def spread_cell(spread: Spread | None) -> str:
    """A figure as every report shows it: the median, and "(min–max)" over repeats."""
    if spread is None:
        return MISSING
    if spread.n < 2:
        return numbers(spread.median)[0]
    median, low, high = numbers(spread.median, spread.low, spread.high)
    return f"{median} ({low}–{high})"


def once_cell(spread: Spread | None) -> str:
    """Like ``spread_cell``, but a value that was the same in every run is said once."""
    if spread is not None and spread.low == spread.high:
        return numbers(spread.low)[0]
    return spread_cell(spread)


def ratio_cell(ratio: Ratio | None) -> str:
    """A multi/single ratio, with its 95% interval where there is one."""
    if ratio is None:
        return MISSING
    if ratio.ci_low is None or ratio.ci_high is None:
        return f"{ratio.value:.2f}"
    return f"{ratio.value:.2f} ({ratio.ci_low:.2f}–{ratio.ci_high:.2f})"


def count(value: float) -> str:
    """A median of whole counts is whole or ends in .5: show it exactly."""
    return str(int(value)) if value == int(value) else f"{value:.1f}"


def is_never(times: Times) -> bool:
    return times.median is not None and math.isinf(times.median)


def times_cell(times: Times, never: str) -> str:
    """Median (min–max) in s of the runs where it came, and in how many it never did;
    ``never`` alone when it came in none, or when the median itself is never."""
    if times.low is None or times.high is None:
        return never if times.never else MISSING
    came = (numbers(times.low)[0] if times.low == times.high
            else "–".join(numbers(times.low, times.high)))
    if is_never(times):
        return f"{never} in {times.never} of {times.n} ({came} s in the others)"
    assert times.median is not None
    cell = once_cell(Spread(times.median, times.low, times.high, times.n - times.never)) + " s"
    return cell + (f"; {never} in {times.never} of {times.n}" if times.never else "")
