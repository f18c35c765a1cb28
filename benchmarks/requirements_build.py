"""What workload.requirements costs: first use (wheels downloaded, image built), a second use
(nothing to do), a rebuild from the cached wheels with pip pointed at no index at all, and
what the image grows by.

The first use runs with a fresh user cache (pip's own HTTP cache included), so the download
is real. Everything it makes is removed at the end: the worker image and the cache.

Usage: .venv/bin/python benchmarks/requirements_build.py [requirement ...]   (numpy pandas)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, TypeVar

from _common import DockerRuntime

from topo import wheels
from topo.model import Resources, Scenario, SingleSpec, Workload
from topo.runtime.docker import BASE_IMAGE

T = TypeVar("T")

NO_INDEX = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": "/dev/null"}


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    wanted = sys.argv[1:] or ["numpy", "pandas"]
    runtime = DockerRuntime.connect()
    with tempfile.TemporaryDirectory(prefix="topo-bench-wheels-") as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp, "cache"))
        req = Path(tmp, "requirements.txt")
        req.write_text("".join(f"{r}\n" for r in wanted))
        sc = Scenario(name="wheels", workload=Workload(task="noop", tasks=1, requirements=str(req)),
                      workers=1, resources=Resources(cpus=1, memory=256 * 2**20),
                      single=SingleSpec(), multi=None)
        facts = runtime.image_facts(BASE_IMAGE)
        house, t_download = timed(lambda: wheels.resolve(facts.target(), req, facts.missing()))
        house_mb = folder_mb(house.folder)
        tag, t_first = timed(lambda: runtime.ensure_image(sc))
        _, t_cached = timed(lambda: runtime.ensure_image(sc))
        try:
            runtime.client.images.remove(tag, force=True)
            os.environ.update(NO_INDEX)
            again, t_rebuild = timed(lambda: runtime.ensure_image(sc))
            worker = runtime.client.images.get(tag).attrs["Size"]
            base = runtime.client.images.get(BASE_IMAGE).attrs["Size"]
        finally:
            runtime.client.images.remove(tag, force=True)
    print(f"requirements: {' '.join(wanted)} for {facts.target().describe()} "
          f"({len(house.wheels)} wheels: {', '.join(house.packages())})")
    print(f"first use:      {t_download + t_first:6.1f} s  (download {t_download:.1f} s, "
          f"{house_mb:.0f} MB of wheels and pip; build {t_first:.1f} s)")
    print(f"second use:     {t_cached * 1000:6.0f} ms (image there: nothing resolved, nothing built)")
    print(f"rebuild, cache: {t_rebuild:6.1f} s  (worker image removed; PIP_NO_INDEX=1, "
          f"PIP_CONFIG_FILE=/dev/null; same tag: {again == tag})")
    print(f"image size:     {worker / 1e6:6.0f} MB  ({BASE_IMAGE} {base / 1e6:.0f} MB + {(worker - base) / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
