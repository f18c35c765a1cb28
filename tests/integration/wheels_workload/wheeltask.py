"""A task that needs wheels the base image lacks: numpy (compiled, so its platform tags
must match the image) and tabulate (pure Python)."""

import numpy
import tabulate


def run(task_id: int) -> str:
    total = int(numpy.arange(task_id + 1, dtype=numpy.int64).sum())
    if total != task_id * (task_id + 1) // 2:  # Gauss, independent of numpy
        raise ValueError(f"numpy summed 0..{task_id} to {total}")
    return tabulate.tabulate([[task_id, total]])
