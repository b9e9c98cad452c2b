from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from connector.secret import Secret
from connector.store import Store
from connector.store.credentials import StaleCredentials, TokenSet
from connector.store.tables import Base
from connector.store.vault import Vault

EXPIRES = datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)


def _tokens(access: str, refresh: str) -> TokenSet:
    return TokenSet(
        access_token=Secret(access),
        refresh_token=Secret(refresh),
        expires_at=EXPIRES,
        scope="ZohoCRM.modules.ALL",
        extra={"api_domain": "https://www.zohoapis.eu"},
    )


def test_save_and_load_round_trip(store: Store, connection_id: int) -> None:
    credentials = store.credentials(Vault(Vault.generate_keyring("k1")))
    assert credentials.load(connection_id, "zoho") is None
    version = credentials.save(connection_id, "zoho", _tokens("acc-1", "ref-1"))
    loaded = credentials.load(connection_id, "zoho")
    assert version == loaded.version == 1
    assert loaded.tokens == _tokens("acc-1", "ref-1")
    assert loaded.tokens.expires_at.utcoffset() == timedelta(0)
    assert credentials.load(connection_id, "xero") is None


def test_compare_and_swap_rejects_a_stale_version(store: Store, connection_id: int) -> None:
    credentials = store.credentials(Vault(Vault.generate_keyring("k1")))
    credentials.save(connection_id, "xero", _tokens("acc-1", "ref-1"))
    read_by_worker_a = credentials.load(connection_id, "xero").version
    read_by_worker_b = credentials.load(connection_id, "xero").version

    assert credentials.save(connection_id, "xero", _tokens("acc-2", "ref-2"), expected_version=read_by_worker_a) == 2
    with pytest.raises(StaleCredentials):
        credentials.save(connection_id, "xero", _tokens("acc-3", "ref-3"), expected_version=read_by_worker_b)
    assert credentials.load(connection_id, "xero").tokens.refresh_token.reveal() == "ref-2"


def test_compare_and_swap_on_a_missing_row_is_stale(store: Store, connection_id: int) -> None:
    credentials = store.credentials(Vault(Vault.generate_keyring("k1")))
    with pytest.raises(StaleCredentials):
        credentials.save(connection_id, "xero", _tokens("a", "r"), expected_version=1)


def test_unconditional_save_replaces_and_bumps_the_version(store: Store, connection_id: int) -> None:
    credentials = store.credentials(Vault(Vault.generate_keyring("k1")))
    credentials.save(connection_id, "zoho", _tokens("acc-1", "ref-1"))
    assert credentials.save(connection_id, "zoho", _tokens("acc-2", "ref-2")) == 2
    assert credentials.load(connection_id, "zoho").tokens.access_token.reveal() == "acc-2"


def _raw_rows(store: Store) -> str:
    dumped = []
    with store.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(text(f"SELECT * FROM {table.name}")):
                dumped.append(repr(tuple(row)))
    return "\n".join(dumped)


def test_no_plaintext_token_reaches_the_database(store: Store, connection_id: int) -> None:
    credentials = store.credentials(Vault(Vault.generate_keyring("k1")))
    credentials.save(connection_id, "zoho", _tokens("plain-access-7f3a", "plain-refresh-9c1d"))
    raw = _raw_rows(store)
    assert "k1:" in raw  # the scan does see the credentials row
    assert "plain-access-7f3a" not in raw and "plain-refresh-9c1d" not in raw
    assert "zohoapis" not in raw  # the whole token set is one encrypted blob


def test_token_set_repr_shows_no_token() -> None:
    shown = repr(_tokens("plain-access-7f3a", "plain-refresh-9c1d"))
    assert "plain-access-7f3a" not in shown and "plain-refresh-9c1d" not in shown


def test_rotate_keys_reencrypts_every_old_row(store: Store, connection_id: int) -> None:
    old_ring = Vault.generate_keyring("old")
    credentials = store.credentials(Vault(old_ring))
    other = store.connections.create(name="Other", xero_tenant_id="tenant-2").id
    credentials.save(connection_id, "xero", _tokens("a1", "r1"))
    credentials.save(other, "zoho", _tokens("a2", "r2"))

    new_vault = Vault(Vault.generate_keyring("new"))  # the old key is not even in the new ring
    assert credentials.rotate_keys(new_vault) == 2
    assert credentials.rotate_keys(new_vault) == 0

    reader = store.credentials(new_vault)
    assert reader.load(connection_id, "xero").tokens.access_token.reveal() == "a1"
    assert reader.load(other, "zoho").tokens.refresh_token.reveal() == "r2"
    with store.engine.connect() as connection:
        assert {row[0] for row in connection.execute(text("SELECT key_id FROM credentials"))} == {"new"}
