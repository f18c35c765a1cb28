"""PID 1 of the ``single`` topology: one container, N worker processes in a pool.

Each pool worker writes its own task records (timestamps taken where the work happens).
PID 1 writes a failure record only for a task the pool could not run to an answer, such as
every pending task of a ProcessPoolExecutor once one of its workers has been killed.

Pool kinds (config ``pool``, ``PoolKind``):
- ``process-pool``: concurrent.futures.ProcessPoolExecutor. One dead worker breaks the pool:
  every pending task fails.
- ``mp-pool``: multiprocessing.Pool. A dead worker is replaced (the new one says ``ready``)
  but the task it was running never comes back. PID 1 notices that the pool has stalled and
  gives up on those tasks (``stall`` line; they are lost) instead of waiting forever.
- ``supervisor``: PID 1 forks N independent workers, hands each one task at a time, and when
  one dies it respawns it and hands the task to another (``requeue``); a task whose
  deliveries all died ``max_attempts`` times is given up (a failed record).

Preload (config ``preload``): with it, PID 1 imports the task's module (and so everything
it imports) before it forks the workers, which then share those pages copy-on-write; without
it, PID 1 only checks that the module can be found, without running it, and each worker
imports it on its own. Every pool forks, so that the difference is the import alone.

Usage: ``python3 -m topo.agent.single`` with ``TOPO_CONFIG`` set.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import multiprocessing
import multiprocessing.pool
import os
import queue
import statistics
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_any
from typing import Any, Callable

import psutil

from topo.agent import common, telemetry
from topo.agent.common import (
    Events, announce_ready, bind_task, config, failed, fatal, task_record, wait_for_go,
)
from topo.agent.protocol import (
    AgentConfig, Avail, Error, Exit, Expect, PoolKind, Requeue, Stall, Task,
)
from topo.workloads import BUILTINS

MAX_ATTEMPTS = 3  # deliveries of one task before the supervisor gives it up
STALL_MIN = 5.0  # seconds: the shortest stall mp-pool waits out before giving up
STALL_TASKS = 20  # ... and at least this many median task wall times
STALL_FIRST = 60.0  # seconds, while no task has completed yet (no median to go by)
CHILDREN_EVERY = 0.1  # seconds between looks at the pool's processes (mp-pool)

# Set in each pool worker by _init (fork keeps nothing of these from the parent).
_state: dict[str, Any] = {}


def _init(cfg: AgentConfig) -> None:
    pid = os.getpid()
    worker = f"{cfg.container}/{pid}"
    events = Events(f"{cfg.container}-{pid}")
    try:
        run = bind_task(cfg)  # without preload, the worker's own import of the task module
    except Exception as exc:  # named here: the pool would only say that a worker broke
        events.emit(Error(container=cfg.container, t=time.time(),
                          error=f"{type(exc).__name__}: {exc}"[:500]))
        raise
    _state.update(worker=worker, events=events, run=run, core_of=common.core_reader())
    announce_ready(events, worker, cfg.container)


def locate(task: str) -> None:
    """Check that the module of ``task`` can be found, without running it or its parent
    packages (``importlib.util.find_spec`` of a dotted name would import the parents);
    raise ModuleNotFoundError as ``import`` would when it cannot be."""
    if task in BUILTINS:
        return
    module = task.partition(":")[0]
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)  # a top-level name is found, not run
    if spec is None:
        raise ModuleNotFoundError(f"No module named {top!r}", name=top)
    folders = list(spec.submodule_search_locations or ())
    name = top
    for part in rest:
        if not folders:
            raise ModuleNotFoundError(f"No module named {module!r}; {name!r} is not a package",
                                      name=name)
        name = f"{name}.{part}"
        packages = [p for p in (os.path.join(f, part) for f in folders) if os.path.isdir(p)]
        files = [os.path.join(f, part + suffix) for f in folders
                 for suffix in importlib.machinery.all_suffixes()]
        if not packages and not any(os.path.isfile(p) for p in files):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        folders = packages


def _run(task_id: int) -> Task:
    record = task_record(task_id, _state["worker"], _state["run"], _state["core_of"])
    _state["events"].emit(record)
    return record


def _run_quiet(task_id: int) -> None:
    """process-pool's task: run it and write its record, and send PID 1 nothing back (it
    reads only whether the call raised): pickling a record in the worker and unpickling it
    in PID 1 cost CPU per task that no ledger figure needs."""
    _run(task_id)


def _run_timed(task_id: int) -> float:
    """mp-pool's task: run it, write its record, return its wall time to PID 1."""
    record = _run(task_id)
    return record.end - (record.start or record.end)


def _ping() -> int:
    return os.getpid()


def pool_size(cfg: AgentConfig) -> int:
    """N processes, or what os.cpu_count() says in here for "auto" (host cores, not quota)."""
    processes = cfg.processes
    if processes is None:
        raise ValueError("a single agent's configuration needs processes")
    return (os.cpu_count() or 1) if processes == "auto" else int(processes)


def run_process_pool(cfg: AgentConfig, events: Events) -> None:
    """ProcessPoolExecutor, the common way. One dead worker breaks the whole pool."""
    n = pool_size(cfg)
    events.emit(Expect(container=cfg.container, n=n, t=time.time()))
    with ProcessPoolExecutor(max_workers=n, initializer=_init, initargs=(cfg,),
                             mp_context=multiprocessing.get_context("fork")) as pool:
        try:
            pool.submit(_ping).result()  # with fork, the first submit starts all N workers
        except BrokenProcessPool:
            if not cfg.preload:
                # A worker's import failed (its own error line says so); PID 1 says the same
                # rather than "broken pool", whichever line the harness reads first.
                bind_task(cfg)
            raise
        wait_for_go()
        events.emit(Avail(container=cfg.container, t=time.time(), n=cfg.tasks))
        settled = _Settled(events, cfg.container, cfg.tasks)
        for i in range(cfg.tasks):
            settled.watch(pool.submit(_run_quiet, i), i)
        settled.wait()


class _Settled:
    """process-pool's futures, counted as they settle; a failed one gets its record.

    A done-callback, run by the executor's own management thread as it settles each future:
    waiting with ``as_completed`` also woke PID 1's main thread once per task, for nothing
    but a count (about 0.05 ms of CPU per task, a third of what PID 1 spent besides the
    executor's own threads). A broken pool settles every pending future with its error, so
    each of them still gets a failed record."""

    def __init__(self, events: Events, container: str, n: int) -> None:
        self.events = events
        self.container = container
        self.left = n
        self._lock = threading.Lock()
        self._done = threading.Event()
        if n == 0:
            self._done.set()

    def watch(self, fut: Future[None], task_id: int) -> None:
        fut.add_done_callback(lambda f: self.settle(f, task_id))

    def settle(self, fut: Future[None], task_id: int) -> None:
        exc = fut.exception()
        if exc is not None:
            failed(self.events, self.container, task_id, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.left -= 1
            if self.left == 0:
                self._done.set()

    def wait(self) -> None:
        self._done.wait()


# --------------------------------------------------------------------------- mp-pool


def _live_children() -> set[int]:
    """PIDs of this process's children that are still running (not zombies)."""
    out = set()
    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                out.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def stall_after(cfg: AgentConfig, walls: list[float]) -> float:
    """Seconds without a completion after which mp-pool stops waiting (``stall_timeout``)."""
    if cfg.stall_timeout is not None:
        return cfg.stall_timeout
    if not walls:
        return STALL_FIRST
    return max(STALL_MIN, STALL_TASKS * statistics.median(walls))


def run_mp_pool(cfg: AgentConfig, events: Events) -> None:
    """multiprocessing.Pool with one apply_async per task.

    When a worker dies, the Pool starts a replacement (its initializer writes ``ready``) but
    the task that worker was running never completes, and nothing says so. PID 1 watches its
    children: once one of them has died and no task has completed for the stall timeout
    while results are still pending, it writes a ``stall`` line naming the pending ids (no
    task line: they are lost), kills the pool and exits 0. Without a death a slow or frozen
    task is waited for (the harness's run timeout is the backstop).

    A worker killed while it holds one of the pool's queue locks freezes every other worker
    too (they wait for the lock forever): the same stall ends the run, with every pending
    task lost. Pool.terminate, and the exit handler that calls it, would wait for that lock
    as well, so after a death PID 1 kills the workers itself and leaves with os._exit.
    """
    container = cfg.container
    n = pool_size(cfg)
    events.emit(Expect(container=container, n=n, t=time.time()))
    pool = multiprocessing.get_context("fork").Pool(n, initializer=_init, initargs=(cfg,))
    known = _live_children()  # the N workers (started by the constructor): a death counts
    deaths = 0                # from here on, also one before the batch is released
    try:
        wait_for_go()
        events.emit(Avail(container=container, t=time.time(), n=cfg.tasks))
        done: Done = queue.SimpleQueue()
        pending = set(range(cfg.tasks))
        for i in range(cfg.tasks):
            ok, err = _report_to(done, i)
            pool.apply_async(_run_timed, (i,), callback=ok, error_callback=err)
        walls: list[float] = []
        last_done = time.monotonic()
        next_look = 0.0
        while pending:
            try:
                task_id, wall, exc = done.get(timeout=CHILDREN_EVERY)
            except queue.Empty:
                pass
            else:
                pending.discard(task_id)
                last_done = time.monotonic()
                if exc is not None:  # the pool could not run it (not the task's own error)
                    failed(events, container, task_id, f"{type(exc).__name__}: {exc}")
                elif wall is not None:
                    walls.append(wall)
            now = time.monotonic()
            if now >= next_look:
                next_look = now + CHILDREN_EVERY
                alive = _live_children()
                for pid in sorted(known - alive):
                    deaths += 1
                    events.emit(Exit(container=container, t=time.time(),
                                     worker=f"{container}/{pid}", code=None))
                known = alive
            if deaths and pending and now - last_done >= stall_after(cfg, walls):
                events.emit(Stall(container=container, t=time.time(),
                                  pending=tuple(sorted(pending))))
                break
    except Exception as exc:
        if deaths or _live_children() != known:
            _abandon_pool(pool, events, container, exc)
        pool.terminate()
        raise
    if deaths or _live_children() != known:
        _abandon_pool(pool, events, container, None)
    pool.terminate()


Done = queue.SimpleQueue[tuple[int, float | None, BaseException | None]]


def _report_to(done: Done, task_id: int) -> tuple[Callable[[float], None],
                                                     Callable[[BaseException], None]]:
    """mp-pool's callbacks for one task: its wall time, or why the pool could not run it."""
    def ok(wall: float) -> None:
        done.put((task_id, wall, None))

    def err(exc: BaseException) -> None:
        done.put((task_id, None, exc))

    return ok, err


def _abandon_pool(pool: Any, events: Events, container: str, exc: BaseException | None) -> None:
    """Kill every pool worker and exit now, without Pool.terminate (see run_mp_pool).

    First the Pool's worker-handler thread is told to stop, as Pool.terminate does (a private
    attribute: terminate itself is what may hang): it wakes on each death, and would otherwise
    fork a replacement for every worker killed here, one of which could announce itself
    before this process exits (a worker too many in the run's count)."""
    pool._worker_handler._state = multiprocessing.pool.TERMINATE
    for child in psutil.Process().children():
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    if exc is not None:
        events.emit(Error(container=container, t=time.time(),
                          error=f"{type(exc).__name__}: {exc}"[:500]))
    os._exit(0 if exc is None else 1)


# --------------------------------------------------------------------------- supervisor


_parent_ends: list[Connection] = []  # PID 1's ends of every worker pipe (closed in children)


def _supervised(cfg: AgentConfig, conn: Connection) -> None:
    """A supervised worker: take one task id at a time from PID 1, run it, say it is done."""
    for end in _parent_ends:
        end.close()
    _init(cfg)
    while True:
        try:
            task_id = conn.recv()
        except (EOFError, OSError):
            return
        if task_id is None:
            return
        record = _run(task_id)
        try:
            conn.send((task_id, record.ok))
        except OSError:  # PID 1 is gone
            return


class Supervisor:
    """PID 1: N independent workers, one task each at a time, the dead replaced."""

    def __init__(self, cfg: AgentConfig, events: Events) -> None:
        self.cfg = cfg
        self.events = events
        self.container = cfg.container
        self.me = f"{self.container}/{os.getpid()}"
        self.max_attempts = cfg.max_attempts or MAX_ATTEMPTS
        self.ctx = multiprocessing.get_context("fork")
        self.todo: deque[int] = deque()
        self.attempts: dict[int, int] = {}
        self.outcome: set[int] = set()
        self.procs: dict[int, Any] = {}  # slot -> multiprocessing.Process
        self.conns: dict[int, Connection] = {}  # slot -> PID 1's end of its pipe
        self.holding: dict[int, int | None] = {}  # slot -> task id it is running
        self.idle_deaths = 0

    def spawn(self, slot: int) -> None:
        ours, theirs = self.ctx.Pipe()
        _parent_ends.append(ours)
        proc = self.ctx.Process(target=_supervised, args=(self.cfg, theirs), daemon=True,
                                name=f"topo-worker-{slot}")
        proc.start()
        theirs.close()
        self.procs[slot], self.conns[slot], self.holding[slot] = proc, ours, None

    def dispatch(self) -> None:
        for slot, held in self.holding.items():
            if held is not None or not self.todo:
                continue
            task_id = self.todo.popleft()
            self.attempts[task_id] = self.attempts.get(task_id, 0) + 1
            try:
                self.conns[slot].send(task_id)
            except OSError:  # it just died; its sentinel says so next round
                self.todo.appendleft(task_id)
                self.attempts[task_id] -= 1
                continue
            self.holding[slot] = task_id

    def receive(self, slot: int) -> None:
        """Take every answer waiting on ``slot``'s pipe."""
        conn = self.conns[slot]
        try:
            while conn.poll():
                task_id, _ok = conn.recv()
                self.outcome.add(task_id)
                if self.holding[slot] == task_id:
                    self.holding[slot] = None
        except (EOFError, OSError):
            pass  # the worker is gone; its sentinel is handled by reap

    def reap(self, slot: int) -> None:
        """``slot``'s worker died: record it, hand its task on (or give it up), respawn."""
        proc = self.procs[slot]
        proc.join()
        self.receive(slot)  # an answer it sent just before dying still counts
        now = time.time()
        dead = f"{self.container}/{proc.pid}"
        self.events.emit(Exit(container=self.container, t=now, worker=dead, code=proc.exitcode))
        task_id = self.holding[slot]
        self.conns[slot].close()
        _parent_ends.remove(self.conns[slot])
        if task_id is None or task_id in self.outcome:
            self.idle_deaths += 1
            if self.idle_deaths > 10 * len(self.procs) + 10:
                raise RuntimeError(f"workers keep dying without a task (last exit code "
                                   f"{proc.exitcode}); the supervisor gives up")
        else:
            tries = self.attempts[task_id]
            # given up is not a re-delivery: the line still says the worker lost the task
            self.events.emit(Requeue(id=task_id, worker=dead, by=self.me, t=now,
                                     dead=tries >= self.max_attempts))
            if tries >= self.max_attempts:
                self.outcome.add(task_id)
                failed(self.events, self.container, task_id, f"given up after {tries} attempts")
            else:
                self.todo.appendleft(task_id)
        self.holding[slot] = None
        if len(self.outcome) < self.cfg.tasks:
            self.spawn(slot)
        else:
            del self.procs[slot], self.conns[slot], self.holding[slot]

    def run(self) -> None:
        n = pool_size(self.cfg)
        self.events.emit(Expect(container=self.container, n=n, t=time.time()))
        for slot in range(n):
            self.spawn(slot)
        try:
            wait_for_go()
            self.events.emit(Avail(container=self.container, t=time.time(), n=self.cfg.tasks))
            self.todo.extend(range(self.cfg.tasks))
            self.dispatch()
            while len(self.outcome) < self.cfg.tasks:
                by_conn = {id(c): s for s, c in self.conns.items()}
                by_sentinel = {p.sentinel: s for s, p in self.procs.items()}
                ready = wait_any([*self.conns.values(), *by_sentinel])
                dead = []
                for obj in ready:
                    if isinstance(obj, int):
                        dead.append(by_sentinel[obj])
                    else:
                        self.receive(by_conn[id(obj)])
                for slot in dead:
                    self.reap(slot)
                self.dispatch()
        finally:
            self.stop()

    def stop(self) -> None:
        for conn in self.conns.values():
            try:
                conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        for proc in self.procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()


def run_supervisor(cfg: AgentConfig, events: Events) -> None:
    Supervisor(cfg, events).run()


POOLS: dict[PoolKind, Callable[[AgentConfig, Events], None]] = {
    PoolKind.PROCESS_POOL: run_process_pool,
    PoolKind.MP_POOL: run_mp_pool,
    PoolKind.SUPERVISOR: run_supervisor,
}


def main() -> None:
    cfg = config()
    events = None
    try:
        events = Events(f"{cfg.container}-{os.getpid()}")
        # Look for the workload here first: a task that cannot be imported is then reported
        # as itself, not as the broken pool it would leave behind.
        if cfg.preload:
            bind_task(cfg)  # imported once, here, before the fork
        else:
            locate(cfg.task)
        if cfg.telemetry:
            telemetry.start(events, cfg.container)  # sees every process of the container
        if cfg.pool is None:
            raise ValueError("a single agent's configuration needs pool")
        POOLS[cfg.pool](cfg, events)
    except Exception as exc:  # recorded for the harness, then a non-zero exit
        fatal(events, cfg.container, exc)


if __name__ == "__main__":
    main()
