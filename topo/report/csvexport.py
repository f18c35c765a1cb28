"""``--export-csv``: the figures as CSV, one row per figure and topology, numbers unrounded.

For a spreadsheet or a script (hyperfine's ``--export-csv``): every value is in the unit
its ``unit`` column names, as the tables show it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from topo.report.model import Change, Report

TOPOLOGIES = ("single", "multi")


def _write(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return out.getvalue()


def comparison(c: Report) -> str:
    """Median, min, max and repeats of each figure per topology (``topo compare/report``)."""
    rows = []
    for row in c.rows:
        for topology in TOPOLOGIES:
            s = getattr(row, topology)
            if s is not None:
                rows.append([row.key, row.unit, topology, s.median, s.low, s.high, s.n])
    return _write(("figure", "unit", "topology", "median", "min", "max", "n"), rows)


def changes(found: Sequence[Change]) -> str:
    """``topo diff``'s changes, one row each."""
    fields = ("key", "unit", "topology", "a", "b", "change", "regression", "improvement", "noise")
    return _write(fields, ([asdict(c)[f] for f in fields] for c in found))


def points(found: Sequence[Any]) -> str:
    """``topo sweep``'s scaling points (``topo.sweep.ScalingPoint``), one row each."""
    if not found:
        return ""
    fields = tuple(asdict(found[0]))
    return _write(fields, ([asdict(p)[f] for f in fields] for p in found))
