"""One poll per connection at a time, even when a poll outlives its lock: the late poll cannot free the
lock of the poll that came after it, so no third poll starts while that one still runs."""

from __future__ import annotations

import threading

CONTACTS = "/api.xro/2.0/Contacts"


def poll_key(connection_id: int) -> str:
    return f"xero:poll-lock:{connection_id}"


def start_poll(connection_id: int) -> threading.Thread:
    from workers.xero_tasks import poll_xero

    thread = threading.Thread(target=poll_xero.run, args=(connection_id, ["contacts"], False), daemon=True)
    thread.start()
    return thread


def let_the_lock_lapse(redis, key: str) -> None:
    """The lock's time runs out (Redis expires it) while its poll is still at work."""
    redis.pexpire(key, 1)
    while redis.exists(key):
        pass


def test_a_poll_that_outlives_its_lock_does_not_free_the_next_polls_lock(world):
    from workers.xero_tasks import poll_xero

    redis, key = world.deps.redis, poll_key(world.connection_id)
    first_listing = world.xero.faults.hold_next(path_prefix=CONTACTS)
    first = start_poll(world.connection_id)
    assert first_listing.wait_reached()
    let_the_lock_lapse(redis, key)

    second_listing = world.xero.faults.hold_next(path_prefix=CONTACTS)
    second = start_poll(world.connection_id)  # the next beat's poll finds the lock free: it runs
    assert second_listing.wait_reached()
    first_listing.release()
    first.join()  # the late first poll finishes while the second still lists

    listings_before = len(world.xero.calls(path_prefix=CONTACTS))
    try:
        assert poll_xero.run(world.connection_id, ["contacts"], False) == 0
        assert len(world.xero.calls(path_prefix=CONTACTS)) == listings_before, \
            "a third poll listed contacts while the second was still running"
        assert redis.exists(key)  # the second poll's lock
    finally:
        second_listing.release()
        second.join()
    assert not redis.exists(key)  # the second poll let go of its own lock


def test_a_poll_that_lost_its_lock_stops_before_its_next_page(world, caplog):
    from connector.record_locks import Lease
    from workers.xero_tasks import poll_xero

    redis, key = world.deps.redis, poll_key(world.connection_id)
    listing = world.xero.faults.hold_next(path_prefix=CONTACTS)
    late = threading.Thread(target=poll_xero.run, args=(world.connection_id, ["contacts", "invoices"], False),
                            daemon=True)
    late.start()
    assert listing.wait_reached()
    let_the_lock_lapse(redis, key)
    successor = Lease(redis, key, ttl=60)
    assert successor.take()  # the next poll holds it now
    listing.release()
    late.join()
    assert world.xero.calls(path_prefix="/api.xro/2.0/Invoices") == []  # the late poll listed nothing more
    assert redis.exists(key)
    assert [r.message for r in caplog.records if "lease_lost" in r.message] == [
        f"xero.poll.lease_lost connection={world.connection_id}: the poll stopped, the next one goes on from "
        "its cursor"]
    successor.release()
