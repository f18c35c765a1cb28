"""Accumulator and Sampler: cumulative counters across restarts, stops and failed reads."""

from __future__ import annotations

import time


from topo import sampling
from topo.model import Sample
from topo.runtime.base import RawStats
from topo.sampling import Accumulator, Sampler


def raw(cpu: float, memory: int = 100, periods: int = 0, throttled: float = 0.0,
        pids: int = 3) -> RawStats:
    return RawStats(cpu=cpu, memory=memory, throttled_periods=periods, throttled=throttled,
                    pids=pids)


def test_counters_pass_through_while_they_grow():
    acc = Accumulator("w0")
    assert acc.sample(1.0, raw(0.5, 10, 2, 0.1)) == Sample(1.0, "w0", 0.5, 10, 2, 0.1, 3, True)
    assert acc.sample(2.0, raw(1.5, 20, 5, 0.25)) == Sample(2.0, "w0", 1.5, 20, 5, 0.25, 3, True)


def test_cpu_stays_cumulative_across_a_counter_reset():
    acc = Accumulator("w0")
    acc.sample(1.0, raw(2.0, periods=10, throttled=0.5))
    after = acc.sample(2.0, raw(0.25, periods=1, throttled=0.125))  # restarted: counters from 0
    assert (after.cpu, after.throttled_periods, after.throttled) == (2.25, 11, 0.625)
    later = acc.sample(3.0, raw(1.0, periods=4, throttled=0.25))
    assert (later.cpu, later.throttled_periods, later.throttled) == (3.0, 14, 0.75)
    again = acc.sample(4.0, raw(0.5))  # a second restart
    assert again.cpu == 3.5


def test_a_stopped_container_keeps_its_cpu_with_no_memory():
    acc = Accumulator("w1")
    acc.sample(1.0, raw(2.0, memory=500, periods=7, throttled=0.5, pids=4))
    gone = acc.sample(2.0, None)
    assert gone == Sample(t=2.0, container="w1", cpu=2.0, memory=0, throttled_periods=7,
                          throttled=0.5, pids=0, running=False)
    assert acc.sample(3.0, None) == Sample(3.0, "w1", 2.0, 0, 7, 0.5, 0, False)
    back = acc.sample(4.0, raw(0.5, memory=300))  # restarted with a new cgroup
    assert (back.cpu, back.memory, back.running) == (2.5, 300, True)


def test_a_container_never_seen_running_reads_zero():
    assert Accumulator("x").sample(1.0, None) == Sample(1.0, "x", 0.0, 0, 0, 0.0, 0, False)


def test_a_restart_after_a_stop_adds_even_when_the_new_counter_is_already_higher():
    acc = Accumulator("w2")
    acc.sample(1.0, raw(0.25))  # died early, after 0.25 CPU s
    acc.sample(2.0, None)  # stopped
    assert acc.sample(3.0, raw(0.5)).cpu == 0.75  # new cgroup: 0.5 s since the restart


# --------------------------------------------------------------------------- Sampler


def test_one_pass_shares_one_time_between_the_containers():
    readings = iter([
        {"a": raw(1.0), "b": raw(2.0), "c": None},
        {"a": raw(1.5), "b": raw(0.5), "c": raw(0.25)},
    ])

    def read():
        time.sleep(0.01)  # a slow pass: its time is still one value
        return next(readings)

    sampler = Sampler(read)
    before = time.time()
    sampler.sample_once()
    middle = time.time()
    sampler.sample_once()
    after = time.time()

    first, second = sampler.samples[:3], sampler.samples[3:]
    assert len({s.t for s in first}) == 1 and len({s.t for s in second}) == 1
    assert before < first[0].t < middle < second[0].t < after
    assert [(s.container, s.cpu, s.running) for s in sampler.samples] == [
        ("a", 1.0, True), ("b", 2.0, True), ("c", 0.0, False),
        ("a", 1.5, True), ("b", 2.5, True), ("c", 0.25, True),
    ]
    assert sampler.errors == []


def test_a_read_that_raises_is_an_error_not_a_crash():
    calls = iter([RuntimeError("engine went away"), {"a": raw(1.0)}])

    def read():
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    sampler = Sampler(read)
    sampler.sample_once()
    assert (sampler.samples, sampler.errors) == ([], ["engine went away"])
    sampler.sample_once()
    assert [(s.container, s.cpu) for s in sampler.samples] == [("a", 1.0)]


def test_the_thread_samples_until_stopped_then_once_more():
    passes: list[float] = []

    def read():
        passes.append(time.monotonic())
        return {"a": raw(float(len(passes)))}

    sampler = Sampler(read, hz=100.0)
    sampler.start()
    time.sleep(0.1)
    sampler.stop()
    n = len(passes)
    assert n >= 3
    assert [s.cpu for s in sampler.samples] == [float(i) for i in range(1, n + 1)]
    time.sleep(0.03)
    assert len(passes) == n  # nothing after stop()
    assert sampling.SAMPLE_HZ >= 5  # metrics.md: sampled at >= 5 Hz
