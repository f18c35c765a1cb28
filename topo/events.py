"""Read the event files the agents write (see ``topo.agent.common``), as they grow.

The harness tails ``<run dir>/events/*.jsonl`` during a run; a line is taken only once it is
complete, so a process killed mid-write costs at most its last, partial line.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator, Set as AbstractSet
from typing import Any

from topo.model import ProcSample, Signal, WorkerInfo
from topo.records import TaskRecords

READ_BLOCK = 1 << 20  # bytes read from an event file at a time: a big backlog is streamed
_decode = json.JSONDecoder().decode


class IdFlags(AbstractSet[int]):
    """A set of task ids 0..n-1 as one byte per id (a million ids: 1 MB, not ~60 MB)."""

    __slots__ = ("_flags", "_count")

    def __init__(self, n: int) -> None:
        self._flags = bytearray(max(n, 0))
        self._count = 0

    def add(self, i: int) -> None:
        if not self._flags[i]:
            self._flags[i] = 1
            self._count += 1

    def __contains__(self, i: object) -> bool:
        return isinstance(i, int) and 0 <= i < len(self._flags) and bool(self._flags[i])

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        return (i for i, flag in enumerate(self._flags) if flag)


@dataclass
class EventLog:
    """Everything read so far from one deployment's event files."""

    folder: Path
    task_count: int
    records: TaskRecords = field(default_factory=TaskRecords)
    workers: dict[str, WorkerInfo] = field(default_factory=dict)  # first ready per worker
    expect: dict[str, int] = field(default_factory=dict)  # container -> worker processes
    available: list[float] = field(default_factory=list)
    requeues: int = 0
    errors: list[str] = field(default_factory=list)
    resolved: IdFlags = field(init=False)  # ids of the batch with any record
    completed: IdFlags = field(init=False)  # ids of the batch with an ok record
    signals: list[Signal] = field(default_factory=list)
    processes: list[ProcSample] = field(default_factory=list)
    poisoned: list[float] = field(default_factory=list)  # an oom fault's poison task began
    last_record: float | None = None  # host time the last task line was read
    longest_service: float = 0.0  # seconds, of any attempt read so far
    _offsets: dict[Path, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.resolved = IdFlags(self.task_count)
        self.completed = IdFlags(self.task_count)

    def poll(self) -> int:
        """Read what was appended since the last call; return the number of new lines."""
        return sum(self._read(path) for path in sorted(self.folder.glob("*.jsonl")))

    def _read(self, path: Path) -> int:
        """Take the whole lines appended to one file, ``READ_BLOCK`` bytes at a time (a
        line longer than that is read whole), so a backlog of a million lines is never
        held at once."""
        new = 0
        block = READ_BLOCK
        with open(path, "rb") as f:
            while True:
                offset = self._offsets.get(path, 0)
                f.seek(offset)
                chunk = f.read(block)
                end = chunk.rfind(b"\n") + 1  # only whole lines
                if end == 0:
                    if len(chunk) < block:
                        return new
                    block *= 2  # one line longer than the block: read more of it
                    continue
                self._offsets[path] = offset + end
                for line in chunk[:end].splitlines():
                    if line.strip():
                        self._take(line)
                        new += 1
                if len(chunk) < block:
                    return new
                block = READ_BLOCK

    def _take(self, line: bytes) -> None:
        try:
            ev: dict[str, Any] = _decode(line.decode("utf-8"))  # str: no encoding sniffing per line
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
        ok = bool(ev["ok"])
        t0 = ev.get("t0")
        start = None if t0 is None else float(t0)
        end = float(ev["t1"])
        core = ev.get("core")
        self.records.add(task_id, str(ev["w"]), ok, start, end, float(ev.get("cpu") or 0.0),
                         None if core is None else int(core), ev.get("err"))
        self.last_record = time.time()
        if start is not None and end - start > self.longest_service:
            self.longest_service = end - start
        if 0 <= task_id < self.task_count:
            self.resolved.add(task_id)
            if ok:
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
