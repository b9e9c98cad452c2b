from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from connector.clock import ManualClock
from connector.store import Store
from connector.store.channels import ChannelStore

EXPIRES = datetime(2026, 1, 6, 9, 0, tzinfo=timezone.utc)


def test_verify_accepts_only_the_registered_token(store: Store, connection_id: int) -> None:
    store.channels.save(connection_id, "1000000068001", token="tok-abc", events=["Accounts.all"], expires_at=EXPIRES)
    assert store.channels.verify("1000000068001", "tok-abc") == connection_id
    assert store.channels.verify("1000000068001", "tok-abd") is None
    assert store.channels.verify("1000000068001", "") is None
    assert store.channels.verify("999", "tok-abc") is None


def test_only_a_hash_of_the_token_is_stored(store: Store, connection_id: int) -> None:
    store.channels.save(connection_id, "ch-1", token="plain-channel-token", events=["Contacts.all"], expires_at=EXPIRES)
    with store.engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM zoho_channels")).one()
    assert "plain-channel-token" not in repr(tuple(row))


def test_save_replaces_get_lists_and_renewal_stamps(store: Store, connection_id: int) -> None:
    clock = ManualClock()
    channels = ChannelStore(store.sessions, clock=clock)
    channels.save(connection_id, "ch-1", token="old", events=["Accounts.all"], expires_at=EXPIRES)
    channels.save(connection_id, "ch-1", token="new", events=["Accounts.all", "Contacts.all"], expires_at=EXPIRES)
    channels.save(connection_id, "ch-2", token="t2", events=["Deals.all"], expires_at=EXPIRES + timedelta(days=1))
    assert channels.verify("ch-1", "old") is None and channels.verify("ch-1", "new") == connection_id

    info = channels.get("ch-1")
    assert (info.events, info.expires_at, info.renewed_at) == (["Accounts.all", "Contacts.all"], EXPIRES, None)
    assert [c.channel_id for c in channels.for_connection(connection_id)] == ["ch-1", "ch-2"]
    assert [c.channel_id for c in channels.expiring_before(EXPIRES + timedelta(hours=1))] == ["ch-1"]

    clock.advance(3600)
    channels.renewed("ch-1", EXPIRES + timedelta(days=7))
    renewed = channels.get("ch-1")
    assert renewed.expires_at == EXPIRES + timedelta(days=7) and renewed.renewed_at == clock.now()
    assert channels.get("missing") is None
