"""A small Redis client for the multi agents (the worker and the feeder): RESP2 over one TCP
socket per connection, the few commands they use, and nothing else.

Why not redis-py: a multi worker starts on a small share of a CPU (2/64 among 64 workers),
and importing redis-py (its client, commands, cluster, ssl, logging...) cost as much CPU as
the rest of the agent's start-up together, for the handful of commands the agents send.
Standard library only: it runs inside the containers, maybe a team's own image with any
redis-py or none.

Replies are what redis-py returns with its defaults, so callers mean the same: bulk strings
as bytes, integers as int, arrays as lists, nil as None; ``set`` -> True or None, ``ping``
-> True, ``hgetall`` -> dict of bytes, ``brpop`` -> (key, value) or None. An error reply is
raised (a ``ResponseError``); in an array or a pipeline's replies it is the exception as a
value, as redis-py gives it.

Errors, as redis-py names them (a caller catching ``ConnectionError, TimeoutError`` catches
every loss of the server)::

    RedisError
    +-- ConnectionError: refused, reset or closed, a name that does not resolve
    |   +-- AuthenticationError: the password is wrong or missing
    |   +-- BusyLoadingError: Redis is loading its data (it restarted)
    +-- TimeoutError: no answer within the socket's timeout (or no connect within its own)
    +-- ResponseError: an error reply
        +-- NoScriptError: EVALSHA of a script Redis does not know

No command is ever sent twice by this client: a script whose reply was lost may have run.
After a ``ConnectionError`` or ``TimeoutError`` the connection is closed (its replies are
out of step); a ``Redis`` client opens a new one for its next command, as redis-py's pool
does, and a ``Connection`` stays closed.
"""

from __future__ import annotations

import select
import socket

TYPE_CHECKING = False  # typing is for the type checker only (see topo.agent.protocol)
if TYPE_CHECKING:
    from typing import Any, Iterator, NoReturn


class RedisError(Exception):
    pass


class ConnectionError(RedisError):  # noqa: A001  (redis-py's name, which callers catch)
    pass


class TimeoutError(RedisError):  # noqa: A001
    pass


class AuthenticationError(ConnectionError):
    pass


class BusyLoadingError(ConnectionError):
    pass


class ResponseError(RedisError):
    pass


class NoScriptError(ResponseError):
    pass


# Error codes whose class is not plain ResponseError; like redis-py, the message drops the
# code of a known one ("ERR unknown command ..." -> "unknown command ...").
_ERRORS: dict[bytes, type[RedisError]] = {
    b"ERR": ResponseError, b"NOSCRIPT": NoScriptError, b"LOADING": BusyLoadingError,
    b"WRONGPASS": AuthenticationError, b"NOAUTH": AuthenticationError,
}
_READ = 65536


def _error(line: bytes) -> RedisError:
    code, _, rest = line.partition(b" ")
    kind = _ERRORS.get(code)
    text = line if kind is None else rest
    return (kind or ResponseError)(text.decode("utf-8", "replace"))


def pack(args: tuple[object, ...]) -> bytes:
    """A command in Redis' protocol: bytes as they are, anything else as its str()."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class Connection:
    """One connected socket and its reply reader. ``send`` and ``read`` are separate so
    that a caller may write commands whose replies it reads later, or never (CLIENT REPLY
    OFF). Any failure closes it for good (``sock`` None)."""

    def __init__(self, host: str, port: int, password: str | None = None,
                 connect_timeout: float | None = None, timeout: float | None = None,
                 registry: set[Connection] | None = None) -> None:
        self.sock: socket.socket | None = _connect(host, port, connect_timeout)
        self.sock.settimeout(timeout)
        self._buf = b""
        self._pos = 0
        self._registry = registry
        if password is not None:
            self.send(pack(("AUTH", password)))
            reply = self.read()
            if isinstance(reply, RedisError):
                self.close()
                raise AuthenticationError(str(reply))
        if registry is not None:
            registry.add(self)

    def send(self, data: bytes) -> None:
        if self.sock is None:
            raise ConnectionError("Connection closed.")
        try:
            self.sock.sendall(data)
        except BaseException as exc:
            self._fail(exc, "writing to")

    def read(self) -> Any:
        """The next reply; an error reply is returned as its exception, except the ones that
        say the server is not there for us (``ConnectionError`` kinds): those are raised."""
        try:
            reply = self._reply()
        except BaseException as exc:
            self._fail(exc, "reading from")
        if isinstance(reply, ConnectionError):
            self.close()
            raise reply
        return reply

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if self._registry is not None:
            self._registry.discard(self)
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _fail(self, exc: BaseException, doing: str) -> NoReturn:
        self.close()
        if isinstance(exc, socket.timeout):
            raise TimeoutError(f"Timeout {doing} socket") from exc
        if isinstance(exc, OSError):
            raise ConnectionError(f"Error while {doing} socket: {exc}") from exc
        if isinstance(exc, ValueError):  # a length that is no number: not Redis speaking
            raise ConnectionError(f"Protocol error: {exc}") from exc
        raise exc

    def _reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._bulk(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else self._array(n)
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest
        if kind == b"-":
            return _error(rest)
        raise ConnectionError(f"Protocol error: {line[:40]!r}")

    def _array(self, n: int) -> list[Any]:
        """``n`` replies; a bulk string already in the buffer is sliced out here (a batch of
        task ids is an array of them), anything else goes through ``_reply``."""
        out: list[Any] = []
        append = out.append
        for _ in range(n):
            buf, pos = self._buf, self._pos
            end = buf.find(b"\r\n", pos)
            if end > pos and buf[pos] == 36:  # "$"
                size = int(buf[pos + 1:end])
                start = end + 2
                if 0 <= size and start + size + 2 <= len(buf):
                    append(buf[start:start + size])
                    self._pos = start + size + 2
                    continue
            append(self._reply())
        return out

    def _line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n", self._pos)
            if end >= 0:
                line = self._buf[self._pos:end]
                self._pos = end + 2
                return line
            self._fill(_READ)

    def _bulk(self, n: int) -> bytes:
        while len(self._buf) - self._pos < n + 2:
            self._fill(n + 2 - (len(self._buf) - self._pos))
        data = self._buf[self._pos:self._pos + n]
        self._pos += n + 2
        return data

    def _fill(self, want: int) -> None:
        if self.sock is None:
            raise ConnectionError("Connection closed.")
        chunk = self.sock.recv(max(want, _READ))
        if not chunk:
            raise ConnectionError("Connection closed by server.")
        self._buf = self._buf[self._pos:] + chunk
        self._pos = 0


def _connect(host: str, port: int, timeout: float | None) -> socket.socket:
    try:
        sock = socket.create_connection((host, port), timeout)
    except socket.timeout as exc:
        raise TimeoutError("Timeout connecting to server") from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConnectionError(f"Error {exc.errno} connecting to {host}:{port}. {reason}.") \
            from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Redis:
    """A client: connections are opened on demand, one per thread at a time (the worker's
    heartbeat thread and its main loop each get their own), and kept for the next command
    once a round trip completed."""

    def __init__(self, host: str = "localhost", port: int = 6379, password: str | None = None,
                 socket_connect_timeout: float | None = None,
                 socket_timeout: float | None = None) -> None:
        self.host, self.port, self.password = host, port, password
        self.timeout = socket_timeout
        self.connect_timeout = socket_timeout if socket_connect_timeout is None \
            else socket_connect_timeout  # as redis-py
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()  # every connection made and not closed

    def connection(self) -> Connection:
        """A new connection of the caller's own (closed by ``disconnect`` too)."""
        return Connection(self.host, self.port, self.password, self.connect_timeout,
                          self.timeout, self._open)

    def round_trip(self, data: bytes, replies: int) -> list[Any]:
        """Write ``data`` (packed commands) and read its ``replies`` on one connection."""
        conn = self._take()
        conn.send(data)
        out = [conn.read() for _ in range(replies)]
        self._idle.append(conn)
        return out

    def _take(self) -> Connection:
        """An idle connection, or a new one. An idle one with something to read was closed
        by the server (Redis restarted, or its clients were killed): it is replaced before
        anything is sent on it, as redis-py's pool does, so a heartbeat after an outage
        goes through on its first try."""
        while self._idle:
            try:
                conn = self._idle.pop()
            except IndexError:  # another thread took the last one
                break
            if conn.sock is not None and not select.select([conn.sock], [], [], 0)[0]:
                return conn
            conn.close()
        return self.connection()

    def execute_command(self, *args: object) -> Any:
        """Send one command and return its reply (an error reply raised): every command
        of this client goes through here."""
        reply = self.round_trip(pack(args), 1)[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    def pipeline(self) -> Pipeline:
        return Pipeline(self)

    def disconnect(self) -> None:
        """Close every connection this client opened (one a thread holds too)."""
        self._idle.clear()
        for conn in list(self._open):
            conn.close()

    close = disconnect

    def ping(self) -> bool:
        return bool(self.execute_command("PING") == b"PONG")

    def set(self, name: str, value: object, px: int | None = None,
            nx: bool = False) -> bool | None:
        args: tuple[object, ...] = ("SET", name, value)
        if px is not None:
            args += ("PX", px)
        if nx:
            args += ("NX",)
        return True if self.execute_command(*args) == b"OK" else None

    def lpush(self, name: str, *values: object) -> int:
        n: int = self.execute_command("LPUSH", name, *values)
        return n

    def brpop(self, key: str, timeout: float = 0) -> tuple[bytes, bytes] | None:
        reply = self.execute_command("BRPOP", key, timeout)
        return None if reply is None else (reply[0], reply[1])

    def hgetall(self, name: str) -> dict[bytes, bytes]:
        flat = self.execute_command("HGETALL", name)
        return dict(zip(flat[::2], flat[1::2]))

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[bytes]:
        extra: tuple[object, ...] = ()
        if match is not None:
            extra += ("MATCH", match)
        if count is not None:
            extra += ("COUNT", count)
        cursor = b"0"
        while True:
            cursor, keys = self.execute_command("SCAN", cursor, *extra)
            yield from keys
            if cursor == b"0":
                return

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: object) -> Any:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def eval(self, script: str, numkeys: int, *keys_and_args: object) -> Any:
        return self.execute_command("EVAL", script, numkeys, *keys_and_args)


class Pipeline:
    """Commands buffered, then sent in one write with ``execute`` (one round trip); not a
    transaction. ``execute`` returns the replies, raising the first error reply."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.commands: list[tuple[object, ...]] = []

    def __len__(self) -> int:
        return len(self.commands)

    def execute_command(self, *args: object) -> Pipeline:
        self.commands.append(args)
        return self

    def lpush(self, name: str, *values: object) -> Pipeline:
        return self.execute_command("LPUSH", name, *values)

    def execute(self) -> list[Any]:
        commands, self.commands = self.commands, []
        if not commands:
            return []
        replies = self.client.round_trip(b"".join(pack(c) for c in commands), len(commands))
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies
