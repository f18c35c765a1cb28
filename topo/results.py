"""The result file: every run's raw measurements plus provenance, as versioned JSON.

A result file is enough to re-render every report later, without Docker. It is rewritten
(atomically) after each run, so an interrupted comparison keeps what it measured, marked
``complete: false``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import topo
from topo.errors import ResultError
from topo.model import (
    ContainerSpec, Fault, FaultEvent, Mount, MultiSpec, ProcSample, RedisSpec, Resources, RunResult, RunSpec, Sample,
    Scenario, Signal, SingleSpec, TaskRecord, TopologyPlan, WorkerInfo, Workload, RunStatus,
)

SCHEMA = "topo.result"
VERSION = 1


def to_json(scenario: Scenario, results: list[RunResult], host: dict[str, Any],
            complete: bool) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "topo_version": topo.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "complete": complete,
        "host": host,
        "scenario": dataclasses.asdict(scenario),
        "runs": [_redacted(dataclasses.asdict(r)) for r in results],
    }


def _redacted(run: dict[str, Any]) -> dict[str, Any]:
    """Drop the run's Redis password: the files are meant to be shared."""
    for c in run["containers"]:
        if "TOPO_REDIS_PASSWORD" in c["env"]:
            c["env"]["TOPO_REDIS_PASSWORD"] = "***"
        cmd = c["command"]
        c["command"] = [
            "***" if i > 0 and cmd[i - 1] == "--requirepass" else arg for i, arg in enumerate(cmd)
        ]
    return run


def save(path: Path, document: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a file, a crash never leaves one."""
    tmp = path.with_suffix(".json.tmp")
    try:
        tmp.write_text(json.dumps(document, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        kept = " (the previous version is kept)" if path.exists() else ""
        raise ResultError(f"cannot save {path}: {e.strerror or e}{kept}") from e


def host_facts(engine: dict[str, Any], image: str | None = None) -> dict[str, Any]:
    """Provenance: where the figures were measured, and with which image."""
    return {
        "image": image,
        "cpu_model": _cpu_model(),
        "hostname": platform.node(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "engine": engine,
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def load(path: Path) -> tuple[Scenario, list[RunResult], dict[str, Any]]:
    """Read a result file back into the dataclasses; ResultError if it cannot be."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ResultError(f"{path}: cannot read result file: {e}") from e
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ResultError(f"{path}: not a topo result file")
    if doc.get("version") != VERSION:
        raise ResultError(f"{path}: result schema version {doc.get('version')} is not supported")
    try:
        scenario = _scenario(doc["scenario"])
        runs = [_run(r) for r in doc["runs"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ResultError(f"{path}: malformed result file: {e}") from e
    return scenario, runs, doc


MANIFEST = "run.json"


def write_manifest(run_dir: Path, plan: TopologyPlan, *, index: int, warmup: bool,
                   fault: Fault | None, t_deploy: float) -> None:
    """What a run's raw folder needs beside its events and samples to be rebuilt."""
    doc = {
        "topology": plan.topology, "index": index, "warmup": warmup,
        "task_count": plan.task_count, "t_deploy": t_deploy,
        "budget_cpus": plan.budget_cpus, "budget_memory": plan.budget_memory,
        "fault": dataclasses.asdict(fault) if fault else None,
        "containers": [dataclasses.asdict(c) for c in plan.containers],
    }
    save(run_dir / MANIFEST, _redacted(doc))


def recover(out_dir: Path, runs: list[RunResult]) -> list[RunResult]:
    """Runs whose raw folder exists under ``out_dir/raw`` but that the result file does not
    hold (topo was killed while they ran), rebuilt from their raw files, status
    "interrupted"."""
    from topo.events import EventLog

    known = {c.name for r in runs for c in r.containers}
    found = []
    for folder in sorted((out_dir / "raw").glob("*")):
        manifest = folder / MANIFEST
        if not manifest.exists() or any(n.startswith(folder.name + "-") for n in known):
            continue
        try:
            m = json.loads(manifest.read_text())
            log = EventLog(folder / "events", m["task_count"])
            log.poll()
            samples = _read_samples(folder / "samples.jsonl")
            found.append(_run({
                **m, "status": RunStatus.INTERRUPTED, "error": "topo ended during this run",
                "t_ready": log.t_ready, "t_available": log.t_available,
                "t_end": max([s["t"] for s in samples] + [r.end for r in log.records]
                             + [m["t_deploy"]]),
                "records": [dataclasses.asdict(r) for r in log.records], "samples": samples,
                "workers": [dataclasses.asdict(w) for w in log.workers.values()],
                "retried": log.requeues,
                "signals": [dataclasses.asdict(x) for x in log.signals],
                "processes": [dataclasses.asdict(x) for x in log.processes],
            }))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a folder too damaged to read says nothing reliable
    return found


def _read_samples(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # the partial last line of a killed writer
    return out


def _scenario(d: dict[str, Any]) -> Scenario:
    single = d.get("single")
    multi = d.get("multi")
    return Scenario(
        name=d["name"],
        workload=Workload(**d["workload"]),
        workers=d["workers"],
        resources=Resources(**d["resources"]),
        single=SingleSpec(**single) if single else None,
        multi=MultiSpec(**{**multi, "redis": RedisSpec(**multi["redis"])}) if multi else None,
        faults=tuple(Fault(**f) for f in d.get("faults", ())),
        run=RunSpec(**d["run"]),
        description=d.get("description", ""),
        version=d.get("version", 1),
        source=d.get("source", ""),
        sha256=d.get("sha256", ""),
    )


def _run(d: dict[str, Any]) -> RunResult:
    return RunResult(**{
        **d,
        "records": tuple(TaskRecord(**r) for r in d["records"]),
        "samples": tuple(Sample(**s) for s in d["samples"]),
        "workers": tuple(WorkerInfo(**w) for w in d["workers"]),
        "containers": tuple(
            ContainerSpec(**{**c, "command": tuple(c["command"]),
                             "mounts": tuple(Mount(**m) for m in c.get("mounts", ()))})
            for c in d["containers"]
        ),
        "fault": Fault(**d["fault"]) if d.get("fault") else None,
        "fault_events": tuple(FaultEvent(**e) for e in d.get("fault_events", ())),
        "signals": tuple(Signal(**x) for x in d.get("signals", ())),
        "processes": tuple(ProcSample(**{**x, "threads": tuple(map(tuple, x.get("threads", ())))})
                           for x in d.get("processes", ())),
        "host": tuple(tuple(x) for x in d.get("host", ())),
    })
