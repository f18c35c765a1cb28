"""Which runs happen, in which order: every topology ``warmup + repeat`` times without a
fault and once per repeat with each fault, topologies alternating (single, multi, single,
multi ...) so that drift of the machine falls on both alike. Results are saved after every
run, so a later failure never loses what was already measured."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

from topo import cleanup
from topo import plan as planning
from topo.engine.config import Clock, EngineConfig, SystemClock
from topo.engine.lifecycle import INTERRUPTED, run_one
from topo.model import Fault, RunResult, Scenario, Topology, TopologyPlan
from topo.runtime.base import Runtime


@dataclass(frozen=True)
class Progress:
    topology: Topology
    index: int
    runs: int
    completed: int
    total: int
    elapsed: float
    phase: str  # deploy | ready | run | teardown
    fault: str | None = None


class Saver(Protocol):
    def __call__(self, results: list[RunResult], /, complete: bool) -> None: ...


@dataclass(frozen=True)
class Slot:
    """One run of the schedule."""

    topology: Topology
    index: int
    warmup: bool
    fault: Fault | None
    deployment: str  # unique name of its deployment


def new_run_id() -> str:
    return secrets.token_hex(4)


def schedule(scenario: Scenario, run_id: str) -> Iterator[Slot]:
    """The runs in the order they happen."""
    warmup = scenario.run.warmup
    variants: list[Fault | None] = [None, *scenario.faults]
    for i in range(warmup + scenario.run.repeat):
        for f, fault in enumerate(variants):
            if fault is not None and i < warmup:
                continue  # warm-ups only warm: no fault in them
            for topology in scenario.topologies:
                name = f"topo-{run_id}-{topology[0]}{i}" + (f"f{f}" if fault else "")
                yield Slot(topology, i, i < warmup, fault, name)


def compare(
    scenario: Scenario, runtime: Runtime, out_dir: Path, save: Saver,
    progress: Callable[[Progress], None] = lambda p: None, run_id: str | None = None,
    owner: str | None = None, image: str | None = None,
    config: EngineConfig = EngineConfig(), clock: Clock | None = None,
) -> list[RunResult]:
    """Run the schedule, saving after each run. Every container and network carries
    ``owner`` (by default this process), so that whatever a killed caller leaves behind is
    found and removed by the next start's sweep."""
    clock = clock or SystemClock()
    owner = cleanup.owner_label() if owner is None else owner
    image = image or runtime.ensure_image(scenario)
    redis_image = runtime.redis_image(scenario)
    run_id = run_id or new_run_id()
    runs = scenario.run.warmup + scenario.run.repeat
    results: list[RunResult] = []
    save(results, complete=False)  # a result file exists from the start, however we end
    for slot in schedule(scenario, run_id):
        p = planning.plan(scenario, slot.topology, run_id, slot.deployment, image,
                          secrets.token_hex(16), slot.fault, owner, redis_image)
        started = clock.now()

        def report(completed: int, phase: str, _s: Slot = slot, _t: float = started) -> None:
            progress(Progress(_s.topology, _s.index, runs, completed, scenario.workload.tasks,
                              clock.now() - _t, phase, _s.fault.name if _s.fault else None))

        result = run_one(runtime, p, out_dir / "raw" / slot.deployment, index=slot.index,
                         warmup=slot.warmup, timeout=scenario.run.timeout, fault=slot.fault,
                         progress=report, config=config, clock=clock)
        results.append(result)
        save(results, complete=False)
        if result.status == "interrupted" or INTERRUPTED.is_set():
            INTERRUPTED.clear()
            raise KeyboardInterrupt
    save(results, complete=True)
    return results


def plans(scenario: Scenario, run_id: str, image: str,
          redis_image: str | None = None) -> list[TopologyPlan]:
    """One plan per topology as the runs deploy them (the Redis password left empty), for
    the Compose files a report ships."""
    return [planning.plan(scenario, t, run_id, f"topo-{run_id}-{t[0]}", image, "",
                          redis_image=redis_image)
            for t in scenario.topologies]
