"""Markdown report for a design review: the decision, the method, how to reproduce it.

The section builders (``decision_rows``, ``blast_rows``, ``method``, ``manifest``…) return
plain strings so that the HTML report shows exactly the same content.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from topo.model import (
    BlastRadius, Comparison, Fault, FaultStatus, FigureRow, RunResult, Scenario, Spread,
)
from topo.report import INCOMPLETE, INCOMPLETE_NOTE
# The terminal table's cell formats, so that every report shows a figure the same way.
from topo.report.table import MISSING, numbers
from topo.report.table import ratio_cell, spread_cell
from topo.stats import verdict
from topo.verdict import decide, fault_label

MIB = 1024 * 1024
# Figures a reviewer decides on, in this order (those a comparison lacks are left out).
DECISION_KEYS = (
    "throughput", "wait_p95", "service_p95", "cpu_per_task", "overhead", "peak_memory",
    "pss_sum", "startup_ready", "startup_first",
)
DECISION_HEADERS = ("figure", "single", "multi", "multi/single (95% CI)", "better")
FIGURE_HEADERS = ("figure", "single", "multi", "multi/single (95% CI)")
BLAST_HEADERS = (
    "fault", "topology", "runs", "workers affected", "failed", "lost", "duplicated",
    "throughput dip", "time to detect", "time to recover", "survived",
)
NOT_RECORDED = "not recorded"


# --------------------------------------------------------------------------- cells


def better(row: FigureRow) -> str:
    """Which topology this figure favours, said only when the 95% interval excludes 1."""
    ratio = row.ratio
    if ratio is None:
        return MISSING
    if ratio.ci_low is None:
        return "needs ≥ 2 repeats"
    if not ratio.significant:
        return "no clear difference"
    if row.higher_is_better is None:
        return "differs"
    return "multi" if (ratio.value > 1) == row.higher_is_better else "single"


def _seconds(value: float | None, never: str = MISSING) -> str:
    return never if value is None else f"{numbers(value)[0]} s"


def _memory(size: int | None) -> str:
    if not size:
        return MISSING
    return f"{size / MIB:g} MiB" if size < 1024 * MIB else f"{size / (1024 * MIB):g} GiB"


# --------------------------------------------------------------------------- sections


def question(scenario: Scenario) -> str:
    """The question the report answers, in the scenario's own terms."""
    n, budget = scenario.workers, scenario.resources
    sides = []
    if scenario.single is not None:
        sides.append(f"ONE container with {n} worker processes ({scenario.single.pool})")
    if scenario.multi is not None:
        sides.append(
            f"{n} single-process containers fed by a {scenario.multi.queue} Redis queue"
        )
    return (
        f"{' or '.join(sides)}? Same budget for the workers: {budget.cpus:g} CPUs and"
        f" {_memory(budget.memory)}; task {scenario.workload.task} × {scenario.workload.tasks}."
    )


def decision_rows(comparison: Comparison) -> list[list[str]]:
    """The figures a decision rests on (DECISION_KEYS), with ratio, interval and winner."""
    by_key = {row.key: row for row in comparison.rows}
    return [
        [row.label, spread_cell(row.single), spread_cell(row.multi), ratio_cell(row.ratio),
         better(row)]
        for row in (by_key[k] for k in DECISION_KEYS if k in by_key)
        if row.single is not None or row.multi is not None
    ]


def figure_rows(comparison: Comparison) -> list[list[str]]:
    """Every figure of the comparison, as the terminal table shows them."""
    return [
        [row.label, spread_cell(row.single), spread_cell(row.multi), ratio_cell(row.ratio)]
        for row in comparison.rows
    ]


def verdicts(comparison: Comparison) -> list[str]:
    return [v for v in (verdict(row) for row in comparison.rows) if v]


def no_verdict(comparison: Comparison) -> str:
    """What to say when no figure favours either topology, and why."""
    if not any(r.ratio and r.ratio.ci_low is not None for r in comparison.rows):
        return (
            "No difference can be called: one run per topology gives no confidence"
            " interval; rerun with run.repeat ≥ 3."
        )
    return "No difference is significant at 95%: the intervals of every figure include 1."


def blast_rows(comparison: Comparison) -> list[list[str]]:
    """One row per fault and topology; with repeats, medians (min–max) and counts of runs."""
    groups: dict[tuple[str, str], list[BlastRadius]] = {}
    for b in comparison.blast:
        groups.setdefault((b.fault, b.topology), []).append(b)
    return [_blast_row(fault_label(comparison.scenario, fault, runs[0].kind), topology, runs)
            for (fault, topology), runs in groups.items()]


def _blast_row(fault: str, topology: str, runs: Sequence[BlastRadius]) -> list[str]:
    head = [fault, topology, str(len(runs))]
    injected = [b for b in runs if b.status == FaultStatus.INJECTED]
    if not injected:
        statuses = ", ".join(sorted({b.status for b in runs}))
        return head + [f"not injected ({statuses})"] + [MISSING] * 7
    n = len(injected)

    def spread(values: Sequence[float | None]) -> str:
        measured = [v for v in values if v is not None]
        if not measured:
            return MISSING
        if min(measured) == max(measured):  # the same in every run: say it once
            return numbers(measured[0])[0]
        return spread_cell(
            Spread(statistics.median(measured), min(measured), max(measured), len(measured))
        )

    affected = spread([b.workers_affected for b in injected])
    workers = injected[0].workers
    dips = [None if b.throughput_dip is None else 100 * b.throughput_dip for b in injected]
    dip = spread(dips)
    # A recovery is measured only where the dip is (as in the terminal table): without a
    # rate before the fault, "no recovery time" is "not measured", not "never".
    measured = [b for b in injected if b.throughput_dip is not None]
    never = sum(b.time_to_recover is None for b in measured)
    recover = spread([b.time_to_recover for b in measured])
    if measured and never == len(measured):
        recover = "never"
    elif never:
        recover = f"{recover} s; never in {never} of {len(measured)}"
    elif recover != MISSING:
        recover += " s"
    detect = spread([b.time_to_detect for b in injected])
    survived = sum(b.survived for b in injected)
    return head + [
        f"{affected} of {workers}",
        spread([b.failed for b in injected]),
        spread([b.lost for b in injected]),
        spread([b.duplicated for b in injected]),
        MISSING if dip == MISSING else f"{dip}%",
        MISSING if detect == MISSING else f"{detect} s",
        recover,
        ("yes" if survived else "no") if n == 1 else f"{survived} of {n}",
    ]


def method(comparison: Comparison, provenance: Mapping[str, Any]) -> list[str]:
    """How the figures were obtained, in a few sentences a reviewer can check."""
    sc = comparison.scenario
    w, budget, n = sc.workload, sc.resources, sc.workers
    image = provenance.get("image") or "built once from the scenario"
    params = ", ".join(f"{k}={v}" for k, v in sorted(w.params.items())) or "none"
    lines = [
        f"Both topologies ran the same image ({image}) with the same task code and the same"
        f" {w.tasks} tasks ({w.task}, parameters {params}), generated from seed {w.seed}.",
    ]
    if w.data is not None:
        lines.append(f"Every worker container read {w.data} mounted read-only at /data.")
    if sc.single is not None:
        lines.append(
            f"single: one container with {budget.cpus:g} CPUs and {_memory(budget.memory)}"
            f" running {_processes(sc.single.processes, n)} ({sc.single.pool})"
            + (", forked after PID 1 imported the task module (preload)." if sc.single.preload
               else ".")
        )
    if sc.multi is not None:
        redis = sc.multi.redis
        lines.append(
            f"multi: {n} containers of one worker process with {budget.cpus / n:g} CPUs and"
            f" {_memory(budget.memory // n)} each, a Redis with {redis.cpus:g} CPUs and"
            f" {_memory(redis.memory)} and appendonly {redis.appendonly} (its CPU is counted"
            " as coordination) and a feeder"
            f" that puts the batch on the {sc.multi.queue} queue."
        )
    lines.append(
        f"Runs alternate (single, multi, single, …): {sc.run.repeat} measured run(s) per"
        f" topology{' and per fault' if sc.faults else ''}, after {sc.run.warmup} warm-up"
        f" run(s); a run is stopped after {sc.run.timeout:g} s."
    )
    for fault in sc.faults:
        lines.append(f"Fault \"{fault.name}\": {fault.kind} {_when(fault)}, in its own runs.")
    lines += [
        "CPU: CPU seconds of each container from its cgroup (cpuacct / cpu.stat), sampled at"
        " about 10 Hz, counted inside the makespan (batch available → last completion).",
        "Memory: cgroup usage minus inactive file cache; the peak is that of the sum over a"
        " topology's containers at one sampling pass (never summed RSS).",
        "Each figure is the median (min–max) of the runs; each ratio is multi/single of the"
        " medians with a seeded bootstrap 95% interval; a difference is called only when the"
        " interval excludes 1.",
    ]
    return lines


def _processes(processes: int | str | None, workers: int) -> str:
    if processes == "auto":
        return "as many worker processes as os.cpu_count() reports inside it"
    return f"{processes or workers} worker processes"


def _when(fault: Fault) -> str:
    if fault.at_fraction is not None:
        when = f"at {fault.at_fraction:.0%} of tasks completed"
    elif fault.at_seconds is not None:
        when = f"{fault.at_seconds:g} s after the batch became available"
    else:
        when = "during the run"
    return when + (f" for {fault.duration:g} s" if fault.duration else "")


def manifest(comparison: Comparison, provenance: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what, value) pairs: everything needed to reproduce or question the measurement."""
    p = provenance
    sc = comparison.scenario
    source = p.get("scenario_file") or sc.source or None
    sha = p.get("scenario_sha256") or sc.sha256 or None
    engine = p.get("engine")
    if engine and p.get("engine_api"):
        engine = f"Docker {engine} (API {p['engine_api']})"
    host = p.get("host_cpus")
    if host:
        memory = f", {p['host_memory'] / 2**30:.1f} GiB" if p.get("host_memory") else ""
        host = f"{host} CPUs{memory}"
    pairs = [
        ("scenario", sc.name),
        ("scenario file", source),
        ("scenario sha256", sha),
        ("image", p.get("image")),
        ("Docker engine", engine),
        ("kernel", p.get("kernel")),
        ("cgroup", p.get("cgroup")),
        ("OS", p.get("os")),
        ("host", host),
        ("CPU model", p.get("cpu_model")),
        ("Python (harness)", p.get("python")),
        ("topo version", p.get("topo_version")),
        ("measured", p.get("created")),
        ("complete", None if "complete" not in p else ("yes" if p["complete"] else "NO")),
    ]
    return [(what, NOT_RECORDED if value in (None, "") else str(value)) for what, value in pairs]


def reproduce(comparison: Comparison, provenance: Mapping[str, Any]) -> str:
    source = provenance.get("scenario_file") or comparison.scenario.source or "SCENARIO.yaml"
    return f"topo compare {source}"


# --------------------------------------------------------------------------- markdown


def render(comparison: Comparison, provenance: Mapping[str, Any],
           results: Sequence[RunResult] = ()) -> str:
    """The whole Markdown report; ``provenance`` as ``topo.report.provenance`` makes it;
    with ``results``, also the process tree of each topology's containers."""
    sc = comparison.scenario
    out = [f"# topo report: {sc.name}", ""]
    if provenance.get("complete") is False:
        out += [f"> **{INCOMPLETE}**: {INCOMPLETE_NOTE}.", ""]
    out += [f"**Verdict:** {decide(comparison).text}", ""]
    if sc.description:
        out += [sc.description, ""]
    out += [f"**Question:** {question(sc)}", "", "## Decision", ""]
    out += table(DECISION_HEADERS, decision_rows(comparison), right=(1, 2, 3))
    out += [""] + [f"- {v}" for v in verdicts(comparison) or [no_verdict(comparison)]]
    if comparison.blast:
        out += ["", "### Blast radius per fault", ""]
        out += table(BLAST_HEADERS, blast_rows(comparison), right=tuple(range(2, 10)))
    if comparison.warnings:
        out += ["", "### Warnings", ""] + [f"- {w}" for w in comparison.warnings]
    out += ["", "## Method", ""] + [f"- {line}" for line in method(comparison, provenance)]
    out += ["", "## All figures", ""]
    out += table(FIGURE_HEADERS, figure_rows(comparison), right=(1, 2, 3))
    tree = process_tree(results)
    if tree:
        out += ["", "## Process tree", "", PROCESS_TREE_NOTE, ""]
        out += table(PROCESS_TREE_HEADERS, tree, right=(2, 3, 5, 6))
    out += ["", "## Reproducibility manifest", ""]
    out += table(("what", "value"), [list(pair) for pair in manifest(comparison, provenance)])
    out += ["", f"Reproduce: `{reproduce(comparison, provenance)}`"]
    return "\n".join(out) + "\n"


PROCESS_TREE_HEADERS = ("topology", "container", "pid", "ppid", "process", "peak RSS (MiB)",
                        "peak PSS (MiB)")
PROCESS_TREE_NOTE = (
    "Each container's processes as its in-container telemetry saw them (first run without a "
    "fault): PID 1 and its children share one PID namespace and one cgroup. RSS counts pages "
    "shared after fork in every process; PSS divides them among their sharers.")


def process_tree(results: Sequence[RunResult]) -> list[list[str]]:
    """Rows of (topology, container, pid, ppid, name, peak RSS, peak PSS), parents first."""
    rows: list[list[str]] = []
    for topology in ("single", "multi"):
        run = next((r for r in results if r.topology == topology and r.fault is None
                    and not r.warmup and r.processes), None)
        if run is None:
            continue
        peak: dict[tuple[str, int], list[Any]] = {}
        for p in run.processes:
            key = (p.container, p.pid)
            seen = peak.setdefault(key, [p.ppid, p.name, 0, None])
            seen[2] = max(seen[2], p.rss)
            if p.pss is not None:
                seen[3] = max(seen[3] or 0, p.pss)
        for (container, pid), (ppid, name, rss, pss) in sorted(
                peak.items(), key=lambda kv: (kv[0][0], kv[1][0] != 0, kv[0][1])):
            short = container.removeprefix(container.rsplit("-", 1)[0] + "-")
            rows.append([topology, short, str(pid), str(ppid), name, f"{rss / 2**20:.1f}",
                         MISSING if pss is None else f"{pss / 2**20:.1f}"])
    return rows


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()
) -> list[str]:
    """A GitHub-flavoured Markdown table; columns in ``right`` are right-aligned."""
    rule = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = [_line(headers), _line(rule)]
    return lines + [_line(row) for row in rows]


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
