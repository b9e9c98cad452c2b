"""The shared fetch buffer on the real Redis: duplicates collapse, one flush per window, nothing lost."""

from __future__ import annotations

import multiprocessing

import redis

from connector.clock import ManualClock
from connector.coalesce import LeasedBuffer
from tests.conftest import redis_url, require_redis
from tests.scale.conftest import REDIS_DB


def coalescer(clock=None) -> LeasedBuffer:
    return LeasedBuffer(require_redis(REDIS_DB), clock=clock or ManualClock())


def test_duplicates_collapse_and_only_the_first_add_schedules_a_flush():
    buffer = coalescer()
    first, in_effect = buffer.add(1, "invoices", {"a": "s1", "b": "s2"}, countdown=1.0)
    again, joined = buffer.add(1, "invoices", {"b": "s3", "c": "s4"}, countdown=1.0)
    assert first is True and again is False
    assert in_effect == {"a": "s1", "b": "s2"}
    assert joined == {"b": "s2", "c": "s4"}  # b joins the pending trip; c is new
    assert buffer.pending(1, "invoices") == 3
    assert buffer.pending(2, "invoices") == 0 and buffer.pending(1, "contacts") == 0  # buffers are separate

    buffer.start_flush(1, "invoices")
    claim = buffer.claim(1, "invoices")
    assert claim.ids == ["a", "b", "c"] and claim.sync_ids == {"a": "s1", "b": "s2", "c": "s4"}
    # Once the flush started, the next event schedules the next flush.
    assert buffer.add(1, "invoices", {"a": "s5"}, countdown=1.0)[0] is True


def test_claims_take_the_oldest_ids_first_and_at_most_the_limit():
    clock = ManualClock()
    buffer = coalescer(clock)
    for n in range(120):
        buffer.add(7, "contacts", {f"id{n:03}": f"s{n}"}, countdown=1.0)
        clock.advance(0.001)
    claim = buffer.claim(7, "contacts", max_ids=50)
    assert claim.ids == [f"id{n:03}" for n in range(50)]
    assert buffer.pending(7, "contacts") == 70


def test_a_failed_flush_gives_back_only_what_it_did_not_finish():
    buffer = coalescer()
    buffer.add(1, "invoices", {f"id{n}": f"s{n}" for n in range(6)}, countdown=1.0)
    claim = buffer.claim(1, "invoices")
    buffer.acknowledge(claim, claim.ids[:4])
    assert buffer.release(claim) == 2
    again = buffer.claim(1, "invoices")
    assert sorted(again.ids) == ["id4", "id5"] and again.sync_ids == {"id4": "s4", "id5": "s5"}
    buffer.acknowledge(again)
    assert buffer.claim(1, "invoices") is None and buffer.leased(1, "invoices") == 0


def test_ids_claimed_by_a_worker_that_died_come_back_after_the_lease():
    clock = ManualClock()
    buffer = coalescer(clock)
    buffer.add(1, "invoices", {"a": "s1", "b": "s2"}, countdown=1.0)
    buffer.start_flush(1, "invoices")
    lost = buffer.claim(1, "invoices")  # its worker dies: never acknowledged, never released
    assert lost.ids == ["a", "b"]
    assert buffer.claim(1, "invoices") is None
    assert buffer.reschedule(1, "invoices", countdown=0) is False  # nothing to do before the lease ends
    clock.advance(301)
    assert buffer.reschedule(1, "invoices", countdown=0) is True  # the beat job re-schedules a flush
    recovered = buffer.claim(1, "invoices")
    assert sorted(recovered.ids) == ["a", "b"] and recovered.sync_ids == {"a": "s1", "b": "s2"}


def _ingest_and_flush(worker: int, ids: list[str]) -> None:
    buffer = LeasedBuffer(redis.Redis.from_url(redis_url(REDIS_DB)))
    client = redis.Redis.from_url(redis_url(REDIS_DB))
    for start in range(0, len(ids), 10):
        flush_needed, _ = buffer.add(3, "invoices", {i: f"w{worker}" for i in ids[start:start + 10]}, countdown=1.0)
        if flush_needed:
            client.incr("test:flushes-scheduled")
        if start % 40 == 0:
            buffer.start_flush(3, "invoices")
            claim = buffer.claim(3, "invoices", max_ids=50)
            if claim:
                client.rpush("test:claimed", *claim.ids)
                buffer.acknowledge(claim)


def test_many_processes_adding_and_flushing_at_once_fetch_every_id_exactly_once():
    require_redis(REDIS_DB)
    # 6 processes, 300 ids each, half of them shared with the next process (duplicate events).
    workload = [[f"id{(n * 150 + k) % 900}" for k in range(300)] for n in range(6)]
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_ingest_and_flush, args=(n, ids)) for n, ids in enumerate(workload)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    client = redis.Redis.from_url(redis_url(REDIS_DB))
    buffer = LeasedBuffer(client)  # drain what is left, as a last flush would
    while (claim := buffer.claim(3, "invoices")) is not None:
        client.rpush("test:claimed", *claim.ids)
        buffer.acknowledge(claim)
    claimed = [v.decode() for v in client.lrange("test:claimed", 0, -1)]
    everything = {i for ids in workload for i in ids}
    assert len(everything) == 900
    # Nothing lost: every id was claimed; and no id more often than events for it arrived (two each).
    assert set(claimed) == everything
    assert max(claimed.count(i) for i in everything) <= 2
    assert int(client.get("test:flushes-scheduled")) >= 1
