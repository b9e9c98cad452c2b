from __future__ import annotations

from decimal import Decimal

import pytest

from connector.secret import Secret
from connector.store import Store
from connector.store.audit import FAILED, FETCHED, MAPPED, RECEIVED, RETRYING, WRITTEN, redact


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
    assert redact({"Name": "Bearer Creek Farm Ltd", "Phones": ["021 555"], "n": None}) == {
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
