from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from connector.secret import Secret
from connector.store import Store
from connector.clock import ManualClock
from connector.store.audit import (
    FAILED,
    FETCHED,
    MAPPED,
    PARKED,
    RECEIVED,
    RETRYING,
    SKIPPED,
    WRITTEN,
    AuditLog,
)
from connector.redaction import redact_document


def test_trail_is_oldest_first_and_scoped_to_one_record(store: Store, connection_id: int) -> None:
    audit = store.audit
    for stage in (RECEIVED, FETCHED, MAPPED, WRITTEN):
        audit.record(connection_id=connection_id, record_type="contact", record_id="c-1", stage=stage, sync_id="s-1")
    audit.record(connection_id=connection_id, record_type="contact", record_id="c-2", stage=RECEIVED)
    audit.record(connection_id=None, record_type="contact", record_id="c-1", stage=FAILED)

    trail = audit.trail(connection_id, "contact", "c-1")
    assert [entry.stage for entry in trail] == [RECEIVED, FETCHED, MAPPED, WRITTEN]
    assert {entry.sync_id for entry in trail} == {"s-1"}
    assert audit.latest_stage(connection_id, "contact", "c-1") == WRITTEN
    assert audit.latest_stage(None, "contact", "c-1") == FAILED
    assert audit.latest_stage(connection_id, "contact", "nope") is None
    assert audit.count() == 6 and audit.count(RECEIVED) == 2


def test_detail_is_redacted_recursively_before_it_is_stored(store: Store, connection_id: int) -> None:
    detail = {
        "status": 401,
        "Authorization": "Zoho-oauthtoken 1000.abc",
        "response": {"access_token": "tok-123", "nested": [{"client_secret": "s3"}, {"refresh_token": "r1"}]},
        "code": "auth-code-1",
        "CurrencyCode": "NZD",
        "header": "Bearer eyJhbGciOi",
        "wrapped": {"value": Secret("hidden")},
        "amount": Decimal("10.50"),
    }
    store.audit.record(connection_id=connection_id, record_type="contact", record_id="c-1", stage=FAILED, detail=detail)
    stored = store.audit.trail(connection_id, "contact", "c-1")[0].detail
    assert stored == {
        "status": 401,
        "Authorization": "***",
        "response": {"access_token": "***", "nested": [{"client_secret": "***"}, {"refresh_token": "***"}]},
        "code": "***",
        "CurrencyCode": "NZD",
        "header": "***",
        "wrapped": {"value": "***"},
        "amount": "10.50",
    }
    assert detail["response"]["access_token"] == "tok-123"  # the caller's dict is left alone


def test_redact_leaves_ordinary_values_alone() -> None:
    assert redact_document({"Name": "Bearer Creek Farm Ltd", "Phones": ["021 555"], "n": None}) == {
        "Name": "Bearer Creek Farm Ltd",
        "Phones": ["021 555"],
        "n": None,
    }


def test_failures_lists_records_whose_latest_stage_failed(store: Store, connection_id: int) -> None:
    audit = store.audit
    other = store.connections.create(name="Other", xero_tenant_id="tenant-2").id

    def record(conn: int, record_id: str, *stages: str) -> None:
        for stage in stages:
            audit.record(connection_id=conn, record_type="contact", record_id=record_id, stage=stage, detail={"s": stage})

    record(connection_id, "still-broken", RECEIVED, FAILED)
    record(connection_id, "recovered", RECEIVED, FAILED, RETRYING, WRITTEN)
    record(connection_id, "broke-again", FAILED, RETRYING, FAILED)
    record(other, "elsewhere", FAILED)

    assert [(f.record_id, f.stage) for f in audit.failures(connection_id)] == [("broke-again", FAILED), ("still-broken", FAILED)]
    assert [f.record_id for f in audit.failures()] == ["elsewhere", "broke-again", "still-broken"]
    assert [f.record_id for f in audit.failures(limit=1)] == ["elsewhere"]


def test_unknown_stage_or_direction_is_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        store.audit.record(record_type="contact", record_id="c", stage="done")
    with pytest.raises(ValueError):
        store.audit.record(record_type="contact", record_id="c", stage=RECEIVED, direction="sideways")


def _failed(audit, connection_id, record_id, *, error="DataError", tenant_id=None, record_type="contact") -> None:
    detail = {"reason": "refused", "error": error, **({"tenant_id": tenant_id} if tenant_id else {})}
    audit.record(connection_id=connection_id, record_type=record_type, record_id=record_id, stage=FAILED,
                 detail=detail)


def test_a_failure_stays_listed_until_a_later_sync_of_the_record_succeeds(store: Store, connection_id: int) -> None:
    """Webhooks of a tenant that was not connected yet failed without a connection: its connection's later
    success resolves them too. Whatever lists failures and whatever counts them agree."""
    audit = store.audit
    other = store.connections.create(name="Other", xero_tenant_id="tenant-2").id

    def record(conn, record_id: str, *stages: str) -> None:
        for stage in stages:
            audit.record(connection_id=conn, record_type="contact", record_id=record_id, stage=stage)

    _failed(audit, None, "early-written", error="UnknownTenant", tenant_id="tenant-1")
    _failed(audit, None, "early-pending", error="UnknownTenant", tenant_id="tenant-1")
    _failed(audit, None, "early-refailed", error="UnknownTenant", tenant_id="tenant-1")
    _failed(audit, None, "not-connected", error="UnknownTenant", tenant_id="tenant-9")
    _failed(audit, connection_id, "written")
    _failed(audit, connection_id, "skipped")
    _failed(audit, connection_id, "trying-again")
    _failed(audit, connection_id, "written-elsewhere")
    record(connection_id, "early-written", RECEIVED, FETCHED, WRITTEN)
    _failed(audit, connection_id, "early-refailed", error="NotFound")
    record(connection_id, "written", RECEIVED, WRITTEN)
    record(connection_id, "skipped", RECEIVED, SKIPPED)
    record(connection_id, "trying-again", RECEIVED, RETRYING)
    record(other, "written-elsewhere", RECEIVED, WRITTEN)

    listed = [(f.connection_id, f.record_id) for f in audit.failures(connection_id)]
    assert listed == [(connection_id, "early-refailed"), (connection_id, "written-elsewhere"),
                      (connection_id, "trying-again"), (None, "early-pending")]
    assert [f.record_id for f in audit.failures()] == [
        "early-refailed", "written-elsewhere", "trying-again", "not-connected", "early-pending"]
    assert audit.failures(other) == []
    since = store.clock.now() - timedelta(hours=1)
    assert audit.failure_counts(connection_id, since) == {"NotFound": 1, "DataError": 2, "UnknownTenant": 1}
    assert audit.failure_counts(other, since) == {}


def test_failures_are_filtered_before_the_newest_are_taken(store: Store, connection_id: int) -> None:
    audit = store.audit
    for n in range(3):
        _failed(audit, None, f"mine-{n}", error="UnknownTenant", tenant_id="tenant-1")
    _failed(audit, connection_id, "missing", error="NotFound")
    for n in range(6):
        _failed(audit, None, f"someone-elses-{n}", error="UnknownTenant", tenant_id="tenant-9")
        _failed(audit, connection_id, f"refused-{n}", error="DataError")

    assert [f.record_id for f in audit.failures(connection_id, limit=1, error="notfound")] == ["missing"]
    assert [f.record_id for f in audit.failures(connection_id, limit=2, error="UnknownTenant")] == ["mine-2", "mine-1"]
    assert [f.record_id for f in audit.failures(limit=2, record_type="invoice")] == []


def test_consecutive_retrying_rows_of_a_record_are_one_row_counting_them(store: Store, connection_id: int) -> None:
    """A 429 storm writes one row per record and state, not one per retry; the count keeps the attempts."""
    start = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    clock = ManualClock(start)
    audit = AuditLog(store.sessions, clock=clock)

    def note(record_id: str, stage: str, **detail) -> None:
        clock.advance(timedelta(seconds=10))
        audit.record(connection_id=connection_id, record_type="contact", record_id=record_id, stage=stage,
                     detail=detail or None)

    note("c-1", RECEIVED)
    for attempt in (1, 2, 3):
        note("c-1", RETRYING, reason="Xero 429", attempt=attempt)
    clock.advance(timedelta(seconds=10))
    batch = audit.batch()  # a task's rows for its batch of records, written together
    for record_id in ("c-1", "c-2", "c-1", "c-2"):
        batch.record(connection_id=connection_id, record_type="contact", record_id=record_id, stage=RETRYING,
                     detail={"reason": "Xero 503"})
    batch.flush()
    note("c-1", PARKED)
    note("c-1", RETRYING, reason="Xero 429", attempt=1)
    note("c-1", WRITTEN)
    audit.record(connection_id=None, record_type="contact", record_id="c-1", stage=RETRYING)

    trail = audit.trail(connection_id, "contact", "c-1")
    assert [(e.stage, e.times) for e in trail] == [(RECEIVED, 1), (RETRYING, 5), (PARKED, 1), (RETRYING, 1),
                                                  (WRITTEN, 1)]
    assert trail[1].detail == {"reason": "Xero 429", "attempt": 1}
    assert trail[1].created_at == start + timedelta(seconds=20) and trail[1].last_at == start + timedelta(seconds=50)
    assert trail[3].last_at is None
    assert [(e.stage, e.times) for e in audit.trail(connection_id, "contact", "c-2")] == [(RETRYING, 2)]

    for stage in (RETRYING, RETRYING, FAILED):
        note("c-3", stage)
    failures = audit.failures(connection_id)
    assert audit.attempts(failures) == {(connection_id, "contact", "c-3"): 3}
