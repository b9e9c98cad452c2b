"""Xero in: webhook events and polls become fetched snapshots (see connector/pipeline/__init__.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from connector.mapping.xero_values import parse_xero_date
from connector.pipeline.common import ID_FIELDS, RECORD_TYPES, XERO_CATEGORIES, new_sync_id
from connector.store import audit as stages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchBatch:
    connection_id: int
    resource: str
    ids: list[str]
    sync_ids: dict[str, str] = field(default_factory=dict)  # xero id → sync id of this trip


def group_xero_events(events: Iterable[dict], *, connections, audit) -> list[FetchBatch]:
    """Collapse webhook events into fetch batches; audit each record as received."""
    grouped: dict[tuple[int, str], dict[str, str]] = {}
    for event in events:
        resource = XERO_CATEGORIES.get(str(event.get("eventCategory", "")).upper())
        record_id = str(event.get("resourceId", ""))
        if resource is None or not record_id:
            log.warning("pipeline.xero.event_ignored", extra={"category": event.get("eventCategory")})
            continue
        connection = connections.by_tenant(str(event.get("tenantId", "")))
        if connection is None:
            audit.record(
                record_type=RECORD_TYPES[resource],
                record_id=record_id,
                stage=stages.FAILED,
                detail={"reason": "no connection for this Xero tenant", "tenant_id": event.get("tenantId")},
            )
            continue
        ids = grouped.setdefault((connection.id, resource), {})
        if record_id in ids:
            continue  # the same record twice in one delivery: one fetch serves both
        ids[record_id] = new_sync_id()
        audit.record(
            connection_id=connection.id,
            record_type=RECORD_TYPES[resource],
            record_id=record_id,
            sync_id=ids[record_id],
            stage=stages.RECEIVED,
            detail={"event_type": event.get("eventType"), "event_date": event.get("eventDateUtc")},
        )
    return [
        FetchBatch(connection_id=conn_id, resource=resource, ids=list(ids), sync_ids=ids)
        for (conn_id, resource), ids in grouped.items()
    ]


def fetch_xero_records(batch: FetchBatch, *, xero, snapshots, audit) -> list[str]:
    """GET the records of a batch and keep the newest state of each; returns the ids fetched."""
    getter = {
        "contacts": xero.get_contacts,
        "invoices": xero.get_invoices,
        "creditnotes": xero.get_credit_notes,
    }[batch.resource]
    record_type = RECORD_TYPES[batch.resource]
    id_field = ID_FIELDS[batch.resource]
    fetched: list[str] = []
    for record in getter(batch.ids):
        xero_id = str(record[id_field])
        updated = parse_xero_date(record.get("UpdatedDateUTC")) or datetime.now(timezone.utc)
        newer = snapshots.put_if_newer(
            batch.connection_id, batch.resource, xero_id, source_updated_at=updated, payload=record
        )
        audit.record(
            connection_id=batch.connection_id,
            record_type=record_type,
            record_id=xero_id,
            sync_id=batch.sync_ids.get(xero_id),
            stage=stages.FETCHED,
            detail={"updated_utc": updated.isoformat(), "newest": newer},
        )
        fetched.append(xero_id)
    for missing in set(batch.ids) - set(fetched):
        audit.record(
            connection_id=batch.connection_id,
            record_type=record_type,
            record_id=missing,
            sync_id=batch.sync_ids.get(missing),
            stage=stages.FAILED,
            detail={"reason": "Xero returned no record for this id (deleted, or not visible to this app)"},
        )
    return fetched
