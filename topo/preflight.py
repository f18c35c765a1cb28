"""Preflight: does the engine have what the scenario asks for? Checked before any deploy.

A scenario can be valid on paper (``topo validate``) and still impossible on this engine:
a 64-CPU budget on 2 CPUs, a cpuset naming a CPU the engine lacks, a pause fault on a cgroup
v1 host without the freezer. Without this check every deployment fails one by one, minutes
later. Each problem is one line naming the field (and file:line when the scenario came from
a file); ``check`` raises the first as a ScenarioError (exit 2) before a container exists.

What is checked, and why:
- ``resources.cpus`` and ``topologies.multi.redis.cpus``: each container's CPU quota must fit
  the engine's CPUs (Docker refuses more). Quotas are ceilings, not reservations, so multi's
  Redis and feeder may sit on top of a budget equal to the engine's CPUs: they idle most of
  the time, and that overlap is part of what the comparison measures.
- ``resources.memory``: the memory limits of one topology's containers together (multi:
  the workers' budget + Redis + feeder) must fit the engine's memory, else a limit means
  nothing and the host, not the limit, decides who is killed.
- ``resources.cpuset``: every CPU it names must exist on the engine, and the budget must fit
  in it (a quota of 2 CPUs on one pinned CPU can never be used).
- limits the engine cannot enforce at all (no CFS quota, memory limit or cpuset support).
- ``topologies.multi.restart``: a restart policy the engine knows.
- ``faults[i].kind``: pause needs the cgroup freezer on a cgroup v1 engine; kill-worker,
  kill-container, kill-redis and pause signal processes by their host PID, so topo must run
  on the engine's host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from topo.errors import ScenarioError
from topo.model import RESTART_POLICIES, Scenario
from topo.plan import FEEDER_MEMORY

GIB = 1024**3


@dataclass(frozen=True)
class EngineFacts:
    """What the engine offers; None = not known (then nothing is checked against it)."""

    cpus: int | None
    memory: int | None  # bytes
    cpu_quota: bool | None = None  # --cpus works (CFS quota)
    memory_limit: bool | None = None
    cpuset: bool | None = None
    freezer: bool | None = None  # docker pause works
    local: bool | None = None  # topo runs on the engine's host: host PIDs can be signalled
    restart_policies: tuple[str, ...] = RESTART_POLICIES

    @classmethod
    def of(cls, info: Mapping[str, Any]) -> EngineFacts:
        """From ``Runtime.info()``: a missing or null key is an unknown fact."""
        def flag(key: str) -> bool | None:
            value = info.get(key)
            return None if value is None else bool(value)

        return cls(
            cpus=int(info["cpus"]) if info.get("cpus") else None,
            memory=int(info["memory"]) if info.get("memory") else None,
            cpu_quota=flag("cpu_quota"), memory_limit=flag("memory_limit"),
            cpuset=flag("cpuset"), freezer=flag("freezer"), local=flag("local"),
            restart_policies=tuple(info.get("restart_policies") or RESTART_POLICIES),
        )


@dataclass(frozen=True)
class Problem:
    field: str  # dotted, as in the scenario file: "resources.cpus", "faults[0].kind"
    message: str


def check(scenario: Scenario, runtime: Any) -> None:
    """Raise ScenarioError naming the first problem of ``scenario`` on ``runtime``'s engine."""
    found = problems(scenario, EngineFacts.of(runtime.info()))
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ScenarioError(describe(scenario, found[0]) + more)


def describe(scenario: Scenario, problem: Problem) -> str:
    """``file:line: field: message``, or without the line when the field is not in the file."""
    where = scenario.source or scenario.name  # as given, folder included
    line = field_line(scenario.source, problem.field) if scenario.source else None
    prefix = f"{where}:{line}" if line is not None else where
    return f"{prefix}: {problem.field}: {problem.message}"


def problems(scenario: Scenario, engine: EngineFacts) -> list[Problem]:
    """Every problem of ``scenario`` on an engine with ``engine``'s facts, in file order."""
    return [*_cpus(scenario, engine), *_memory(scenario, engine), *_cpuset(scenario, engine),
            *_restart(scenario, engine), *_faults(scenario, engine)]


def _cpus(scenario: Scenario, engine: EngineFacts) -> list[Problem]:
    found = []
    if engine.cpu_quota is False:
        found.append(Problem("resources.cpus", "this engine cannot enforce a CPU quota (no CFS"
                             " quota support), so no budget can be given"))
    if engine.cpus is None:
        return found
    cpus = scenario.resources.cpus
    if cpus > engine.cpus:
        found.append(Problem("resources.cpus", f"a budget of {cpus:g} CPUs on an engine with"
                             f" {engine.cpus}: at most {engine.cpus}"))
    if scenario.multi is not None and scenario.multi.redis.cpus > engine.cpus:
        found.append(Problem("topologies.multi.redis.cpus", f"{scenario.multi.redis.cpus:g}"
                             f" CPUs for Redis on an engine with {engine.cpus}:"
                             f" at most {engine.cpus}"))
    return found


def _memory(scenario: Scenario, engine: EngineFacts) -> list[Problem]:
    if engine.memory_limit is False:
        return [Problem("resources.memory", "this engine cannot enforce a memory limit, so no"
                        " budget can be given")]
    if engine.memory is None:
        return []
    budget = scenario.resources.memory
    needs = [("single", budget)] if scenario.single is not None else []
    if scenario.multi is not None:
        needs.append(("multi", budget + scenario.multi.redis.memory + FEEDER_MEMORY))
    for topology, total in needs:
        if total > engine.memory:
            extra = " with Redis and the feeder" if topology == "multi" else ""
            return [Problem("resources.memory", f"{topology} needs {_size(total)}{extra}; the"
                            f" engine has {_size(engine.memory)}")]
    return []


def _cpuset(scenario: Scenario, engine: EngineFacts) -> list[Problem]:
    text = scenario.resources.cpuset
    if text is None:
        return []
    if engine.cpuset is False:
        return [Problem("resources.cpuset", "this engine cannot pin containers to CPUs")]
    cpus = cpuset_cpus(text)
    if engine.cpus is not None and max(cpus) >= engine.cpus:
        have = f"the engine's CPUs are 0-{engine.cpus - 1}" if engine.cpus > 1 else (
            "the engine has CPU 0 only")
        return [Problem("resources.cpuset", f"{text!r} names CPU {max(cpus)}; {have}")]
    if scenario.resources.cpus > len(cpus):
        return [Problem("resources.cpus", f"a budget of {scenario.resources.cpus:g} CPUs"
                        f" pinned to {len(cpus)} (resources.cpuset {text!r}) can never be used")]
    return []


def _restart(scenario: Scenario, engine: EngineFacts) -> list[Problem]:
    if scenario.multi is None or scenario.multi.restart in engine.restart_policies:
        return []
    return [Problem("topologies.multi.restart", f"this engine knows the restart policies"
                    f" {', '.join(engine.restart_policies)}, not {scenario.multi.restart!r}")]


def _faults(scenario: Scenario, engine: EngineFacts) -> list[Problem]:
    found = []
    for i, fault in enumerate(scenario.faults):
        field = f"faults[{i}].kind"
        if fault.kind == "pause" and engine.freezer is False:
            found.append(Problem(field, "pause needs the cgroup freezer, which this engine's"
                                 " host does not have"))
    return found


def cpuset_cpus(text: str) -> set[int]:
    """CPU numbers of a cpuset such as "0-1,3" (validated by topo.scenario)."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def _size(size: int) -> str:
    return f"{size / GIB:.1f} GiB" if size >= GIB else f"{size / 2**20:.0f} MiB"


# --------------------------------------------------------------------------- file:line

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def field_line(source: str, field: str) -> int | None:
    """Line of a dotted field ("faults[0].kind") in the YAML file ``source``: of its value,
    else of the nearest parent written in the file; None when the file cannot be read."""
    try:
        node = yaml.compose(Path(source).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    line = None
    for name, index in _STEP.findall(field):
        if isinstance(node, yaml.MappingNode) and name:
            # The key's line: a block mapping's value starts only at its first key.
            pair = next((p for p in node.value if getattr(p[0], "value", None) == name), None)
            found = None if pair is None else (pair[0].start_mark.line + 1, pair[1])
        elif isinstance(node, yaml.SequenceNode) and index and int(index) < len(node.value):
            item = node.value[int(index)]
            found = (item.start_mark.line + 1, item)
        else:
            found = None
        if found is None:
            break
        line, node = found
    return line
