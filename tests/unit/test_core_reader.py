"""The core a task record names: the CPU its thread runs on, read cheaply."""

from __future__ import annotations

import os
import threading

import pytest

from topo.agent.common import core_reader


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin to")
def test_core_reader_names_the_cpu_the_calling_thread_is_pinned_to() -> None:
    # The expected core comes from the affinity we set, not from the reader: pinned to one
    # CPU, the thread can only be running there. A thread of its own, so the pin does not
    # outlive the test.
    seen: dict[int, int] = {}

    def pinned() -> None:
        core = core_reader()
        for cpu in sorted(os.sched_getaffinity(0)):
            os.sched_setaffinity(threading.get_native_id(), {cpu})
            seen[cpu] = core()

    t = threading.Thread(target=pinned)
    t.start()
    t.join(10)
    assert seen and all(core == cpu for cpu, core in seen.items()), seen
