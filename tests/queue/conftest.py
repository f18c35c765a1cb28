"""A real ``redis-server`` for the queue tests: started by the tests on loopback, on a free
port, keeping nothing on disk, in a temporary folder; no Docker.

Without ``redis-server`` on PATH the tests are skipped with the reason, except in CI
(``CI=true``), where that is a failure: ``scripts/bootstrap.sh --test`` installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import redis

from topo.agent import resp

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a redis-server started for this test session."""
    exe = shutil.which("redis-server")
    if exe is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("redis")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--protected-mode", "yes",
         "--hz", "500"],  # a BLMOVE timeout of 1 ms ends in ~3 ms, not ~100 ms
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start on 127.0.0.1:{port}")
                time.sleep(0.02)
        client.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def admin(redis_server: int) -> Iterator[redis.Redis]:
    """A client of the test Redis, emptied before each test."""
    client = redis.Redis(port=redis_server)
    client.flushall()
    yield client
    client.close()


def agent_client(admin: redis.Redis) -> resp.Redis:
    """The agents' own client (``topo.agent.resp``) to the Redis ``admin`` speaks to."""
    return resp.Redis(port=admin.connection_pool.connection_kwargs["port"])
