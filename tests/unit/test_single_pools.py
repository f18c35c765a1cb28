"""The single container's pools, run here in-process (PID 1's code on this machine, its
workers forked from the test), with tasks that kill their own worker: the counts every test
expects are worked out by hand from the batch, the task that dies and the pool's rules."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from topo.agent import common, single
from topo.agent.protocol import AgentConfig, PoolKind

HERE = __name__  # the task functions below, by module path (the workers inherit it: fork)


def die_at(at: int, task_id: int) -> None:
    """The task: SIGKILL its own worker process when its id is ``at``."""
    if task_id == at:
        os.kill(os.getpid(), signal.SIGKILL)


def die_at_two(at: int, task_id: int) -> None:
    """The task: SIGKILL its own worker process when its id is ``at`` or ``at + 1``."""
    if task_id in (at, at + 1):
        os.kill(os.getpid(), signal.SIGKILL)


def die_once_at(at: int, task_id: int) -> None:
    """The task: SIGKILL its worker the first time id ``at`` runs (a mark file says so)."""
    mark = os.path.join(common.RUN_DIR, f"died-{task_id}")
    if task_id == at and not os.path.exists(mark):
        open(mark, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


def exit_at(at: int, task_id: int) -> None:
    """The task: raise SystemExit (past the task's own error handling) when its id is ``at``."""
    if task_id == at:
        raise SystemExit(f"task {task_id} exits")


def _cfg(pool: PoolKind, task: str, tasks: int, at: int, processes: int = 1) -> AgentConfig:
    return AgentConfig(container="c", task=f"{HERE}:{task}", params={"at": at}, seed=0,
                       tasks=tasks, telemetry=False, pool=pool, processes=processes,
                       preload=False)


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         cfg: AgentConfig) -> list[dict[str, Any]]:
    monkeypatch.setattr(common, "RUN_DIR", str(tmp_path))
    (tmp_path / common.EVENTS).mkdir()
    (tmp_path / common.GO_FILE).touch()  # the batch is released at once
    events = common.Events("c-pid1")
    assert cfg.pool is not None
    single.POOLS[cfg.pool](cfg, events)
    lines = []
    for path in sorted((tmp_path / common.EVENTS).glob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_bytes().splitlines()]
    return lines


def _ids(lines: list[dict[str, Any]], ok: bool) -> list[int]:
    return sorted(e["id"] for e in lines if e["ev"] == "task" and e["ok"] is ok)


# --------------------------------------------------------------------------- chunks


def test_chunks_are_guided_capped_and_end_with_single_tasks() -> None:
    # 2 workers: each chunk is ceil(left / 8) ids, at most 16. Worked out by hand:
    # left 200, 184, 168, 152, 136 -> 16 each; 120 -> 15; 105 -> 14; 91 -> 12; 79 -> 10;
    # 69 -> 9; 60 -> 8; 52 -> 7; 45 -> 6; 39 -> 5; 34 -> 5; 29 -> 4; 25 -> 4; 21 -> 3;
    # 18 -> 3; 15, 13, 11, 9 -> 2 each; 7 .. 1 -> 1 each.
    sizes = [16] * 5 + [15, 14, 12, 10, 9, 8, 7, 6, 5, 5, 4, 4, 3, 3, 2, 2, 2, 2] + [1] * 7
    got = list(single.chunks(200, 2))
    assert [len(c) for c in got] == sizes
    assert [i for c in got for i in c] == list(range(200))  # every id once, in order


@pytest.mark.parametrize(("tasks", "workers", "sizes"), [
    (0, 2, []),
    (3, 1, [1, 1, 1]),  # ceil(3/4) = 1: a tiny batch runs one task per call
    (10, 2, [2] + [1] * 8),  # ceil(10/8) = 2, then ceil(8/8) = 1 ...
    (5000, 2, None),  # a big batch: capped at 16
])
def test_chunk_sizes(tasks: int, workers: int, sizes: list[int] | None) -> None:
    got = [len(c) for c in single.chunks(tasks, workers)]
    assert sum(got) == tasks
    if sizes is not None:
        assert got == sizes
    else:
        assert max(got) == single.CHUNK_MAX and got[-1] == 1


# --------------------------------------------------------------------------- process-pool


@pytest.mark.parametrize("at", [0, 13, 29, 30, 39])
def test_process_pool_break_fails_exactly_the_tasks_without_a_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: int) -> None:
    """One worker, 40 tasks: ids 0..at-1 run and write ok lines; task ``at`` kills the worker
    (no line); the pool breaks and every id from ``at`` on fails, in whichever chunk it is.
    Chunks (ceil(left/4), at most 16): 10, 8, 6, 4, 3, 3, 2, 1, 1, 1, 1: ids 13 and 29 sit
    inside a chunk (the ids before them in it wrote their lines), 30 begins one, 39 is last."""
    assert [len(c) for c in single.chunks(40, 1)] == [10, 8, 6, 4, 3, 3, 2, 1, 1, 1, 1]
    lines = _run(tmp_path, monkeypatch, _cfg(PoolKind.PROCESS_POOL, "die_at", 40, at))
    ok, failed = _ids(lines, True), _ids(lines, False)
    assert ok == list(range(at))  # completed: at
    assert failed == list(range(at, 40))  # failed: 40 - at, none of them also ok
    write_offs = [e for e in lines if e["ev"] == "task" and not e["ok"]]
    assert all(e["w"] == "c" and e["t0"] is None for e in write_offs)  # PID 1's, never started
    assert all(e["err"].startswith("BrokenProcessPool") for e in write_offs)


class _SlowSubmitter(single.ProcessPoolExecutor):
    """An executor whose second task call is submitted only once the pool has broken: a
    break while PID 1 is still submitting, made certain (it happens by chance otherwise)."""

    waited: list[bool] = []  # whether the pool was broken when the second call went in

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
        if fn is not single._ping:
            self.calls += 1
            if self.calls == 2:
                deadline = time.monotonic() + 10
                broken = lambda: bool(self._broken)  # type: ignore[attr-defined]  # noqa: E731
                while not broken() and time.monotonic() < deadline:
                    time.sleep(0.001)
                self.waited.append(broken())
        return super().submit(fn, *args, **kwargs)


def test_process_pool_broken_while_submitting_fails_every_task(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Task 0 kills the only worker before PID 1 has submitted the second call: the pool
    refuses the rest. PID 1 still ends normally and all 40 tasks fail (none ran to a line)."""
    monkeypatch.setattr(single, "ProcessPoolExecutor", _SlowSubmitter)
    monkeypatch.setattr(_SlowSubmitter, "waited", [])
    lines = _run(tmp_path, monkeypatch, _cfg(PoolKind.PROCESS_POOL, "die_at", 40, 0))
    assert _SlowSubmitter.waited == [True]
    assert _ids(lines, True) == [] and _ids(lines, False) == list(range(40))


def test_process_pool_a_task_that_raises_systemexit_fails_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool reports a task's BaseException and lives on: that task fails (by PID 1, with
    the error), the other 39 of the batch complete, the rest of its chunk included."""
    lines = _run(tmp_path, monkeypatch, _cfg(PoolKind.PROCESS_POOL, "exit_at", 40, 5))
    assert _ids(lines, True) == [i for i in range(40) if i != 5]
    (failure,) = [e for e in lines if e["ev"] == "task" and not e["ok"]]
    assert (failure["id"], failure["w"], failure["err"]) == (5, "c", "SystemExit: task 5 exits")


# --------------------------------------------------------------------------- supervisor


@pytest.mark.parametrize("processes", [1, 2])
def test_supervisor_gives_up_a_task_that_kills_every_worker_it_reaches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int) -> None:
    """Task 7 of 20 kills whichever worker runs it: it is delivered 3 times (max_attempts),
    so 3 deaths, 3 requeue lines (the last one dead), 1 failed record; the 19 others
    complete once each. Every death is replaced while tasks are left: with one worker, ids
    8..19 still wait after the third death, so 1 + 3 say ready; with two, the other worker
    may have finished them all by then (2 + 2) or not (2 + 3)."""
    lines = _run(tmp_path, monkeypatch, _cfg(PoolKind.SUPERVISOR, "die_at", 20, 7, processes))
    ok = _ids(lines, True)
    assert ok == [i for i in range(20) if i != 7] and len(ok) == len(set(ok))
    (failure,) = [e for e in lines if e["ev"] == "task" and not e["ok"]]
    assert (failure["id"], failure["err"]) == (7, "given up after 3 attempts")
    requeues = [e for e in lines if e["ev"] == "requeue"]
    assert [(e["id"], e["dead"]) for e in requeues] == [(7, False), (7, False), (7, True)]
    exits = [e for e in lines if e["ev"] == "exit"]
    assert len(exits) == 3 and {e["code"] for e in exits} == {-signal.SIGKILL}
    readies = len([e for e in lines if e["ev"] == "ready"])
    assert readies == 4 if processes == 1 else readies in (4, 5)


def test_supervisor_requeues_only_the_task_the_dead_worker_was_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker; task 7 kills it the first time. The worker held 7 and, sent ahead, 8:
    8 had not started, so it goes back with no requeue line and no attempt; 7 is requeued
    once and runs on the replacement. All 20 complete once; 1 requeue, 1 exit, 2 ready."""
    lines = _run(tmp_path, monkeypatch, _cfg(PoolKind.SUPERVISOR, "die_once_at", 20, 7))
    assert _ids(lines, True) == list(range(20)) and _ids(lines, False) == []
    requeues = [(e["id"], e["dead"]) for e in lines if e["ev"] == "requeue"]
    assert requeues == [(7, False)]
    assert len([e for e in lines if e["ev"] == "exit"]) == 1
    assert len([e for e in lines if e["ev"] == "ready"]) == 2


def test_supervisor_charges_only_the_starts_of_a_task(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker; tasks 7 and 8 kill every worker that runs them. 8 sits behind 7 (sent
    ahead) through 7's three deaths without starting, which charges it nothing; then it is
    started 3 times itself. So: 7 and 8 each given up after 3 attempts, 6 requeue lines
    (7, 7, 7 dead, 8, 8, 8 dead), 6 exits, 1 + 6 ready (ids 9..19 are still left after each
    death), the 18 others completed."""
    lines = _run(tmp_path, monkeypatch, _cfg(PoolKind.SUPERVISOR, "die_at_two", 20, 7))
    assert _ids(lines, True) == [i for i in range(20) if i not in (7, 8)]
    failures = sorted((e["id"], e["err"]) for e in lines if e["ev"] == "task" and not e["ok"])
    assert failures == [(7, "given up after 3 attempts"), (8, "given up after 3 attempts")]
    requeues = [(e["id"], e["dead"]) for e in lines if e["ev"] == "requeue"]
    assert requeues == [(7, False), (7, False), (7, True), (8, False), (8, False), (8, True)]
    assert len([e for e in lines if e["ev"] == "exit"]) == 6
    assert len([e for e in lines if e["ev"] == "ready"]) == 7


def test_supervisor_runs_every_task_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _run(tmp_path, monkeypatch, _cfg(PoolKind.SUPERVISOR, "die_at", 50, -1, 3))
    assert _ids(lines, True) == list(range(50)) and _ids(lines, False) == []
    assert len([e for e in lines if e["ev"] == "ready"]) == 3
