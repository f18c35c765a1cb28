"""The comparison as JSON for scripts: schema ``topo.comparison``, version 1.

docs/result-schema.md documents every field. Extend it without renaming; a change that
breaks a reader bumps VERSION.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from topo.report.model import BlastRadius, Report, Row, Spread

SCHEMA = "topo.comparison"
VERSION = 1


def render(report: Report) -> str:
    """Indented JSON, keys in a stable order, ending with a newline."""
    return json.dumps(document(report), indent=2, ensure_ascii=False) + "\n"


def document(report: Report) -> dict[str, Any]:
    """The ``topo.comparison`` document as plain dicts and lists."""
    sc = report.scenario
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "complete": report.complete,
        "provenance": dataclasses.asdict(report.provenance),
        "scenario": {
            "name": sc.name,
            "source": sc.source or None,
            "sha256": sc.sha256 or None,
            "task": sc.workload.task,
            "tasks": sc.workload.tasks,
            "workers": sc.workers,
            "budget": {"cpus": sc.resources.cpus, "memory": sc.resources.memory},
            "topologies": list(sc.topologies),
            "faults": [f.name for f in sc.faults],
            "repeat": sc.run.repeat,
        },
        "figures": {row.key: _figure(row) for row in report.rows},
        "blast_radius": [_blast(b) for b in report.blast_runs],
        "warnings": list(report.warnings),
    }


def _spread(spread: Spread | None) -> dict[str, Any] | None:
    if spread is None:
        return None
    return {"median": spread.median, "min": spread.low, "max": spread.high, "n": spread.n,
            "mean": spread.mean, "stddev": spread.stddev, "values": list(spread.values)}


def _figure(row: Row) -> dict[str, Any]:
    ratio = None
    if row.ratio is not None:
        ratio = {
            "value": row.ratio.value,
            "ci_low": row.ratio.ci_low,
            "ci_high": row.ratio.ci_high,
            "significant": row.ratio.significant,
        }
    return {
        "label": row.label,
        "unit": row.unit,
        "higher_is_better": row.higher_is_better,
        "single": _spread(row.single),
        "multi": _spread(row.multi),
        "ratio": ratio,
        "verdict": row.verdict,
    }


def _blast(b: BlastRadius) -> dict[str, Any]:
    return {**dataclasses.asdict(b), "share_affected": b.share_affected}

