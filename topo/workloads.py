"""Built-in tasks, and loading a user's ``package.module:function``.

This module runs inside the worker containers: standard library only. Every task is called
as ``fn(seed=<per-task seed>, **params)``; a user function receives ``seed``, ``task_id`` and
``data_dir`` only if its signature names them. Tasks do no I/O outside the container.
"""

from __future__ import annotations

import importlib
import random
import time

TYPE_CHECKING = False  # typing is for the type checker only: every agent imports this module
if TYPE_CHECKING:
    from typing import Any, Callable

    TaskFn = Callable[..., Any]


def noop(seed: int = 0) -> None:
    """Nothing: measures pure dispatch cost."""
    return None


def cpu(seed: int = 0, work: int = 0, cpu_ms: float = 0.0) -> int:
    """Pure CPU. ``work``: a fixed number of loop iterations (its cost depends on the
    machine, so calibrate it); ``cpu_ms``: spin until the calling thread has used that much
    CPU time (a cost known by construction). The thread's own clock, not the process's:
    other threads of the process (an agent's telemetry, a heartbeat) add to the process
    clock, and the task would stop early, having done less than it claims."""
    acc = seed & 0xFFFF
    for i in range(int(work)):
        acc = (acc * 1103515245 + i) & 0x7FFFFFFF
    if cpu_ms > 0:
        deadline = time.thread_time() + cpu_ms / 1000.0
        while time.thread_time() < deadline:
            acc = (acc * 1103515245 + 12345) & 0x7FFFFFFF
    return acc


def io(seed: int = 0, ms: float = 50.0, cpu_work: int = 2000) -> int:
    """Mostly waiting: sleep ``ms`` milliseconds, with a little CPU around it."""
    acc = cpu(seed, work=cpu_work // 2)
    time.sleep(ms / 1000.0)
    return acc ^ cpu(seed, work=cpu_work // 2)


def etl(seed: int = 0, rows: int = 2000, groups: int = 16) -> dict[str, float]:
    """Parse, transform and aggregate ``rows`` generated CSV rows (pure Python)."""
    rng = random.Random(seed)
    text = "\n".join(
        f"{i},{rng.choice('ABCDEFGHIJKLMNOP'[:groups])},{rng.uniform(0, 1000):.3f},{rng.randint(1, 9)}"
        for i in range(rows)
    )
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    for line in text.split("\n"):
        _, key, price, qty = line.split(",")
        amount = float(price) * int(qty)
        if amount > 50.0:  # the "transform": a filter and a derived column
            totals[key] = totals.get(key, 0.0) + amount * 1.2
            counts[key] = counts.get(key, 0) + 1
    return {k: totals[k] / counts[k] for k in sorted(totals)}


def memory(seed: int = 0, mb: float = 32.0, hold_ms: float = 50.0) -> int:
    """Allocate ``mb`` MiB, touch every page, hold it ``hold_ms`` milliseconds."""
    buf = bytearray(int(mb * 1024 * 1024))
    for i in range(0, len(buf), 4096):
        buf[i] = 1
    time.sleep(hold_ms / 1000.0)
    return len(buf)


BUILTINS: dict[str, TaskFn] = {"noop": noop, "cpu": cpu, "io": io, "etl": etl, "memory": memory}


def task_seed(seed: int, task_id: int) -> int:
    """The per-task seed: the same task id gets the same input in both topologies."""
    return (seed * 1_000_003 + task_id * 7919) & 0x7FFFFFFF


def resolve(task: str) -> TaskFn:
    """A built-in by name, or ``package.module:function`` importable on sys.path."""
    if task in BUILTINS:
        return BUILTINS[task]
    module_name, _, attr = task.partition(":")
    fn: object = getattr(importlib.import_module(module_name), attr)
    if not callable(fn):
        raise TypeError(f"{task} is not callable")
    return fn


def _parameters(fn: TaskFn) -> set[str]:
    """The names ``fn`` takes. inspect is imported here, for a user's function only: it is
    one of the largest imports of an agent's start, which the built-ins do without."""
    import inspect

    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def bind(task: str, params: dict[str, Any], seed: int,
         data_dir: str | None = None) -> Callable[[int], Any]:
    """Return ``run(task_id)`` that calls the task with its arguments for that id.

    A user function gets ``seed``, ``task_id`` and ``data_dir`` (the folder where
    ``workload.data`` is mounted, None without one) only if its signature names them."""
    fn = resolve(task)
    builtin = task in BUILTINS
    names = set() if builtin else _parameters(fn)  # a built-in takes seed, and no other

    def run(task_id: int) -> Any:
        kwargs = dict(params)
        if builtin or "seed" in names:
            kwargs["seed"] = task_seed(seed, task_id)
        if "task_id" in names:
            kwargs["task_id"] = task_id
        if "data_dir" in names:
            kwargs["data_dir"] = data_dir
        return fn(**kwargs)

    return run
