"""The sync behaviour, readable in one screen per direction.

Xero → Zoho, per record:  received → fetched → mapped → written (or skipped / failed)

1. ``group_xero_events``: webhook events (ids only) → one fetch batch per connection and
   resource, duplicates collapsed. Unknown tenants are audited and dropped.
2. ``fetch_xero_records``: one ``IDs=`` GET per ≤50 ids; each record is stored as a snapshot
   where the newest ``UpdatedDateUTC`` wins, so out-of-order deliveries cannot regress state.
3. ``push_contact``: the snapshot is mapped (pure) and upserted into Zoho keyed on the Xero id;
   a content hash per link skips writes that would change nothing, so a second delivery of the
   same event writes nothing to Zoho.

Every function takes its collaborators keyword-only; the Celery tasks in workers/tasks.py
build them and decide about retries.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable

from connector.errors import DataError, NotFound, RecordRejected
from connector.mapping.contacts import map_contact
from connector.mapping.hashing import content_hash
from connector.mapping.xero_values import parse_xero_date
from connector.mapping import zoho_fields
from connector.store import audit as stages

log = logging.getLogger(__name__)

# Webhook eventCategory → our resource name (the Xero endpoint, lower-case).
XERO_CATEGORIES = {"CONTACT": "contacts", "INVOICE": "invoices", "CREDITNOTE": "creditnotes"}
RECORD_TYPES = {"contacts": "contact", "invoices": "invoice", "creditnotes": "creditnote"}
ID_FIELDS = {"contacts": "ContactID", "invoices": "InvoiceID", "creditnotes": "CreditNoteID"}


def new_sync_id() -> str:
    return uuid.uuid4().hex


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


@dataclass(frozen=True)
class PushOutcome:
    zoho_account_id: str
    written: int  # records written to Zoho in this run
    skipped: int  # records whose content had not changed since our last write
    failed: list[dict] = field(default_factory=list)  # per-person errors from Zoho


def push_contact(
    connection_id: int, xero_contact_id: str, *, snapshots, zoho, links, audit, sync_id: str | None = None
) -> PushOutcome:
    """Map one Xero contact and upsert it into Zoho as an Account plus its Contacts."""
    snapshot = snapshots.get(connection_id, "contacts", xero_contact_id)
    if snapshot is None:
        raise NotFound(f"no fetched snapshot of Xero contact {xero_contact_id}")
    try:
        mapped = map_contact(snapshot.payload)
    except DataError as exc:
        audit.record(
            connection_id=connection_id, record_type="contact", record_id=xero_contact_id,
            sync_id=sync_id, stage=stages.FAILED, detail={"reason": str(exc), "field": exc.field},
        )
        raise
    audit.record(
        connection_id=connection_id, record_type="contact", record_id=xero_contact_id, sync_id=sync_id,
        stage=stages.MAPPED, detail={"zoho_contacts": len(mapped["contacts"])},
    )

    written = skipped = 0
    account = mapped["account"]
    account_hash = content_hash(account)
    link = links.get(connection_id, "contact", xero_contact_id)
    if link is not None and link.content_hash == account_hash:
        account_id = link.zoho_id
        skipped += 1
    else:
        [result] = zoho.upsert("Accounts", [account], duplicate_check_fields=[zoho_fields.ACCOUNT_XERO_ID])
        if not result.ok:
            raise RecordRejected(
                f"Zoho refused the account: {result.code} {result.message}", code=result.code, details=result.details
            )
        account_id = result.id
        links.save(
            connection_id, "contact", xero_contact_id, zoho_module="Accounts", zoho_id=account_id,
            content_hash=account_hash, source_updated_at=snapshot.source_updated_at,
        )
        written += 1

    people = []
    for person in mapped["contacts"]:
        person = {**person, "Account_Name": {"id": account_id}}
        key = person[zoho_fields.CONTACT_PERSON_KEY]
        person_hash = content_hash(person)
        person_link = links.get(connection_id, "contact_person", key)
        if person_link is not None and person_link.content_hash == person_hash:
            skipped += 1
        else:
            people.append((key, person, person_hash))

    failed: list[dict] = []
    if people:
        results = zoho.upsert(
            "Contacts", [p for _, p, _ in people], duplicate_check_fields=[zoho_fields.CONTACT_PERSON_KEY]
        )
        for (key, _, person_hash), result in zip(people, results):
            if result.ok:
                links.save(
                    connection_id, "contact_person", key, zoho_module="Contacts", zoho_id=result.id,
                    content_hash=person_hash, source_updated_at=snapshot.source_updated_at,
                )
                written += 1
            else:
                failed.append({"person": key, "error_code": result.code, "message": result.message, "details": result.details})

    outcome = PushOutcome(zoho_account_id=account_id, written=written, skipped=skipped, failed=failed)
    detail = {"zoho_account_id": account_id, "written": written, "skipped": skipped}
    if failed:
        audit.record(
            connection_id=connection_id, record_type="contact", record_id=xero_contact_id, sync_id=sync_id,
            stage=stages.FAILED, detail={**detail, "errors": failed},
        )
    else:
        audit.record(
            connection_id=connection_id, record_type="contact", record_id=xero_contact_id, sync_id=sync_id,
            stage=stages.WRITTEN if written else stages.SKIPPED, detail=detail,
        )
    return outcome
