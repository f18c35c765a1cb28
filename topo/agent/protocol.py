"""The contract between the harness and its agents: the configuration it hands them and the
event lines they write back. Both sides import this module; nothing else defines it.

Standard library only: it runs inside the containers.

**Configuration.** The harness puts ``AgentConfig.to_json()`` in the ``TOPO_CONFIG``
environment variable of every agent container; the agent reads it with ``AgentConfig.load()``.
An adopted Compose file holds the same configuration as plain ``TOPO_<FIELD>`` variables
(``AgentConfig.to_env()``), which ``load()`` reads when ``TOPO_CONFIG`` is absent.

**Events.** Every agent process appends lines to its own ``<run dir>/events/<name>.jsonl``
(see ``topo.agent.common.Events``): one compact JSON object per line, its kind in ``ev`` and
short field names, because the harness reads up to millions of them per run. Each kind is
one immutable record below (a frozen dataclass, written out), with readable attribute
names and its wire name documented beside each field; ``encode()`` makes the line,
``decode(line)`` reads any line back.
Times are host wall-clock seconds (``time.time()``: containers share the host's clock).

``decode`` raises ``ProtocolError`` and nothing else on a line it cannot read, and
``UnknownEventKind`` (a ``ProtocolError``) for a well-formed line of a kind not defined here:
an agent and a harness of different versions, which the reader must report, not drop.
"""

from __future__ import annotations

import json
import os
import socket
from enum import Enum

# Every agent imports this module first thing, at 1/32 of a CPU among 64 containers, where
# each 10 ms of start-up CPU is 0.3 s of wall time: typing's and dataclasses' own imports,
# and the methods a dataclass compiles at every start, cost more than the rest of the
# module. So the records below are plain classes (their code is in the .pyc) and typing's
# names exist for the type checker only (it takes any constant named TYPE_CHECKING as True).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, ClassVar, Literal, Mapping, Self


class StrKind(str, Enum):
    """A closed set of names that are plain strings on the wire and in result files.

    A member shows, formats, hashes and compares as its value (``"mp-pool"``), as the
    plain string it replaces did, so no message or file changes: Python's default
    ``(str, Enum)`` formats as ``Class.NAME`` on 3.11 and hashes by name, so a dict keyed
    by the string would not find the member."""

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return repr(str(self.value))

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    __hash__ = str.__hash__


class PoolKind(StrKind):
    """How the ``single`` topology's PID 1 runs its worker processes (topo.agent.single)."""

    PROCESS_POOL = "process-pool"
    MP_POOL = "mp-pool"
    SUPERVISOR = "supervisor"
    CELERY_PREFORK = "celery-prefork"  # Celery's prefork pool on the run's Redis (topo.agent.peer)


class QueueKind(StrKind):
    """Delivery of the ``multi`` topology's Redis queue (topo.agent.worker)."""

    RELIABLE = "reliable"  # at least once
    SIMPLE = "simple"  # at most once
    # Queue libraries a team may already run (topo.agent.peer); each acknowledges its own way
    CELERY = "celery"
    RQ = "rq"
    DRAMATIQ = "dramatiq"


class ProtocolError(ValueError):
    """A line that is not a valid event (garbage, a missing or mistyped field)."""


class UnknownEventKind(ProtocolError):
    """A well-formed line whose ``ev`` names no kind defined here."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown event kind {kind!r}")
        self.kind = kind


class _Record:
    """An immutable record, as a frozen dataclass is: its fields are the annotated names of
    its class body (``FIELDS``, in order), each set once by the class's own ``__init__``;
    assigning one raises ``dataclasses.FrozenInstanceError``. Records compare equal when of
    the same class with equal fields, hash by their fields, and show as ``Kind(a=1, b=2)``.
    ``replace(**changes)`` is ``dataclasses.replace``; ``vars(record)`` is its fields."""

    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls) -> None:
        annotations = cls.__dict__.get("__annotations__", {})  # strings: see the __future__
        cls.FIELDS = tuple(name for name, kind in annotations.items()
                           if not kind.startswith("ClassVar"))

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` to some fields."""
        return type(self)(**{**self.__dict__, **changes})

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(tuple(self.__dict__[name] for name in self.FIELDS))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={self.__dict__[name]!r}" for name in self.FIELDS)
        return f"{type(self).__qualname__}({shown})"

    def __setattr__(self, name: str, value: object) -> None:
        from dataclasses import FrozenInstanceError  # only a caller's mistake gets here

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot delete field {name!r}")


# --------------------------------------------------------------------------- configuration


class AgentConfig(_Record):
    """What one agent container is told to do. Fields that are None are not written, so
    each role's JSON holds only what applies to it. Defaults: see ``__init__``."""

    container: str  # this container's name: its event files and worker ids start with it
    task: str  # built-in name or "package.module:function" (topo.workloads.resolve)
    params: Mapping[str, Any]  # keyword arguments of every call of the task
    seed: int  # the run's seed; each task gets topo.workloads.task_seed(seed, id)
    tasks: int  # the batch: task ids 0 .. tasks-1
    poison: tuple[int, ...]  # ids that exceed the memory limit instead (an oom fault)
    max_attempts: int  # starts of one task before it is given up (supervisor, reliable)
    data_dir: str | None  # where workload.data is mounted; None without data
    telemetry: bool  # sample the container's processes (topo.agent.telemetry)
    # single only
    pool: PoolKind | None
    processes: int | Literal["auto"] | None  # "auto": os.cpu_count() inside
    preload: bool | None  # PID 1 imports the task module before it forks
    stall_timeout: float | None  # mp-pool: seconds; None = from the task times
    linger: float | None  # seconds PID 1 stays after its batch; None: it leaves at once
    # multi only (worker and feeder)
    redis_host: str | None
    queue: QueueKind | None
    prefetch: int | None  # tasks a worker takes at once
    # queue celery (and pool celery-prefork) only
    acks_late: bool | None  # acknowledge after the task ran (Celery's default: before)
    visibility_timeout: float | None  # seconds before an unacknowledged task returns

    def __init__(self, container: str, task: str, params: Mapping[str, Any], seed: int,
                 tasks: int, poison: tuple[int, ...] = (), max_attempts: int = 3,
                 data_dir: str | None = None, telemetry: bool = True,
                 pool: PoolKind | None = None, processes: int | Literal["auto"] | None = None,
                 preload: bool | None = None, stall_timeout: float | None = None,
                 linger: float | None = None, redis_host: str | None = None,
                 queue: QueueKind | None = None, prefetch: int | None = None,
                 acks_late: bool | None = None, visibility_timeout: float | None = None) -> None:
        self.__dict__.update(
            container=container, task=task, params=params, seed=seed, tasks=tasks,
            poison=poison, max_attempts=max_attempts, data_dir=data_dir, telemetry=telemetry,
            pool=pool, processes=processes, preload=preload, stall_timeout=stall_timeout,
            linger=linger, redis_host=redis_host, queue=queue, prefetch=prefetch,
            acks_late=acks_late, visibility_timeout=visibility_timeout)

    def to_json(self) -> str:
        """The ``TOPO_CONFIG`` value: sorted keys, None left out."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if value is not None:
                out[name] = list(value) if isinstance(value, tuple) else value
        if "params" in out:
            out["params"] = dict(out["params"])
        return json.dumps(out, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AgentConfig:
        """Read ``to_json``'s output (unknown keys are an error: a harness newer than the
        agent). Raises ProtocolError on anything else."""
        try:
            raw = json.loads(text)
            known = set(cls.FIELDS)
            extra = sorted(set(raw) - known)
            if extra:
                raise ProtocolError(f"unknown configuration keys: {', '.join(extra)}")
            raw["poison"] = tuple(int(i) for i in raw.get("poison") or ())
            if raw.get("pool") is not None:
                raw["pool"] = PoolKind(raw["pool"])
            if raw.get("queue") is not None:
                raw["queue"] = QueueKind(raw["queue"])
            return cls(**raw)
        except ProtocolError:
            raise
        except (ValueError, TypeError, KeyError, RecursionError) as e:
            raise ProtocolError(f"unreadable agent configuration: {e}") from e

    def to_env(self, *, container: bool = True) -> dict[str, str]:
        """The same configuration as plain environment variables a person can read and edit
        (the Compose files topo writes): ``TOPO_<FIELD>`` per field, None left out, each
        keyword argument of the task as ``TOPO_PARAM_<name>``. Without ``container`` the
        name is left out, and each agent takes its host name (a Compose replica's own)."""
        out: dict[str, str] = {}
        for name, value in self.__dict__.items():
            if value in (None, ()) or name == "params" or (name == "container" and not container):
                continue
            out[ENV_PREFIX + name.upper()] = _env_value(value)
        for name, value in self.params.items():
            out[PARAM_PREFIX + name] = _param_text(value)
        return out

    @classmethod
    def from_env(cls, env: Mapping[str, str], hostname: str = "") -> AgentConfig:
        """Read ``to_env``'s variables out of ``env`` (other variables are ignored: the form
        shares the environment); a missing container name is ``hostname``. Raises
        ProtocolError on a missing or unreadable value."""
        raw: dict[str, Any] = {"params": {k[len(PARAM_PREFIX):]: _param_value(v)
                                          for k, v in env.items() if k.startswith(PARAM_PREFIX)}}
        try:
            for name in cls.FIELDS:
                text = env.get(ENV_PREFIX + name.upper())
                if name != "params" and text is not None:
                    raw[name] = _ENV_READERS.get(name, str)(text)
            raw.setdefault("container", hostname)
            return cls(**raw)
        except (ValueError, TypeError) as e:
            raise ProtocolError(f"unreadable agent configuration: {e}") from e

    @classmethod
    def load(cls) -> AgentConfig:
        """This agent's configuration: the JSON in ``TOPO_CONFIG`` (topo's own runs), else
        the ``TOPO_<FIELD>`` variables of ``to_env`` (an adopted Compose file)."""
        if "TOPO_CONFIG" in os.environ:
            return cls.from_json(os.environ["TOPO_CONFIG"])
        return cls.from_env(os.environ, socket.gethostname())


ENV_PREFIX = "TOPO_"
PARAM_PREFIX = "TOPO_PARAM_"


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _param_text(value: Any) -> str:
    """A string as itself unless it would read back as something else (``"3"``, ``"true"``):
    then, like every other value, as JSON."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value)


def _param_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _env_bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text == "true"


_ENV_READERS: dict[str, Callable[[str], Any]] = {
    "seed": int, "tasks": int, "max_attempts": int, "prefetch": int,
    "poison": lambda t: tuple(int(i) for i in t.split(",") if i.strip()),
    "telemetry": _env_bool, "preload": _env_bool, "acks_late": _env_bool,
    "pool": PoolKind, "queue": QueueKind,
    "processes": lambda t: "auto" if t == "auto" else int(t),
    "stall_timeout": float, "visibility_timeout": float, "linger": float,
}


# --------------------------------------------------------------------------- events


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


def _opt_int(x: Any) -> int | None:
    return None if x is None else int(x)


def _opt_str(x: Any) -> str | None:
    return None if x is None else str(x)


class _Line(_Record):
    """An event kind: ``to_wire`` gives its JSON object, ``encode`` the line."""

    KIND: ClassVar[str]

    def to_wire(self) -> dict[str, Any]:
        raise NotImplementedError

    def encode(self) -> bytes:
        """The compact JSON line, newline included."""
        return (json.dumps(self.to_wire(), separators=(",", ":")) + "\n").encode()


class Task(_Line):
    """``task``: one attempt at one task, written where the work happened (the harness
    keeps it as its TaskRecord). A task given up without an answer from the process that
    ran it (a broken pool, a dead letter) is a failed attempt with no start."""

    KIND: ClassVar[str] = "task"
    id: int  # id
    worker: str  # w: "<container>/<pid>" of the process that ran it
    ok: bool  # ok
    start: float | None  # t0: None when it never started
    end: float  # t1
    cpu: float  # cpu: CPU seconds of the running thread during the task
    core: int | None  # core: the CPU it ended on
    error: str | None  # err: "<Exception>: message" of a failed attempt

    def __init__(self, id: int, worker: str, ok: bool, start: float | None, end: float,
                 cpu: float = 0.0, core: int | None = None, error: str | None = None) -> None:
        self.__dict__.update(id=id, worker=worker, ok=ok, start=start, end=end, cpu=cpu,
                             core=core, error=error)

    def to_wire(self) -> dict[str, Any]:
        return {"ev": "task", "id": self.id, "w": self.worker, "ok": self.ok, "t0": self.start,
                "t1": self.end, "cpu": self.cpu, "core": self.core, "err": self.error}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Task:
        # the hot path of the reader (one line per attempt): no helper calls
        t0, core, err = d.get("t0"), d.get("core"), d.get("err")
        return cls(int(d["id"]), str(d["w"]), bool(d["ok"]), None if t0 is None else float(t0),
                   float(d["t1"]), float(d.get("cpu") or 0.0),
                   None if core is None else int(core), None if err is None else str(err))


class Ready(_Line):
    """``ready``: a worker process can take tasks, and what it sees of its CPUs."""

    KIND: ClassVar[str] = "ready"
    worker: str  # w
    container: str  # c
    t: float  # t
    cpu_count: int  # cpu_count: os.cpu_count() in the container (the host's cores)
    affinity: int  # affinity: CPUs it may run on
    quota: float | None  # quota: CPUs the CFS quota allows; None = unlimited
    tid: int | None  # tid: the kernel's id of the thread that runs the tasks

    def __init__(self, worker: str, container: str, t: float, cpu_count: int, affinity: int,
                 quota: float | None, tid: int | None = None) -> None:
        self.__dict__.update(worker=worker, container=container, t=t, cpu_count=cpu_count,
                             affinity=affinity, quota=quota, tid=tid)

    def to_wire(self) -> dict[str, Any]:
        return {"ev": "ready", "w": self.worker, "c": self.container, "t": self.t,
                "cpu_count": self.cpu_count, "affinity": self.affinity, "quota": self.quota,
                "tid": self.tid}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Ready:
        return cls(str(d["w"]), str(d["c"]), float(d["t"]), int(d["cpu_count"]),
                   int(d["affinity"]), _opt_float(d.get("quota")), _opt_int(d.get("tid")))


class Expect(_Line):
    """``expect``: how many worker processes this container will run (0: feeder)."""

    KIND: ClassVar[str] = "expect"
    container: str  # c
    n: int  # n
    t: float  # t

    def __init__(self, container: str, n: int, t: float) -> None:
        self.__dict__.update(container=container, n=n, t=t)

    def to_wire(self) -> dict[str, Any]:
        return {"ev": "expect", "c": self.container, "n": self.n, "t": self.t}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Expect:
        return cls(str(d["c"]), int(d["n"]), float(d["t"]))


class Avail(_Line):
    """``avail``: the batch was released to the workers (single's PID 1, the feeder)."""

    KIND: ClassVar[str] = "avail"
    container: str  # c
    t: float  # t
    n: int  # n: tasks in the batch

    def __init__(self, container: str, t: float, n: int) -> None:
        self.__dict__.update(container=container, t=t, n=n)

    def to_wire(self) -> dict[str, Any]:
        return {"ev": "avail", "c": self.container, "t": self.t, "n": self.n}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Avail:
        return cls(str(d["c"]), float(d["t"]), int(d["n"]))


class Fed(_Line):
    """``fed``: the feeder has put the whole batch on the queue."""

    KIND: ClassVar[str] = "fed"
    container: str  # c
    t: float  # t
    n: int  # n: tasks pushed

    def __init__(self, container: str, t: float, n: int) -> None:
        self.__dict__.update(container=container, t=t, n=n)

    def to_wire(self) -> dict[str, Any]:
        return {"ev": "fed", "c": self.container, "t": self.t, "n": self.n}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Fed:
        return cls(str(d["c"]), float(d["t"]), int(d["n"]))


class Requeue(_Line):
    """``requeue``: a task was taken from a worker that died or froze; ``dead``: it was
    given up (started too often) rather than delivered again."""

    KIND: ClassVar[str] = "requeue"
    id: int  # id
    worker: str  # w: the worker it was taken from, a container (multi) or "<c>/<pid>"
    by: str  # by: the process that took it back
    t: float  # t
    dead: bool  # dead

    def __init__(self, id: int, worker: str, by: str, t: float, dead: bool = False) -> None:
        self.__dict__.update(id=id, worker=worker, by=by, t=t, dead=dead)

    def to_wire(self) -> dict[str, Any]:
        return {"ev": "requeue", "id": self.id, "w": self.worker, "by": self.by, "t": self.t,
                "dead": self.dead}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Requeue:
        return cls(int(d["id"]), str(d["w"]), str(d["by"]), float(d["t"]), bool(d.get("dead")))


class Error(_Line):
    """``error``: an agent's failure; fatal unless ``recoverable`` (a Redis outage a
    worker rides out)."""

    KIND: ClassVar[str] = "error"
    container: str  # c
    t: float  # t
    error: str  # err
    worker: str | None  # w: the process, when it is not the container's PID 1
    recoverable: bool  # recoverable

    def __init__(self, container: str, t: float, error: str, worker: str | None = None,
                 recoverable: bool = False) -> None:
        self.__dict__.update(container=container, t=t, error=error, worker=worker,
                             recoverable=recoverable)

    def to_wire(self) -> dict[str, Any]:
        wire = {"ev": "error", "c": self.container, "t": self.t, "err": self.error}
        if self.worker is not None:
            wire["w"] = self.worker
        if self.recoverable:
            wire["recoverable"] = True
        return wire

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Error:
        return cls(str(d["c"]), float(d["t"]), str(d["err"]), _opt_str(d.get("w")),
                   bool(d.get("recoverable")))


class Reconnect(_Line):
    """``reconnect``: a worker is back on Redis after the outage its ``error`` reported."""

    KIND: ClassVar[str] = "reconnect"
    container: str  # c
    worker: str  # w
    t: float  # t

    def __init__(self, container: str, worker: str, t: float) -> None:
        self.__dict__.update(container=container, worker=worker, t=t)

    def to_wire(self) -> dict[str, Any]:
        return {"ev": "reconnect", "c": self.container, "w": self.worker, "t": self.t}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Reconnect:
        return cls(str(d["c"]), str(d["w"]), float(d["t"]))


class Poison(_Line):
    """``poison``: an oom fault's poison task began (the fault's moment)."""

    KIND: ClassVar[str] = "poison"
    id: int  # id
    container: str  # c
    t: float  # t

    def __init__(self, id: int, container: str, t: float) -> None:
        self.__dict__.update(id=id, container=container, t=t)

    def to_wire(self) -> dict[str, Any]:
        return {"ev": "poison", "id": self.id, "c": self.container, "t": self.t}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Poison:
        return cls(int(d["id"]), str(d["c"]), float(d["t"]))


class Proc(_Record):
    """One process in a ``procs`` line (not an event itself)."""

    pid: int  # pid, as seen inside the container
    ppid: int  # ppid
    name: str  # name
    cpu: float  # cpu: user + system CPU seconds so far
    rss: int  # rss: bytes
    uss: int | None  # uss: bytes; only on the passes that read smaps
    pss: int | None  # pss: bytes; likewise
    # thr: per live thread (tid, CPU seconds so far, host time it started or None)
    threads: tuple[tuple[int, float, float | None], ...]

    def __init__(self, pid: int, ppid: int, name: str, cpu: float, rss: int,
                 uss: int | None = None, pss: int | None = None,
                 threads: tuple[tuple[int, float, float | None], ...] = ()) -> None:
        self.__dict__.update(pid=pid, ppid=ppid, name=name, cpu=cpu, rss=rss, uss=uss, pss=pss,
                             threads=threads)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"pid": self.pid, "ppid": self.ppid, "name": self.name,
                                "cpu": self.cpu, "rss": self.rss,
                                "thr": [list(x) for x in self.threads]}
        if self.uss is not None:
            wire["uss"] = self.uss
        if self.pss is not None:
            wire["pss"] = self.pss
        return wire

    @classmethod
    def from_wire(cls, p: dict[str, Any]) -> Proc:
        return cls(int(p["pid"]), int(p["ppid"]), str(p["name"]), float(p["cpu"]),
                   int(p["rss"]), _opt_int(p.get("uss")), _opt_int(p.get("pss")),
                   tuple(_thread(x) for x in p.get("thr") or ()))


def _thread(entry: list[Any]) -> tuple[int, float, float | None]:
    """``[tid, cpu, born]`` (born may be missing or null: older agents)."""
    born = entry[2] if len(entry) > 2 else None
    return int(entry[0]), float(entry[1]), None if born is None else float(born)


class Procs(_Line):
    """``procs``: the container's process tree, sampled by topo.agent.telemetry."""

    KIND: ClassVar[str] = "procs"
    container: str  # c
    t: float  # t
    procs: tuple[Proc, ...]  # procs

    def __init__(self, container: str, t: float, procs: tuple[Proc, ...]) -> None:
        self.__dict__.update(container=container, t=t, procs=procs)

    def to_wire(self) -> dict[str, Any]:
        return {"ev": "procs", "c": self.container, "t": self.t,
                "procs": [p.to_wire() for p in self.procs]}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Procs:
        return cls(str(d["c"]), float(d["t"]), tuple(Proc.from_wire(p) for p in d["procs"]))


class Exit(_Line):
    """``exit``: a pool's worker process died (mp-pool; the supervisor says ``requeue``)."""

    KIND: ClassVar[str] = "exit"
    container: str  # c
    t: float  # t
    worker: str | None  # w: "<container>/<pid>" of the process
    code: int | None  # code: its exit code, None if unknown

    def __init__(self, container: str, t: float, worker: str | None = None,
                 code: int | None = None) -> None:
        self.__dict__.update(container=container, t=t, worker=worker, code=code)

    def to_wire(self) -> dict[str, Any]:
        return {"ev": "exit", "c": self.container, "w": self.worker, "t": self.t,
                "code": self.code}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Exit:
        return cls(str(d["c"]), float(d["t"]), _opt_str(d.get("w")), _opt_int(d.get("code")))


class Stall(_Line):
    """``stall``: mp-pool gave up the tasks still pending after a death (they are lost)."""

    KIND: ClassVar[str] = "stall"
    container: str  # c
    t: float  # t
    pending: tuple[int, ...]  # pending: their ids

    def __init__(self, container: str, t: float, pending: tuple[int, ...] = ()) -> None:
        self.__dict__.update(container=container, t=t, pending=pending)

    def to_wire(self) -> dict[str, Any]:
        return {"ev": "stall", "c": self.container, "t": self.t, "pending": list(self.pending)}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Stall:
        return cls(str(d["c"]), float(d["t"]), tuple(int(i) for i in d.get("pending") or ()))


if TYPE_CHECKING:
    Event = (Task | Ready | Expect | Avail | Fed | Requeue | Error | Reconnect | Poison | Procs
             | Exit | Stall)
else:  # at run time the base of every kind: ``X | Y`` of classes needs Python 3.10, agents 3.9
    Event = _Line
EVENT_TYPES: tuple[type[Event], ...] = (Task, Ready, Expect, Avail, Fed, Requeue, Error,
                                        Reconnect, Poison, Procs, Exit, Stall)
KINDS: dict[str, Callable[[dict[str, Any]], Event]] = {t.KIND: t.from_wire for t in EVENT_TYPES}
# What a line's fields may fail with when they are not what the kind says.
_BAD = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError,
        RecursionError)


def decode(line: bytes | str) -> Event:
    """The event on one line. Raises ProtocolError (UnknownEventKind for a kind not defined
    here), never anything else, whatever the line holds."""
    try:
        wire = json.loads(line)
        kind = wire["ev"]
        parse = KINDS.get(kind)
    except _BAD as e:
        raise ProtocolError(f"not an event: {type(e).__name__}: {e}") from None
    if parse is None:
        raise UnknownEventKind(str(kind))
    try:
        return parse(wire)
    except _BAD as e:
        raise ProtocolError(f"bad {kind} event: {type(e).__name__}: {e}") from None
