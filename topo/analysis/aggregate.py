"""The blast radius of each fault over its repeats, aggregated once for every report.

Each run's ``BlastRadius`` (``topo.analysis.blast``) is the damage of one injection; a report
shows one fault × topology. Every figure is taken over the runs where the fault was INJECTED:
a run where it was not applicable, failed or was not reached describes a run without the
fault, so its ledger would dilute the damage measured (docs/metrics.md, "Blast radius over
repeats"). Those runs are only counted, by status.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence

from topo.analysis.rates import spread
from topo.analysis.verdict import fault_label
from topo.model import TOPOLOGIES, BlastRadius, Scenario
from topo.report.model import BlastSummary, Times

INJECTED = "injected"


def blast_summaries(scenario: Scenario, radii: Sequence[BlastRadius]) -> tuple[BlastSummary, ...]:
    """One summary per fault and topology that ran it: faults in scenario order (a fault the
    scenario does not name, from an older result file, last), then single before multi."""
    order = {f.name: i for i, f in enumerate(scenario.faults)}
    faults = sorted(dict.fromkeys(b.fault for b in radii), key=lambda f: order.get(f, len(order)))
    out = []
    for fault in faults:
        for topology in TOPOLOGIES:
            runs = [b for b in radii if b.fault == fault and b.topology == topology]
            if runs:
                out.append(summarise(scenario, runs))
    return tuple(out)


def summarise(scenario: Scenario, runs: Sequence[BlastRadius]) -> BlastSummary:
    """The runs of one fault in one topology (module docstring)."""
    first = runs[0]
    injected = [b for b in runs if b.status == INJECTED]
    # A recovery is measured only where the dip is: without a rate before the fault, None
    # there means "not measured", not "never".
    dipped = [b for b in injected if b.throughput_dip is not None]
    skipped = Counter(b.status for b in runs if b.status != INJECTED)
    return BlastSummary(
        fault=first.fault,
        label=fault_label(scenario, first.fault, first.kind),
        kind=first.kind,
        topology=first.topology,
        workers=first.workers,
        runs=len(runs),
        injected=len(injected),
        not_injected=tuple(skipped.items()),
        workers_affected=spread(b.workers_affected for b in injected),
        failed=spread(b.failed for b in injected),
        lost=spread(b.lost for b in injected),
        duplicated=spread(b.duplicated for b in injected),
        retried=spread(b.retried for b in injected),
        dip=spread(100 * b.throughput_dip for b in dipped if b.throughput_dip is not None),
        detect=times([b.time_to_detect for b in injected]),
        recover=times([b.time_to_recover for b in dipped]),
        replace=times([b.time_to_replace for b in injected if b.replaced]),
        survived=sum(b.survived for b in injected),
    )


def times(values: Sequence[float | None]) -> Times:
    """Median of times where None is "never came": it sorts above every time, so the median
    itself can be never (math.inf); low and high are of the times that came."""
    came = [v for v in values if v is not None]
    median = statistics.median([math.inf if v is None else v for v in values]) if values else None
    return Times(median=median, low=min(came, default=None), high=max(came, default=None),
                 n=len(values), never=len(values) - len(came))
