"""The reliable queue's protocol: every change of a task's place is one Lua script.

A task id is always in exactly one place: the queue (``topo:queue``), one worker's
processing list, the dead letters (owed a record, then recorded), or nowhere because it was
acknowledged after its record was written. Each transition below is one round trip that
Redis runs whole or not at all, so a worker that dies, or a connection that drops, between
any two round trips (or loses a reply) leaves every task in one place:

- ``take``: acknowledge what is done, move up to n tasks to this worker's processing list,
  and mark the first one started (it runs at once);
- ``wait``: BLMOVE one task (a single command: the queue was empty);
- ``start``: acknowledge what is done and mark a held task started, only if still held;
- ``rejoin``: beat, and give back what this worker holds except what it has done;
- ``reap``: if the owner's heartbeat is gone (checked inside the script), give back all it
  held; a task started ``max_attempts`` times goes to the dead letters instead;
- ``recorded``: a dead letter whose record is written moves from owed to recorded.

Attempts are charged when a task starts, not when it is given back, so the tasks a worker
took with a poison task (prefetch > 1) and never began are not charged for its deaths. A
start whose reply was lost is uncharged by the same process's ``rejoin`` (it knows it never
ran the task).

A dead letter first lands in ``topo:dead:owed`` (id -> "<owner> <attempts>"). Its record
goes to an event file, which no script can write, so any worker that reaps (or starts)
writes the owed records and only then marks them recorded: a worker dying in between leaves
them owed, and the next one writes them (a record written twice counts one failed task).

Standard library and redis only: this runs inside the worker containers.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import redis

QUEUE = "topo:queue"
STARTED = "topo:started"  # id -> the worker process that started it (while held)
ATTEMPTS = "topo:attempts"  # id -> times started, while the task is not done
OWED = "topo:dead:owed"  # dead letters whose record is not written yet
DEAD = "topo:dead"  # dead letters whose record is written
REAPER_LOCK = "topo:reaper"
PROCESSING_PREFIX = "topo:processing:"


def processing(worker: str) -> str:
    return PROCESSING_PREFIX + worker


def heartbeat(worker: str) -> str:
    return f"topo:heartbeat:{worker}"


# Shared by rejoin and reap. KEYS[2..5]: queue, started, attempts, owed.
# release(id, owner, max, mine): put a held task back at the head of the queue (workers take
# from the right), or into the owed dead letters when it was started max times. ``mine`` is
# the process giving back its own tasks: a start it made but never ran (its reply was lost)
# is uncharged. Returns 1 when the task was dead-lettered.
_RELEASE = """
local function release(id, owner, max, mine)
  local by = redis.call('HGET', KEYS[3], id)
  if by then
    redis.call('HDEL', KEYS[3], id)
    if by == mine then
      if redis.call('HINCRBY', KEYS[4], id, -1) <= 0 then redis.call('HDEL', KEYS[4], id) end
    else
      local n = tonumber(redis.call('HGET', KEYS[4], id) or '0')
      if n >= max then
        redis.call('HDEL', KEYS[4], id)
        redis.call('HSET', KEYS[5], id, owner .. ' ' .. n)
        return 1
      end
    end
  end
  redis.call('RPUSH', KEYS[2], id)
  return 0
end
-- newest first, so that the oldest task ends at the head and is taken again first
local function release_all(owner, max, mine, keep)
  local moved = {}
  for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    if not keep[id] then
      redis.call('LREM', KEYS[1], 1, id)
      if release(id, owner, max, mine) == 0 then moved[#moved + 1] = id end
    end
  end
  return moved
end
"""

# Shared by take and start. ack(first): drop done tasks ARGV[first..] from this worker's
# processing list (KEYS[1]); one no longer there was taken away and is not forgotten.
_ACK = """
local function ack(first)
  for i = first, #ARGV do
    if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
      redis.call('HDEL', KEYS[2], ARGV[i])
      redis.call('HDEL', KEYS[3], ARGV[i])
    end
  end
end
"""

# KEYS: processing(me), started, attempts, queue. ARGV: me (process), n, done ids...
_TAKE = _ACK + """
ack(3)
local taken = {}
for _ = 1, tonumber(ARGV[2]) do
  local id = redis.call('LMOVE', KEYS[4], KEYS[1], 'RIGHT', 'LEFT')
  if not id then break end
  taken[#taken + 1] = id
end
if taken[1] then
  redis.call('HSET', KEYS[2], taken[1], ARGV[1])
  redis.call('HINCRBY', KEYS[3], taken[1], 1)
end
return taken
"""

# KEYS: processing(me), started, attempts. ARGV: me (process), id, done ids...
# Returns the attempts so far, or nil when the task is no longer this worker's.
_START = _ACK + """
ack(3)
if not redis.call('LPOS', KEYS[1], ARGV[2]) then return false end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
"""

# KEYS: processing(me), queue, started, attempts, owed, heartbeat(me).
# ARGV: me (process), heartbeat ttl ms, worker name, max attempts, kept ids...
_REJOIN = _RELEASE + """
redis.call('SET', KEYS[6], ARGV[1], 'PX', ARGV[2])
local keep = {}
for i = 5, #ARGV do keep[ARGV[i]] = true end
return release_all(ARGV[3], tonumber(ARGV[4]), ARGV[1], keep)
"""

# KEYS: processing(owner), queue, started, attempts, owed, heartbeat(owner).
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


class Script:
    """A Lua script run by its SHA1, sent whole only when Redis does not know it yet (a new
    or restarted Redis). Works with any redis-py client, old or new."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, client: redis.Redis, keys: list[str], args: list[object]) -> object:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)


TAKE = Script(_TAKE)
START = Script(_START)
REJOIN = Script(_REJOIN)
REAP = Script(_REAP)
RECORDED = Script(_RECORDED)


class ReliableQueue:
    """One worker process's side of the protocol. ``name`` is its worker (container) name;
    ``me`` names this process uniquely: a restarted container may reuse its PID, and the new
    process must not be taken for the old one. Every method is one round trip; ``client``
    may be replaced after a reconnect."""

    def __init__(self, client: redis.Redis, name: str, me: str, max_attempts: int,
                 heartbeat_ttl_ms: int) -> None:
        self.client = client
        self.name = name
        self.me = me
        self.max_attempts = max_attempts
        self.heartbeat_ttl_ms = heartbeat_ttl_ms
        self._mine = processing(name)

    def beat(self) -> None:
        self.client.set(heartbeat(self.name), self.me, px=self.heartbeat_ttl_ms)

    def take(self, n: int, done: Iterable[bytes] = ()) -> list[bytes]:
        """Acknowledge ``done``; take up to ``n`` tasks, the first of them started."""
        keys = [self._mine, STARTED, ATTEMPTS, QUEUE]
        return list(TAKE(self.client, keys, [self.me, n, *done]))  # type: ignore[arg-type]

    def wait(self, timeout: float) -> bytes | None:
        """Block up to ``timeout`` seconds for one task (not started yet)."""
        return self.client.blmove(QUEUE, self._mine, timeout, "RIGHT", "LEFT")

    def start(self, raw: bytes, done: Iterable[bytes] = ()) -> bool:
        """Acknowledge ``done``; mark ``raw`` started. False: it is no longer this worker's
        (declared dead while it was frozen, and given back): do not run it."""
        keys = [self._mine, STARTED, ATTEMPTS]
        return START(self.client, keys, [self.me, raw, *done]) is not None

    def rejoin(self, keep: Iterable[bytes] = ()) -> list[bytes]:
        """Beat, and give back every task held but ``keep`` (done, not yet acknowledged).
        Returns the ids put back on the queue (dead letters go to the owed ones)."""
        keys = [self._mine, QUEUE, STARTED, ATTEMPTS, OWED, heartbeat(self.name)]
        args = [self.me, self.heartbeat_ttl_ms, self.name, self.max_attempts, *keep]
        return list(REJOIN(self.client, keys, args))  # type: ignore[arg-type]

    def reap(self, owner: str) -> list[bytes] | None:
        """Give back what ``owner`` holds if its heartbeat is gone; None if it lives."""
        keys = [processing(owner), QUEUE, STARTED, ATTEMPTS, OWED, heartbeat(owner)]
        moved = REAP(self.client, keys, [owner, self.max_attempts])
        return None if moved is None else list(moved)  # type: ignore[call-overload]

    def holders(self) -> list[str]:
        """Workers whose processing list holds tasks, registered or not."""
        keys = self.client.scan_iter(match=PROCESSING_PREFIX + "*", count=1000)
        return sorted({k.decode()[len(PROCESSING_PREFIX):] for k in keys})

    def lock_reaper(self, ms: int) -> bool:
        return bool(self.client.set(REAPER_LOCK, self.me, nx=True, px=max(ms, 1)))

    def owed(self) -> dict[int, tuple[str, int]]:
        """Dead letters whose record is not written yet: id -> (owner, attempts)."""
        owed = {}
        for raw, value in self.client.hgetall(OWED).items():
            owner, attempts = value.decode().rsplit(" ", 1)
            owed[int(raw)] = (owner, int(attempts))
        return owed

    def recorded(self, ids: Iterable[int]) -> None:
        """Mark dead letters whose record is written (idempotent)."""
        ids = list(ids)
        if ids:
            RECORDED(self.client, [OWED, DEAD], ids)
