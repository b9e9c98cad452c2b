"""Per-record write leases and the one-key lease on real Redis: free records go first, busy ones wait, nobody frees another's lease."""

from __future__ import annotations

from contextlib import closing

import pytest

from connector.errors import TransientError
from connector.record_locks import Lease, LeaseLost, RecordLocks
from tests.conftest import redis_db, require_redis

REDIS_DB = redis_db("record-locks")


@pytest.fixture
def redis():
    return require_redis(REDIS_DB)


def test_free_records_are_written_first_and_busy_ones_once_let_go(redis):
    other = RecordLocks(redis)
    busy = other.rounds(1, "invoice", ["b"])
    assert next(busy) == ["b"]  # another writer holds "b"

    def let_go(_seconds):
        busy.close()  # the other writer finishes while we wait

    locks = RecordLocks(redis, sleep=let_go)
    with closing(locks.rounds(1, "invoice", ["a", "b", "c"])) as rounds:
        seen = [sorted(batch) for batch in rounds]
    assert seen == [["a", "c"], ["b"]]
    assert not redis.keys("mlc:write-lock:*")  # every lease given back


def test_a_record_held_past_the_wait_is_a_transient_failure(redis):
    holder = RecordLocks(redis).rounds(1, "contact", ["x"])
    next(holder)
    clock = iter(range(100))
    locks = RecordLocks(redis, wait=3, sleep=lambda _s: None, monotonic=lambda: next(clock))
    with pytest.raises(TransientError, match="another worker"):
        list(locks.rounds(1, "contact", ["x"]))
    holder.close()


def test_an_expired_lease_cannot_free_its_successors_lock(redis):
    first = RecordLocks(redis, ttl=60).rounds(1, "contact", ["x"])
    next(first)
    redis.delete(RecordLocks.key(1, "contact", "x"))  # the lease ran out
    second = RecordLocks(redis).rounds(1, "contact", ["x"])
    assert next(second) == ["x"]
    first.close()  # the slow first writer finishes late
    assert redis.exists(RecordLocks.key(1, "contact", "x"))  # the successor still holds it
    second.close()
    assert not redis.exists(RecordLocks.key(1, "contact", "x"))


def test_a_lease_is_held_by_one_holder_until_it_lets_go(redis):
    first, second = Lease(redis, "mlc:test-lease", ttl=60), Lease(redis, "mlc:test-lease", ttl=60)
    assert first.take()
    assert not second.take()
    first.renew()
    first.release()
    assert second.take()


def test_a_lapsed_lease_is_lost_to_its_holder_and_stays_with_its_successor(redis):
    late = Lease(redis, "mlc:test-lease", ttl=60)
    assert late.take()
    redis.delete("mlc:test-lease")  # the lease ran out
    successor = Lease(redis, "mlc:test-lease", ttl=60)
    assert successor.take()
    with pytest.raises(LeaseLost):
        late.renew()  # the late holder learns it must stop...
    late.release()  # ...and cannot free its successor's lease
    assert redis.exists("mlc:test-lease")
    successor.renew()
    successor.release()
    assert not redis.exists("mlc:test-lease")


def test_renewing_a_lease_gives_it_its_whole_time_again(redis):
    lease = Lease(redis, "mlc:test-lease", ttl=60)
    assert lease.take()
    redis.pexpire("mlc:test-lease", 500)  # most of its time has passed
    lease.renew()
    assert redis.pttl("mlc:test-lease") > 500
