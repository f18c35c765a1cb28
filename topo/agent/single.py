"""PID 1 of the ``single`` topology: one container, N worker processes in a pool.

Each pool worker writes its own task records (timestamps taken where the work happens).
PID 1 writes a failure record only for a task the pool could not run to an answer, such as
every pending task of a ProcessPoolExecutor once one of its workers has been killed.

Usage: ``python3 -m topo.agent.single`` with ``TOPO_CONFIG`` set.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

import psutil

from topo import workloads
from topo.agent.common import Events, announce_ready, config, fatal, task_record, wait_for_go

# Set in each pool worker by _init (fork keeps nothing of these from the parent).
_state: dict[str, Any] = {}


def _init(cfg: dict[str, Any]) -> None:
    pid = os.getpid()
    worker = f"{cfg['container']}/{pid}"
    events = Events(f"{cfg['container']}-{pid}")
    _state.update(
        worker=worker,
        events=events,
        run=workloads.bind(cfg["task"], cfg["params"], cfg["seed"]),
        core_of=psutil.Process().cpu_num,
    )
    announce_ready(events, worker, cfg["container"])


def _run(task_id: int) -> None:
    _state["events"].emit(**task_record(task_id, _state["worker"], _state["run"], _state["core_of"]))


def _ping() -> int:
    return os.getpid()


def pool_size(cfg: dict[str, Any]) -> int:
    """N processes, or what os.cpu_count() says in here for "auto" (host cores, not quota)."""
    processes = cfg["processes"]
    return (os.cpu_count() or 1) if processes == "auto" else int(processes)


def run_process_pool(cfg: dict[str, Any], events: Events) -> None:
    """ProcessPoolExecutor, the common way. One dead worker breaks the whole pool."""
    n = pool_size(cfg)
    events.emit(ev="expect", c=cfg["container"], n=n, t=time.time())
    with ProcessPoolExecutor(max_workers=n, initializer=_init, initargs=(cfg,)) as pool:
        pool.submit(_ping).result()  # with fork, the first submit starts all N workers
        wait_for_go()
        events.emit(ev="avail", c=cfg["container"], t=time.time(), n=cfg["tasks"])
        pending: dict[Future[None], int] = {pool.submit(_run, i): i for i in range(cfg["tasks"])}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                task_id = pending.pop(fut)
                exc = fut.exception()
                if exc is not None:
                    events.emit(
                        ev="task", id=task_id, w=cfg["container"], ok=False, t0=None,
                        t1=time.time(), cpu=0.0, core=None,
                        err=f"{type(exc).__name__}: {exc}"[:300],
                    )


POOLS = {"process-pool": run_process_pool}


def main() -> None:
    cfg = config()
    events = None
    try:
        events = Events(f"{cfg['container']}-{os.getpid()}")
        POOLS[cfg["pool"]](cfg, events)
    except Exception as exc:  # recorded for the harness, then a non-zero exit
        fatal(events, cfg.get("container", "?"), exc)


if __name__ == "__main__":
    main()
