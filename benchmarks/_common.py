"""Shared by the benchmark scripts: run a scenario with topo's own pipeline, quietly."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from topo import engine as run  # noqa: E402
from topo.model import RunResult, Scenario  # noqa: E402
from topo.runtime.docker import DockerRuntime  # noqa: E402

__all__ = ["ROOT", "DockerRuntime", "measure"]


def measure(sc: Scenario, runtime: DockerRuntime) -> list[RunResult]:
    with tempfile.TemporaryDirectory(prefix="topo-bench-") as out:
        return run.compare(sc, runtime, Path(out), lambda r, complete: None)
