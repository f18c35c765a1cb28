"""The sections every long report shows, as rows of formatted cells of the report model.

Markdown and HTML lay these rows out each in their own markup; neither builds them, so both
show the same cells.
"""

from __future__ import annotations

from topo.report.cells import MISSING, once_cell, ratio_cell, spread_cell, times_cell
from topo.report.model import BlastSummary, ProcessRow, Report

DECISION_HEADERS = ("figure", "single", "multi", "multi/single (95% CI)", "better")
FIGURE_HEADERS = ("figure", "single", "multi", "multi/single (95% CI)")
BLAST_HEADERS = (
    "fault", "topology", "runs", "workers affected", "failed", "lost", "duplicated",
    "throughput dip", "time to detect", "time to recover", "back at work", "survived",
)
PROCESS_TREE_HEADERS = ("topology", "container", "pid", "ppid", "process", "peak RSS (MiB)",
                        "peak PSS (MiB)")
PROCESS_TREE_NOTE = (
    "Each container's processes as its in-container telemetry saw them (first run without a "
    "fault): PID 1 and its children share one PID namespace and one cgroup. RSS counts pages "
    "shared after fork in every process; PSS divides them among their sharers.")


# --------------------------------------------------------------------------- sections


def decision_rows(report: Report) -> list[list[str]]:
    """The figures a decision rests on, with ratio, interval and winner."""
    return [[row.label, spread_cell(row.single), spread_cell(row.multi), ratio_cell(row.ratio),
             row.better] for row in report.decision]


def figure_rows(report: Report) -> list[list[str]]:
    """Every figure of the report, as the terminal table shows them."""
    return [[row.label, spread_cell(row.single), spread_cell(row.multi), ratio_cell(row.ratio)]
            for row in report.rows]


def verdicts(report: Report) -> list[str]:
    """The one-line verdict of each figure that has one, or why none has."""
    return [row.verdict for row in report.rows if row.verdict] or [report.no_verdict]


def blast_rows(report: Report) -> list[list[str]]:
    """One row per fault and topology; with repeats, medians (min–max) and counts of runs."""
    return [_blast_row(summary) for summary in report.blast]


def _blast_row(b: BlastSummary) -> list[str]:
    head = [b.label, b.topology, str(b.runs)]
    if not b.injected:
        statuses = ", ".join(sorted(status for status, _ in b.not_injected))
        return head + [f"not injected ({statuses})"] + [MISSING] * 8
    dip = once_cell(b.dip)
    detect = MISSING if b.detect.low is None else times_cell(b.detect, "none")
    return head + [
        f"{once_cell(b.workers_affected)} of {b.workers}",
        once_cell(b.failed),
        once_cell(b.lost),
        once_cell(b.duplicated),
        MISSING if dip == MISSING else f"{dip}%",
        detect,
        times_cell(b.recover, "never"),
        times_cell(b.replace, "never"),
        ("yes" if b.survived else "no") if b.injected == 1 else f"{b.survived} of {b.injected}",
    ]


def process_tree(report: Report) -> list[list[str]]:
    """Rows of (topology, container, pid, ppid, name, peak RSS, peak PSS), parents first."""
    return [_process(p) for p in report.process_tree]


def _process(p: ProcessRow) -> list[str]:
    return [p.topology, p.container, str(p.pid), str(p.ppid), p.name, f"{p.rss:.1f}",
            MISSING if p.pss is None else f"{p.pss:.1f}"]
