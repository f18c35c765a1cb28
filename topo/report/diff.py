"""``topo diff`` output: the changes between two saved reports, as a table or JSON.

The changes and their flags are computed by ``topo.analysis.diff``; this only lays them out.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from topo.report.cells import MISSING, numbers
from topo.report.model import Change, Diff

SCHEMA = "topo.diff"
VERSION = 1
RED, GREEN, RESET = "\033[31m", "\033[32m", "\033[0m"


def render_table(d: Diff, *, color: bool = False) -> str:
    """Plain text: one line per figure and topology; regressions flagged (in red if
    ``color``), improvements (in green); the notes (caveats) under the header."""
    from tabulate import tabulate

    rows = []
    for c in d.changes:
        x, y = numbers(c.a, c.b)
        flag = "REGRESSION" if c.regression else "better" if c.improvement else ""
        if color and flag:
            flag = f"{RED if c.regression else GREEN}{flag}{RESET}"
        rows.append([c.label, c.topology, x, y, _percent(c), flag])
    table = tabulate(rows, headers=("figure", "topology", "A", "B", "change", ""),
                     tablefmt="simple",
                     colalign=("left", "left", "right", "right", "right", "left"),
                     disable_numparse=True)
    summary = (f"{d.regressions} regression(s) of more than {d.tolerance:.0%}" if d.regressions
               else f"no regression of more than {d.tolerance:.0%}")
    head = [f"A: {d.a}", f"B: {d.b}", *(f"{RED}{n}{RESET}" if color else n for n in d.notes)]
    return "\n".join(head) + f"\n\n{table}\n\n{summary}\n"


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


