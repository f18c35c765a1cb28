"""The report model: everything a report shows, computed once by ``topo.analysis.build``.

Every format in ``topo.report`` renders a ``Report`` and does no arithmetic of its own, so the
table, Markdown, HTML and JSON say the same figure with the same value. Values are already in
the unit they are shown in (ms, MiB, %, ...), except where a field says otherwise. This module
is the only one of ``topo.report`` that imports from the rest of topo (the model's figures).
"""

from __future__ import annotations

from dataclasses import dataclass

from topo.model import BlastRadius, Ratio, Scenario, Spread

__all__ = [
    "BlastSummary", "BlastRadius", "Change", "CoresPanel", "CoreShare", "Diff", "Finding", "Line",
    "Plots", "ProcessRow", "Provenance", "Ratio", "Report", "Row", "Scenario", "Spread",
    "SweepReport", "SweepRow", "TOLERANCE", "Times", "Verdict",
]


@dataclass(frozen=True)
class Provenance:
    """Where and how a result was measured; None is "not recorded"."""

    scenario: str | None = None
    scenario_file: str | None = None
    scenario_copy: str | None = None  # the copy saved beside the result: what to reproduce from
    sweep_workers: int | None = None  # a point of `topo sweep`: the N it was measured at
    scenario_sha256: str | None = None
    image: str | None = None
    engine: str | None = None
    engine_api: str | None = None
    kernel: str | None = None
    cgroup: str | None = None  # "v1 (cgroupfs)"
    os: str | None = None
    host_cpus: int | None = None
    host_memory: int | None = None  # bytes
    cpu_model: str | None = None
    hostname: str | None = None
    python: str | None = None
    topo_version: str | None = None
    created: str | None = None
    complete: bool = True


@dataclass(frozen=True)
class Finding:
    """One sentence of the verdict and the figures it cites, by name."""

    key: str  # the figure row it rests on ("throughput", …) or "fault:<fault name>"
    sentence: str
    figures: tuple[tuple[str, float], ...] = ()
    significant: bool = True  # False: the sentence says that no difference could be called


@dataclass(frozen=True)
class Verdict:
    findings: tuple[Finding, ...]

    @property
    def text(self) -> str:
        """The verdict as one paragraph: the sentences joined by "; ", with a capital and a
        full stop, as it goes into a design review."""
        if not self.findings:
            return "No verdict: no figure was measured in both topologies."
        body = "; ".join(f.sentence for f in self.findings)
        return body[0].upper() + body[1:] + "."

    @property
    def significant(self) -> bool:
        return any(f.significant for f in self.findings)


@dataclass(frozen=True)
class Row:
    """One figure across the repeats of both topologies, in its display unit."""

    key: str  # e.g. "throughput"
    label: str  # e.g. "throughput (tasks/s)"
    unit: str
    single: Spread | None
    multi: Spread | None
    ratio: Ratio | None  # multi / single of the medians
    higher_is_better: bool | None
    verdict: str | None  # "throughput: multi is 1.12× faster (…)" when the interval excludes 1
    better: str  # the decision table's cell: "multi", "single", "no clear difference", …


@dataclass(frozen=True)
class Times:
    """Seconds over the injected runs, where a time that never came counts as never."""

    median: float | None  # math.inf when most runs never got there; None without runs
    low: float | None  # of the runs that got there
    high: float | None
    n: int  # runs looked at
    never: int  # runs where it never came


@dataclass(frozen=True)
class BlastSummary:
    """One fault in one topology, aggregated ONCE over the runs where it was injected
    (docs/metrics.md, "Blast radius over repeats"); ``runs`` counts every measured run."""

    fault: str
    label: str  # the fault as tables name it: "kill redis (appendonly no)"
    kind: str
    topology: str
    workers: int  # N
    runs: int
    injected: int
    not_injected: tuple[tuple[str, int], ...]  # (status, runs), e.g. ("not-applicable", 1)
    workers_affected: Spread | None
    failed: Spread | None
    lost: Spread | None
    duplicated: Spread | None
    retried: Spread | None
    dip: Spread | None  # percent, over the runs where a dip was measured
    detect: Times
    recover: Times  # over the runs where a dip was measured
    replace: Times  # a killed container's first task once back; n=0 where no container died
    survived: int  # injected runs that completed every task


@dataclass(frozen=True)
class ProcessRow:
    topology: str
    container: str  # the short name inside its deployment, "w3"
    pid: int
    ppid: int
    name: str
    rss: float  # peak, MiB
    pss: float | None  # peak, MiB


@dataclass(frozen=True)
class Line:
    """One drawn series; ``marks`` are (fault injected, its end or None) on the same axis."""

    label: str
    topology: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    marks: tuple[tuple[float, float | None], ...] = ()


@dataclass(frozen=True)
class CoresPanel:
    title: str
    lines: tuple[Line, ...]  # cores used per container
    budget: float | None
    quota: float | None  # the worker containers' quota when it differs from the budget
    top: float  # upper limit of the y axis


@dataclass(frozen=True)
class CoreShare:
    topology: str
    attempts: int
    shares: tuple[float, ...]  # percent of attempts per core of Plots.cores


@dataclass(frozen=True)
class Plots:
    throughput: tuple[tuple[str, tuple[Line, ...]], ...] = ()  # (condition, runs) panels
    cores: tuple[CoresPanel, ...] = ()
    core_ids: tuple[int, ...] = ()
    core_shares: tuple[CoreShare, ...] = ()
    core_top: float = 0.0  # percent
    memory: tuple[Line, ...] = ()  # MiB over seconds since deploy


@dataclass(frozen=True)
class Report:
    scenario: Scenario
    provenance: Provenance
    header: str  # "scenario x: task cpu × 100, 4 workers, budget 2 CPUs / 512 MiB"
    question: str
    rows: tuple[Row, ...]
    decision: tuple[Row, ...]  # the rows a decision rests on, in the order they are shown
    verdict: Verdict
    no_verdict: str  # why no row names a winner, for when none does
    blast: tuple[BlastSummary, ...]  # faults in scenario order, then topologies
    blast_runs: tuple[BlastRadius, ...]  # per run, for scripts
    warnings: tuple[str, ...]
    method: tuple[str, ...]
    manifest: tuple[tuple[str, str], ...]
    reproduce: str
    process_tree: tuple[ProcessRow, ...]
    plots: Plots
    generator: str  # the topo version that rendered it

    @property
    def complete(self) -> bool:
        return self.provenance.complete


TOLERANCE = 0.10  # a figure that moved the worse way by more than this is a regression


@dataclass(frozen=True)
class Change:
    """One figure of one topology in two saved results (``topo diff``)."""

    key: str
    label: str
    unit: str
    topology: str  # single | multi
    a: float  # medians
    b: float
    change: float | None  # (b - a) / a; None when a is 0
    regression: bool  # worse beyond the tolerance, and the repeats' ranges agree
    improvement: bool  # better beyond the tolerance, and the ranges agree
    noise: str  # why a move beyond the tolerance is not called either way; "" otherwise


@dataclass(frozen=True)
class Diff:
    """``topo diff``: result B against result A, figure by figure."""

    a: str  # how A is named (its path)
    b: str
    changes: tuple[Change, ...]
    notes: tuple[str, ...]  # what makes the two less comparable
    regressions: int
    tolerance: float = TOLERANCE
    noisy: int = 0  # moves beyond the tolerance the repeats do not support


@dataclass(frozen=True)
class SweepRow:
    workers: int
    topology: str
    throughput: float | None  # tasks/s
    speedup: float | None
    efficiency: float | None  # percent
    cpu_per_task: float | None  # ms
    peak_memory: float | None  # MiB
    lost_or_failed: int


@dataclass(frozen=True)
class SweepReport:
    name: str
    cpus: float
    rows: tuple[SweepRow, ...]
    crossover: str | None
