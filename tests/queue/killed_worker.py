"""A real multi worker process that SIGKILLs itself at a chosen point of its loop, for
test_kill_after_ack: ``python -m tests.queue.killed_worker PORT CLASS POINT K``.

CLASS is ``Worker`` (topo.agent.worker) or a broken variant of tests/queue/broken.py;
POINT is ``take`` (right after its K-th take returned: the batch before it acknowledged)
or ``mark`` (right after its K-th start mark was written). Its event file goes to
``$TOPO_RUN_DIR/events``, as in a container; TOPO_CONFIG is its configuration.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, Callable

from topo.agent import common, resp, worker

from . import broken


def _kill_after(k: int, call: Callable[..., Any]) -> Callable[..., Any]:
    calls = 0

    def wrapped(*args: Any) -> Any:
        nonlocal calls
        result = call(*args)
        calls += 1
        if calls == k:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    return wrapped


def main() -> None:
    port, kind, point, k = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    cls = worker.Worker if kind == "Worker" else getattr(broken, kind)
    cfg = common.config()
    w = cls(cfg, common.Events(f"{cfg.container}-{os.getpid()}"),
            lambda: resp.Redis(port=port))
    w.flush_every = 1e9  # acks with the next take only: the counts below are exact
    setattr(w.queue, point, _kill_after(k, getattr(w.queue, point)))
    w.begin_reliable()
    w.serve(w.step_reliable, w.rejoin)


if __name__ == "__main__":
    main()
