"""EventLog: tailing the agents' JSON-lines files while they grow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from topo.errors import RunError
from topo.events import EventLog
from topo.model import Signal, TaskRecord, WorkerInfo


def line(**fields) -> str:
    """One event line exactly as topo.agent.common.Events writes it."""
    return json.dumps(fields, separators=(",", ":")) + "\n"


def append(path: Path, text: str | bytes) -> None:
    with open(path, "ab") as f:
        f.write(text.encode() if isinstance(text, str) else text)


def task(i: int, ok: bool = True, w: str = "c/1", t0: float | None = 1.0, t1: float = 2.0,
         **extra) -> str:
    return line(ev="task", id=i, w=w, ok=ok, t0=t0, t1=t1, cpu=0.25, core=1,
                err=None if ok else "ValueError: bad", **extra)


def ready(w: str, c: str, t: float, quota: float | None = 1.0) -> str:
    return line(ev="ready", w=w, c=c, t=t, cpu_count=8, affinity=4, quota=quota)


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(tmp_path, task_count=10)


def test_lines_appended_in_several_steps_are_each_read_once(log, tmp_path):
    f = tmp_path / "c-1.jsonl"
    append(f, task(0) + task(1, ok=False))
    assert log.poll() == 2
    assert log.poll() == 0
    append(f, task(2))
    assert log.poll() == 1
    assert log.records == [
        TaskRecord(0, "c/1", True, 1.0, 2.0, 0.25, 1, None),
        TaskRecord(1, "c/1", False, 1.0, 2.0, 0.25, 1, "ValueError: bad"),
        TaskRecord(2, "c/1", True, 1.0, 2.0, 0.25, 1, None),
    ]
    assert (log.resolved, log.completed) == ({0, 1, 2}, {0, 2})


def test_a_partial_last_line_waits_until_it_is_complete(log, tmp_path):
    f = tmp_path / "c-1.jsonl"
    whole = task(4)
    append(f, task(3) + whole[:17])
    assert log.poll() == 1
    assert [r.id for r in log.records] == [3]
    append(f, whole[17:-1])  # still no newline
    assert log.poll() == 0
    append(f, "\n")
    assert log.poll() == 1
    assert [r.id for r in log.records] == [3, 4]
    assert log.errors == []


def test_a_file_holding_only_a_partial_line_is_read_later(log, tmp_path):
    f = tmp_path / "c-1.jsonl"
    whole = task(5)
    append(f, whole[:10])
    assert log.poll() == 0
    append(f, whole[10:])
    assert log.poll() == 1
    assert log.completed == {5}


def test_several_files_and_other_files_ignored(log, tmp_path):
    append(tmp_path / "a-1.jsonl", task(0, w="a/1") + line(ev="expect", c="a", n=1, t=0.5))
    append(tmp_path / "b-7.jsonl", task(1, w="b/7"))
    append(tmp_path / "notes.txt", task(2, w="x/1"))  # not *.jsonl
    assert log.poll() == 3
    append(tmp_path / "b-7.jsonl", task(2, w="b/7"))
    append(tmp_path / "c-9.jsonl", task(3, w="c/9"))  # a file that appears later
    assert log.poll() == 2
    assert sorted((r.id, r.worker) for r in log.records) == [
        (0, "a/1"), (1, "b/7"), (2, "b/7"), (3, "c/9")]
    assert log.expect == {"a": 1}


def test_ids_outside_the_batch_are_kept_as_records_but_resolve_nothing(log, tmp_path):
    append(tmp_path / "c-1.jsonl", task(10) + task(-1) + task(9))
    log.poll()
    assert [r.id for r in log.records] == [10, -1, 9]
    assert log.resolved == {9}


def test_a_task_that_never_started_has_no_start(log, tmp_path):
    append(tmp_path / "c-1.jsonl", task(0, ok=False, t0=None, t1=3.5))
    log.poll()
    assert (log.records[0].start, log.records[0].end) == (None, 3.5)
    assert log.resolved == {0} and log.completed == set()


def test_requeues_avail_and_agent_errors_are_counted(log, tmp_path):
    append(tmp_path / "w-1.jsonl",
           line(ev="requeue", id=3, w="w0", by="w1/7", t=5.0)
           + line(ev="requeue", id=4, w="w0/1", by="w1/7", t=5.1)
           + line(ev="avail", c="feeder", t=2.0, n=10)
           + line(ev="avail", c="feeder", t=1.5, n=10)
           + line(ev="fed", c="feeder", t=2.1, n=10)
           + line(ev="error", c="w0", t=3.0, err="ConnectionError: no redis"))
    assert log.poll() == 6
    assert log.requeues == 2
    assert log.t_available == 1.5
    assert log.errors == ["w0: ConnectionError: no redis"]
    assert log.signals == [  # the raw material of time-to-detect, owner container first
        Signal(5.0, "requeue", "w0", "3"),
        Signal(5.1, "requeue", "w0/1", "4"),  # a process of a pool keeps its pid
        Signal(2.1, "fed", "feeder", "10"),  # the whole batch is on the queue
        Signal(3.0, "error", "w0", "ConnectionError: no redis"),
    ]


def test_unreadable_lines_are_errors_not_exceptions(log, tmp_path):
    append(tmp_path / "c-1.jsonl",
           b"{not json\n"
           + line(ev="task", id=1, w="c/1").encode()  # no ok / t1
           + line(nothing="here").encode()  # no "ev"
           + line(ev="task", id="x", w="c/1", ok=True, t1=1.0).encode()  # id not a number
           + b"\xff\xfe\n"
           + task(2).encode())
    assert log.poll() == 6
    assert [r.id for r in log.records] == [2]
    assert len(log.errors) == 5
    assert all(e.startswith("unreadable event line (") for e in log.errors)
    assert "{not json" in log.errors[0]


def test_blank_lines_are_skipped(log, tmp_path):
    append(tmp_path / "c-1.jsonl", "\n" + task(0) + "  \n")
    assert log.poll() == 1
    assert log.errors == []


def test_all_ready_needs_expect_from_every_container_and_every_worker(log, tmp_path):
    containers = ["single", "feeder"]
    assert not log.all_ready(containers)
    append(tmp_path / "single-1.jsonl", line(ev="expect", c="single", n=2, t=0.1))
    append(tmp_path / "single-101.jsonl", ready("single/101", "single", 1.0))
    log.poll()
    assert not log.all_ready(containers)  # the feeder has not announced itself
    append(tmp_path / "feeder-1.jsonl", line(ev="expect", c="feeder", n=0, t=0.2))
    log.poll()
    assert not log.all_ready(containers)  # 1 of 2 workers ready
    append(tmp_path / "single-102.jsonl", ready("single/102", "single", 1.5))
    log.poll()
    assert log.all_ready(containers)
    assert log.t_ready == 1.5
    assert not log.all_ready(containers + ["w9"])


def test_a_restarted_worker_announcing_twice_counts_once(log, tmp_path):
    append(tmp_path / "w0-1.jsonl",
           line(ev="expect", c="w0", n=2, t=0.1)
           + ready("w0/1", "w0", 1.0)
           + ready("w0/1", "w0", 9.0, quota=None))  # the same process after a restart
    log.poll()
    assert list(log.workers) == ["w0/1"]
    assert not log.all_ready(["w0"])
    assert log.workers["w0/1"] == WorkerInfo("w0/1", "w0", 1.0, 8, 4, 1.0)  # the first one
    assert log.t_ready == 1.0
    append(tmp_path / "w0-2.jsonl", ready("w0/2", "w0", 2.0, quota=None))
    log.poll()
    assert log.all_ready(["w0"])
    assert log.workers["w0/2"].quota is None
    assert [(x.t, x.kind, x.container, x.detail) for x in log.signals] == [
        (1.0, "ready", "w0", "w0/1"), (9.0, "ready", "w0", "w0/1"), (2.0, "ready", "w0", "w0/2")]


def test_nothing_read_yet(log):
    assert log.poll() == 0
    assert (log.t_ready, log.t_available) == (None, None)
    assert log.all_ready([])  # no agent containers: nothing to wait for


def test_an_unknown_kind_fails_the_poll_after_every_other_line_is_read(log, tmp_path):
    append(tmp_path / "a-1.jsonl", task(0) + line(ev="heartbeat", c="a", t=1.0) + task(1))
    append(tmp_path / "b-1.jsonl", line(ev="heartbeat", c="b", t=1.0) + task(2, w="b/1"))
    with pytest.raises(RunError, match=r"unknown kinds: 'heartbeat' \(2 lines\)"):
        log.poll()
    assert sorted(r.id for r in log.records) == [0, 1, 2]  # nothing else was lost
    assert log.unknown == {"heartbeat": 2}
    assert log.poll() == 0  # read once, reported once
    append(tmp_path / "a-1.jsonl", task(3))
    assert log.poll() == 1


def test_a_reconnect_and_the_end_of_the_feed_are_signals(log, tmp_path):
    append(tmp_path / "w-1.jsonl",
           line(ev="error", c="w0", w="w0/1", t=3.0, err="redis unreachable", recoverable=True)
           + line(ev="reconnect", c="w0", w="w0/1", t=4.5)
           + line(ev="fed", c="feeder", t=2.0, n=10))
    assert log.poll() == 3
    assert log.errors == []  # an outage the worker rode out is not a failure
    assert log.signals == [
        Signal(3.0, "error", "w0", "redis unreachable"),
        Signal(4.5, "reconnect", "w0", "w0/1"),
        Signal(2.0, "fed", "feeder", "10"),
    ]
