"""Tasks that use workload.data (mounted read-only at data_dir), and a record of every
process that imports this module, so a test can count imports from outside.

On import, the module creates ``<run folder>/imported-<container>-<pid>`` (the pid as seen
in its container): the run folder is the host folder the harness mounts at TOPO_RUN_DIR.
"""

import os
import socket
import time

_run_dir = os.environ.get("TOPO_RUN_DIR")
if _run_dir:
    with open(os.path.join(_run_dir, f"imported-{socket.gethostname()}-{os.getpid()}"), "x"):
        pass


def read(task_id: int, data_dir: str, expect: list, hold: float = 0.0) -> None:
    """Read file ``in-<task_id % n>.txt``; fail unless it holds ``expect[task_id % n]``.
    ``hold``: seconds to sleep after the read, off the CPU, so that a worker holding a task
    leaves the next ones to the others."""
    i = task_id % len(expect)
    with open(os.path.join(data_dir, f"in-{i}.txt"), encoding="utf-8") as f:
        got = f.read()
    time.sleep(hold)
    if got != expect[i]:
        raise ValueError(f"in-{i}.txt holds {got!r}, expected {expect[i]!r}")


def write(task_id: int, data_dir: str, every: int) -> None:
    """Every ``every``-th task tries to write into the data folder; the others only list it."""
    if task_id % every == 0:
        with open(os.path.join(data_dir, f"out-{task_id}.txt"), "w") as f:
            f.write("should not be possible")
    os.listdir(data_dir)


def noop(task_id: int) -> None:
    return None
