"""``build_report``: raw runs in, the frozen report model out; the one place where a report's
figures are computed. Every format in ``topo.report`` renders what this returns."""

from __future__ import annotations

from collections.abc import Sequence

import topo
from topo.analysis import describe, timelines
from topo.analysis.aggregate import blast_summaries
from topo.analysis.comparison import DECISION_KEYS, compare
from topo.analysis.verdict import better, decide, verdict
from topo.model import Comparison, FigureRow, RunResult, Scenario
from topo.report.model import Provenance, Report, Row


def build_report(scenario: Scenario, results: Sequence[RunResult],
                 provenance: Provenance | None = None) -> Report:
    """The report of ``results`` (every run of a comparison, warm-ups included: they are
    left out here) measured where ``provenance`` says."""
    return from_comparison(compare(scenario, results), results, provenance)


def from_comparison(comparison: Comparison, results: Sequence[RunResult] = (),
                    provenance: Provenance | None = None) -> Report:
    """The report of a comparison already made; ``results`` are its raw runs, which the
    process tree and the plots are drawn from."""
    scenario = comparison.scenario
    facts = provenance or Provenance()
    rows = tuple(row(r) for r in comparison.rows)
    by_key = {r.key: r for r in rows if r.single is not None or r.multi is not None}
    return Report(
        scenario=scenario,
        provenance=facts,
        header=describe.header(scenario),
        question=describe.question(scenario),
        rows=rows,
        decision=tuple(by_key[k] for k in DECISION_KEYS if k in by_key),
        verdict=decide(comparison),
        no_verdict=no_verdict(comparison),
        blast=blast_summaries(scenario, comparison.blast),
        blast_runs=comparison.blast,
        warnings=comparison.warnings,
        method=describe.method(scenario, facts),
        manifest=describe.manifest(scenario, facts),
        reproduce=describe.reproduce(scenario, facts),
        process_tree=timelines.process_tree(results),
        plots=timelines.plots(results),
        generator=topo.__version__,
    )


def row(figure: FigureRow) -> Row:
    """A figure row with what the reports say about it."""
    return Row(
        key=figure.key, label=figure.label, unit=figure.unit, single=figure.single,
        multi=figure.multi, ratio=figure.ratio, higher_is_better=figure.higher_is_better,
        verdict=verdict(figure), better=better(figure),
    )


def no_verdict(comparison: Comparison) -> str:
    """What to say when no figure favours either topology, and why."""
    if not any(r.ratio and r.ratio.ci_low is not None for r in comparison.rows):
        return (
            "No difference can be called: one run per topology gives no confidence"
            " interval; rerun with run.repeat ≥ 3."
        )
    return "No difference is significant at 95%: the intervals of every figure include 1."
