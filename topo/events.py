"""Read the event files the agents write (see ``topo.agent.protocol``), as they grow.

The harness tails ``<run dir>/events/*.jsonl`` during a run; a line is taken only once it is
complete, so a process killed mid-write costs at most its last, partial line. A line that
cannot be read is recorded in ``errors`` (a process restarted with the same PID appends to
the half line its predecessor left). A well-formed line of a kind this harness does not know
means the agents in the image speak another version of the protocol: the run fails with a
RunError rather than silently losing what those lines said.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator, Set as AbstractSet
from typing import NoReturn

from topo.agent import protocol as p
from topo.errors import RunError
from topo.model import ProcSample, Signal, SignalKind, WorkerInfo
from topo.records import TaskRecords

READ_BLOCK = 1 << 20  # bytes read from an event file at a time: a big backlog is streamed


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
    unknown: dict[str, int] = field(default_factory=dict)  # kind -> lines of unknown kinds
    _offsets: dict[Path, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.resolved = IdFlags(self.task_count)
        self.completed = IdFlags(self.task_count)

    def poll(self) -> int:
        """Read what was appended since the last call; return the number of new lines.
        Raises RunError once the lines read include a kind the protocol does not define
        (after reading every other line: nothing else is lost)."""
        unknown_before = sum(self.unknown.values())
        new = sum(self._read(path) for path in sorted(self.folder.glob("*.jsonl")))
        if sum(self.unknown.values()) > unknown_before:
            kinds = ", ".join(f"{k!r} ({n} lines)" for k, n in sorted(self.unknown.items()))
            raise RunError(f"the agents wrote events of unknown kinds: {kinds}; the worker "
                           "image runs another version of topo's agents")
        return new

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
            event = p.decode(line)
        except p.UnknownEventKind as e:
            self.unknown[e.kind] = self.unknown.get(e.kind, 0) + 1
            self.errors.append(f"unknown event kind ({e}): {line[:120]!r}")
            return
        except p.ProtocolError as e:
            self.errors.append(f"unreadable event line ({e}): {line[:120]!r}")
            return
        if type(event) is p.Task:  # nearly every line: one call fewer on the hot path
            self._task(event)
        else:
            self._dispatch(event)

    def _dispatch(self, event: p.Event) -> None:
        # _unreachable makes mypy check that every kind of the protocol has a reader here.
        if isinstance(event, p.Task):
            self._task(event)
        elif isinstance(event, p.Procs):
            self._procs(event)
        elif isinstance(event, p.Ready):
            self._ready(event)
        elif isinstance(event, p.Expect):
            self.expect[event.container] = event.n
        elif isinstance(event, p.Avail):
            self.available.append(event.t)
        elif isinstance(event, p.Fed):
            self._fed(event)
        elif isinstance(event, p.Requeue):
            self._requeue(event)
        elif isinstance(event, p.Error):
            self._error(event)
        elif isinstance(event, p.Reconnect):
            self._reconnect(event)
        elif isinstance(event, p.Poison):
            self.poisoned.append(event.t)
        elif isinstance(event, p.Exit):
            self._exit(event)
        elif isinstance(event, p.Stall):
            self._stall(event)
        else:
            _unreachable(event)

    def _task(self, rec: p.Task) -> None:
        self.records.add(rec.id, rec.worker, rec.ok, rec.start, rec.end, rec.cpu, rec.core,
                         rec.error)
        self.last_record = time.time()
        if rec.start is not None:
            self.longest_service = max(self.longest_service, rec.end - rec.start)
        if 0 <= rec.id < self.task_count:
            self.resolved.add(rec.id)
            if rec.ok:
                self.completed.add(rec.id)

    def _ready(self, ev: p.Ready) -> None:
        self.signals.append(Signal(ev.t, SignalKind.READY, ev.container, ev.worker))
        if ev.worker not in self.workers:
            self.workers[ev.worker] = WorkerInfo(
                worker=ev.worker, container=ev.container, t_ready=ev.t, cpu_count=ev.cpu_count,
                affinity=ev.affinity, quota=ev.quota, tid=ev.tid,
            )

    def _fed(self, ev: p.Fed) -> None:
        # the feeder's push took from avail to here: the producer's share of a slow start
        self.signals.append(Signal(ev.t, SignalKind.FED, ev.container, str(ev.n)))

    def _requeue(self, ev: p.Requeue) -> None:
        if not ev.dead:  # a task given up is not delivered again
            self.requeues += 1
        # the worker the task was taken from: a container (multi) or "<c>/<pid>"
        self.signals.append(Signal(ev.t, SignalKind.REQUEUE, ev.worker, str(ev.id)))

    def _error(self, ev: p.Error) -> None:
        if not ev.recoverable:  # a worker that reconnects is not failing
            self.errors.append(f"{ev.container}: {ev.error}")
        self.signals.append(Signal(ev.t, SignalKind.ERROR, ev.container, ev.error))

    def _reconnect(self, ev: p.Reconnect) -> None:
        # the end of a worker's Redis outage, whose start its recoverable error marked
        self.signals.append(Signal(ev.t, SignalKind.RECONNECT, ev.container, ev.worker))

    def _procs(self, ev: p.Procs) -> None:
        for x in ev.procs:
            self.processes.append(ProcSample(
                t=ev.t, container=ev.container, pid=x.pid, ppid=x.ppid, name=x.name,
                cpu=x.cpu, rss=x.rss, uss=x.uss, pss=x.pss, threads=x.threads,
            ))

    def _exit(self, ev: p.Exit) -> None:
        # a pool's worker process died: that process, its exit code
        self.signals.append(Signal(ev.t, SignalKind.EXIT, ev.worker or ev.container,
                                   str(ev.code)))

    def _stall(self, ev: p.Stall) -> None:
        pending = str(list(ev.pending))[:300]
        self.signals.append(Signal(ev.t, SignalKind.STALL, ev.container, pending))

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


def _unreachable(event: NoReturn) -> NoReturn:
    """typing.assert_never (Python 3.11) for 3.10: mypy rejects the call unless every
    kind was handled before it."""
    raise AssertionError(f"no reader for {event!r}")
