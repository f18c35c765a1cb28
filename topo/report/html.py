"""One self-contained HTML file: the sections of the Markdown report plus inline SVG plots.

The sections' rows come from ``topo.report.sections``, as the Markdown report's do, so the
two reports show the same cells.

Nothing is loaded from anywhere (no external CSS, script, font or image), so the file can be
attached to a review and opened offline. No JavaScript at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from topo.report import sections
from topo.report.cells import INCOMPLETE, INCOMPLETE_NOTE
from topo.report.model import Report
from topo.report.plots import PLOTS

STYLE = """
:root { --single: #1f77b4; --multi: #d95f02; --line: #d0d7de; --muted: #57606a; }
body { margin: 0; background: #f6f8fa; color: #1f2328;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 8px; }
h2 { font-size: 20px; border-bottom: 1px solid var(--line); padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 16px; margin-top: 24px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 10px; vertical-align: top; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; white-space: nowrap; }
.scroll { overflow-x: auto; }
table.compact { font-size: 13px; }
table.compact td.num { white-space: normal; }
td.better-single { color: var(--single); font-weight: 600; }
td.better-multi { color: var(--multi); font-weight: 600; }
.incomplete { border: 2px solid #cf222e; background: #ffebe9; color: #82071e;
  padding: 8px 12px; font-weight: 600; }
.question { font-size: 16px; }
.verdict { font-size: 17px; border-left: 4px solid var(--multi); padding: 4px 12px;
  background: #fff8f2; }
.warnings li { color: #9a6700; }
.muted { color: var(--muted); }
figure { margin: 16px 0 24px; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; }
code { background: #f6f8fa; padding: 1px 4px; border-radius: 4px; }
"""


def render(report: Report) -> str:
    """The report page, its plots inline."""
    sc = report.scenario
    body = [f"<h1>topo report: {escape(sc.name)}</h1>"]
    if not report.complete:
        body.append(f'<p class="incomplete" id="incomplete">{INCOMPLETE}:'
                    f" {escape(INCOMPLETE_NOTE)}.</p>")
    body.append(f'<p class="verdict" id="verdict"><strong>Verdict:</strong>'
                f" {escape(report.verdict.text)}</p>")
    if sc.description:
        body.append(f'<p class="muted">{escape(sc.description)}</p>')
    body.append(f'<p class="question"><strong>Question:</strong> {escape(report.question)}</p>')
    body += _decision(report)
    body += _plots(report)
    body += ["<h2>Method</h2>", _list(report.method)]
    body += ["<h2>All figures</h2>",
             _table(sections.FIGURE_HEADERS, sections.figure_rows(report), (1, 2, 3))]
    tree = sections.process_tree(report)
    if tree:
        body += ["<h2>Process tree</h2>", f'<p class="muted">{escape(sections.PROCESS_TREE_NOTE)}</p>',
                 _table(sections.PROCESS_TREE_HEADERS, tree, (2, 3, 5, 6))]
    body += ["<h2>Reproducibility manifest</h2>",
             _table(("what", "value"), [list(p) for p in report.manifest]),
             f"<p>Reproduce: <code>{escape(report.reproduce)}</code></p>"]
    return _page(f"topo report: {sc.name}", "\n".join(body), report.generator)


def _decision(report: Report) -> list[str]:
    out = ["<h2>Decision</h2>",
           _table(sections.DECISION_HEADERS, sections.decision_rows(report), (1, 2, 3), better=4)]
    out.append(_list(sections.verdicts(report), "verdicts"))
    if report.blast:
        out += ["<h3>Blast radius per fault</h3>",
                _table(sections.BLAST_HEADERS, sections.blast_rows(report), tuple(range(2, 11)),
                       compact=True)]
    if report.warnings:
        out += ["<h3>Warnings</h3>", _list(report.warnings, "warnings")]
    return out


def _plots(report: Report) -> list[str]:
    out = ["<h2>Plots</h2>"]
    for name, title, draw in PLOTS:
        svg = draw(report.plots)
        content = svg if svg is not None else '<p class="muted">no data for this plot</p>'
        out.append(
            f'<figure class="plot" id="plot-{name}">{content}'
            f"<figcaption>{escape(title)}</figcaption></figure>"
        )
    return out


def _list(items: Sequence[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<ul{attr}>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = (),
    better: int | None = None, compact: bool = False,
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    cls = ' class="compact"' if compact else ""
    lines = [f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>']
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = "num" if i in numeric else ""
            if i == better and cell in ("single", "multi"):
                cls = f"better-{cell}"
            attr = f' class="{cls}"' if cls else ""
            cells.append(f"<td{attr}>{escape(cell)}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(lines) + "</tbody></table></div>"


def _page(title: str, body: str, generator: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        f"{body}\n<footer class=\"muted\">Generated by topo {escape(generator)}.</footer>\n"
        "</main>\n</body>\n</html>\n"
    )
