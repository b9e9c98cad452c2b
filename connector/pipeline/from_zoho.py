"""Zoho in: a person's edit of a linked Zoho Account or Contact updates the Xero contact.

Only fields the CRM owns (``SyncConfig.crm_owns``; default: people's names, emails and phones) travel
back. Echo suppression, both ways:
- Zoho notifies for our own writes too. The write ledger holds a hash of the CRM-owned fields of what
  we last wrote to each Zoho record; a record that still hashes to it is our write coming back.
- Our write to Xero fires a Xero webhook. After writing we store Xero's answer as the snapshot and set
  the id links' hashes to what that contact maps to, which is what Zoho already holds, so the push
  that follows the webhook finds nothing to write.
A conflict (the Xero contact changed after our last write to Zoho, and a person changed Zoho) follows
the ownership policy: CRM-owned fields take Zoho's value, Xero keeps the rest and pushes it to Zoho as
usual; the audit entry says ``conflict: true``.
The write is built on the Xero contact as read right before writing (Xero replaces ContactPersons
wholesale), so a change made in Xero meanwhile survives; only the CRM-owned fields differ from it.
One Zoho org may serve several Xero tenants through the one channel of its token owner: the ingest
task first sends each record to the connection whose id link holds it (``route_by_link``), so the
echo check, the Xero read and the write all run as that record's own connection.
Every Xero write is checked first: mapping the updated contact back must reproduce the Zoho values,
or the change cannot be represented in Xero and is refused (audited) rather than echoing forever.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from connector.mapping import zoho_fields as zf
from connector.mapping.contacts import map_contact, person_key
from connector.mapping.formulas import restore
from connector.mapping.hashing import canonical_json, content_hash
from connector.mapping.xero_values import parse_xero_date
from connector.mapping_config import WRITABLE_TO_XERO, SyncConfig
from connector.mapping.zoho_records import as_written, owned_projection, zoho_contact_records
from connector.pipeline.account_money import map_contact_as_pushed
from connector.store import audit as stages

# Xero gives ContactPersons only names and an email; phones belong to the primary person.
_PERSON_FIELDS = {"First_Name": "FirstName", "Last_Name": "LastName"}
_PRIMARY_FIELDS = {"First_Name": "FirstName", "Last_Name": "LastName", "Email": "EmailAddress"}
_PRIMARY_PHONES = {"Phone": "DDI", "Mobile": "MOBILE"}
_ACCOUNT_FIELDS = {"Account_Name": "Name"}  # Website is read-only in Xero's Contacts API
_ACCOUNT_PHONES = {"Phone": "DEFAULT"}


@dataclass
class PullOutcome:
    xero_writes: int = 0
    echoes: int = 0
    conflicts: int = 0
    refused: int = 0
    created: int = 0  # new Zoho records matched to or created as Xero contacts (pipeline/to_xero/contacts.py)


def pull_zoho_changes(
    connection_id: int, module: str, zoho_ids: list[str], *, operation: str, zoho, xero, snapshots, links, audit,
    ledger, config: SyncConfig, detail: Mapping[str, Any] | None = None,
    create: Callable[[str], Any] | None = None,
) -> PullOutcome:
    """``create(zoho_id)``: the creation path (to_xero.contacts.ensure_xero_contact) for a record no id link
    holds, when mapping.yaml's create_in_xero lists the module; it audits its own outcome. An edit of such
    a record comes this way too: a filter it did not pass before (a deal's stage) may pass now, and a
    channel gap's reconciliation hands creations in as edits."""
    outcome = PullOutcome()

    def note(record_id: str, stage: str, extra: Mapping[str, Any]) -> None:
        audit.record(connection_id=connection_id, record_type=module, record_id=record_id,
                     direction=stages.ZOHO_TO_XERO, stage=stage, detail={**(detail or {}), **extra})

    owned = config.owned_by_crm(module)
    for zid in zoho_ids:
        note(zid, stages.RECEIVED, {"operation": operation})
    if create is not None and config.creates_in_xero(module) and operation in ("insert", "update"):
        linked = {link.zoho_id for link in links.by_zoho_ids([connection_id], module, zoho_ids)}
        for zid in dict.fromkeys(zoho_ids):
            if zid not in linked and getattr(create(zid), "ok", False):
                outcome.created += 1
        zoho_ids = [zid for zid in zoho_ids if zid in linked]
        if not zoho_ids:
            return outcome
    if module not in WRITABLE_TO_XERO or operation != "update" or not owned:
        reason = ("deletes and new records in Zoho are not sent to Xero" if operation != "update"
                  else f"the CRM owns no {module} fields (field ownership policy)")
        for zid in zoho_ids:
            note(zid, stages.SKIPPED, {"reason": reason})
        return outcome

    # Our id link says which Xero record a Zoho record is (its Xero id field in Zoho is a person's to edit).
    keys: dict[str, str] = {}
    for link in links.by_zoho_ids([connection_id], module, zoho_ids):
        keys.setdefault(link.zoho_id, link.xero_id)
    for zid in zoho_ids:
        if zid not in keys:
            note(zid, stages.SKIPPED, {"reason": "no Xero record of this connection is linked to it; "
                                                 "nothing to update in Xero"})
    if not keys:
        return outcome
    records = zoho.get_records(module, list(keys), owned)
    last_written = ledger.hashes(connection_id, "zoho", [str(r["id"]) for r in records])
    by_contact: dict[str, list[tuple[str, str, dict]]] = {}
    for record in records:
        zid = str(record["id"])
        key = keys[zid]
        if last_written.get(zid) == content_hash(owned_projection(record, owned)):
            outcome.echoes += 1
            note(zid, stages.SKIPPED, {"reason": "echo of our own write", "echo": True})
        else:
            contact_id = key if module == "Accounts" else key.split(":", 1)[0]
            by_contact.setdefault(contact_id, []).append((zid, key, record))

    for zid in sorted(set(keys) - {str(r["id"]) for r in records}):
        note(zid, stages.SKIPPED, {"reason": "the record is no longer in Zoho"})

    for contact_id, changes in by_contact.items():
        _write_back(connection_id, module, contact_id, changes, owned, outcome, note, xero=xero,
                    snapshots=snapshots, links=links, ledger=ledger, config=config)
    return outcome


def route_by_link(connection_id: int, module: str, zoho_ids: list[str], *, sharing: list[int],
                  links) -> dict[int, list[str]]:
    """{connection id: Zoho ids} for a notification that reached ``connection_id``'s channel. One Zoho
    org may serve several Xero tenants (``sharing``) through one channel: each record goes to every
    one of them holding an id link to it. A record none of them links stays with ``connection_id``,
    whose pull skips it, saying so."""
    owners: dict[str, dict[int, None]] = {}
    for link in links.by_zoho_ids(sharing, module, zoho_ids):
        owners.setdefault(link.zoho_id, {})[link.connection_id] = None
    routes: dict[int, list[str]] = {}
    for zid in dict.fromkeys(zoho_ids):
        for owner in owners.get(zid) or [connection_id]:
            routes.setdefault(owner, []).append(zid)
    return routes


def _write_back(connection_id, module, contact_id, changes, owned, outcome, note, *, xero, snapshots, links,
                ledger, config) -> None:
    snapshot = snapshots.get(connection_id, "contacts", contact_id)
    # Xero replaces a contact's ContactPersons with what a write sends, so the write is built on a read
    # made just now, never on a snapshot that may predate a change made in Xero: only the fields the
    # CRM owns differ from what Xero holds.
    found = xero.get_contacts([contact_id])
    if not found:
        for zid, _key, _record in changes:
            note(zid, stages.SKIPPED, {"reason": f"Xero no longer has contact {contact_id} (deleted in Xero); "
                                                 "the Zoho edit was not written to Xero", "xero_contact": contact_id})
        return
    current = found[0]
    read_at = parse_xero_date(current.get("UpdatedDateUTC"))
    if read_at is not None:
        snapshots.put_if_newer(connection_id, "contacts", contact_id, source_updated_at=read_at, payload=current)
    mapped = _as_in_zoho(map_contact(current), config)
    updated = copy.deepcopy(current)
    applied: dict[str, dict] = {}
    for zid, key, record in changes:
        target = mapped["account"] if module == "Accounts" else next(
            (p for p in mapped["contacts"] if p[zf.CONTACT_PERSON_KEY] == key), None)
        if target is None:
            note(zid, stages.SKIPPED, {"reason": "this person is no longer on the Xero contact"})
            continue
        diff = {f: record.get(f) or None for f in owned if (record.get(f) or None) != (target.get(f) or None)}
        if not diff:
            note(zid, stages.SKIPPED, {"reason": "Zoho already matches Xero for the fields the CRM owns"})
            ledger.record_many(connection_id, "zoho", {zid: content_hash(owned_projection(record, owned))})
            continue
        to_xero = {f: restore(v) for f, v in diff.items()} if config.neutralise_formulas else diff
        refused = _apply(updated, module, key, contact_id, to_xero, target)
        if refused:
            outcome.refused += 1
            note(zid, stages.FAILED, {"reason": f"Xero cannot hold {', '.join(refused)} for this person",
                                      "fields": refused})
            continue
        applied[zid] = {"key": key, "record": record, "fields": sorted(diff)}
    if not applied:
        return

    remapped = _as_in_zoho(map_contact(updated), config)
    for zid, change in list(applied.items()):
        back = remapped["account"] if module == "Accounts" else next(
            (p for p in remapped["contacts"] if p[zf.CONTACT_PERSON_KEY] == change["key"]), {})
        wrong = [f for f in owned if (back.get(f) or None) != (change["record"].get(f) or None)]
        if wrong:
            outcome.refused += 1
            note(zid, stages.FAILED, {"reason": "the change would not survive the trip back to Zoho",
                                      "fields": wrong})
            return  # the contact is written whole or not at all

    account_link = links.get(connection_id, "contact", contact_id)
    xero_version = max((v for v in (snapshot.source_updated_at if snapshot else None, read_at) if v), default=None)
    conflict = bool(account_link is not None and account_link.source_updated_at and xero_version
                    and xero_version > account_link.source_updated_at)
    body = {"ContactID": contact_id,
            **{k: v for k, v in updated.items() if k != "ContactID" and current.get(k) != v}}
    key = hashlib.sha256(f"{connection_id}:{canonical_json(body)}".encode()).hexdigest()
    answer = xero.update_contact(body, idempotency_key=key)
    outcome.xero_writes += 1
    outcome.conflicts += conflict
    when = parse_xero_date(answer.get("UpdatedDateUTC"))
    if when is not None:
        snapshots.put_if_newer(connection_id, "contacts", contact_id, source_updated_at=when, payload=answer)
    if not conflict and account_link is not None:
        _expect_in_zoho(connection_id, contact_id, answer, account_link, links, config, when, snapshots)
    ledger.record_many(connection_id, "zoho", {
        zid: content_hash(owned_projection(change["record"], owned)) for zid, change in applied.items()})
    for zid, change in applied.items():
        note(zid, stages.WRITTEN, {"xero_contact": contact_id, "fields": change["fields"], "conflict": conflict,
                                   "winner": "zoho" if conflict else None})


def _as_in_zoho(mapped: dict, config: SyncConfig) -> dict:
    """A mapped contact as Zoho holds it once written (formulas neutralised when the config says so)."""
    return {"account": as_written("Accounts", mapped["account"], config),
            "contacts": [as_written("Contacts", p, config) for p in mapped["contacts"]]}


def _expect_in_zoho(connection_id, contact_id, answer, account_link, links, config, when, snapshots) -> None:
    """Zoho already holds what the updated Xero contact maps to: record that, so the Xero webhook
    for our own write finds nothing to push (no echo). The Account's money figures are what a push
    computes now from the stored documents (a contact write changes none of them)."""
    mapped = map_contact_as_pushed(snapshots, connection_id, answer, config, today=datetime.now(timezone.utc).date())
    account, people = zoho_contact_records(mapped, answer, config, account_link.zoho_id)
    links.save(connection_id, "contact", contact_id, zoho_module="Accounts", zoho_id=account_link.zoho_id,
               content_hash=content_hash(account), source_updated_at=when)
    for person in people:
        link = links.get(connection_id, "contact_person", person[zf.CONTACT_PERSON_KEY])
        if link is not None:
            links.save(connection_id, "contact_person", link.xero_id, zoho_module="Contacts", zoho_id=link.zoho_id,
                       content_hash=content_hash(person), source_updated_at=when)


def _apply(updated: dict, module: str, key: str, contact_id: str, diff: Mapping[str, Any], target) -> list[str]:
    """Write ``diff`` (Zoho field -> value) into the Xero contact ``updated``; returns fields it cannot hold."""
    if module == "Accounts":
        fields, phones, entry = _ACCOUNT_FIELDS, _ACCOUNT_PHONES, updated
    elif key == f"{contact_id}:primary":
        fields, phones, entry = _PRIMARY_FIELDS, _PRIMARY_PHONES, updated
    else:
        persons = updated.get("ContactPersons") or []
        entry = next((p for i, p in enumerate(persons)
                      if person_key(contact_id, (p.get("EmailAddress") or "").strip() or None, i) == key), None)
        if entry is None:
            return list(diff)
        # An email is a ContactPerson's key: changing it in Zoho would re-key the person.
        fields, phones = _PERSON_FIELDS, {}
    refused = [f for f in diff if f not in fields and f not in phones]
    if refused:
        return refused
    for zoho_name, value in diff.items():
        if zoho_name in phones:
            _set_phone(updated, phones[zoho_name], value)
        elif zoho_name == "Last_Name" and not (entry.get("LastName") or "").strip() and not target.get("First_Name") \
                and (entry.get("FirstName") or "").strip():
            entry["FirstName"] = value or ""  # the lone first name was shown as Last_Name (Zoho needs one)
        else:
            entry[fields[zoho_name]] = value or ""
    return []


def _set_phone(contact: dict, phone_type: str, number: str | None) -> None:
    phones = [p for p in contact.get("Phones") or [] if p.get("PhoneType") != phone_type]
    phones.append({"PhoneType": phone_type, "PhoneNumber": number or "", "PhoneAreaCode": "", "PhoneCountryCode": ""})
    contact["Phones"] = phones
