"""Per-record write leases on real Redis: free records go first, busy ones wait, nobody frees another's lease."""

from __future__ import annotations

from contextlib import closing

import pytest

from connector.errors import TransientError
from connector.record_locks import RecordLocks
from tests.conftest import require_redis

REDIS_DB = 13


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
