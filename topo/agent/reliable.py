"""The reliable queue's protocol: every change of a task's place is one Lua script.

A task id is always in exactly one place: the queue (``topo:queue``), one worker's
processing list, the dead letters (owed a record, then recorded), or nowhere because it was
acknowledged after its record was written. Each transition below is one round trip that
Redis runs whole or not at all, so a worker that dies, or a connection that drops, between
any two round trips (or loses a reply) leaves every task in one place:

- ``take``: acknowledge what is done, move up to n tasks (a batch) to this worker's
  processing list, and mark the first one started (it runs at once);
- ``mark``: mark the next task of the batch started, just before it runs. One command
  (HSET) written to the worker's connection, not a round trip: marks get no reply and
  leave with the next script (``Link``). A task is started when its mark is written; the
  worker runs nothing between writing the mark and entering the task, and the kernel
  delivers what a dying process wrote, so a death at any point charges exactly the tasks
  begun;
- ``flush``: acknowledge what is done mid-batch (a time bound), and say whether the batch is
  still this worker's (a frozen worker's tasks are given back: it must not run the rest);
- ``wait``: BLMOVE one task (a single command: the queue was empty);
- ``rejoin``: beat, and give back what this worker holds except what it has done;
- ``reap``: if the owner's heartbeat is gone (checked inside the script), give back all it
  held; a task started ``max_attempts`` times goes to the dead letters instead;
- ``recorded``: a dead letter whose record is written moves from owed to recorded.

Attempts are charged when a started task is given back (``topo:attempts`` counts the
holdings that started it; the current holding's start is its mark in
``topo:started:<worker>``), so the tasks a worker took with a poison task and never began
are not charged for its deaths. A mark whose task this process never ran (the connection
dropped first) is uncharged by the same process's ``rejoin``: it knows what it ran. Acks go
in batches (with the next take, or after the worker's ``FLUSH_EVERY``). A worker that dies
after completing tasks and before acknowledging them does not have them run again: it
writes a task's record before marking the next (to the kernel, one write(2) per record:
``topo.agent.common.Events``; a record held in the process to be written with its batch
would die with it), so of its marks only the latest can be a task it had not finished;
the reaper (or its own restart) acknowledges the others, and gives back the latest, charged
(at-least-once: if that one had finished too, it runs twice).

Two cases are not exact, each by one start that goes uncharged: a connection that drops
silently (the mark is written into a socket whose peer is gone), after which the worker
runs the task and dies before it could rejoin; and a worker frozen past its heartbeat
exactly between its ack time check and a mark, which on waking marks and runs that one task
after it was given back (a duplicate run).

A dead letter first lands in ``topo:dead:owed`` (id -> "<owner> <attempts>"). Its record
goes to an event file, which no script can write, so any worker that reaps (or starts)
writes the owed records and only then marks them recorded: a worker dying in between leaves
them owed, and the next one writes them (a record written twice counts one failed task).

Standard library only (with topo.agent.resp): this runs inside the worker containers.
"""

from __future__ import annotations

import socket

from topo.agent import resp

try:  # CPython's own SHA-1, built in: hashlib's import (OpenSSL) costs a worker's start-up more
    from _sha1 import sha1  # type: ignore[import-not-found]
except ImportError:  # another Python
    from hashlib import sha1

TYPE_CHECKING = False  # typing is for the type checker only (see topo.agent.protocol)
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Sequence, Union

QUEUE = "topo:queue"
STARTED_PREFIX = "topo:started:"  # per worker: held id -> the process that started it
ATTEMPTS = "topo:attempts"  # id -> holdings that started it and gave it back, while not done
OWED = "topo:dead:owed"  # dead letters whose record is not written yet
DEAD = "topo:dead"  # dead letters whose record is written
REAPER_LOCK = "topo:reaper"
PROCESSING_PREFIX = "topo:processing:"


def processing(worker: str) -> str:
    return PROCESSING_PREFIX + worker


def started(worker: str) -> str:
    return STARTED_PREFIX + worker


def heartbeat(worker: str) -> str:
    return f"topo:heartbeat:{worker}"


# Shared by rejoin and reap. KEYS[1..5]: processing(owner), queue, started(owner), attempts,
# owed. A mark is "<process> <n>": the process's n-th start, or "<process> done" for a task
# done whose ack is not through (kept by a rejoin). One process runs one task at a time, in
# the order it marks them, and writes a task's record before it marks the next: so of a
# gone process's marks, only the latest can be a task it had not finished; the others are
# done, their records written, and are acknowledged here instead of run again.
# release_all(owner, max, mine, keep): give back all held but ``keep``, newest first (the
# oldest ends at the head of the queue, where workers take). ``mine`` is the live process
# giving back its own tasks: it ran exactly its kept ones; a mark of its own on any other
# (written before the connection dropped, never run) is not a start.
# Returns the ids put back on the queue; a task given back at its max-th start goes to the
# owed dead letters instead.
_RELEASE = """
local function mark_of(id)
  local by = redis.call('HGET', KEYS[3], id)
  if not by then return nil, nil end
  local proc, n = string.match(by, '^(.*) (%S+)$')
  return proc, n
end
local function latest(mine)
  local last, top = nil, -1
  for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    local proc, n = mark_of(id)
    if proc and proc ~= mine and n ~= 'done' and tonumber(n) > top then
      last, top = id, tonumber(n)
    end
  end
  return last
end
local function requeue(id, owner, max, charge)
  if charge then
    local n = redis.call('HINCRBY', KEYS[4], id, 1)
    if n >= max then
      redis.call('HDEL', KEYS[4], id)
      redis.call('HSET', KEYS[5], id, owner .. ' ' .. n)
      return false
    end
  end
  redis.call('RPUSH', KEYS[2], id)
  return true
end
local function release_all(owner, max, mine, keep)
  local moved, last = {}, latest(mine)
  for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    local proc, n = mark_of(id)
    if keep[id] then
      redis.call('HSET', KEYS[3], id, mine .. ' done')
    else
      redis.call('LREM', KEYS[1], 1, id)
      redis.call('HDEL', KEYS[3], id)
      if proc and proc ~= mine and id ~= last then
        redis.call('HDEL', KEYS[4], id)  -- done by a gone process: acknowledged
      elseif requeue(id, owner, max, proc and proc ~= mine) then
        moved[#moved + 1] = id
      end
    end
  end
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[3]) end
  return moved
end
"""

# Shared by take and ack. ack(first): drop done tasks ARGV[first..] from this worker's
# processing list (KEYS[1]) and their marks; a task no longer held was taken away (and is
# not forgotten: its charges belong to its new place). Done tasks are the oldest held, at
# the list's right end, where LREM -1 starts; hashes lose their fields in one HDEL per
# thousand ids (Lua's unpack has a limit), not one per task.
_ACK = """
local function hdel_all(key, ids)
  for i = 1, #ids, 1000 do
    redis.call('HDEL', key, unpack(ids, i, math.min(i + 999, #ids)))
  end
end
local function ack(first)
  local held, all = {}, {}
  for i = first, #ARGV do
    all[#all + 1] = ARGV[i]
    if redis.call('LREM', KEYS[1], -1, ARGV[i]) == 1 then held[#held + 1] = ARGV[i] end
  end
  hdel_all(KEYS[3], held)
  hdel_all(KEYS[2], all)
end
"""

# KEYS: processing(me), started(me), attempts, queue. ARGV: mark, n, done ids...
# A taken task may carry a mark a frozen process wrote after its batch was given back: the
# mark is dropped, as it is not a start of this holding.
_TAKE = _ACK + """
ack(3)
local taken = {}
for _ = 1, tonumber(ARGV[2]) do
  local id = redis.call('LMOVE', KEYS[4], KEYS[1], 'RIGHT', 'LEFT')
  if not id then break end
  taken[#taken + 1] = id
end
hdel_all(KEYS[2], taken)
if taken[1] then redis.call('HSET', KEYS[2], taken[1], ARGV[1]) end
return taken
"""

# KEYS: processing(me), started(me), attempts. ARGV: next id, done ids...
# Returns 1 while ``next`` is held (the batch is still this worker's), else 0.
_FLUSH = _ACK + """
ack(2)
if redis.call('LPOS', KEYS[1], ARGV[1], 'RANK', -1) then return 1 end
return 0
"""

# KEYS: processing(me), queue, started(me), attempts, owed, heartbeat(me).
# ARGV: me (process), heartbeat ttl ms, worker name, max attempts, kept ids...
_REJOIN = _RELEASE + """
redis.call('SET', KEYS[6], ARGV[1], 'PX', ARGV[2])
local keep = {}
for i = 5, #ARGV do keep[ARGV[i]] = true end
return release_all(ARGV[3], tonumber(ARGV[4]), ARGV[1], keep)
"""

# KEYS: processing(owner), queue, started(owner), attempts, owed, heartbeat(owner).
# ARGV: owner, max attempts. Nil while the owner's heartbeat lives.
_REAP = _RELEASE + """
if redis.call('EXISTS', KEYS[6]) == 1 then return false end
return release_all(ARGV[1], tonumber(ARGV[2]), '', {})
"""

# KEYS: owed, dead. ARGV: ids whose record is written.
_RECORDED = """
for i = 1, #ARGV do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then redis.call('RPUSH', KEYS[2], ARGV[i]) end
end
return 0
"""


class Link:
    """One connection of its own to Redis, for everything a worker says about its own tasks
    (so Redis sees its marks and scripts in the order it wrote them), with two speeds:

    - ``send`` writes a start mark and returns at once. Marks get no reply (CLIENT REPLY
      OFF) and the connection is corked (TCP_CORK) while they are written: they wait in the
      kernel and leave with the next ``call``, in one packet, instead of waking Redis once
      per task (on 2 loaded cores each wake-up cost a round trip's time). A mark in the
      kernel is as good as in Redis: a process that dies, or is SIGKILLed, closes its
      socket, and the kernel still delivers what was written before the FIN; it sends an
      RST instead, dropping the data, only if unread data is waiting, and marks get no
      replies, and every ``call`` reads all of its own. A frozen process's marks leave
      after 200 ms (the kernel's ceiling on a cork), long before its heartbeat expires.
    - ``call`` writes a command (turning replies back on first), uncorks, and returns the
      reply. An error reply is returned, not raised, so the replies stay in step."""

    def __init__(self, client: resp.Redis) -> None:
        self._conn = client.connection()
        self._quiet = False  # marks written since the last call: replies off, corked
        self._hset_heads: dict[str, bytes] = {}  # a mark's command up to its field

    def send(self, *args: object) -> None:
        """Write a command whose reply is never read (a start mark)."""
        self._send_packed(resp.pack(args))

    def send_hset(self, key: str, field: bytes, value: bytes) -> None:
        """``send("HSET", key, field, value)``, packed faster: the per-task start mark."""
        head = self._hset_heads.get(key)
        if head is None:
            raw_key = key.encode()
            head = self._hset_heads[key] = b"*4\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n" % (
                len(raw_key), raw_key)
        self._send_packed(b"%s$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            head, len(field), field, len(value), value))

    def _send_packed(self, data: bytes) -> None:
        if self._quiet:
            self._write(data)
            return
        self._cork(True)
        self._quiet = True
        self._write(_REPLY_OFF + data)

    def call(self, *args: object) -> Any:
        """Write a command, after the marks, and return its reply (an error reply too, as
        its exception: it is not raised)."""
        if not self._quiet:
            self._write(resp.pack(args))
            return self._read()
        self._write(_REPLY_ON + resp.pack(args))
        self._cork(False)  # everything leaves now, in order
        self._quiet = False
        ok = self._read()
        if isinstance(ok, resp.ResponseError):
            raise ok
        return self._read()

    def execute_command(self, *args: object) -> Any:
        """``call``, an error reply raised (as a client's ``execute_command``)."""
        reply = self.call(*args)
        if isinstance(reply, resp.ResponseError):
            raise reply
        return reply

    def push(self) -> None:
        """Send the marks written so far now, staying quiet (the queue tests wait for them)."""
        if self._quiet:
            self._cork(False)
            self._cork(True)

    def _cork(self, on: bool) -> None:
        sock = self._conn.sock
        try:
            if sock is None:
                raise OSError("closed")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))
        except OSError as exc:
            self._conn.close()
            raise resp.ConnectionError(f"the connection to Redis is gone: {exc}") from exc

    def _write(self, data: bytes) -> None:
        self._conn.send(data)

    def _read(self) -> Any:
        return self._conn.read()

    def close(self) -> None:
        self._conn.close()


_REPLY_OFF = resp.pack(("CLIENT", "REPLY", "OFF"))
_REPLY_ON = resp.pack(("CLIENT", "REPLY", "ON"))

if TYPE_CHECKING:
    Target = Union[resp.Redis, Link]


class Script:
    """A Lua script run by its SHA1, sent whole only when Redis does not know it yet (a new
    or restarted Redis), through a client or a ``Link``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = sha1(source.encode()).hexdigest()

    def __call__(self, target: Target, keys: list[str], args: Sequence[Any]) -> Any:
        try:
            return target.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except resp.NoScriptError:
            return target.execute_command("EVAL", self.source, len(keys), *keys, *args)


TAKE = Script(_TAKE)
FLUSH = Script(_FLUSH)
REJOIN = Script(_REJOIN)
REAP = Script(_REAP)
RECORDED = Script(_RECORDED)


class ReliableQueue:
    """One worker process's side of the protocol. ``name`` is its worker (container) name;
    ``me`` names this process uniquely: a restarted container may reuse its PID, and the new
    process must not be taken for the old one. Every method is one round trip except
    ``mark`` (none: a write). ``use`` a new client after a reconnect."""

    def __init__(self, client: resp.Redis, name: str, me: str, max_attempts: int,
                 heartbeat_ttl_ms: int, link: Callable[[resp.Redis], Link] = Link) -> None:
        self.name = name
        self.me = me
        self.max_attempts = max_attempts
        self.heartbeat_ttl_ms = heartbeat_ttl_ms
        self._mine = processing(name)
        self._started = started(name)
        self._marks = 0  # this process's starts, in order: a mark says which one it is
        self._me = me.encode()
        self.make_link = link
        self.client = client
        self.link = link(client)

    def use(self, client: resp.Redis) -> None:
        """Speak through ``client`` from now on (a reconnect): a new link, the old one shut."""
        try:
            self.link.close()
        finally:
            self.client = client
            self.link = self.make_link(client)

    def beat(self) -> None:
        self.client.set(heartbeat(self.name), self.me, px=self.heartbeat_ttl_ms)

    def take(self, n: int, done: Iterable[bytes] = ()) -> list[bytes]:
        """Acknowledge ``done``; take up to ``n`` tasks, the first of them marked started."""
        keys = [self._mine, self._started, ATTEMPTS, QUEUE]
        return list(TAKE(self.link, keys, [self._next_mark(), n, *done]))

    def mark(self, raw: bytes) -> None:
        """Mark a held task started, just before it runs: written, not awaited."""
        self._marks += 1
        self.link.send_hset(self._started, raw, b"%s %d" % (self._me, self._marks))

    def _next_mark(self) -> str:
        self._marks += 1
        return f"{self.me} {self._marks}"

    def flush(self, done: Iterable[bytes], next_raw: bytes) -> bool:
        """Acknowledge ``done``. False: ``next_raw`` (and so the rest of the batch) is no
        longer this worker's (declared dead while it was frozen, and given back)."""
        keys = [self._mine, self._started, ATTEMPTS]
        return bool(FLUSH(self.link, keys, [next_raw, *done]))

    def wait(self, timeout: float) -> bytes | None:
        """Block up to ``timeout`` seconds for one task (not marked started yet)."""
        reply: bytes | None = self.link.call("BLMOVE", QUEUE, self._mine, "RIGHT", "LEFT",
                                             timeout)
        return reply

    def rejoin(self, keep: Iterable[bytes] = ()) -> list[bytes]:
        """Beat, and give back every task held but ``keep`` (done, not yet acknowledged).
        Returns the ids put back on the queue (dead letters go to the owed ones)."""
        keys = [self._mine, QUEUE, self._started, ATTEMPTS, OWED, heartbeat(self.name)]
        args = [self.me, self.heartbeat_ttl_ms, self.name, self.max_attempts, *keep]
        return list(REJOIN(self.link, keys, args))

    def reap(self, owner: str) -> list[bytes] | None:
        """Give back what ``owner`` holds if its heartbeat is gone; None if it lives."""
        keys = [processing(owner), QUEUE, started(owner), ATTEMPTS, OWED, heartbeat(owner)]
        moved = REAP(self.client, keys, [owner, self.max_attempts])
        return None if moved is None else list(moved)

    def holders(self) -> list[str]:
        """Workers whose processing list holds tasks, registered or not."""
        keys = self.client.scan_iter(match=PROCESSING_PREFIX + "*", count=1000)
        return sorted({k.decode()[len(PROCESSING_PREFIX):] for k in keys})

    def lock_reaper(self, ms: int) -> bool:
        return bool(self.client.set(REAPER_LOCK, self.me, nx=True, px=max(ms, 1)))

    def owed(self) -> dict[int, tuple[str, int]]:
        """Dead letters whose record is not written yet: id -> (owner, attempts)."""
        owed = {}
        entries: dict[bytes, bytes] = self.client.hgetall(OWED)
        for raw, value in entries.items():
            owner, attempts = value.decode().rsplit(" ", 1)
            owed[int(raw)] = (owner, int(attempts))
        return owed

    def recorded(self, ids: Iterable[int]) -> None:
        """Mark dead letters whose record is written (idempotent)."""
        ids = list(ids)
        if ids:
            RECORDED(self.client, [OWED, DEAD], ids)
