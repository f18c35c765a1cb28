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
import re
import secrets
import time
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import topo
from topo.errors import ResultError
from topo.records import TaskRecords
from topo.model import (
    ContainerSpec, Fault, FaultEvent, Mount, MultiSpec, ProcSample, RedisSpec, Resources, RunResult, RunSpec, Sample,
    Scenario, Signal, SingleSpec, TaskRecord, TopologyPlan, WorkerInfo, Workload, RunStatus,
)
from topo.report.model import Provenance

SCHEMA = "topo.result"
VERSION = 1  # the schema version written; docs/result-schema.md
# version -> the step that turns a document of that version into one of the next. A change
# of the written format bumps VERSION and adds its step here, so every older file still loads.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
CPUINFO = "/proc/cpuinfo"


def to_json(scenario: Scenario, results: list[RunResult], host: dict[str, Any],
            complete: bool, *, created: str | None = None,
            scenario_copy: str | None = None,
            sweep_workers: int | None = None) -> dict[str, Any]:
    """The result document. ``created`` is when the comparison started (default: now), the
    same in every save so that a report rebuilt from the file says what the first did;
    ``scenario_copy`` is the copy of the scenario file saved beside the result;
    ``sweep_workers`` the N of a point of ``topo sweep`` (its scenario says N workers, the
    copied file may not)."""
    document = {
        "schema": SCHEMA,
        "version": VERSION,
        "topo_version": topo.__version__,
        "created": created or now(),
        "complete": complete,
        "host": host,
        "scenario": dataclasses.asdict(scenario),
        "runs": [_redacted(dataclasses.asdict(r)) for r in results],
    }
    if scenario_copy is not None:
        document["scenario_copy"] = scenario_copy
    if sweep_workers is not None:
        document["sweep_workers"] = sweep_workers
    return document


def now() -> str:
    """UTC now, as a result's ``created``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
        with open(tmp, "w", encoding="ascii") as f:
            _write(f, document)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        kept = " (the previous version is kept)" if path.exists() else ""
        raise ResultError(f"cannot save {path}: {e.strerror or e}{kept}") from e


def _write(f: TextIO, document: dict[str, Any]) -> None:
    """The document as indented JSON, except that a run's records held as columns
    (TaskRecords, a million of them in a big batch) are streamed one compact line per
    attempt, never all turned into dicts or into one string at once."""
    mark = f"@topo-records-{secrets.token_hex(8)}-"
    held: list[TaskRecords] = []

    def hold(o: object) -> object:
        if isinstance(o, TaskRecords):
            held.append(o)
            return f"{mark}{len(held) - 1}"
        if isinstance(o, TaskRecord):  # records given as a tuple: asdict leaves them whole
            return vars(o)
        raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")

    text = json.dumps(document, indent=1, sort_keys=True, default=hold)
    parts = re.split(f'"{re.escape(mark)}(\\d+)"', text)
    for i, part in enumerate(parts):
        if i % 2 == 0:
            f.write(part)
        else:
            _write_records(f, held[int(part)])


def _write_records(f: TextIO, records: TaskRecords, chunk: int = 10_000) -> None:
    f.write("[")
    for start in range(0, len(records), chunk):
        rows = (json.dumps(vars(r), sort_keys=True, separators=(",", ":"))
                for r in records[start:start + chunk])
        f.write(("\n" if start == 0 else ",\n") + ",\n".join(rows))
    f.write("]")


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
    doc = upgrade(doc, path)
    try:
        scenario = _scenario(doc["scenario"])
        runs = [_run(r) for r in doc["runs"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ResultError(f"{path}: malformed result file: {e}") from e
    return scenario, runs, doc


def upgrade(doc: dict[str, Any], path: Path | str = "result file") -> dict[str, Any]:
    """The document migrated, one version at a time, to the VERSION this topo reads;
    ResultError for a version it does not know (a newer topo wrote it)."""
    version = doc.get("version")
    while version != VERSION:
        step = MIGRATIONS.get(version) if isinstance(version, int) else None
        if step is None:
            raise ResultError(f"{path}: result schema version {version} is not supported"
                              f" (this topo reads versions {_known()})")
        doc = step(doc)
        if not isinstance(doc.get("version"), int) or doc["version"] <= version:
            raise ResultError(f"{path}: migrating from version {version} did not advance it")
        version = doc["version"]
    return doc


def _known() -> str:
    return ", ".join(str(v) for v in sorted({*MIGRATIONS, VERSION}))


def provenance(document: Mapping[str, Any], cpu_model: str | None = None) -> Provenance:
    """Where and how a result was measured, from a result file's document (``load``'s third
    value). ``cpu_model`` fills in the CPU when the file does not record it (see
    ``local_cpu_model``); a recorded ``host.cpu_model`` wins."""
    host = document.get("host") or {}
    engine = host.get("engine") or {}
    scenario = document.get("scenario") or {}
    cgroup = engine.get("cgroup_version")
    return Provenance(
        scenario=scenario.get("name"),
        scenario_file=scenario.get("source") or None,
        scenario_copy=document.get("scenario_copy") or None,
        sweep_workers=document.get("sweep_workers") or None,
        scenario_sha256=scenario.get("sha256") or None,
        image=host.get("image"),
        engine=engine.get("engine"),
        engine_api=engine.get("api"),
        kernel=engine.get("kernel"),
        cgroup=f"v{cgroup} ({engine.get('cgroup_driver')})" if cgroup else None,
        os=engine.get("os"),
        host_cpus=engine.get("cpus") or host.get("cpus"),
        host_memory=engine.get("memory"),
        cpu_model=host.get("cpu_model") or cpu_model,
        hostname=host.get("hostname"),
        python=host.get("python"),
        topo_version=document.get("topo_version"),
        created=document.get("created"),
        complete=bool(document.get("complete", True)),
    )


def local_cpu_model(document: Mapping[str, Any], cpuinfo: str = CPUINFO) -> str | None:
    """The CPU model from /proc/cpuinfo, only when this is the host that measured the result
    (same hostname): anywhere else it would describe the wrong machine."""
    host = document.get("host") or {}
    if host.get("hostname") != platform.node():
        return None
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        return None
    return None


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
                "t_end": max([s["t"] for s in samples] + [max(log.records.ends, default=0.0)]
                             + [m["t_deploy"]]),
                "records": log.records, "samples": samples,
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
        "records": d["records"] if isinstance(d["records"], TaskRecords)
        else tuple(TaskRecord(**r) for r in d["records"]),
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
