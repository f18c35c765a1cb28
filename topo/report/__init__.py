"""Reports of the report model, one module per format; each returns a string, none writes
files, none computes a figure (``topo.analysis.build_report`` made them all).

- ``table``: the terminal table;
- ``markdown``: decision table, method and reproducibility manifest, for a design review;
- ``html``: the same plus plots, as ONE self-contained file (inline CSS and SVG);
- ``json``: the report for scripts (schema ``topo.comparison``, version 1);
- ``diff``: two saved reports figure by figure; ``sweep``: the scaling table.

Every module here imports only ``topo.report.model`` and the formatting helpers beside it
(``cells``, ``sections``); tests/unit/test_imports.py holds them to it.
"""

from __future__ import annotations

from topo.report.cells import INCOMPLETE, INCOMPLETE_NOTE
from topo.report.model import Report

FORMATS = ("table", "md", "html", "json")
__all__ = ["FORMATS", "INCOMPLETE", "INCOMPLETE_NOTE", "files", "render"]


def render(report: Report, fmt: str, *, color: bool = False) -> str:
    """The report in ``fmt`` (one of FORMATS); ValueError for another. ``color`` allows ANSI
    codes (table only), so the caller decides whether the output is a terminal."""
    if fmt == "table":
        from topo.report import table

        marker = ""
        if not report.complete:
            marker = _paint(f"{INCOMPLETE}: {INCOMPLETE_NOTE}", color) + "\n\n"
        return marker + table.render(report)
    if fmt == "md":
        from topo.report import markdown

        return markdown.render(report)
    if fmt == "html":
        from topo.report import html

        return html.render(report)
    if fmt == "json":
        from topo.report import json

        return json.render(report)
    raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _paint(text: str, color: bool) -> str:
    return f"\033[1;31m{text}\033[0m" if color else text


def files(report: Report) -> dict[str, str]:
    """The reports a comparison leaves for a design review: relative name -> content
    (report.md, report.html). The caller writes them, beside the Compose files."""
    from topo.report import html, markdown

    return {"report.md": markdown.render(report), "report.html": html.render(report)}
