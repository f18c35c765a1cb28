"""A start mark is written, not awaited (topo.agent.reliable.Link): the claim that a mark in
the kernel is as good as in Redis, checked with real processes that the kernel ends. A
child process takes a batch, marks tasks and then is SIGKILLed (no call after the marks, so
they are still corked) or SIGSTOPped (frozen, as by a pause): Redis gets every mark.

The same child with a reply left unread when it dies must lose its marks (the kernel resets
such a connection, dropping what it had not sent): ``xfail(strict=True)`` shows the test
can fail, and why marks get no reply."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from topo.agent import reliable as rq

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import sys, time
from topo.agent import reliable as rq, resp
q = rq.ReliableQueue(resp.Redis(port=int(sys.argv[1])), "c", "c/1/x", 3, 60_000)
q.take(3)
q.mark(b"1")
q.mark(b"2")
print("marked", flush=True)
time.sleep(60)
"""
# A reply waiting unread (a PING sent before the marks, uncorked), then marks still corked.
UNREAD = CHILD.replace('q.mark(b"1")', '''q.link.call("PING")
q.link._cork(False)
q.link._write(b"*1\\r\\n$4\\r\\nPING\\r\\n")
time.sleep(0.2)
q.link._cork(True)
q.mark(b"1")''')
CHILDREN = [
    pytest.param(CHILD, id="marks"),
    pytest.param(UNREAD, id="a reply unread", marks=pytest.mark.xfail(strict=True,
                                                                    reason="RST drops them")),
]


def _marks(admin: redis.Redis) -> dict[int, str]:
    return {int(k): v.decode() for k, v in admin.hgetall(rq.started("c")).items()}


def _wait_for(admin: redis.Redis, want: dict[int, str], seconds: float = 5.0) -> dict[int, str]:
    deadline = time.monotonic() + seconds
    while (got := _marks(admin)) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    return got


@pytest.mark.parametrize("code", CHILDREN)
def test_marks_written_by_a_killed_process_reach_redis(code: str, redis_server: int,
                                                       admin: redis.Redis) -> None:
    _marks_reach_redis(code, signal.SIGKILL, redis_server, admin)


def test_marks_written_by_a_frozen_process_reach_redis(redis_server: int,
                                                       admin: redis.Redis) -> None:
    _marks_reach_redis(CHILD, signal.SIGSTOP, redis_server, admin)


def _marks_reach_redis(code: str, how: int, redis_server: int, admin: redis.Redis) -> None:
    admin.lpush(rq.QUEUE, *range(3))
    child = subprocess.Popen([sys.executable, "-c", code, str(redis_server)],
                             stdout=subprocess.PIPE, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout is not None and child.stdout.readline() == b"marked\n"
        child.send_signal(how)
        want = {0: "c/1/x 1", 1: "c/1/x 2", 2: "c/1/x 3"}
        assert _wait_for(admin, want) == want
    finally:
        child.kill()
        child.wait(timeout=10)
