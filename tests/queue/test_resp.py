"""topo.agent.resp against a real redis-server; what it returns is compared with what
redis-py (the client it replaces, with its defaults) returns for the same command on the
same data: an oracle independent of the code under test."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis

from topo.agent import resp

from .conftest import _free_port, agent_client


@pytest.fixture
def client(admin: redis.Redis) -> Iterator[resp.Redis]:
    c = agent_client(admin)
    yield c
    c.disconnect()


def _fill(admin: redis.Redis) -> None:
    admin.set("s", b"\x00bin\r\nary\xff")
    admin.set("empty", b"")
    admin.rpush("l", b"a", b"", b"c")
    admin.hset("h", mapping={"f1": "v1", "f2": b""})


# (command, its arguments): one of each reply type
COMMANDS = [
    ("GET", "s"),  # bulk string, with CR LF and non-UTF-8 bytes
    ("GET", "empty"),  # empty bulk
    ("GET", "missing"),  # nil bulk
    ("LRANGE", "l", 0, -1),  # array of bulks, one empty
    ("LRANGE", "missing", 0, -1),  # empty array
    ("INCR", "n"),  # integer
    ("STRLEN", "s"),
    ("EXISTS", "missing"),  # integer 0
    ("EVAL", "return {1, 'two', {3, false}, redis.call('GET', 'missing')}", 0),  # nested
    ("EVAL", "return redis.status_reply('FINE')", 0),  # status reply
    ("BLPOP", "missing", "0.01"),  # nil array
    ("BLPOP", "l", 0),  # array
]


@pytest.fixture
def raw_py(admin: redis.Redis) -> Iterator[redis.Redis]:
    """redis-py without its per-command reply callbacks: its parser's replies, as they are."""
    c = redis.Redis(port=admin.connection_pool.connection_kwargs["port"])
    c.response_callbacks.clear()
    yield c
    c.close()


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(map(str, c))[:40] for c in COMMANDS])
def test_every_reply_type_is_what_redis_py_parses(admin: redis.Redis, raw_py: redis.Redis,
                                                  client: resp.Redis,
                                                  args: tuple[Any, ...]) -> None:
    _fill(admin)
    want = raw_py.execute_command(*args)
    admin.flushall()
    _fill(admin)
    got = client.execute_command(*args)
    assert got == want and type(got) is type(want)
    assert not isinstance(got, list) or [type(x) for x in got] == [type(x) for x in want]


def test_the_methods_return_what_redis_py_s_methods_return(admin: redis.Redis,
                                                           client: resp.Redis) -> None:
    _fill(admin)
    assert client.ping() is admin.ping() is True
    assert client.hgetall("h") == admin.hgetall("h") == {b"f1": b"v1", b"f2": b""}
    assert client.hgetall("missing") == admin.hgetall("missing") == {}
    assert client.set("k", "v", px=60_000) is admin.set("k2", "v", px=60_000) is True
    assert client.set("k", "w", nx=True) is admin.set("k2", "w", nx=True) is None
    assert admin.get("k") == b"v" and 0 < admin.pttl("k") <= 60_000
    assert client.set("n", "v", nx=True, px=1000) is True and 0 < admin.pttl("n") <= 1000
    assert client.lpush("q", 1, 2) == admin.lpush("q2", 1, 2) == 2
    assert client.evalsha(admin.script_load("return ARGV[1]"), 0, "a") == b"a"
    assert client.eval("return KEYS[1]", 1, "k") == admin.eval("return KEYS[1]", 1, "k")


def test_brpop_gives_key_and_value_or_none(admin: redis.Redis, client: resp.Redis) -> None:
    admin.rpush("q", "x")
    admin.rpush("q2", "x")
    assert client.brpop("q", timeout=1) == (b"q", b"x")
    assert admin.brpop("q2", timeout=1) == (b"q2", b"x")
    assert client.brpop("q", timeout=0.01) is None is admin.brpop("q2", timeout=0.01)


def test_scan_iter_finds_every_matching_key_over_several_cursors(admin: redis.Redis,
                                                                 client: resp.Redis) -> None:
    admin.mset({f"p:{i}": 1 for i in range(2500)} | {f"other:{i}": 1 for i in range(50)})
    got = list(client.scan_iter(match="p:*", count=100))
    assert sorted(got) == sorted(admin.scan_iter(match="p:*", count=100))
    assert len(got) == len(set(got)) == 2500


def test_error_replies_are_redis_py_s_classes_and_messages(admin: redis.Redis,
                                                           client: resp.Redis) -> None:
    admin.set("s", "x")
    for args in (("LPUSH", "s", 1), ("NOSUCHCOMMAND",), ("EVALSHA", "0" * 40, 0),
                 ("EVAL", "return redis.error_reply('MYCODE something')", 0)):
        with pytest.raises(redis.ResponseError) as want:
            admin.execute_command(*args)
        with pytest.raises(resp.ResponseError) as got:
            client.execute_command(*args)
        assert str(got.value) == str(want.value)
        assert type(got.value).__name__ == type(want.value).__name__
    with pytest.raises(resp.NoScriptError):
        client.evalsha("0" * 40, 0)


def test_the_connection_stays_in_step_after_an_error_reply(admin: redis.Redis,
                                                           client: resp.Redis) -> None:
    with pytest.raises(resp.ResponseError):
        client.execute_command("NOSUCHCOMMAND")
    assert client.ping() is True
    assert client.eval("return {1, redis.error_reply('E inner')}", 0)[0] == 1  # nested: a value
    inner = client.eval("return {1, redis.error_reply('E inner')}", 0)[1]
    assert isinstance(inner, resp.ResponseError) and str(inner) == "E inner"


def test_a_pipeline_is_one_round_trip_and_raises_the_first_error(admin: redis.Redis,
                                                                 client: resp.Redis) -> None:
    pipe = client.pipeline()
    pipe.lpush("q", 1, 2).lpush("q", 3)
    assert len(pipe) == 2
    assert pipe.execute() == [2, 3] and len(pipe) == 0
    assert admin.lrange("q", 0, -1) == [b"3", b"2", b"1"]
    admin.set("s", "x")
    pipe.lpush("s", 1).lpush("q", 4)
    with pytest.raises(resp.ResponseError):
        pipe.execute()
    assert admin.llen("q") == 4  # the rest ran: no transaction
    assert client.ping() is True


def test_a_large_bulk_and_a_big_array_arrive_whole(admin: redis.Redis,
                                                   client: resp.Redis) -> None:
    big = os.urandom(1024 * 1024)
    admin.set("big", big)
    assert client.execute_command("GET", "big") == big
    for start in range(0, 100_000, 10_000):
        admin.rpush("ids", *range(start, start + 10_000))
    got = client.execute_command("LRANGE", "ids", 0, -1)
    assert got == admin.lrange("ids", 0, -1)
    assert got[0] == b"0" and got[-1] == b"99999" and len(got) == 100_000
    assert client.lpush("in", *range(100_000)) == 100_000  # and a big command out


def test_a_blocking_command_timing_out_on_the_server_is_nil_not_an_error(
        admin: redis.Redis) -> None:
    c = resp.Redis(port=admin.connection_pool.connection_kwargs["port"], socket_timeout=2)
    assert c.execute_command("BLMOVE", "missing", "dst", "RIGHT", "LEFT", "0.05") is None
    assert c.ping() is True


def test_a_socket_timeout_is_a_timeout_error_and_the_next_command_reconnects(
        admin: redis.Redis) -> None:
    c = resp.Redis(port=admin.connection_pool.connection_kwargs["port"], socket_timeout=0.2)
    with pytest.raises(resp.TimeoutError) as err:
        c.execute_command("BLPOP", "missing", 5)  # Redis answers after 5 s: too late
    assert "\n" not in str(err.value)
    admin.rpush("missing", "late")  # the abandoned BLPOP must not take it: closed
    time.sleep(0.1)
    assert c.ping() is True
    assert admin.lrange("missing", 0, -1) == [b"late"]


def test_a_refused_connect_is_a_one_line_connection_error() -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(resp.ConnectionError) as err:
        resp.Redis(port=port, socket_connect_timeout=1).ping()
    assert f"127.0.0.1:{port}" in str(err.value) or f"localhost:{port}" in str(err.value)
    assert "refused" in str(err.value).lower() and "\n" not in str(err.value)


def test_a_name_that_does_not_resolve_is_a_connection_error() -> None:
    with pytest.raises(resp.ConnectionError) as err:
        resp.Redis(host="no-such-host.invalid", socket_connect_timeout=1).ping()
    assert "no-such-host.invalid" in str(err.value) and "\n" not in str(err.value)


def test_a_connect_timeout_is_a_timeout_error() -> None:
    # A listening socket whose backlog is full: the kernel drops further SYNs.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                fillers.append(s)
            time.sleep(0.1)
            with pytest.raises(resp.TimeoutError, match="Timeout connecting to server"):
                resp.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.3).ping()
        finally:
            for s in fillers:
                s.close()


def _start(folder: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """A redis-server of the test's own (to restart, kill, or give a password), up."""
    exe = shutil.which("redis-server")
    assert exe is not None
    proc = subprocess.Popen([exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(folder), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    password = extra[1] if extra[:1] == ("--requirepass",) else None
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port, password=password).ping()
            return proc
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    proc = _start(tmp_path, port, "--requirepass", "s3cret")
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_auth_with_the_password_and_without(auth_server: int) -> None:
    assert resp.Redis(port=auth_server, password="s3cret").ping() is True
    with pytest.raises(resp.AuthenticationError) as wrong:
        resp.Redis(port=auth_server, password="nope").ping()
    with pytest.raises(redis.AuthenticationError) as oracle:
        redis.Redis(port=auth_server, password="nope").ping()
    assert str(wrong.value) == str(oracle.value)
    with pytest.raises(resp.AuthenticationError):  # NOAUTH: a ConnectionError, as in redis-py
        resp.Redis(port=auth_server).ping()
    assert issubclass(resp.AuthenticationError, resp.ConnectionError)


def test_a_server_killed_mid_reply_is_a_connection_error(tmp_path: Path) -> None:
    """The server is SIGKILLed while it sends a 64 MB reply: more than the sockets' buffers
    hold, so the client, reading only after the kill, gets part of it and then the end."""
    port = _free_port()
    proc = _start(tmp_path, port)
    try:
        redis.Redis(port=port).set("big", b"x" * (64 * 1024 * 1024))
        c = resp.Connection("127.0.0.1", port, timeout=10)
        c.send(resp.pack(("GET", "big")))
        assert c.sock is not None
        c.sock.recv(1024, socket.MSG_PEEK)  # the reply has begun
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        with pytest.raises(resp.ConnectionError) as err:
            c.read()
        assert "\n" not in str(err.value)
        assert c.sock is None  # closed: its replies would be out of step
        with pytest.raises(resp.ConnectionError):
            c.send(resp.pack(("PING",)))  # a Connection stays closed
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_restarted_server_is_reached_by_the_next_command(tmp_path: Path) -> None:
    """The worker's heartbeat thread relies on this: its client's idle connection, closed
    by a Redis that restarted, is replaced before the next command is sent on it."""
    port = _free_port()
    proc = _start(tmp_path, port)
    try:
        c = resp.Redis(port=port)
        assert c.set("k", 1) is True
        proc.terminate()
        proc.wait(timeout=10)
        proc = _start(tmp_path, port)
        assert c.set("k", 2) is True  # no error first
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_killed_client_connection_fails_once_then_the_client_reconnects(
        admin: redis.Redis, client: resp.Redis) -> None:
    """A connection killed mid-command (CLIENT KILL while a BLPOP waits) is an error for
    that command, never a silent resend; the client's next command uses a new one."""
    admin.client_setname("admin")
    outcome: list[BaseException] = []

    def blpop() -> None:
        try:
            client.execute_command("BLPOP", "missing", 5)
        except resp.RedisError as exc:
            outcome.append(exc)

    t = threading.Thread(target=blpop)
    t.start()
    deadline = time.monotonic() + 5
    while not any(c.get("cmd") == "blpop" for c in admin.client_list()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    admin.client_kill_filter(_type="normal", skipme=True)
    t.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], resp.ConnectionError)
    assert client.ping() is True


def test_disconnect_closes_the_connections_threads_hold(admin: redis.Redis,
                                                        client: resp.Redis) -> None:
    own = client.connection()
    client.ping()
    client.disconnect()
    assert own.sock is None
    assert client.ping() is True


@pytest.mark.parametrize("garbage", [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"$many\r\n"])
def test_a_peer_that_does_not_speak_redis_is_a_connection_error(garbage: bytes) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        c = resp.Redis(port=server.getsockname()[1], socket_timeout=5)

        def answer() -> None:
            peer, _ = server.accept()
            peer.recv(100)
            peer.sendall(garbage)
            peer.close()

        t = threading.Thread(target=answer)
        t.start()
        with pytest.raises(resp.ConnectionError, match="Protocol error"):
            c.ping()
        t.join(5)
