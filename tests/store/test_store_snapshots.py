from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from connector.store import Store

T0 = datetime(2026, 2, 1, 12, 0, tzinfo=timezone.utc)


def test_newer_version_replaces_older(store: Store, connection_id: int) -> None:
    snapshots = store.snapshots
    assert snapshots.put_if_newer(connection_id, "contacts", "c-1", source_updated_at=T0, payload={"Name": "v1"})
    assert snapshots.put_if_newer(
        connection_id, "contacts", "c-1", source_updated_at=T0 + timedelta(seconds=1), payload={"Name": "v2"}
    )
    stored = snapshots.get(connection_id, "contacts", "c-1")
    assert stored.payload == {"Name": "v2"}
    assert stored.source_updated_at == T0 + timedelta(seconds=1)


def test_older_version_arriving_late_is_ignored(store: Store, connection_id: int) -> None:
    snapshots = store.snapshots
    assert snapshots.put_if_newer(connection_id, "invoices", "i-1", source_updated_at=T0, payload={"v": 2})
    assert not snapshots.put_if_newer(
        connection_id, "invoices", "i-1", source_updated_at=T0 - timedelta(microseconds=1), payload={"v": 1}
    )
    assert snapshots.get(connection_id, "invoices", "i-1").payload == {"v": 2}


def test_equal_timestamp_overwrites(store: Store, connection_id: int) -> None:
    snapshots = store.snapshots
    snapshots.put_if_newer(connection_id, "contacts", "c-1", source_updated_at=T0, payload={"v": "first"})
    assert snapshots.put_if_newer(connection_id, "contacts", "c-1", source_updated_at=T0, payload={"v": "again"})
    assert snapshots.get(connection_id, "contacts", "c-1").payload == {"v": "again"}


def test_timestamps_in_other_zones_compare_as_instants(store: Store, connection_id: int) -> None:
    snapshots = store.snapshots
    snapshots.put_if_newer(connection_id, "contacts", "c-1", source_updated_at=T0, payload={"v": "utc"})
    # 12:30 at +01:00 is 11:30 UTC: older, although its wall-clock reading is later.
    earlier = datetime(2026, 2, 1, 12, 30, tzinfo=timezone(timedelta(hours=1)))
    assert not snapshots.put_if_newer(connection_id, "contacts", "c-1", source_updated_at=earlier, payload={"v": "x"})


def test_records_are_keyed_by_connection_resource_and_id(store: Store, connection_id: int) -> None:
    other = store.connections.create(name="Other", xero_tenant_id="tenant-2").id
    snapshots = store.snapshots
    snapshots.put_if_newer(connection_id, "contacts", "x", source_updated_at=T0, payload={"who": "a"})
    snapshots.put_if_newer(other, "contacts", "x", source_updated_at=T0 - timedelta(days=1), payload={"who": "b"})
    snapshots.put_if_newer(connection_id, "invoices", "x", source_updated_at=T0 - timedelta(days=1), payload={"who": "c"})
    assert snapshots.get(connection_id, "contacts", "x").payload == {"who": "a"}
    assert snapshots.get(other, "contacts", "x").payload == {"who": "b"}
    assert snapshots.get(connection_id, "invoices", "x").payload == {"who": "c"}
    assert snapshots.get(connection_id, "contacts", "missing") is None


def test_decimals_are_stored_as_strings(store: Store, connection_id: int) -> None:
    payload = {"Total": Decimal("1234.5600"), "Lines": [{"UnitAmount": Decimal("0.10")}]}
    store.snapshots.put_if_newer(connection_id, "invoices", "i-1", source_updated_at=T0, payload=payload)
    assert store.snapshots.get(connection_id, "invoices", "i-1").payload == {
        "Total": "1234.5600",
        "Lines": [{"UnitAmount": "0.10"}],
    }


def test_concurrent_writers_leave_the_newest_version(store: Store, connection_id: int) -> None:
    versions = list(range(40))
    random.Random(7).shuffle(versions)
    shards = [versions[i::8] for i in range(8)]
    start = threading.Barrier(len(shards))
    errors: list[BaseException] = []

    def write(shard: list[int]) -> None:
        try:
            start.wait()
            for version in shard:
                store.snapshots.put_if_newer(
                    connection_id,
                    "contacts",
                    "hot",
                    source_updated_at=T0 + timedelta(seconds=version),
                    payload={"version": version},
                )
        except BaseException as error:  # surfaced below; a thread cannot fail the test itself
            errors.append(error)

    threads = [threading.Thread(target=write, args=(shard,)) for shard in shards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    stored = store.snapshots.get(connection_id, "contacts", "hot")
    assert stored.payload == {"version": 39}
    assert stored.source_updated_at == T0 + timedelta(seconds=39)


def test_search_finds_by_id_number_email_or_part_of_a_name_at_most_limit(store: Store, connection_id: int) -> None:
    snapshots = store.snapshots
    snapshots.put_if_newer(connection_id, "contacts", "c-1", source_updated_at=T0,
                           payload={"ContactID": "c-1", "Name": "Harbour 100% Lights_Ltd", "EmailAddress": "AP@x.example"})
    snapshots.put_if_newer(connection_id, "contacts", "c-2", source_updated_at=T0 + timedelta(seconds=1),
                           payload={"ContactID": "c-2", "Name": "Harbourside", "EmailAddress": "ap@y.example"})
    snapshots.put_if_newer(connection_id, "invoices", "i-1", source_updated_at=T0,
                           payload={"InvoiceID": "i-1", "InvoiceNumber": "INV-0042", "Contact": {"ContactID": "c-1"}})
    snapshots.put_if_newer(connection_id, "creditnotes", "n-1", source_updated_at=T0,
                           payload={"CreditNoteID": "n-1", "CreditNoteNumber": "CN-7"})

    def found(text: str, **options) -> list[str]:
        return [s.xero_id for s in snapshots.search(text, connection_ids=[connection_id], **options)]

    assert found("i-1") == ["i-1"]
    assert found("inv-0042") == ["i-1"] and found(" INV-0042 ") == ["i-1"] and found("INV-004") == []
    assert found("CN-7") == ["n-1"] and found("cn-7") == ["n-1"]
    assert found("ap@x.example") == ["c-1"] and found("AP@Y.EXAMPLE") == ["c-2"] and found("ap@") == []
    assert found("harbour") == ["c-2", "c-1"]  # newest first
    assert found("harbour", limit=1) == ["c-2"]
    assert found("HARBOUR 100%") == ["c-1"] and found("harbour%side") == []  # LIKE wildcards are literal
    assert found("harbou_") == [] and found("ha") == ["c-2", "c-1"]
    assert found("  ") == [] and snapshots.search("harbour", connection_ids=[]) == []
    if store.engine.dialect.name == "postgresql":  # pg_trgm: a part of a name (from 3 characters)
        assert found("lights") == ["c-1"] and found("100%") == ["c-1"]
        assert found("s_l") == ["c-1"] and found("r_i") == []  # LIKE wildcards are literal
        assert found("side") == ["c-2"] and found("bou") == ["c-2", "c-1"]
    else:  # SQLite: a prefix
        assert found("lights") == [] and found("side") == []
    assert snapshots.search("harbour", connection_ids=[connection_id + 1]) == []


def test_search_keys_follow_every_upsert_single_or_batched(store: Store, connection_id: int) -> None:
    snapshots = store.snapshots

    def found(text: str) -> list[str]:
        return [s.xero_id for s in snapshots.search(text, connection_ids=[connection_id])]

    snapshots.put_many_if_newer(connection_id, "contacts", [
        ("c-1", T0, {"ContactID": "c-1", "Name": "Kea Traders", "EmailAddress": "kea@x.example"}),
        ("c-2", T0, {"ContactID": "c-2", "Name": "Tui Ltd"})])
    snapshots.put_many_if_newer(connection_id, "invoices", [("i-1", T0, {"InvoiceID": "i-1", "InvoiceNumber": "INV-1"})])
    assert found("kea") == ["c-1"] and found("kea@x.example") == ["c-1"] and found("inv-1") == ["i-1"]

    # Renamed, re-addressed, renumbered: the old keys no longer find them, the new ones do.
    snapshots.put_if_newer(connection_id, "contacts", "c-1", source_updated_at=T0 + timedelta(seconds=1),
                           payload={"ContactID": "c-1", "Name": "Kereru Traders"})
    snapshots.put_many_if_newer(connection_id, "invoices", [("i-1", T0 + timedelta(seconds=1),
                                                             {"InvoiceID": "i-1", "InvoiceNumber": "INV-2"})])
    assert found("kea") == [] and found("kea@x.example") == [] and found("inv-1") == []
    assert found("kereru") == ["c-1"] and found("INV-2") == ["i-1"]
    # An older version offered later changes nothing, keys included.
    snapshots.put_if_newer(connection_id, "contacts", "c-1", source_updated_at=T0, payload={"Name": "Kea Traders"})
    assert found("kea") == [] and found("kereru") == ["c-1"]
    # A payment's or contact's number field is not a document number.
    snapshots.put_if_newer(connection_id, "payments", "p-1", source_updated_at=T0, payload={"InvoiceNumber": "INV-9"})
    assert found("inv-9") == []
