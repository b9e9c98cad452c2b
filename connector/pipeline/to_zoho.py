"""Zoho out: fetched Xero snapshots are mapped (pure) and upserted into Zoho, keyed on the Xero id."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from connector.errors import DataError, NotFound, RecordRejected
from connector.mapping import zoho_fields
from connector.mapping.contacts import map_contact
from connector.mapping.hashing import content_hash
from connector.store import audit as stages

log = logging.getLogger(__name__)


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
