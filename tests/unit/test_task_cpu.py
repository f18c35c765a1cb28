"""A task's CPU is its own thread's: other threads of the agent's process (telemetry, a
heartbeat) neither inflate it nor shorten the known-cost task."""

from __future__ import annotations

import threading
import time

import pytest

from topo import workloads
from topo.agent.common import task_record

COST = 0.060  # seconds of CPU the cpu_ms task is asked to spend


class Burner(threading.Thread):
    """A second thread that burns CPU in pure Python (it competes for the GIL like the
    telemetry thread does) and publishes its own CPU clock as it goes."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.used = 0.0
        self.running = threading.Event()
        self.halt = threading.Event()

    def run(self) -> None:
        x = 1
        while not self.halt.is_set():
            for _ in range(500):
                x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            self.used = time.thread_time()
            self.running.set()


@pytest.fixture
def burner():  # type: ignore[no-untyped-def]
    b = Burner()
    b.start()
    assert b.running.wait(5)
    yield b
    b.halt.set()
    b.join(5)


def test_task_cpu_is_the_task_threads_own_while_another_thread_burns(burner: Burner) -> None:
    run = workloads.bind("cpu", {"cpu_ms": COST * 1000}, seed=1)
    b0, p0 = burner.used, time.process_time()
    record = task_record(7, "w", run, lambda: None)
    p1, b1 = time.process_time(), burner.used
    # The work this thread did, from a clock the task does not read: the process's CPU
    # minus what the other thread says it used meanwhile.
    done_here = (p1 - p0) - (b1 - b0)
    assert b1 - b0 > 0.3 * COST, "the burner did not run beside the task; the test proves nothing"
    assert done_here == pytest.approx(COST, rel=0.10), (done_here, b1 - b0, record["cpu"])
    assert record["ok"] and record["cpu"] == pytest.approx(COST, abs=0.003)


def test_cpu_ms_spends_that_much_of_its_own_threads_cpu(burner: Burner) -> None:
    b0, p0 = burner.used, time.process_time()
    workloads.cpu(cpu_ms=COST * 1000)
    p1, b1 = time.process_time(), burner.used
    assert b1 - b0 > 0.3 * COST
    assert (p1 - p0) - (b1 - b0) == pytest.approx(COST, rel=0.10)
