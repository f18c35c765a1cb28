"""The verdict: the few sentences every report opens with, pasteable into a design review.

Pure and stdlib-only, like ``topo.stats``: a ``Comparison`` in, a frozen ``Verdict`` out, so
the table, Markdown and HTML reports say exactly the same words and none of them decides
anything. Rules (metrics.md, "Repeats" and "Blast radius"):

- speed (throughput), memory (peak, cgroup) and CPU per task are named only when the 95%
  interval of multi/single excludes 1; the winner's factor is always ≥ 1. Speed is always
  spoken of: "neither is significantly faster" is itself an answer. Without intervals (one
  run per topology) the verdict says that it cannot call a difference, and why.
- a fault is named with what each topology lost (failed + lost tasks, medians over the runs
  where it was injected); it is a difference only when every run of one topology lost more
  than every run of the other. Ledger counts are exact, so one run each is enough to tell
  279 from 0; where the runs overlap the verdict says so instead of picking a side.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from topo.model import BlastRadius, Comparison, FaultStatus, FigureRow, Ratio, Scenario
from topo.stats import BUSY_HOST_CORES

INJECTED = FaultStatus.INJECTED


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


def decide(comparison: Comparison) -> Verdict:
    """The verdict of a comparison: speed, memory and CPU per task, then each fault."""
    rows = {row.key: row for row in comparison.rows}
    findings = _figures(rows)
    for fault, radii in by_fault(comparison).items():
        finding = fault_finding(comparison.scenario, fault, radii)
        if finding is not None:
            findings.append(finding)
    caveat = disturbed(comparison)
    return Verdict(tuple(findings + ([caveat] if caveat else [])))


def disturbed(comparison: Comparison) -> Finding | None:
    """A warning that travels with the verdict: runs the host's other work competed with
    (stats.BUSY_HOST_CORES) measured the machine as much as the topologies."""
    busy = [f for f in comparison.runs if (f.outside_cores or 0.0) > BUSY_HOST_CORES]
    if not busy:
        return None
    return Finding("disturbed", f"but {len(busy)} of {len(comparison.runs)} runs were"
                   " disturbed by other work on the host (see the warnings): rerun on a quiet"
                   " machine before quoting the speed", (("disturbed", float(len(busy))),),
                   significant=False)


# --------------------------------------------------------------------------- figures


def _figures(rows: dict[str, FigureRow]) -> list[Finding]:
    throughput = rows.get("throughput")
    if throughput is None or throughput.ratio is None:
        return []  # one topology only: nothing to compare
    ratio = throughput.ratio
    if ratio.ci_low is None or ratio.ci_high is None:
        return [Finding("throughput", "no difference can be called: one run per topology"
                        " gives no confidence interval (set run.repeat ≥ 3)", significant=False)]
    found = [f for f in (speed(throughput), memory(rows.get("peak_memory")),
                         cpu_per_task(rows.get("cpu_per_task"))) if f is not None]
    if not any(f.significant for f in found):
        return [Finding(
            "throughput",
            "no significant difference in speed, memory or CPU per task (every 95% interval"
            f" includes 1; throughput multi/single {ratio.value:.2f},"
            f" 95% CI {_ci(ratio.ci_low, ratio.ci_high)})",
            _cited(ratio), significant=False)]
    return found


def speed(row: FigureRow) -> Finding | None:
    """"multi is 1.12× faster (95% CI 1.05–1.19)", or that neither is significantly faster."""
    ratio = row.ratio
    if ratio is None or ratio.ci_low is None or ratio.ci_high is None:
        return None
    if not ratio.significant:
        return Finding(
            "throughput",
            f"neither is significantly faster (throughput multi/single {ratio.value:.2f},"
            f" 95% CI {_ci(ratio.ci_low, ratio.ci_high)})", _cited(ratio), significant=False)
    winner, factor, low, high = _winner(ratio, higher_is_better=True)
    return Finding("throughput", f"{winner} is {_times(factor)}× faster"
                   f" (95% CI {_ci(low, high, factor)})", _cited(ratio))


def memory(row: FigureRow | None) -> Finding | None:
    """"single uses 2.6× less memory (peak 35 vs 89 MiB; 95% CI 2.4–2.8)", only if significant."""
    return _less(row, "uses", "memory", "peak ", "MiB")


def cpu_per_task(row: FigureRow | None) -> Finding | None:
    """"multi spends 1.25× less CPU per task (51 vs 63 ms; 95% CI …)", only if significant."""
    return _less(row, "spends", "CPU per task", "", "ms")


def _less(row: FigureRow | None, verb: str, what: str, prefix: str, unit: str) -> Finding | None:
    # A figure where less is better, named only when its interval excludes 1.
    if row is None or row.ratio is None or not row.ratio.significant:
        return None
    if row.single is None or row.multi is None:
        return None
    winner, factor, low, high = _winner(row.ratio, higher_is_better=False)
    less, more = sorted((row.single.median, row.multi.median))
    return Finding(
        row.key,
        f"{winner} {verb} {_times(factor)}× less {what} ({prefix}{_num(less)} vs {_num(more)}"
        f" {unit}; 95% CI {_ci(low, high, factor)})",
        (*_cited(row.ratio), ("single", row.single.median), ("multi", row.multi.median)))


def _winner(ratio: Ratio, higher_is_better: bool) -> tuple[str, float, float, float]:
    """The better topology and its factor ≥ 1, with the interval turned the same way."""
    assert ratio.ci_low is not None and ratio.ci_high is not None
    multi_wins = (ratio.value > 1) == higher_is_better
    factor, low, high = ratio.value, ratio.ci_low, ratio.ci_high
    if factor < 1:
        factor, low, high = 1 / factor, 1 / high, 1 / low
    return ("multi" if multi_wins else "single"), factor, low, high


def _cited(ratio: Ratio) -> tuple[tuple[str, float], ...]:
    cited = [("ratio", ratio.value)]
    if ratio.ci_low is not None and ratio.ci_high is not None:
        cited += [("ci_low", ratio.ci_low), ("ci_high", ratio.ci_high)]
    return tuple(cited)


def _times(factor: float) -> str:
    # Small factors need two decimals to be told apart (1.05 vs 1.12); large ones do not.
    return f"{factor:.2f}" if factor < 2 else f"{factor:.1f}"


def _ci(low: float, high: float, factor: float | None = None) -> str:
    scale = _times if factor is not None and factor >= 2 else (lambda x: f"{x:.2f}")
    return f"{scale(low)}–{scale(high)}"


def _num(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


# --------------------------------------------------------------------------- faults


def by_fault(comparison: Comparison) -> dict[str, list[BlastRadius]]:
    """The blast radii of each fault, faults in scenario order; a fault the scenario does not
    name (an older result file) comes last."""
    order = {f.name: i for i, f in enumerate(comparison.scenario.faults)}
    groups: dict[str, list[BlastRadius]] = {}
    for radius in sorted(comparison.blast, key=lambda b: order.get(b.fault, len(order))):
        groups.setdefault(radius.fault, []).append(radius)
    return groups


def when(scenario: Scenario, fault_name: str, kind: str) -> str:
    """How a sentence introduces a fault: "when one worker dies"."""
    fault = next((f for f in scenario.faults if f.name == fault_name), None)
    lasting = f" for {fault.duration:g} s" if fault is not None and fault.duration else ""
    redis = scenario.multi.redis.appendonly if scenario.multi is not None else "no"
    return {
        "kill-worker": "when one worker dies",
        "kill-container": "when a worker container dies",
        "kill-redis": f"when Redis dies (appendonly {redis})",
        "oom": "when a task runs out of memory",
        "pause": f"when one worker freezes{lasting}",
        "partition": f"when one worker is cut off the network{lasting}",
    }.get(kind, f"under {fault_name}")


def fault_label(scenario: Scenario, fault_name: str, kind: str) -> str:
    """A fault's name as the blast-radius tables show it: a kill-redis fault says which Redis
    durability was measured, since what it loses depends on it."""
    if kind != "kill-redis" or scenario.multi is None:
        return fault_name
    return f"{fault_name} (appendonly {scenario.multi.redis.appendonly})"


def fault_finding(scenario: Scenario, fault: str, radii: Sequence[BlastRadius]) -> Finding | None:
    """What one fault cost each topology it was injected in; None if it was injected in none."""
    by_topology = {t: [b for b in radii if b.topology == t and b.status == INJECTED]
                   for t in scenario.topologies}
    hit = {t: runs for t, runs in by_topology.items() if runs}
    if not hit:
        return None
    intro = when(scenario, fault, radii[0].kind)
    damage = {t: [b.failed + b.lost for b in runs] for t, runs in hit.items()}
    figures = tuple((f"{t}_damage", float(statistics.median(d))) for t, d in damage.items())
    if len(hit) == 2 and all(max(d) == 0 for d in damage.values()):
        return Finding(f"fault:{fault}", f"{intro}, neither loses a task"
                       f" ({_recoveries(hit)})", figures)
    parts = [_outcome(t, runs) for t, runs in hit.items()]
    single, multi = damage.get("single"), damage.get("multi")
    apart = bool(single and multi and (min(single) > max(multi) or min(multi) > max(single)))
    sentence = f"{intro}, " + ", ".join(parts)
    if single and multi and not apart:
        sentence += ", but the runs overlap: no clear difference"
    return Finding(f"fault:{fault}", sentence, figures, significant=apart or len(hit) == 1)


def _outcome(topology: str, runs: Sequence[BlastRadius]) -> str:
    """"single fails 279 tasks", "multi loses none (recovers in 0.1 s)"."""
    failed = _median([b.failed for b in runs])
    lost = _median([b.lost for b in runs])
    duplicated = _median([b.duplicated for b in runs])
    twice = f", runs {_count(duplicated)} twice" if duplicated else ""
    if failed == 0 and lost == 0:
        recovery = _recovery(runs)
        return f"{topology} loses none{twice}" + (f" ({recovery})" if recovery else "")
    if lost == 0:
        damage = f"fails {_count(failed)} {_tasks(failed)}"
    elif failed == 0:
        damage = f"loses {_count(lost)} {_tasks(lost)}"
    else:
        damage = f"fails {_count(failed)} and loses {_count(lost)} tasks"
    hurt = sum(b.failed + b.lost > 0 for b in runs)
    runs_note = f" in {hurt} of {len(runs)} runs" if 0 < hurt < len(runs) else ""
    return f"{topology} {damage}{runs_note}{twice}"


def _recovery(runs: Sequence[BlastRadius]) -> str | None:
    # Recovery is measured only where the dip is (blast.py); None there is "not measured".
    measured = [b.time_to_recover for b in runs if b.throughput_dip is not None]
    if not measured:
        return None
    median = statistics.median([math.inf if t is None else t for t in measured])
    if math.isinf(median):
        return "never recovers its rate"
    if median == 0:
        return "keeps its rate"
    return f"recovers in {median:.1f} s"


def _recoveries(hit: dict[str, list[BlastRadius]]) -> str:
    said = [f"{t} {r}" for t, r in ((t, _recovery(runs)) for t, runs in hit.items()) if r]
    return "; ".join(said) if said else "recovery not measured"


def _median(values: Sequence[int]) -> float:
    return float(statistics.median(values))


def _count(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.1f}"


def _tasks(value: float) -> str:
    return "task" if value == 1 else "tasks"
