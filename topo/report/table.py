"""Plain-text table of a Comparison, for the terminal."""

from __future__ import annotations

import math

from tabulate import tabulate

from topo.model import Comparison, FigureRow, Ratio, Spread
from topo.stats import verdict

MISSING = "—"
HEADERS = ("figure", "single", "multi", "multi/single")


def render(comparison: Comparison) -> str:
    """Header line, one table row per figure, then verdicts and warnings.

    A topology that did not run shows "—" in its column and in the ratio column.
    """
    table = tabulate(
        [_row(row) for row in comparison.rows],
        headers=HEADERS,
        tablefmt="simple",
        colalign=("left", "right", "right", "right"),
        disable_numparse=True,  # cells are already formatted; keep "1.20 (1.1–1.3)" as is
    )
    verdicts = [v for v in (verdict(row) for row in comparison.rows) if v]
    warnings = [f"warning: {w}" for w in comparison.warnings]
    return "\n".join([_header(comparison), "", table, *_block(verdicts), *_block(warnings)]) + "\n"


def _header(comparison: Comparison) -> str:
    scenario = comparison.scenario
    budget = scenario.resources
    return (
        f"scenario {scenario.name}: task {scenario.workload.task} × {scenario.workload.tasks},"
        f" {scenario.workers} workers, budget {budget.cpus:g} CPUs /"
        f" {budget.memory / (1024 * 1024):g} MiB"
    )


def _block(lines: list[str]) -> list[str]:
    # A blank line before a block, and nothing at all for an empty one.
    return ["", *lines] if lines else []


def _row(row: FigureRow) -> list[str]:
    return [row.label, _spread(row.single), _spread(row.multi), _ratio(row.ratio)]


def _spread(spread: Spread | None) -> str:
    if spread is None:
        return MISSING
    if spread.n < 2:
        return numbers(spread.median)[0]
    median, low, high = numbers(spread.median, spread.low, spread.high)
    return f"{median} ({low}–{high})"


def _ratio(ratio: Ratio | None) -> str:
    if ratio is None:
        return MISSING
    if ratio.ci_low is None or ratio.ci_high is None:
        return f"{ratio.value:.2f}"
    return f"{ratio.value:.2f} ({ratio.ci_low:.2f}–{ratio.ci_high:.2f})"


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
