"""Plain-text table of a report, for the terminal."""

from __future__ import annotations

import textwrap
from typing import Any

from tabulate import SEPARATING_LINE, tabulate

from topo.report.cells import MISSING, count, is_never, numbers, ratio_cell, spread_cell
from topo.report.model import BlastSummary, Report, Row, Spread, Times

# Re-exported: other modules and users formatted cells through this module before cells.py.
__all__ = ["MISSING", "numbers", "ratio_cell", "render", "spread_cell", "blast_table",
           "blast_cell"]

HEADERS = ("figure", "single", "multi", "multi/single")
VERDICT_WIDTH = 100
TOPOLOGIES = ("single", "multi")


def render(report: Report) -> str:
    """The verdict in words, a header line, one table row per figure, then the per-figure
    verdicts, the blast radius of each fault (when faults ran) and warnings.

    A topology that did not run shows "—" in its column and in the ratio column.
    """
    table = tabulate(
        [_row(row) for row in report.rows],
        headers=HEADERS,
        tablefmt="simple",
        colalign=("left", "right", "right", "right"),
        disable_numparse=True,  # cells are already formatted; keep "1.20 (1.1–1.3)" as is
    )
    verdicts = [row.verdict for row in report.rows if row.verdict]
    warnings = [f"warning: {w}" for w in report.warnings]
    blast = blast_table(report)
    return (
        "\n".join(
            [_verdict(report), "", report.header, "", table,
             *_block(verdicts), *_block(blast), *_block(warnings)]
        )
        + "\n"
    )


def _verdict(report: Report) -> str:
    # Wrapped so that the table stays within 120 columns; reflowed, it pastes as one line.
    return textwrap.fill(f"verdict: {report.verdict.text}", width=VERDICT_WIDTH,
                         subsequent_indent=" " * len("verdict: "), break_on_hyphens=False)


def _block(lines: list[str]) -> list[str]:
    # A blank line before a block, and nothing at all for an empty one.
    return ["", *lines] if lines else []


def _row(row: Row) -> list[str]:
    return [row.label, spread_cell(row.single), spread_cell(row.multi), ratio_cell(row.ratio)]


# --------------------------------------------------------------------------- blast radius

# Rows are faults and columns topologies, each cell a few short lines that say the same
# things in the same order, so a reviewer compares single and multi line by line. A cell
# is at most ~45 characters, so two topologies and a fault name fit 120 columns; one line
# per cell (~90 characters) would not, and one row per fault × topology with a column per
# number needs 13 columns, which tabulate's padding pushes past 120.
BLAST_TITLE = "blast radius (median over runs; dip = lowest 0.5 s rate after the fault vs before)"
STATUS_NOTES = {
    "not-applicable": "not applicable",
    "failed": "injection failed",
    "not-reached": "not reached",
}


def blast_table(report: Report) -> list[str]:
    """Lines of the blast-radius table, faults in scenario order; none when no fault ran."""
    if not report.blast:
        return []
    topologies = report.scenario.topologies or TOPOLOGIES
    faults: dict[str, list[BlastSummary]] = {}
    for summary in report.blast:
        faults.setdefault(summary.fault, []).append(summary)
    rows: list[Any] = []
    for summaries in faults.values():
        if rows:
            rows.append(SEPARATING_LINE)  # tabulate drops blank rows between multi-line ones
        mine = {s.topology: s for s in summaries}
        rows.append([summaries[0].label, *(blast_cell(mine.get(t)) for t in topologies)])
    table = tabulate(
        rows, headers=("fault", *topologies), tablefmt="simple", disable_numparse=True
    )
    return [BLAST_TITLE, "", *(line.rstrip() for line in table.splitlines())]


def blast_cell(summary: BlastSummary | None) -> str:
    """One topology's runs of one fault: medians over the runs where it was injected,
    "never" for a recovery that did not come; the statuses alone where it was injected in
    none ("—" without runs)."""
    if summary is None:
        return MISSING
    notes = [STATUS_NOTES.get(status, status) for status, _ in summary.not_injected]
    if not summary.injected:
        return ", ".join(sorted(set(notes))) or MISSING
    n, survived = summary.injected, summary.survived
    lines = [
        f"{_median(summary.workers_affected)}/{summary.workers} workers · survived "
        + ("yes" if survived == n else "no" if not survived else f"{survived}/{n}"),
        f"{_median(summary.failed)} failed · {_median(summary.lost)} lost"
        f" · {_median(summary.duplicated)} dup · {_median(summary.retried)} retried",
        f"dip {_percent(summary.dip)} · detect {_seconds(summary.detect, 'none')}"
        f" · recover {_seconds(summary.recover, 'never')}"
        + (f" · back {_seconds(summary.replace, 'never')}" if summary.replace.n else ""),
    ]
    skipped = [f"{k} {STATUS_NOTES.get(status, status)}" for status, k in summary.not_injected]
    if summary.runs > 1 or skipped:
        lines.append(", ".join([f"{summary.runs} runs", *skipped]))
    return "\n".join(lines)


def _median(spread: Spread | None) -> str:
    return MISSING if spread is None else count(spread.median)


def _percent(spread: Spread | None) -> str:
    return MISSING if spread is None else f"{spread.median:.0f}%"


def _seconds(times: Times, never: str) -> str:
    if times.median is None:
        return MISSING
    return never if is_never(times) else f"{times.median:.2f}s"
