"""Sample every container of a deployment at a fixed rate, in a background thread.

The kernel's counters restart at 0 when a container restarts and vanish when it stops; the
Accumulator turns them into counters that only grow over the whole run.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from topo import defaults
from topo.model import Sample
from topo.runtime.base import RawStats

SAMPLE_HZ = defaults.SAMPLE_HZ
_TICK = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


def host_cpu(path: str = "/proc/stat") -> tuple[float, float] | None:
    """CPU seconds this host has been busy (all processes, every core) and has had stolen by
    its hypervisor, since boot; None where /proc/stat is not readable."""
    try:
        with open(path, encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) * _TICK, steal * _TICK


@dataclass
class _Counter:
    offset: float = 0.0
    last_raw: float = 0.0
    gap: bool = False  # the container was seen stopped since the last reading

    def update(self, raw: float) -> float:
        # A new cgroup counts from 0: after a stop, or when the counter went backwards.
        if self.gap or raw < self.last_raw:
            self.offset += self.last_raw
        self.gap = False
        self.last_raw = raw
        return self.offset + raw

    def stopped(self) -> None:
        self.gap = True

    @property
    def value(self) -> float:
        return self.offset + self.last_raw


class Accumulator:
    """Cumulative samples of one container from raw readings."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cpu = _Counter()
        self.periods = _Counter()
        self.throttled = _Counter()

    def sample(self, t: float, raw: RawStats | None) -> Sample:
        if raw is None:
            for counter in (self.cpu, self.periods, self.throttled):
                counter.stopped()
            return Sample(t=t, container=self.name, cpu=self.cpu.value, memory=0,
                          throttled_periods=int(self.periods.value),
                          throttled=self.throttled.value, pids=0, running=False)
        return Sample(
            t=t, container=self.name, cpu=self.cpu.update(raw.cpu), memory=raw.memory,
            throttled_periods=int(self.periods.update(raw.throttled_periods)),
            throttled=self.throttled.update(raw.throttled), pids=raw.pids, running=True,
        )


class Sampler:
    """Calls ``read()`` (container name -> RawStats or None) every 1/hz seconds."""

    def __init__(self, read: Callable[[], dict[str, RawStats | None]], hz: float = SAMPLE_HZ,
                 sink: Path | None = None, now: Callable[[], float] = time.time) -> None:
        self._read = read
        self._now = now  # the run engine's clock: samples and task lines share one time
        # Each pass is also appended to ``sink`` at once, so a killed harness loses nothing.
        self._sink = open(sink, "a", encoding="utf-8") if sink else None
        self._period = 1.0 / hz
        self._acc: dict[str, Accumulator] = {}
        self.samples: list[Sample] = []
        self.host: list[tuple[float, float, float]] = []  # (t, busy CPU s, stolen CPU s)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="topo-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop, after one last pass so the end of the run is sampled."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.sample_once()
        if self._sink is not None:
            try:
                self._sink.close()
            except OSError as e:  # a full disk: the samples are still in memory
                self.errors.append(f"samples not streamed: {e}")
            self._sink = None

    def sample_once(self) -> None:
        t0 = self._now()
        try:
            raw = self._read()
        except Exception as e:  # a failed pass is a gap in the data, never a crashed run
            self.errors.append(str(e))
            return
        t = (t0 + self._now()) / 2  # one time for the whole pass
        load = host_cpu()
        if load is not None:
            self.host.append((t, *load))
        batch = []
        for name, stats in raw.items():
            acc = self._acc.setdefault(name, Accumulator(name))
            batch.append(acc.sample(t, stats))
        self.samples.extend(batch)
        if self._sink is not None:
            try:
                self._sink.write("".join(json.dumps(asdict(s)) + "\n" for s in batch))
                self._sink.flush()
            except (OSError, ValueError) as e:  # a full disk costs the copy, not the run
                self.errors.append(f"samples not streamed: {e}")

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_at += self._period
            self._stop.wait(max(0.0, next_at - time.monotonic()))
