"""Plain-text table of a Comparison, for the terminal."""

from __future__ import annotations

import math
import statistics
import textwrap
from collections import Counter
from collections.abc import Sequence
from typing import Any

from tabulate import SEPARATING_LINE, tabulate

from topo.model import TOPOLOGIES, BlastRadius, Comparison, FaultStatus, FigureRow, Ratio, Spread
from topo.stats import verdict
from topo.verdict import by_fault, decide, fault_label

MISSING = "—"
HEADERS = ("figure", "single", "multi", "multi/single")
VERDICT_WIDTH = 100


def render(comparison: Comparison) -> str:
    """The verdict in words, a header line, one table row per figure, then the per-figure
    verdicts, the blast radius of each fault (when faults ran) and warnings.

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
    blast = blast_table(comparison)
    return (
        "\n".join(
            [_verdict(comparison), "", _header(comparison), "", table,
             *_block(verdicts), *_block(blast), *_block(warnings)]
        )
        + "\n"
    )


def _verdict(comparison: Comparison) -> str:
    # Wrapped so that the table stays within 120 columns; reflowed, it pastes as one line.
    return textwrap.fill(f"verdict: {decide(comparison).text}", width=VERDICT_WIDTH,
                         subsequent_indent=" " * len("verdict: "), break_on_hyphens=False)


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
    return [row.label, spread_cell(row.single), spread_cell(row.multi), ratio_cell(row.ratio)]


def spread_cell(spread: Spread | None) -> str:
    """A figure as every report shows it: the median, and "(min–max)" over repeats."""
    if spread is None:
        return MISSING
    if spread.n < 2:
        return numbers(spread.median)[0]
    median, low, high = numbers(spread.median, spread.low, spread.high)
    return f"{median} ({low}–{high})"


def ratio_cell(ratio: Ratio | None) -> str:
    """A multi/single ratio, with its 95% interval where there is one."""
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


# --------------------------------------------------------------------------- blast radius

# Rows are faults and columns topologies, each cell a few short lines that say the same
# things in the same order, so a reviewer compares single and multi line by line. A cell
# is at most ~45 characters, so two topologies and a fault name fit 120 columns; one line
# per cell (~90 characters) would not, and one row per fault × topology with a column per
# number needs 13 columns, which tabulate's padding pushes past 120.
BLAST_TITLE = "blast radius (median over runs; dip = lowest 0.5 s rate after the fault vs before)"
STATUS_NOTES = {
    FaultStatus.NOT_APPLICABLE: "not applicable",
    FaultStatus.FAILED: "injection failed",
    FaultStatus.NOT_REACHED: "not reached",
}


def blast_table(comparison: Comparison) -> list[str]:
    """Lines of the blast-radius table, faults in scenario order; none when no fault ran."""
    if not comparison.blast:
        return []
    topologies = comparison.scenario.topologies or TOPOLOGIES
    rows: list[Any] = []
    for fault, radii in by_fault(comparison).items():
        if rows:
            rows.append(SEPARATING_LINE)  # tabulate drops blank rows between multi-line ones
        cells = [blast_cell([b for b in radii if b.topology == t]) for t in topologies]
        rows.append([fault_label(comparison.scenario, fault, radii[0].kind), *cells])
    table = tabulate(
        rows, headers=("fault", *topologies), tablefmt="simple", disable_numparse=True
    )
    return [BLAST_TITLE, "", *(line.rstrip() for line in table.splitlines())]


def blast_cell(radii: Sequence[BlastRadius]) -> str:
    """One topology's runs of one fault: medians, "never" for a recovery that did not come.

    Ledger counts come from every run; workers, dip, detection and recovery only from the
    runs where the fault was injected. "not applicable" (or "—" without runs) alone when
    the fault was injected in none.
    """
    injected = [b for b in radii if b.status == FaultStatus.INJECTED]
    if not injected:
        return ", ".join(sorted({STATUS_NOTES.get(b.status, b.status) for b in radii})) or MISSING
    n = len(radii)
    survived = sum(b.survived for b in radii)
    affected = _count(statistics.median(b.workers_affected for b in injected))
    failed, lost, duplicated, retried = (
        _count(statistics.median(getattr(b, key) for b in radii))
        for key in ("failed", "lost", "duplicated", "retried")
    )
    # A recovery is measured only where the dip is: without a rate before the fault, None
    # there means "not measured", not "never".
    measured = [b for b in injected if b.throughput_dip is not None]
    dip = _median([b.throughput_dip for b in measured])
    detect = _median_or_never([b.time_to_detect for b in injected])
    recover = _median_or_never([b.time_to_recover for b in measured])
    lines = [
        f"{affected}/{radii[0].workers} workers · survived "
        + ("yes" if survived == n else "no" if not survived else f"{survived}/{n}"),
        f"{failed} failed · {lost} lost · {duplicated} dup · {retried} retried",
        f"dip {_percent(dip)} · detect {_seconds(detect, 'none')}"
        f" · recover {_seconds(recover, 'never')}",
    ]
    notes = _notes(radii)
    if n > 1 or notes:
        lines.append(", ".join([f"{n} runs", *notes]))
    return "\n".join(lines)


def _median(values: Sequence[float | None]) -> float | None:
    measured = [v for v in values if v is not None]
    return statistics.median(measured) if measured else None


def _median_or_never(values: Sequence[float | None]) -> float | None:
    # None means "it never happened": it sorts above every time, so a median can be never.
    if not values:
        return None
    return statistics.median([math.inf if v is None else v for v in values])


def _count(median: float) -> str:
    # The median of whole counts is whole or ends in .5: show it exactly.
    return str(int(median)) if median == int(median) else f"{median:.1f}"


def _percent(value: float | None) -> str:
    return MISSING if value is None else f"{100 * value:.0f}%"


def _seconds(value: float | None, never: str) -> str:
    if value is None:
        return MISSING
    return never if math.isinf(value) else f"{value:.2f}s"


def _notes(radii: Sequence[BlastRadius]) -> list[str]:
    counts = Counter(b.status for b in radii if b.status != FaultStatus.INJECTED)
    return [f"{k} {STATUS_NOTES.get(status, status)}" for status, k in counts.items()]
