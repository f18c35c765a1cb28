"""Each transition of the reliable queue (topo.agent.reliable) against a real Redis; the
expected lists and counts are worked out by hand from the queue's layout: the feeder
LPUSHes 0..n-1, so task 0 is at the right end, where workers take."""

from __future__ import annotations

import redis

from topo.agent import reliable as rq

from .conftest import agent_client

ME = "a/7/x"
TTL = 60_000


def _queue(admin: redis.Redis, tasks: int = 5, name: str = "a", me: str = ME) -> rq.ReliableQueue:
    if tasks:
        admin.lpush(rq.QUEUE, *range(tasks))
    return rq.ReliableQueue(agent_client(admin), name, me, max_attempts=3, heartbeat_ttl_ms=TTL)


def _ints(values: list[bytes]) -> list[int]:
    return [int(v) for v in values]


def _held(admin: redis.Redis, name: str = "a") -> list[int]:
    return _ints(admin.lrange(rq.processing(name), 0, -1))


def _hash(admin: redis.Redis, key: str) -> dict[int, str]:
    return {int(k): v.decode() for k, v in admin.hgetall(key).items()}


def _started(admin: redis.Redis, name: str = "a") -> dict[int, str]:
    return _hash(admin, rq.started(name))


def test_take_moves_up_to_n_and_marks_only_the_first_started(admin: redis.Redis) -> None:
    q = _queue(admin)
    assert _ints(q.take(2)) == [0, 1]
    assert _held(admin) == [1, 0]  # newest on the left
    assert _ints(admin.lrange(rq.QUEUE, 0, -1)) == [4, 3, 2]
    assert _started(admin) == {0: f"{ME} 1"}  # this process's first start
    assert admin.hlen(rq.ATTEMPTS) == 0  # charged when given back, not before
    assert _ints(q.take(9)) == [2, 3, 4] and q.take(1) == []


def test_take_acknowledges_what_is_done_in_the_same_round_trip(admin: redis.Redis) -> None:
    q = _queue(admin, tasks=3)
    q.take(1)
    assert _ints(q.take(1, done=[b"0"])) == [1]
    assert _held(admin) == [1]
    assert _started(admin) == {1: f"{ME} 2"}


def test_marks_leave_with_the_next_call_in_order(admin: redis.Redis) -> None:
    q = _queue(admin, tasks=4)
    q.take(3)
    q.mark(b"1")
    q.mark(b"2")
    assert _ints(q.take(1, done=[b"0", b"1"])) == [3]  # after the marks, in order
    assert _held(admin) == [3, 2] and _started(admin) == {2: f"{ME} 3", 3: f"{ME} 4"}
    assert _ints(q.take(1, done=[b"2", b"3"])) == [] and q.wait(0.01) is None  # in step


def test_flush_acknowledges_and_says_whether_the_batch_is_still_held(admin: redis.Redis) -> None:
    q = _queue(admin, tasks=4)
    q.take(4)
    q.mark(b"1")
    assert q.flush([b"0", b"1"], b"2")
    assert _held(admin) == [3, 2] and _started(admin) == {}
    admin.delete(rq.heartbeat("a"))
    _queue(admin, tasks=0, name="b", me="b/1/x").reap("a")  # a was frozen: given back
    assert not q.flush([], b"2")


def test_an_ack_of_a_task_taken_away_drops_its_mark_not_its_charge(admin: redis.Redis) -> None:
    q = _queue(admin, tasks=1)
    q.take(1)  # 0 marked
    admin.delete(rq.heartbeat("a"))
    _queue(admin, tasks=0, name="b", me="b/1/x").reap("a")  # charged once, queued again
    q.mark(b"0")  # a frozen worker's late mark
    assert not q.flush([b"0"], b"0")
    assert _started(admin) == {} and _hash(admin, rq.ATTEMPTS) == {0: "1"}
    assert _ints(admin.lrange(rq.QUEUE, 0, -1)) == [0]


def test_take_drops_a_stale_mark_of_a_task_it_takes(admin: redis.Redis) -> None:
    q = _queue(admin, tasks=2)
    admin.hset(rq.started("a"), "1", "a/7/old")  # written after a reap had given 1 back
    q.take(2)
    assert _started(admin) == {0: f"{ME} 1"}


def test_wait_takes_one_task_without_marking_it(admin: redis.Redis) -> None:
    q = _queue(admin, tasks=1)
    assert q.wait(0.01) == b"0"
    assert _held(admin) == [0] and _started(admin) == {}
    assert q.wait(0.01) is None


def test_rejoin_beats_keeps_what_is_done_and_gives_back_the_rest(admin: redis.Redis) -> None:
    q = _queue(admin, tasks=4)
    q.take(3)  # 0 marked
    q.mark(b"1")  # and then the connection dropped, say: this process never ran 1
    moved = q.rejoin(keep=[b"0"])  # (after the mark, on the same connection)
    assert _ints(moved) == [2, 1]  # newest first, so the oldest ends at the head
    assert _held(admin) == [0]
    assert _ints(admin.lrange(rq.QUEUE, 0, -1)) == [3, 2, 1]  # 1 is taken next
    assert admin.hlen(rq.ATTEMPTS) == 0  # 1 uncharged: never ran; 0 still held
    assert _started(admin) == {0: f"{ME} done"}
    assert admin.get(rq.heartbeat("a")) == ME.encode()
    assert 0 < admin.pttl(rq.heartbeat("a")) <= TTL


def test_rejoin_marks_a_kept_task_whose_mark_was_lost(admin: redis.Redis) -> None:
    q = _queue(admin, tasks=2)
    q.take(2)
    admin.hdel(rq.started("a"), "0")  # its mark never reached Redis; the task ran
    assert _ints(q.rejoin(keep=[b"0"])) == [1]
    assert _started(admin) == {0: f"{ME} done"}


def test_rejoin_of_a_new_process_charges_the_old_ones_last_start(admin: redis.Redis) -> None:
    old = _queue(admin, tasks=3)
    old.take(3)  # 0 marked; it ran, its record written; then 1 marked: the process died
    old.mark(b"1")
    old.link.close()  # the process ends: its marks leave with its connection
    new = _queue(admin, tasks=0, me="a/7/y")  # the same PID after a restart
    assert _ints(new.rejoin()) == [2, 1]  # 0 was done: acknowledged, not run again
    assert _hash(admin, rq.ATTEMPTS) == {1: "1"}
    assert _ints(admin.lrange(rq.QUEUE, 0, -1)) == [2, 1]
    assert not admin.exists(rq.started("a"))


def test_reap_acknowledges_a_done_task_kept_by_a_rejoin(admin: redis.Redis) -> None:
    a = _queue(admin, tasks=3)
    a.take(2)  # 0 marked, ran
    a.rejoin(keep=[b"0"])  # an outage: 0 is done, its ack not through; 1 given back
    a.take(1)  # takes 1 again (its first start): then the process dies
    admin.delete(rq.heartbeat("a"))
    assert _ints(_queue(admin, tasks=0, name="b", me="b/1/x").reap("a") or []) == [1]
    assert _hash(admin, rq.ATTEMPTS) == {1: "1"}
    assert _ints(admin.lrange(rq.QUEUE, 0, -1)) == [2, 1]


def test_reap_leaves_a_worker_whose_heartbeat_lives(admin: redis.Redis) -> None:
    a = _queue(admin, tasks=2)
    a.rejoin()  # beats
    a.take(1)
    assert _queue(admin, tasks=0, name="b", me="b/1/x").reap("a") is None
    assert _held(admin) == [0] and _ints(admin.lrange(rq.QUEUE, 0, -1)) == [1]


def test_reap_gives_back_a_dead_workers_tasks_charging_only_the_started(admin: redis.Redis) -> None:
    a = _queue(admin, tasks=3)
    a.take(3)  # 0 started (it killed the worker), 1 and 2 never began
    reaper = _queue(admin, tasks=0, name="b", me="b/1/x")
    assert _ints(reaper.reap("a") or []) == [2, 1, 0]
    assert _ints(admin.lrange(rq.QUEUE, 0, -1)) == [2, 1, 0]
    assert _hash(admin, rq.ATTEMPTS) == {0: "1"} and not admin.exists(rq.started("a"))
    assert not admin.exists(rq.processing("a"))


def test_reap_dead_letters_a_task_started_max_times(admin: redis.Redis) -> None:
    a = _queue(admin, tasks=2)
    admin.hset(rq.ATTEMPTS, "0", 2)
    a.take(2)  # the third start of 0 (marked)
    reaper = _queue(admin, tasks=0, name="b", me="b/1/x")
    assert _ints(reaper.reap("a") or []) == [1]
    assert reaper.owed() == {0: ("a", 3)}
    assert _ints(admin.lrange(rq.QUEUE, 0, -1)) == [1]
    assert admin.hlen(rq.ATTEMPTS) == 0 and admin.llen(rq.DEAD) == 0


def test_recorded_moves_owed_dead_letters_once(admin: redis.Redis) -> None:
    q = _queue(admin, tasks=0)
    admin.hset(rq.OWED, mapping={"4": "a 3", "9": "b 3"})
    q.recorded([4])
    q.recorded([4])  # a second writer after the first died before saying so
    assert q.owed() == {9: ("b", 3)}
    assert _ints(admin.lrange(rq.DEAD, 0, -1)) == [4]


def test_holders_are_found_whether_or_not_they_beat(admin: redis.Redis) -> None:
    a = _queue(admin, tasks=3)
    a.take(1)
    _queue(admin, tasks=0, name="c", me="c/1/x").take(1)
    assert a.holders() == ["a", "c"]


def test_scripts_are_sent_whole_to_a_redis_that_does_not_know_them(admin: redis.Redis) -> None:
    admin.script_flush()
    q = _queue(admin, tasks=1)
    assert _ints(q.take(1)) == [0]
    assert admin.script_exists(rq.TAKE.sha) == [True]


def test_a_batch_larger_than_luas_unpack_limit_is_taken_and_acknowledged(
        admin: redis.Redis) -> None:
    q = _queue(admin, tasks=2500)
    batch = q.take(2500)
    assert _ints(batch) == list(range(2500))
    admin.hset(rq.started("a"), mapping={str(i): "x" for i in range(2500)})
    admin.hset(rq.ATTEMPTS, mapping={str(i): 1 for i in range(0, 2500, 7)})
    assert q.take(1, done=batch) == []
    assert admin.llen(rq.processing("a")) == 0
    assert admin.hlen(rq.started("a")) == 0 and admin.hlen(rq.ATTEMPTS) == 0
