"""``topo diff`` output: the changes between two saved reports, as a table, Markdown or JSON.

The changes, their flags and the noise calls are computed by ``topo.analysis.diff``; this
only lays them out.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from topo.report.cells import MISSING, numbers
from topo.report.model import Change, Diff

SCHEMA = "topo.diff"
VERSION = 1
RED, GREEN, RESET = "\033[31m", "\033[32m", "\033[0m"


def render_table(d: Diff, *, color: bool = False, fmt: str = "simple") -> str:
    """One line per figure and topology; regressions flagged (in red if ``color``),
    improvements (in green), large moves the repeats do not support marked "noise" with
    the reason; the notes (caveats) under the header. ``fmt`` is a tabulate format
    ("simple" for the terminal, "github" for Markdown)."""
    from tabulate import tabulate

    rows = [[c.label, c.topology, *numbers(c.a, c.b), _percent(c), _flag(c, color), c.noise]
            for c in d.changes]
    table = tabulate(rows, headers=("figure", "topology", "A", "B", "change", "", "why"),
                     tablefmt=fmt,
                     colalign=("left", "left", "right", "right", "right", "left", "left"),
                     disable_numparse=True)
    head = [f"A: {d.a}", f"B: {d.b}", *(f"{RED}{n}{RESET}" if color else n for n in d.notes)]
    if fmt == "github":
        head = [f"{line}  " for line in head]  # Markdown line breaks
    return "\n".join(head) + f"\n\n{table}\n\n{summary(d)}\n"


def _flag(c: Change, color: bool) -> str:
    flag = "REGRESSION" if c.regression else "better" if c.improvement else (
        "noise" if c.noise else "")
    if color and (c.regression or c.improvement):
        flag = f"{RED if c.regression else GREEN}{flag}{RESET}"
    return flag


def summary(d: Diff) -> str:
    """One line: how many regressions beyond the tolerance, how many moves within noise."""
    head = (f"{d.regressions} regression(s) beyond {d.tolerance:.0%}" if d.regressions
            else f"no regression beyond {d.tolerance:.0%}")
    return head + (f"; {d.noisy} larger move(s) within noise" if d.noisy else "")


def _percent(c: Change) -> str:
    if c.change is None:
        return MISSING if c.a == c.b else "from 0"
    return f"{c.change:+.1%}"


def render_json(d: Diff) -> str:
    """Schema ``topo.diff`` version 1 (docs/result-schema.md)."""
    doc = {"schema": SCHEMA, "version": VERSION, "a": d.a, "b": d.b, "tolerance": d.tolerance,
           "notes": list(d.notes), "changes": [asdict(c) for c in d.changes],
           "regressions": d.regressions}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
