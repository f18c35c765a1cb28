"""A multi worker SIGKILLed by the kernel keeps the record of every task Redis counts as
done: a real worker process (topo.agent.worker, its event file on disk), a real Redis,
killed right after an ack returned, or mid-batch right after a start mark (after which
the reaper takes the dead process's marked tasks, all but the latest, as done).

The count is external: the tasks Redis says are done (in no queue, processing list or dead
letter) against the task lines in the file, and both against the count worked out by hand
from the batch size. Broken variants (tests/queue/broken.py) that hold the lines in the
process and write them after the ack, or only before it, must fail: ``xfail(strict=True)``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from topo.agent import protocol
from topo.agent import reliable as rq

from .conftest import agent_client

ROOT = Path(__file__).resolve().parents[2]
TASKS, PREFETCH = 2000, 100
NAME = "k"


def broken(kind: str) -> object:
    return pytest.param(kind, id=kind, marks=pytest.mark.xfail(strict=True, reason="lines lost"))


def _kill(port: int, tmp: Path, kind: str, point: str, k: int) -> None:
    (tmp / "events").mkdir()
    cfg = protocol.AgentConfig(container=NAME, task="noop", params={}, seed=0, tasks=TASKS,
                               prefetch=PREFETCH, queue=protocol.QueueKind.RELIABLE,
                               telemetry=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOPO_RUN_DIR": str(tmp),
           "TOPO_CONFIG": cfg.to_json()}
    child = subprocess.run([sys.executable, "-m", "tests.queue.killed_worker", str(port), kind,
                            point, str(k)], cwd=ROOT, env=env, timeout=60,
                           capture_output=True, text=True)
    assert child.returncode == -9, f"the worker was not killed: {child.stderr[-2000:]}"


def _done_in_redis(admin: redis.Redis) -> set[int]:
    """Every task of the batch that Redis holds nowhere: acknowledged."""
    held = set(admin.lrange(rq.QUEUE, 0, -1))
    for key in admin.scan_iter(match=rq.PROCESSING_PREFIX + "*"):
        held.update(admin.lrange(key, 0, -1))
    held.update(admin.lrange(rq.DEAD, 0, -1))
    held.update(admin.hkeys(rq.OWED))
    return set(range(TASKS)) - {int(x) for x in held}


def _lines(tmp: Path) -> list[int]:
    found = []
    for path in (tmp / "events").iterdir():
        for line in path.read_bytes().splitlines():
            wire = json.loads(line)  # read as plain JSON: independent of the worker's code
            if wire["ev"] == "task" and wire["ok"]:
                found.append(int(wire["id"]))
    return found


def _reap(admin: redis.Redis) -> None:
    """The dead worker's heartbeat has expired; another worker reaps it."""
    admin.delete(rq.heartbeat(NAME))
    reaper = rq.ReliableQueue(agent_client(admin), "r", "r/1/x", 3, 60_000)
    assert reaper.reap(NAME) is not None


@pytest.mark.parametrize("kind", ["Worker", broken("LinesAfterAck")])
def test_killed_right_after_an_ack_every_acknowledged_task_has_its_line(
        kind: str, redis_server: int, admin: redis.Redis, tmp_path: Path) -> None:
    admin.lpush(rq.QUEUE, *range(TASKS))
    _kill(redis_server, tmp_path, kind, "take", 3)  # its 3rd take acknowledged batch 2
    done, lines = _done_in_redis(admin), _lines(tmp_path)
    assert len(done) == 2 * PREFETCH  # batches 1 and 2, by hand
    missing = done - set(lines)
    assert not missing, f"{len(missing)} acknowledged tasks without their line on disk"
    assert sorted(lines) == sorted(done)  # and no line of a task Redis does not count done
    _reap(admin)  # batch 3's first task, marked by the take, did not run: given back
    assert _done_in_redis(admin) == done


@pytest.mark.parametrize("kind", ["Worker", broken("LinesAfterAck"), broken("LinesBeforeAck")])
def test_killed_mid_batch_every_task_the_reaper_takes_as_done_has_its_line(
        kind: str, redis_server: int, admin: redis.Redis, tmp_path: Path) -> None:
    admin.lpush(rq.QUEUE, *range(TASKS))
    marks = PREFETCH - 1 + 50  # batch 1's marks (its first is the take's), then 50 of batch 2
    _kill(redis_server, tmp_path, kind, "mark", marks)
    _reap(admin)
    done, lines = _done_in_redis(admin), _lines(tmp_path)
    # batch 1, and batch 2's first 50 (its take's mark and 49 more): the 50th mark's task
    # never ran; it is the dead process's latest start, given back with the unmarked rest
    assert len(done) == PREFETCH + 50
    missing = done - set(lines)
    assert not missing, f"{len(missing)} tasks taken as done without their line on disk"
    assert sorted(lines) == sorted(done)
