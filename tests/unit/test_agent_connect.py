"""The agents' Redis connection waits out a network that is not up yet.

A connect timeout (SYNs unanswered, as on a Swarm overlay network still being wired under
load) raises resp.TimeoutError, which is no resp.ConnectionError: a worker that gave up on
it ended its run with "TimeoutError: Timeout connecting to server" before any task. Dropped
SYNs cannot be made on loopback without root changes to the host's firewall, so the client's
ping is made to time out twice here."""

from __future__ import annotations

import pytest

from topo.agent import queue, resp
from topo.agent.protocol import AgentConfig

CFG = AgentConfig(container="w0", task="noop", params={}, seed=0, tasks=1,
                  redis_host="127.0.0.1")


def test_a_connect_timeout_is_waited_out_like_a_refused_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def ping(self: resp.Redis) -> bool:
        calls.append(1)
        if len(calls) <= 2:
            raise resp.TimeoutError("Timeout connecting to server")
        return True

    monkeypatch.setattr(resp.Redis, "ping", ping)
    monkeypatch.setattr(queue.time, "sleep", lambda s: None)
    queue.connect(CFG, wait=60.0)
    assert len(calls) == 3


def test_it_still_gives_up_after_its_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    def ping(self: resp.Redis) -> bool:
        raise resp.TimeoutError("Timeout connecting to server")

    monkeypatch.setattr(resp.Redis, "ping", ping)
    monkeypatch.setattr(queue.time, "sleep", lambda s: None)
    with pytest.raises(resp.TimeoutError):
        queue.connect(CFG, wait=0.0)
