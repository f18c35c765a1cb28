"""Doubts about the figures, each with advice (the hyperfine way: warnings, not errors).

Pure and stdlib-only: runs and their figures in, sentences out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from topo.analysis.figures import starting_workers
from topo.model import TOPOLOGIES, ContainerSpec, RunFigures, RunResult

SPREAD_LIMIT = 1.2  # max/min throughput across repeats above which we warn


def warnings(results: Sequence[RunResult], runs: Sequence[RunFigures]) -> tuple[str, ...]:
    """Doubts about the figures, each with advice; ``runs[i]`` are the figures of
    ``results[i]``, the no-fault runs. Repeated warnings (the same container in every
    repeat) appear once."""
    found: list[str] = []
    for result, figures in zip(results, runs):
        found.extend(_run_warnings(result, figures))
    found.extend(_repeat_warnings(runs))
    return tuple(dict.fromkeys(found))


def fault_warnings(results: Iterable[RunResult]) -> tuple[str, ...]:
    """A fault that could not be injected: its blast radius describes a run without it.

    A fault run that failed or lost tasks gets no warning: that is the damage being measured.
    """
    found = []
    for result in results:
        for event in result.fault_events:
            if event.status == "failed":
                found.append(
                    f"{result.topology} run {result.index + 1}: fault {event.name!r} could not"
                    f" be injected ({event.error or 'no error text'}); its blast radius"
                    " describes a run without it — read the run's log and rerun"
                )
    return tuple(found)


# A quiet host spends about 0.05-0.1 cores outside a run's containers (topo's own sampling,
# the engine); well above that, something else competed for the CPUs.
BUSY_HOST_CORES = 0.3
STOLEN_CORES = 0.05


def _run_warnings(result: RunResult, figures: RunFigures) -> list[str]:
    name = f"{result.topology} run {result.index + 1}"
    found = []
    if result.status != "ok":
        found.append(
            f"{name} ended {result.status!r} ({result.error or 'no error text'}); its figures"
            " cover only what happened before that — read the run's log and rerun"
        )
    if (figures.outside_cores or 0.0) > BUSY_HOST_CORES:
        found.append(
            f"{name}: the host was busy with other work ({figures.outside_cores:.2f} cores on"
            " average outside the run's containers); its figures may be disturbed — rerun on"
            " a quieter machine"
        )
    if (figures.steal_cores or 0.0) > STOLEN_CORES:
        found.append(
            f"{name}: the hypervisor took {figures.steal_cores:.2f} cores from this host during"
            " the run, so the machine's speed varied; compare runs with repeats, not one run"
        )
    ledger = figures.ledger
    # In a fault run, failed and lost tasks are the damage measured, not a doubt.
    if result.fault is None and (ledger.failed or ledger.lost):
        found.append(
            f"{name} failed {ledger.failed} and lost {ledger.lost} tasks with no fault"
            " injected; read the errors in the result's task records before trusting it"
        )
    specs = {c.name: c for c in result.containers}
    for container in figures.oversubscribed if result.workers else ():  # none started: moot
        found.append(_oversubscribed_warning(result, specs[container]))
    return found


def _oversubscribed_warning(result: RunResult, spec: ContainerSpec) -> str:
    mine = [w for w in starting_workers(result.workers, result.t_available)
            if w.container == spec.name]
    said = "/".join(map(str, sorted({w.cpu_count for w in mine}))) or "?"
    # The run's own prefix would make the same warning differ in every repeat.
    name = spec.name.removeprefix(spec.labels.get("topo.deployment", "\0") + "-")
    name = "the container" if name == "single" else f"container {name}"
    if spec.processes == 0:  # sized "auto", inside the container
        return (
            f"{result.topology}: the pool sized \"auto\" in {name} started {len(mine)}"
            f" processes for a quota of {spec.cpus:g} CPUs: os.cpu_count() inside a container"
            f" reports the host's cores ({said}), not the quota — size the pool from the quota"
        )
    return (
        f"{result.topology}: {name} runs {spec.processes} busy worker processes on a quota"
        f" of {spec.cpus:g} CPUs, so they take turns (see throttling); os.cpu_count() says"
        f" {said} in there, so a pool sized \"auto\" would not size from the quota either"
    )


def _repeat_warnings(runs: Sequence[RunFigures]) -> list[str]:
    found = []
    for topology in TOPOLOGIES:
        mine = [f for f in runs if f.topology == topology]
        if len(mine) == 1:
            found.append("no confidence interval with one repeat; set run.repeat ≥ 3")
        rates = [f.throughput for f in mine if f.throughput]
        if len(rates) >= 2 and max(rates) / min(rates) > SPREAD_LIMIT:
            found.append(
                f"{topology}: throughput max/min across repeats is"
                f" {max(rates) / min(rates):.2f}; spread is high; rerun with more repeats"
                " on a quieter machine"
            )
    return found


