"""Zoho channel checks remembered for a bounded time (webhooks.channels), over the real channel store
on PostgreSQL: only matches are remembered, a miss always asks the database, and a replaced token
stops working once the remembered match expires."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.clock import ManualClock
from connector.store import Store
from webhooks.channels import DEFAULT_TTL_SECONDS, RememberedChannels

CHANNEL_ID = "1000000068001"


@pytest.fixture
def store(pg_database_url):
    store = Store.open(pg_database_url)
    yield store
    store.close()


@pytest.fixture
def connection_id(store) -> int:
    return store.connections.create(name="Remembered Ltd", xero_tenant_id="tenant-remembered").id


def register(store, connection_id: int, token: str) -> None:
    store.channels.save(connection_id, CHANNEL_ID, token=token, events=["Contacts.all"],
                        expires_at=store.clock.now() + timedelta(days=6))


def test_a_match_is_remembered_until_it_expires_then_the_database_decides_again(store, connection_id):
    clock = ManualClock()
    channels = RememberedChannels(store.channels, ttl_seconds=DEFAULT_TTL_SECONDS, clock=clock)
    register(store, connection_id, "first-token")
    assert channels.verify(CHANNEL_ID, "first-token") == connection_id

    register(store, connection_id, "second-token")  # re-subscribed: the database now holds a new token
    assert channels.verify(CHANNEL_ID, "first-token") == connection_id  # remembered, not yet expired
    assert channels.verify(CHANNEL_ID, "second-token") == connection_id  # a new token needs no wait

    clock.advance(DEFAULT_TTL_SECONDS)
    assert channels.verify(CHANNEL_ID, "first-token") is None
    assert channels.verify(CHANNEL_ID, "second-token") == connection_id


def test_a_miss_is_never_remembered_so_a_channel_registered_a_moment_later_is_accepted(store, connection_id):
    channels = RememberedChannels(store.channels, clock=ManualClock())
    assert channels.verify(CHANNEL_ID, "the-token") is None
    register(store, connection_id, "the-token")
    assert channels.verify(CHANNEL_ID, "the-token") == connection_id


def test_a_wrong_token_for_a_remembered_channel_is_refused(store, connection_id):
    channels = RememberedChannels(store.channels, clock=ManualClock())
    register(store, connection_id, "the-token")
    assert channels.verify(CHANNEL_ID, "the-token") == connection_id
    for wrong in ("the-token ", "", "THE-TOKEN"):
        assert channels.verify(CHANNEL_ID, wrong) is None
    assert channels.verify(1000000068001, "the-token") == connection_id  # Zoho's numeric form of the id
