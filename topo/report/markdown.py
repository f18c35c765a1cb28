"""Markdown report for a design review: the decision, the method, how to reproduce it.

The sections' rows come from ``topo.report.sections``, as the HTML report's do.
"""

from __future__ import annotations

from collections.abc import Sequence

from topo.report.cells import INCOMPLETE, INCOMPLETE_NOTE
from topo.report.model import Report
from topo.report.sections import (
    BLAST_HEADERS, DECISION_HEADERS, FIGURE_HEADERS, PROCESS_TREE_HEADERS, PROCESS_TREE_NOTE,
    blast_rows, decision_rows, figure_rows, process_tree, verdicts,
)

# --------------------------------------------------------------------------- markdown


def render(report: Report) -> str:
    """The whole Markdown report."""
    sc = report.scenario
    out = [f"# topo report: {sc.name}", ""]
    if not report.complete:
        out += [f"> **{INCOMPLETE}**: {INCOMPLETE_NOTE}.", ""]
    out += [f"**Verdict:** {report.verdict.text}", ""]
    if sc.description:
        out += [sc.description, ""]
    out += [f"**Question:** {report.question}", "", "## Decision", ""]
    out += table(DECISION_HEADERS, decision_rows(report), right=(1, 2, 3))
    out += [""] + [f"- {v}" for v in verdicts(report)]
    if report.blast:
        out += ["", "### Blast radius per fault", ""]
        out += table(BLAST_HEADERS, blast_rows(report), right=tuple(range(2, 11)))
    if report.warnings:
        out += ["", "### Warnings", ""] + [f"- {w}" for w in report.warnings]
    out += ["", "## Method", ""] + [f"- {line}" for line in report.method]
    out += ["", "## All figures", ""]
    out += table(FIGURE_HEADERS, figure_rows(report), right=(1, 2, 3))
    tree = process_tree(report)
    if tree:
        out += ["", "## Process tree", "", PROCESS_TREE_NOTE, ""]
        out += table(PROCESS_TREE_HEADERS, tree, right=(2, 3, 5, 6))
    out += ["", "## Reproducibility manifest", ""]
    out += table(("what", "value"), [list(pair) for pair in report.manifest])
    out += ["", f"Reproduce: `{report.reproduce}`"]
    return "\n".join(out) + "\n"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()
) -> list[str]:
    """A GitHub-flavoured Markdown table; columns in ``right`` are right-aligned."""
    rule = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = [_line(headers), _line(rule)]
    return lines + [_line(row) for row in rows]


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
