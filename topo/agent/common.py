"""What every agent process shares: its configuration, the event files, the start signal.

Agents run inside the containers with the standard library only (topo's own queue client,
``topo.agent.resp``, and its own /proc reader, ``topo.agent.telemetry``); the peer agents add
the queue library they run.

Every process appends event lines (``topo.agent.protocol``) to its own file under
``<run dir>/events/``, a folder that is bind-mounted from the host. The harness builds its
ledger from these files, never from Redis or from a process that a fault may kill, and every
line goes to the kernel in one write(2) as soon as it is made (no buffer in the process), so
a SIGKILL loses at most the line being written.
Times are ``time.time()``: containers share the host's clock, so they are host wall-clock
seconds.
"""

from __future__ import annotations

import encodings.ascii  # noqa: F401  (see below)
import os
import sys
import threading
import time

from topo import workloads
from topo.agent.protocol import AgentConfig, Error, Event, Poison, Ready, Task

TYPE_CHECKING = False  # typing is for the type checker only (see topo.agent.protocol)
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn

# The agents read /proc and /sys with encoding="ascii", from the telemetry thread and from
# every process, and the pools fork while that thread runs. The codec's module is imported
# on first use, under an import lock: a fork taken while the telemetry thread held it left
# the child blocked on that lock for good (an mp-pool worker that never became ready). So
# the codec is imported here, before any thread starts.

RUN_DIR = os.environ.get("TOPO_RUN_DIR", "/run/topo")
GO_FILE = "go"
EVENTS = "events"


def config() -> AgentConfig:
    """The agent's configuration, passed by the harness as JSON in ``TOPO_CONFIG``."""
    return AgentConfig.load()


class Events:
    """Append-only event file of one process. Each line is handed to the kernel at once, in
    one write(2), so a process killed after ``write`` returned has lost none of it."""

    def __init__(self, name: str) -> None:
        path = os.path.join(RUN_DIR, EVENTS, f"{name}.jsonl")
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self._lock = threading.Lock()  # the telemetry and heartbeat threads write here too

    def emit(self, event: Event) -> None:
        self.write(event.encode())

    def write(self, line: bytes) -> None:
        """Append ready-made lines (``TaskLines``) whole; a short write (a full disk) goes
        on from where it stopped."""
        with self._lock:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]


def cpu_quota() -> float | None:
    """CPUs allowed by this container's CFS quota (cgroup v2 or v1); None if unlimited."""
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as f:
            quota, period = f.read().split()
        return None if quota == "max" else int(quota) / int(period)
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", encoding="ascii") as f:
            quota_us = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us", encoding="ascii") as f:
            period_us = int(f.read())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 else quota_us / period_us


def announce_ready(events: Events, worker: str, container: str, tid: int | None = None) -> None:
    """Say this worker process is ready, with what it sees of its CPUs (the cpu_count trap).

    Call it from the thread that will run the tasks: its id (``tid``, the kernel's, as in
    /proc/<pid>/task/) is how the harness tells task CPU from the CPU of the agent's other
    threads in the telemetry's per-thread figures."""
    events.emit(Ready(
        worker=worker,
        container=container,
        t=time.time(),
        cpu_count=os.cpu_count() or 1,
        affinity=len(os.sched_getaffinity(0)),
        quota=cpu_quota(),
        tid=threading.get_native_id() if tid is None else tid,
    ))


def wait_for_go(poll: float = 0.002) -> float:
    """Block until the harness releases the batch; return the time it was seen."""
    path = os.path.join(RUN_DIR, GO_FILE)
    while not os.path.exists(path):
        time.sleep(poll)
    return time.time()


MIB = 1024 * 1024
OOM_CHUNK = 16 * MIB  # allocated (and every page touched) at a time
OOM_OVERSHOOT = 256 * MIB  # how far past the limit to go before giving up on the OOM killer
OOM_NO_LIMIT_CAP = 4096 * MIB  # where to stop when no limit can be read
_UNLIMITED = 1 << 60  # cgroup v1 says "no limit" with a number near 2**63


def memory_limit() -> int | None:
    """Bytes this container may use (cgroup v2 or v1); None if unlimited or unreadable."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as f:
                raw = f.read().strip()
        except OSError:
            continue
        if raw == "max":
            return None
        try:
            limit = int(raw)
        except ValueError:
            continue
        return None if limit <= 0 or limit >= _UNLIMITED else limit
    return None


def exceed_memory_limit() -> NoReturn:
    """Allocate past the container's memory limit so that the kernel's OOM killer ends this
    process (the ``oom`` fault). Memory goes in 16 MiB chunks, each page written, up to the
    limit + 256 MiB; if the process is still alive then (or no limit was readable: stop at
    4 GiB) it raises MemoryError, which makes the attempt a plain failure."""
    limit = memory_limit()
    target = OOM_NO_LIMIT_CAP if limit is None else limit + OOM_OVERSHOOT
    hoard: list[bytearray] = []
    held = 0
    while held < target:
        hoard.append(bytearray(b"\x5a") * OOM_CHUNK)  # a non-zero fill writes every page
        held += OOM_CHUNK
    what = "no memory limit found" if limit is None else f"limit {limit // MIB} MiB"
    raise MemoryError(f"poison task held {held // MIB} MiB and was not killed ({what})")


def bind_task(cfg: AgentConfig) -> Callable[[int], Any]:
    """``run(task_id)`` for this agent's workload: the one task-running path every agent
    (each pool kind and the multi worker) uses, so a poison task behaves the same in all."""
    run = workloads.bind(cfg.task, dict(cfg.params), cfg.seed, cfg.data_dir)
    poison = frozenset(cfg.poison)  # ids that exceed the memory limit instead (oom fault)
    if not poison:
        return run

    def run_or_poison(task_id: int) -> Any:
        if task_id in poison:
            # The moment the fault begins, for the harness (its own file: the process is
            # about to be OOM-killed and must not leave a half-written line elsewhere).
            Events(f"{cfg.container}-{os.getpid()}-poison").emit(
                Poison(id=task_id, container=cfg.container, t=time.time()))
            exceed_memory_limit()
        return run(task_id)

    return run_or_poison


def task_record(task_id: int, worker: str, fn: Any, core_of: Any) -> Task:
    """Run ``fn(task_id)`` and describe the attempt; an exception is a failed attempt.

    ``cpu`` is this thread's own CPU clock around the call: the process clock would also
    count the telemetry and heartbeat threads that run beside the task, charging their CPU
    to the task and hiding it from coordination. (Threads the task itself starts are not
    counted here; the telemetry counts them with the agent's other threads.)"""
    cpu0 = time.thread_time()
    t0 = time.time()
    err = None
    try:
        fn(task_id)
    except Exception as e:  # a task's own failure is data, not a crash of the worker
        err = f"{type(e).__name__}: {e}"[:300]
    t1 = time.time()
    return Task(id=task_id, worker=worker, ok=err is None, start=t0, end=t1,
                cpu=time.thread_time() - cpu0, core=core_of(), error=err)


class TaskLines:
    """Runs one worker process's tasks and makes their ``task`` lines, byte for byte the
    line ``task_record(...).encode()`` makes, without building a Task and its dict for each
    task: on the multi worker's per-task path those cost more than the queue's work did
    (benchmarks/dispatch_rate.py --profile). A failed attempt, rare, takes the plain way."""

    def __init__(self, worker: str, core_of: Callable[[], int] | None = None) -> None:
        import json  # the worker's name, escaped once, is all this needs json for

        self.worker = worker
        self.core_of = core_reader() if core_of is None else core_of
        self._head = b'{"ev":"task","id":'
        self._who = b',"w":' + json.dumps(worker).encode() + b',"ok":true,"t0":'

    def run(self, task_id: int, fn: Callable[[int], Any]) -> bytes:
        """Run ``fn(task_id)``; its line (``cpu``: this thread's clock, as task_record)."""
        thread_time, now = time.thread_time, time.time
        cpu0 = thread_time()
        t0 = now()
        try:
            fn(task_id)
        except Exception as e:  # a task's own failure is data, not a crash of the worker
            t1 = now()
            return Task(id=task_id, worker=self.worker, ok=False, start=t0, end=t1,
                        cpu=thread_time() - cpu0, core=self.core_of(),
                        error=f"{type(e).__name__}: {e}"[:300]).encode()
        t1 = now()
        cpu = thread_time() - cpu0
        return b'%s%d%s%r,"t1":%r,"cpu":%r,"core":%d,"err":null}\n' % (
            self._head, task_id, self._who, t0, t1, cpu, self.core_of())


def core_reader() -> Callable[[], int]:
    """The CPU the calling thread runs on, read through glibc's sched_getcpu (the vDSO:
    ~0.1 us, where /proc costs ~13 us a call); from the thread's own stat file (its 39th
    field, "processor", what psutil's ``cpu_num`` reads) where that is missing (another
    libc)."""
    try:
        import ctypes  # standard library; imported here, by the workers that need it

        getcpu = ctypes.CDLL(None, use_errno=True).sched_getcpu
        getcpu.restype, getcpu.argtypes = ctypes.c_int, []
        if getcpu() >= 0:
            return getcpu
    except (OSError, AttributeError):
        pass
    return _core_from_proc


def _core_from_proc(stat: str = "/proc/thread-self/stat") -> int:
    return int(read_stat(stat)[1][36])  # field 39, "processor"


def read_stat(path: str) -> tuple[bytes, list[bytes]]:
    """A /proc stat file (of a process or a thread): its name, which lies between the first
    "(" and the last ")" and may hold either, and its fields from the 3rd (state) on."""
    with open(path, "rb") as f:
        stat = f.read()
    end = stat.rfind(b")")
    return stat[stat.find(b"(") + 1:end], stat[end + 2:].split()


def failed(events: Events, worker: str, task_id: int, err: str, t: float | None = None) -> None:
    """The record of a task given up without an answer from the worker that ran it (a
    broken pool, a task delivered too often): a failed attempt that never started."""
    events.emit(Task(id=task_id, worker=worker, ok=False, start=None,
                     end=time.time() if t is None else t, error=err[:300]))


def fatal(events: Events | None, container: str, exc: BaseException) -> None:
    """Record why an agent is dying, then exit non-zero."""
    msg = f"{type(exc).__name__}: {exc}"[:500]
    if events is not None:
        events.emit(Error(container=container, t=time.time(), error=msg))
    print(f"topo agent: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)
