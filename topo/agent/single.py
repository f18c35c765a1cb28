"""PID 1 of the ``single`` topology: one container, N worker processes in a pool.

Each pool worker writes its own task records (timestamps taken where the work happens).
PID 1 writes a failure record only for a task the pool could not run to an answer, such as
every pending task of a ProcessPoolExecutor once one of its workers has been killed.

Pool kinds (config ``pool``, ``PoolKind``):
- ``process-pool``: concurrent.futures.ProcessPoolExecutor, given the ids in chunks (as
  ``Executor.map``'s ``chunksize`` would). One dead worker breaks the pool: every task that
  has not written its own line fails.
- ``mp-pool``: multiprocessing.Pool. A dead worker is replaced (the new one says ``ready``)
  but the task it was running never comes back. PID 1 notices that the pool has stalled and
  gives up on those tasks (``stall`` line; they are lost) instead of waiting forever.
- ``supervisor``: PID 1 forks N independent workers, each running one task at a time (PID 1
  sends it the next one ahead, so that it does not wait for PID 1 between tasks), and when
  one dies it respawns it and hands the task it was running to another (``requeue``); the
  one sent ahead had not started and simply goes back, uncharged. A task whose deliveries
  all died ``max_attempts`` times is given up (a failed record).

Preload (config ``preload``): with it, PID 1 imports the task's module (and so everything
it imports) before it forks the workers, which then share those pages copy-on-write; without
it, PID 1 only checks that the module can be found, without running it, and each worker
imports it on its own. Every pool forks, so that the difference is the import alone.

Usage: ``python3 -m topo.agent.single`` with ``TOPO_CONFIG`` set.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import mmap
import multiprocessing
import multiprocessing.pool
import os
import queue
import select
import signal
import socket
import statistics
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Callable

from topo.agent import common, telemetry
from topo.agent.common import (
    Events, TaskLines, announce_ready, bind_task, config, failed, fatal, wait_for_go,
)
from topo.agent.protocol import (
    AgentConfig, Avail, Error, Exit, Expect, PoolKind, Requeue, Stall,
)
from topo.workloads import BUILTINS

MAX_ATTEMPTS = 3  # deliveries of one task before the supervisor gives it up
AHEAD = 1  # supervisor: tasks sent to a worker beyond the one it runs
STALL_MIN = 5.0  # seconds: the shortest stall mp-pool waits out before giving up
STALL_TASKS = 20  # ... and at least this many median task wall times
STALL_FIRST = 60.0  # seconds, while no task has completed yet (no median to go by)
CHILDREN_EVERY = 0.1  # seconds between looks at the pool's processes (mp-pool)

# Set in each pool worker by _init (fork keeps nothing of these from the parent).
_state: dict[str, Any] = {}


def _init(cfg: AgentConfig, done: mmap.mmap | None = None) -> None:
    """A pool worker's start: its event file, its task, its ``ready`` line. ``done``
    (process-pool only) is PID 1's map of finished ids, shared across the fork."""
    pid = os.getpid()
    worker = f"{cfg.container}/{pid}"
    events = Events(f"{cfg.container}-{pid}")
    try:
        run = bind_task(cfg)  # without preload, the worker's own import of the task module
    except Exception as exc:  # named here: the pool would only say that a worker broke
        events.emit(Error(container=cfg.container, t=time.time(),
                          error=f"{type(exc).__name__}: {exc}"[:500]))
        raise
    _state.update(worker=worker, events=events, run=run, done=done,
                  lines=TaskLines(worker, common.core_reader()))
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


def _run(task_id: int) -> None:
    """Run one task and write its line (``TaskLines``: the line ``task_record`` would make,
    without a Task object per task; the multi worker writes its lines the same way)."""
    _state["events"].write(_state["lines"].run(task_id, _state["run"]))


def _run_chunk(ids: range) -> list[tuple[int, str]]:
    """process-pool's call: run the tasks of ``ids`` in order, each writing its own line and
    then marking its id done in PID 1's map (so that PID 1, if the pool breaks, writes off
    only the ids that have no line). PID 1 gets back nothing per task (pickling records
    cost CPU that no ledger figure needs), only the tasks that raised past the task's own
    error handling (a BaseException such as SystemExit): as with a call per task, the pool
    reports those and they fail, while the rest of the chunk runs."""
    events, lines, run, done = _state["events"], _state["lines"], _state["run"], _state["done"]
    escaped = []
    for i in ids:
        try:
            events.write(lines.run(i, run))
        except BaseException as exc:  # noqa: B036  (as the pool's own worker loop does)
            escaped.append((i, f"{type(exc).__name__}: {exc}"))  # no line: not done
        else:
            done[i] = 1
    return escaped


def _run_timed(task_id: int) -> float:
    """mp-pool's task: run it, write its record, return its wall time to PID 1 (the stall
    timeout goes by these; the line's write is inside, a few microseconds)."""
    t0 = time.time()
    _run(task_id)
    return time.time() - t0


def _ping() -> int:
    return os.getpid()


def pool_size(cfg: AgentConfig) -> int:
    """N processes, or what os.cpu_count() says in here for "auto" (host cores, not quota)."""
    processes = cfg.processes
    if processes is None:
        raise ValueError("a single agent's configuration needs processes")
    return (os.cpu_count() or 1) if processes == "auto" else int(processes)


CHUNK_MAX = 16  # process-pool: tasks per call at most
CHUNK_SHARE = 4  # ... and at most 1 / (CHUNK_SHARE x N) of the tasks not yet handed out


def chunks(tasks: int, workers: int) -> Iterator[range]:
    """process-pool's calls: the ids 0..tasks-1 in consecutive chunks, by guided
    self-scheduling (Polychronopoulos & Kuck, 1987): each chunk is
    ceil(left / (CHUNK_SHARE x workers)) ids, ``left`` being the ids not yet in a chunk, and
    at most CHUNK_MAX.

    Why: a call costs PID 1 and the worker about 0.3 ms of CPU (pickling, two queues, the
    executor's threads, a future), 3% of a 10 ms task; a chunk of k pays it once for k tasks.
    The pool hands calls out in order, so the chunks still ahead when a worker frees up are
    the last ones, which shrink to 1 task: the batch ends with the workers at most about one
    task apart, where equal chunks of k would leave up to k tasks of idle time on a worker
    at the end. The share keeps every chunk a small part of what is left for each worker (a
    tiny batch runs one task per call); past CHUNK_MAX a call's cost per task is under 1/16
    of what it was, under 0.2% of a 10 ms task, and bigger chunks would buy nothing more."""
    start, share = 0, CHUNK_SHARE * max(workers, 1)
    while start < tasks:
        size = min(CHUNK_MAX, -(-(tasks - start) // share))
        yield range(start, start + size)
        start += size


def run_process_pool(cfg: AgentConfig, events: Events) -> None:
    """ProcessPoolExecutor, the common way, with chunks of ids per call as Executor.map's
    ``chunksize`` makes them (``chunks``). One dead worker breaks the whole pool: every task
    without a line of its own then fails, written off by PID 1 once the pool is gone."""
    n = pool_size(cfg)
    events.emit(Expect(container=cfg.container, n=n, t=time.time()))
    done = mmap.mmap(-1, max(cfg.tasks, 1))  # shared, anonymous: 1 byte per id, 0 = not done
    with ProcessPoolExecutor(max_workers=n, initializer=_init, initargs=(cfg, done),
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
        calls = list(chunks(cfg.tasks, n))
        settled = _Settled(len(calls))
        for k, ids in enumerate(calls):
            try:
                fut = pool.submit(_run_chunk, ids)
            except BrokenProcessPool as exc:  # broken while PID 1 was still submitting
                settled.unsent(calls[k:], exc)
                break
            settled.watch(fut, ids)
        settled.wait()
    # Leaving the block waited for the executor's threads; after a break they have ended
    # every worker, so no line can come after this look at ``done``.
    settled.write_off(events, cfg.container, done)


class _Settled:
    """process-pool's calls, counted as they settle; what a failed call did not run is
    written off once the pool has stopped (``write_off``).

    A done-callback, run by the executor's own management thread as it settles each future:
    waiting with ``as_completed`` also woke PID 1's main thread once per call, for nothing
    but a count. A broken pool settles every pending future with its error; the ids of such
    a call that had already written their line (done in the shared map) keep it and get no
    failed record, each other one gets one. The executor settles the futures before it
    ends the other workers, so the map is read only after that, when none can write."""

    def __init__(self, calls: int) -> None:
        self.left = calls
        self.failures: list[tuple[range | tuple[int, ...], str, float]] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        if calls == 0:
            self._done.set()

    def watch(self, fut: Future[list[tuple[int, str]]], ids: range) -> None:
        fut.add_done_callback(lambda f: self.settle(f, ids))

    def settle(self, fut: Future[list[tuple[int, str]]], ids: range) -> None:
        now = time.time()
        exc = fut.exception()
        with self._lock:
            if exc is not None:
                self.failures.append((ids, f"{type(exc).__name__}: {exc}", now))
            else:
                self.failures.extend(((i,), err, now) for i, err in fut.result())
            self.left -= 1
            if self.left == 0:
                self._done.set()

    def unsent(self, calls: list[range], exc: BaseException) -> None:
        """The calls a broken pool refused: they fail as the pending ones do."""
        now = time.time()
        with self._lock:
            self.failures.extend((ids, f"{type(exc).__name__}: {exc}", now) for ids in calls)
            self.left -= len(calls)
            if self.left == 0:
                self._done.set()

    def wait(self) -> None:
        self._done.wait()

    def write_off(self, events: Events, container: str, done: mmap.mmap) -> None:
        """A failed record, at the time its call failed, for every id a failure left
        without a line of its own (not marked done)."""
        for ids, err, t in self.failures:
            for i in ids:
                if not done[i]:
                    failed(events, container, i, err, t)


# --------------------------------------------------------------------------- mp-pool


def _live_children() -> set[int]:
    """PIDs of this process's children that are still running (not zombies)."""
    return {pid for pid, state in telemetry.children(os.getpid()) if state != "Z"}


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
        _abandon_pool(pool, events, container, None, cfg.linger)
    pool.terminate()


if TYPE_CHECKING:
    Done = queue.SimpleQueue[tuple[int, float | None, BaseException | None]]
else:  # ``float | None`` evaluated needs Python 3.10; the agents run on 3.9 too
    Done = queue.SimpleQueue


def _report_to(done: Done, task_id: int) -> tuple[Callable[[float], None],
                                                     Callable[[BaseException], None]]:
    """mp-pool's callbacks for one task: its wall time, or why the pool could not run it."""
    def ok(wall: float) -> None:
        done.put((task_id, wall, None))

    def err(exc: BaseException) -> None:
        done.put((task_id, None, exc))

    return ok, err


def _abandon_pool(pool: Any, events: Events, container: str, exc: BaseException | None,
                  stay: float | None = None) -> None:
    """Kill every pool worker and exit now, without Pool.terminate (see run_mp_pool).

    First the Pool's worker-handler thread is told to stop, as Pool.terminate does (a private
    attribute: terminate itself is what may hang): it wakes on each death, and would otherwise
    fork a replacement for every worker killed here, one of which could announce itself
    before this process exits (a worker too many in the run's count)."""
    pool._worker_handler._state = multiprocessing.pool.TERMINATE
    for pid, _ in telemetry.children(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # ended meanwhile (a zombie is still there to kill)
            pass
    if exc is not None:
        events.emit(Error(container=container, t=time.time(),
                          error=f"{type(exc).__name__}: {exc}"[:500]))
    else:
        linger(stay)
    os._exit(0 if exc is None else 1)


# --------------------------------------------------------------------------- supervisor


_parent_ends: list[socket.socket] = []  # PID 1's end of each worker's socket (closed in children)
MESSAGE = 32  # bytes: a task id in decimal ASCII, one per message


def _supervised(cfg: AgentConfig, sock: socket.socket) -> None:
    """A supervised worker: take one task id at a time from PID 1, run it, write its line,
    then say it is done by sending the id back, and only then read the next id (which PID 1
    has usually sent ahead). One packet each way per task (a SOCK_SEQPACKET pair: message
    boundaries kept, no framing, no pickling)."""
    for end in _parent_ends:
        end.close()
    _init(cfg)
    events, lines, run = _state["events"], _state["lines"], _state["run"]
    while True:
        try:
            msg = sock.recv(MESSAGE)
        except OSError:
            return
        if not msg:  # PID 1 shut its end: stop
            return
        events.write(lines.run(int(msg), run))
        try:
            sock.send(msg)
        except OSError:  # PID 1 is gone
            return


class Supervisor:
    """PID 1: N independent workers, one task each at a time, the dead replaced.

    Each worker holds its current task and up to AHEAD more, sent ahead so that it goes on
    to the next task without waiting for PID 1. A worker runs them in order and answers each
    one before it reads the next, so the first unanswered one (``holding``'s head) is the
    only one it may have started: that one is charged an attempt (when it becomes the head),
    and when the worker dies, after every answer it sent has been read, it is the one
    requeued or given up; the ones behind it go back to the queue uncharged, with no line.

    One ``poll`` object watches every worker's socket and death sentinel, changed only when
    a worker is started or reaped. A worker's answer is read and its next task sent in the
    same wake-up: one poll, one read and one write in PID 1 per task."""

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
        self.socks: dict[int, socket.socket] = {}  # slot -> PID 1's end of its socket pair
        self.holding: dict[int, deque[int]] = {}  # slot -> ids sent, not answered, in order
        self.idle_deaths = 0
        self.poller = select.poll()
        self.watched: dict[int, tuple[int, bool]] = {}  # fd -> (slot, is its death sentinel)

    def _watch(self, fd: int, slot: int, sentinel: bool) -> None:
        self.poller.register(fd, select.POLLIN)
        self.watched[fd] = (slot, sentinel)

    def _unwatch(self, fd: int) -> None:
        if self.watched.pop(fd, None) is not None:
            self.poller.unregister(fd)

    def spawn(self, slot: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        _parent_ends.append(ours)
        proc = self.ctx.Process(target=_supervised, args=(self.cfg, theirs), daemon=True,
                                name=f"topo-worker-{slot}")
        proc.start()
        theirs.close()
        self.procs[slot], self.socks[slot], self.holding[slot] = proc, ours, deque()
        self._watch(ours.fileno(), slot, False)
        self._watch(proc.sentinel, slot, True)

    def hand(self, slot: int) -> None:
        """Send ``slot``'s worker tasks until it holds 1 + AHEAD, while there are any."""
        held = self.holding[slot]
        while len(held) <= AHEAD and self.todo:
            task_id = self.todo.popleft()
            try:
                self.socks[slot].send(b"%d" % task_id)
            except OSError:  # it just died; its sentinel says so
                self.todo.appendleft(task_id)
                return
            held.append(task_id)
            if len(held) == 1:
                self.charge(task_id)

    def charge(self, task_id: int) -> None:
        """``task_id`` is now its worker's current task: an attempt."""
        self.attempts[task_id] = self.attempts.get(task_id, 0) + 1

    def dispatch(self) -> None:
        for slot in self.holding:
            self.hand(slot)

    def done(self, slot: int, msg: bytes) -> None:
        task_id = int(msg)
        self.outcome.add(task_id)
        held = self.holding[slot]
        if held and held[0] == task_id:
            held.popleft()
            if held:
                self.charge(held[0])  # the worker goes on to it now
        elif task_id in held:  # not expected (a worker answers in order); keep the rest
            held.remove(task_id)

    def answer(self, slot: int) -> None:
        """``slot``'s socket is readable: its worker's answer (then its next task), or the
        end of a worker that is gone (its sentinel is handled by reap)."""
        sock = self.socks[slot]
        try:
            msg = sock.recv(MESSAGE)
        except OSError:
            msg = b""
        if not msg:
            self._unwatch(sock.fileno())
            return
        self.done(slot, msg)
        self.hand(slot)

    def receive(self, slot: int) -> None:
        """Take every answer still waiting on ``slot``'s socket, without blocking."""
        sock = self.socks[slot]
        while True:
            try:
                msg = sock.recv(MESSAGE, socket.MSG_DONTWAIT)
            except OSError:  # nothing more (BlockingIOError), or the connection is gone
                return
            if not msg:
                return
            self.done(slot, msg)

    def reap(self, slot: int) -> None:
        """``slot``'s worker died: record it, hand its task on (or give it up), respawn."""
        proc = self.procs[slot]
        proc.join()
        self.receive(slot)  # an answer it sent just before dying still counts
        now = time.time()
        dead = f"{self.container}/{proc.pid}"
        self.events.emit(Exit(container=self.container, t=now, worker=dead, code=proc.exitcode))
        held = self.holding[slot]
        task_id = held.popleft() if held else None
        self.todo.extendleft(reversed(held))  # sent ahead, never started: back, uncharged
        held.clear()
        sock = self.socks[slot]
        self._unwatch(sock.fileno())
        self._unwatch(proc.sentinel)
        sock.close()
        _parent_ends.remove(sock)
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
        if len(self.outcome) < self.cfg.tasks:
            self.spawn(slot)
        else:
            del self.procs[slot], self.socks[slot], self.holding[slot]

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
                dead = []
                for fd, _ in self.poller.poll():
                    slot, sentinel = self.watched.get(fd, (-1, False))
                    if slot < 0:  # unwatched earlier in this round
                        continue
                    if sentinel:
                        dead.append(slot)
                    else:
                        self.answer(slot)
                for slot in dead:
                    self.reap(slot)
                if dead:
                    self.dispatch()
        finally:
            self.stop()

    def stop(self) -> None:
        for sock in self.socks.values():
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the worker reads the end and stops
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
    linger(cfg.linger)


def linger(seconds: float | None) -> None:
    """Stay, idle, after the batch (its pool gone), for the harness's last reading of this
    container's cgroup: once the container has left, its CPU counter has gone with it, and
    all it used since the sampler's previous pass (up to a sampling period of the whole
    pool's work) would be missing from its figures. Teardown ends the wait."""
    if seconds:
        time.sleep(seconds)


if __name__ == "__main__":
    main()
