"""Task attempts held as columns (topo.records.TaskRecords) give the same records and the
same figures as the tuple of TaskRecord objects the harness used to keep; the expected
figures are worked out by hand in the comments, not taken from either representation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import fakes
from topo import events, results
from topo.events import EventLog
from topo.ledger import build_ledger, completion_times, outcomes
from topo.model import Ledger, RunResult, TaskRecord
from topo.records import TaskRecords
from topo.analysis.figures import run_figures

# A batch of 5 (ids 0..4), available at t=10, deployed at t=8, on workers w0 and w1:
#   0  w0 ok 10 -> 11 (cpu 0.25, core 0)                              -> completed at 11
#   1  w1 fails 10 -> 10.5, then w0 ok 11 -> 12 (cpu 0.5, core 0)       -> completed at 12
#   2  w1 ok 10.5 -> 13 (core 1); w0 ok again 12 -> 14 (core unknown)   -> completed at 13, duplicated
#   3  a broken pool's failure that never started (t0 None) at 12.5    -> failed
#   4  no record                                                       -> lost
#   9  a stray id outside the batch, ok 10 -> 20 (core 1)              -> ignored by the ledger
FIXTURE = (
    TaskRecord(0, "w0/7", True, 10.0, 11.0, 0.25, 0, None),
    TaskRecord(1, "w1/7", False, 10.0, 10.5, 0.125, 1, "ValueError: x"),
    TaskRecord(1, "w0/7", True, 11.0, 12.0, 0.5, 0, None),
    TaskRecord(2, "w1/7", True, 10.5, 13.0, 0.25, 1, None),
    TaskRecord(2, "w0/7", True, 12.0, 14.0, 0.25, None, None),
    TaskRecord(3, "pool", False, None, 12.5, 0.0, None, "BrokenProcessPool: gone"),
    TaskRecord(9, "w1/7", True, 10.0, 20.0, 0.0, 1, None),
)


def run(records: object) -> RunResult:
    return RunResult(topology="single", index=0, warmup=False, status="ok", error=None,
                     task_count=5, t_deploy=8.0, t_ready=9.0, t_available=10.0, t_end=21.0,
                     records=records, samples=(), workers=(), containers=())  # type: ignore[arg-type]


def test_columns_read_back_as_the_same_records() -> None:
    cols = TaskRecords(FIXTURE)
    assert len(cols) == 7
    assert list(cols) == list(FIXTURE) and cols == FIXTURE
    assert cols[5] == FIXTURE[5] and cols[5].start is None and cols[5].core is None
    assert cols[-1] == FIXTURE[-1] and tuple(cols[1:3]) == FIXTURE[1:3]
    with pytest.raises(IndexError):
        cols[7]
    assert cols.nbytes() == 7 * 41  # 8 id + 1 ok + 8 start + 8 end + 8 cpu + 4 core + 4 worker


def test_the_ledger_by_hand_from_both_representations() -> None:
    by_hand = Ledger(submitted=5, completed=3, failed=1, lost=1, duplicated=1, retried=0)
    for records in (FIXTURE, TaskRecords(FIXTURE), iter(FIXTURE)):
        assert build_ledger(5, records) == by_hand
    assert outcomes(5, TaskRecords(FIXTURE)) == {
        0: "completed", 1: "completed", 2: "completed", 3: "failed", 4: "lost"}
    assert completion_times(TaskRecords(FIXTURE), 5) == [11.0, 12.0, 13.0]
    assert completion_times(TaskRecords(FIXTURE)) == [11.0, 12.0, 13.0, 20.0]


def test_the_figures_by_hand_from_both_representations() -> None:
    old, new = run_figures(run(FIXTURE)), run_figures(run(TaskRecords(FIXTURE)))
    assert new == old
    assert new.makespan == 3.0 and new.throughput == 1.0  # 3 completed, 10 -> 13
    assert new.startup_first == 3.0  # deployed at 8, first completion at 11
    assert new.task_cpu == 0.25 + 0.5 + 0.25 + 0.25  # ok attempts of the batch, duplicate too
    # waits: first starts 10, 10, 10.5 (id 3 never started) -> 0, 0, 0.5
    assert new.wait is not None and (new.wait.p50, new.wait.max, new.wait.n) == (0.0, 0.5, 3)
    assert new.wait.p95 == pytest.approx(0.45)  # between 0 and 0.5 at 0.9
    # services of each id's first ok attempt read: 1.0, 1.0, 2.5
    assert new.service is not None and (new.service.p50, new.service.max) == (1.0, 2.5)
    assert new.service.p95 == pytest.approx(2.35)  # 1.0 + 1.5 * 0.9
    assert new.cores == ((0, 2), (1, 2))  # ok attempts with a known core, the stray's too


def test_a_bad_value_leaves_the_columns_of_one_length() -> None:
    cols = TaskRecords(FIXTURE[:2])
    with pytest.raises(ValueError):
        cols.add(5, "w", True, 1.0, 2.0, 0.0, 2**40)  # no core number is that large
    assert len(cols) == 2 and list(cols) == list(FIXTURE[:2])


def test_a_saved_result_holds_every_attempt_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    results.save(path, results.to_json(fakes.scenario(tasks=5), [run(TaskRecords(FIXTURE))], {}, True))
    raw = json.loads(path.read_text())
    assert len(raw["runs"][0]["records"]) == 7
    assert raw["runs"][0]["records"][5] == {"core": None, "cpu": 0.0, "end": 12.5,
                                            "error": "BrokenProcessPool: gone", "id": 3,
                                            "ok": False, "start": None, "worker": "pool"}
    _, runs, _ = results.load(path)
    assert tuple(runs[0].records) == FIXTURE


def test_event_files_are_read_in_blocks_whatever_the_line_lengths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "READ_BLOCK", 64)  # shorter than one line
    lines = [json.dumps({"ev": "task", "id": i, "w": "c/1", "ok": True, "t0": 1.0, "t1": 2.0,
                         "cpu": 0.0, "core": 0, "err": "x" * (i * 37 % 300) or None}) + "\n"
             for i in range(40)]
    f = tmp_path / "c-1.jsonl"
    text = "".join(lines)
    f.write_text(text[:-5])  # the last line not yet whole
    log = EventLog(tmp_path, task_count=40)
    assert log.poll() == 39
    with open(f, "a") as out:
        out.write(text[-5:])
    assert log.poll() == 1 and log.poll() == 0
    assert [r.id for r in log.records] == list(range(40))
    assert [r.error for r in log.records] == ["x" * (i * 37 % 300) or None for i in range(40)]
    assert len(log.completed) == 40 and 39 in log.completed and 40 not in log.completed
