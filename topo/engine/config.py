"""How long and how often the run engine waits (a frozen config), and the clock it reads."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from topo import defaults


class Clock(Protocol):
    """Wall-clock time as the engine sees it. The agents stamp their event lines with the
    host's wall clock (containers share the kernel's), so the engine compares like with like."""

    def now(self) -> float:
        """Seconds since the epoch."""

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class EngineConfig:
    """Seconds the engine waits for things; defaults in ``topo.defaults``."""

    ready_timeout: float = defaults.READY_TIMEOUT
    poll: float = defaults.POLL
    states_every: float = defaults.STATES_EVERY
    stall_after: float = defaults.STALL_AFTER
    settle: float = defaults.SETTLE
    exited_grace: float = defaults.EXITED_GRACE
    sample_hz: float = defaults.SAMPLE_HZ  # cgroup readings per second
