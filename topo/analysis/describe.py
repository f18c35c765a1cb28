"""The prose a report shows around its figures: the question, the method, the manifest.

Pure: a Scenario and a Provenance in, sentences out, so that every format says the same and
none of them computes a quota or a size itself.
"""

from __future__ import annotations

from topo.model import Fault, Scenario
from topo.report.model import Provenance

MIB = 1024 * 1024
NOT_RECORDED = "not recorded"
MISSING = "—"


def header(scenario: Scenario) -> str:
    budget = scenario.resources
    return (
        f"scenario {scenario.name}: task {scenario.workload.task} × {scenario.workload.tasks},"
        f" {scenario.workers} workers, budget {budget.cpus:g} CPUs /"
        f" {budget.memory / (1024 * 1024):g} MiB"
    )



def _memory(size: int | None) -> str:
    if not size:
        return MISSING
    return f"{size / MIB:g} MiB" if size < 1024 * MIB else f"{size / (1024 * MIB):g} GiB"


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


def method(scenario: Scenario, provenance: Provenance) -> tuple[str, ...]:
    """How the figures were obtained, in a few sentences a reviewer can check."""
    sc = scenario
    w, budget, n = sc.workload, sc.resources, sc.workers
    image = provenance.image or "built once from the scenario"
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
    return tuple(lines)


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


def manifest(scenario: Scenario, provenance: Provenance) -> tuple[tuple[str, str], ...]:
    """(what, value) pairs: everything needed to reproduce or question the measurement."""
    p = provenance
    sc = scenario
    source = p.scenario_file or sc.source or None
    sha = p.scenario_sha256 or sc.sha256 or None
    engine = p.engine
    if engine and p.engine_api:
        engine = f"Docker {engine} (API {p.engine_api})"
    host = None
    if p.host_cpus:
        memory = f", {p.host_memory / 2**30:.1f} GiB" if p.host_memory else ""
        host = f"{p.host_cpus} CPUs{memory}"
    pairs = [
        ("scenario", sc.name),
        ("scenario file", source),
        ("scenario sha256", sha),
        ("image", p.image),
        ("Docker engine", engine),
        ("kernel", p.kernel),
        ("cgroup", p.cgroup),
        ("OS", p.os),
        ("host", host),
        ("CPU model", p.cpu_model),
        ("Python (harness)", p.python),
        ("topo version", p.topo_version),
        ("measured", p.created),
        ("complete", "yes" if p.complete else "NO"),
    ]
    return tuple((what, NOT_RECORDED if value in (None, "") else str(value)) for what, value in pairs)


def reproduce(scenario: Scenario, provenance: Provenance) -> str:
    # the copy saved with the result, not the file on the measuring machine, which may
    # have changed or gone since
    source = (provenance.scenario_copy or provenance.scenario_file or scenario.source
              or "SCENARIO.yaml")
    if provenance.sweep_workers is not None:  # one point of a sweep: its N, not the file's
        return f"topo sweep {source} --workers {provenance.sweep_workers}"
    return f"topo compare {source}"


