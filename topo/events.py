"""Read the event files the agents write (see ``topo.agent.common``), as they grow.

The harness tails ``<run dir>/events/*.jsonl`` during a run; a line is taken only once it is
complete, so a process killed mid-write costs at most its last, partial line.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topo.model import ProcSample, Signal, TaskRecord, WorkerInfo


@dataclass
class EventLog:
    """Everything read so far from one deployment's event files."""

    folder: Path
    task_count: int
    records: list[TaskRecord] = field(default_factory=list)
    workers: dict[str, WorkerInfo] = field(default_factory=dict)  # first ready per worker
    expect: dict[str, int] = field(default_factory=dict)  # container -> worker processes
    available: list[float] = field(default_factory=list)
    requeues: int = 0
    errors: list[str] = field(default_factory=list)
    resolved: set[int] = field(default_factory=set)  # ids with any record
    completed: set[int] = field(default_factory=set)
    signals: list[Signal] = field(default_factory=list)
    processes: list[ProcSample] = field(default_factory=list)
    poisoned: list[float] = field(default_factory=list)  # an oom fault's poison task began
    last_record: float | None = None  # host time the last task line was read
    longest_service: float = 0.0  # seconds, of any attempt read so far
    _offsets: dict[Path, int] = field(default_factory=dict)

    def poll(self) -> int:
        """Read what was appended since the last call; return the number of new lines."""
        new = 0
        for path in sorted(self.folder.glob("*.jsonl")):
            offset = self._offsets.get(path, 0)
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1  # only whole lines
            if end == 0:
                continue
            self._offsets[path] = offset + end
            for line in chunk[:end].splitlines():
                if line.strip():
                    self._take(line)
                    new += 1
        return new

    def _take(self, line: bytes) -> None:
        try:
            ev: dict[str, Any] = json.loads(line)
            kind = ev["ev"]
            if kind == "task":
                self._task(ev)
            elif kind == "ready":
                self._ready(ev)
            elif kind == "expect":
                self.expect[ev["c"]] = int(ev["n"])
            elif kind == "avail":
                self.available.append(float(ev["t"]))
            elif kind == "requeue":
                if not ev.get("dead"):  # a task given up is not delivered again
                    self.requeues += 1
                # the worker the task was taken from: a container (multi) or "<c>/<pid>"
                self.signals.append(Signal(float(ev["t"]), "requeue", str(ev["w"]), str(ev["id"])))
            elif kind == "error":
                if not ev.get("recoverable"):  # a worker that reconnects is not failing
                    self.errors.append(f"{ev['c']}: {ev['err']}")
                self.signals.append(Signal(float(ev["t"]), "error", str(ev["c"]), str(ev["err"])))
            elif kind == "poison":
                self.poisoned.append(float(ev["t"]))
            elif kind == "procs":
                self._procs(ev)
            elif kind == "exit":  # a pool's worker process died: that process, its exit code
                self.signals.append(Signal(float(ev["t"]), "exit", str(ev.get("w") or ev["c"]),
                                           str(ev.get("code"))))
            elif kind == "stall":
                self.signals.append(Signal(float(ev["t"]), "stall", str(ev["c"]),
                                           str(ev.get("pending", ""))[:300]))
        except (ValueError, KeyError, TypeError) as e:
            self.errors.append(f"unreadable event line ({e}): {line[:120]!r}")

    def _task(self, ev: dict[str, Any]) -> None:
        task_id = int(ev["id"])
        rec = TaskRecord(
            id=task_id, worker=str(ev["w"]), ok=bool(ev["ok"]),
            start=None if ev.get("t0") is None else float(ev["t0"]), end=float(ev["t1"]),
            cpu=float(ev.get("cpu") or 0.0), core=ev.get("core"), error=ev.get("err"),
        )
        self.records.append(rec)
        self.last_record = time.time()
        if rec.start is not None:
            self.longest_service = max(self.longest_service, rec.end - rec.start)
        if 0 <= task_id < self.task_count:
            self.resolved.add(task_id)
            if rec.ok:
                self.completed.add(task_id)

    def _procs(self, ev: dict[str, Any]) -> None:
        t, c = float(ev["t"]), str(ev["c"])
        for p in ev["procs"]:
            self.processes.append(ProcSample(
                t=t, container=c, pid=int(p["pid"]), ppid=int(p["ppid"]), name=str(p["name"]),
                cpu=float(p["cpu"]), rss=int(p["rss"]), uss=p.get("uss"), pss=p.get("pss"),
                threads=tuple(_thread(x) for x in p.get("thr") or ()),
            ))

    def _ready(self, ev: dict[str, Any]) -> None:
        worker = str(ev["w"])
        self.signals.append(Signal(float(ev["t"]), "ready", str(ev["c"]), worker))
        if worker not in self.workers:
            self.workers[worker] = WorkerInfo(
                worker=worker, container=str(ev["c"]), t_ready=float(ev["t"]),
                cpu_count=int(ev["cpu_count"]), affinity=int(ev["affinity"]),
                quota=None if ev.get("quota") is None else float(ev["quota"]),
                tid=None if ev.get("tid") is None else int(ev["tid"]),
            )

    def all_ready(self, containers: list[str]) -> bool:
        """Every agent container announced how many workers it runs, and all are ready."""
        if any(c not in self.expect for c in containers):
            return False
        ready: dict[str, int] = {}
        for info in self.workers.values():
            ready[info.container] = ready.get(info.container, 0) + 1
        return all(ready.get(c, 0) >= self.expect[c] for c in containers)

    @property
    def t_ready(self) -> float | None:
        return max((w.t_ready for w in self.workers.values()), default=None)

    @property
    def t_available(self) -> float | None:
        return min(self.available, default=None)


def _thread(entry: list[Any]) -> tuple[int, float, float | None]:
    """``[tid, cpu, born]`` of the telemetry (born may be missing or null)."""
    born = entry[2] if len(entry) > 2 else None
    return int(entry[0]), float(entry[1]), None if born is None else float(born)
