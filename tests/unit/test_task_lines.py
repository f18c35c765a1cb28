"""The multi worker's task lines (topo.agent.common.TaskLines) are made without a Task: each
must still be, byte for byte, the line the protocol's own encoder makes of the same attempt,
and read back by the harness's decoder as that attempt."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from topo.agent import common, protocol


def _fail(task_id: int) -> None:
    raise ValueError(f"bad input {task_id}")


@pytest.mark.parametrize("worker", ["w-0/17", 'odd "name"\\/é', "x" * 80])
@pytest.mark.parametrize("fn", [lambda i: None, _fail], ids=["ok", "failed"])
def test_a_task_line_is_what_the_protocol_encodes(worker: str, fn: object) -> None:
    lines = common.TaskLines(worker, core_of=lambda: 3)
    line = lines.run(123456789, fn)  # type: ignore[arg-type]
    event = protocol.decode(line)
    assert isinstance(event, protocol.Task)
    assert line == event.encode()  # the protocol's encoder, of what was decoded
    assert (event.id, event.worker, event.core) == (123456789, worker, 3)
    assert event.ok is (fn is not _fail)
    assert event.error == (None if event.ok else "ValueError: bad input 123456789")
    assert event.start is not None and event.start <= event.end and event.cpu >= 0


def test_the_core_reader_says_a_core_this_process_may_run_on() -> None:
    assert common.core_reader()() in os.sched_getaffinity(0)


def test_lines_written_from_two_threads_stay_whole(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker writes task lines while the telemetry thread writes its own (long) ones."""
    monkeypatch.setattr(common, "RUN_DIR", str(tmp_path))
    (tmp_path / common.EVENTS).mkdir()
    events = common.Events("both")
    lines = common.TaskLines("w/1")
    procs = protocol.Procs(container="c", t=1.0, procs=tuple(
        protocol.Proc(pid=i, ppid=1, name="p" * 50, cpu=0.5, rss=1 << 20) for i in range(200)))

    def telemetry() -> None:
        for _ in range(200):
            events.emit(procs)

    side = threading.Thread(target=telemetry)
    side.start()
    for i in range(2000):
        events.write(lines.run(i, lambda _: None))
    side.join()
    read = [protocol.decode(x) for x in (tmp_path / "events" / "both.jsonl").read_bytes()
            .splitlines()]
    assert sorted(e.id for e in read if isinstance(e, protocol.Task)) == list(range(2000))
    assert sum(isinstance(e, protocol.Procs) for e in read) == 200
