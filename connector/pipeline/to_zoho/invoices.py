"""The invoices round: a Xero sales invoice (bills only with ``sync_bills``) becomes a Zoho Invoice with
its Account and Contact lookups and its lines, read back afterwards and checked against Xero's totals.

- An invoice whose contact is not in Zoho yet: the contact is pushed first in the same run (fetched
  from Xero when we have no snapshot of it), so invoices never wait on webhook order. A contact's
  Account link is saved with its people's links, so an invoice written while another task pushes its
  contact already carries both lookups (Account_Name, Contact_Name) and is not written again later.
- Invoice lines: Zoho keeps lines an update does not mention, so when the lines change we delete the
  old line ids (read back in one call per batch) and send the new lines; when only the header changes
  (a payment) the lines are not sent at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from connector.errors import DataError
from connector.mapping import zoho_fields as zf
from connector.mapping.hashing import content_hash, content_hashes_with
from connector.mapping.invoice_lines import line_changes, totals_mismatch
from connector.mapping.invoices import expected_totals, invoice_items, map_invoice
from connector.mapping.overrides import apply_field_overrides
from connector.mapping.zoho_records import as_written, invoice_contact_id, primary_person_key
from connector.pipeline.to_zoho.core import WAITING_FOR_CONTACT, BatchOutcome, PushCore, newer, rejection
from connector.store import audit as stages
from connector.store.links import LinkWrite

log = logging.getLogger(__name__)

# Pushes contacts (ZohoPush.contacts): an invoice's contact that Zoho does not have yet goes first.
PushContacts = Callable[[list[str]], BatchOutcome]


@dataclass(frozen=True)
class _PreparedInvoice:
    record: dict  # the header as we write it (no lines)
    lines: list[dict]
    full_hash: str
    lines_hash: str
    snapshot: Any
    totals: dict[str, Decimal]  # Xero's, from mapping.expected_totals


def push_invoices(push: PushCore, xero_ids: Iterable[str], sync_ids: Mapping[str, str] | None = None, *,
                  contacts: PushContacts) -> BatchOutcome:
    """Writes invoices, pushing first (with ``contacts``) each contact Zoho does not have yet."""
    sync_ids = dict(sync_ids or {})
    outcome = BatchOutcome()
    stale: list[str] = []
    with closing(push.locks.rounds(push.connection_id, "invoice", xero_ids)) as rounds:
        for ids in rounds:
            stale += _invoices_round(push, ids, sync_ids, outcome, force=False, contacts=contacts)
    push.rewrite_stale(stale, lambda ids: _invoices_round(push, ids, sync_ids, BatchOutcome(), force=True,
                                                          contacts=contacts), "invoice")
    return outcome


def _invoices_round(push: PushCore, xero_ids: list[str], sync_ids: dict, outcome: BatchOutcome, *, force: bool,
                    contacts: PushContacts) -> list[str]:
    """One locked round of invoices, written so that any replay leaves Zoho as one write would.

    Zoho appends every line sent without an id and keeps the lines an update does not mention
    (Zoho CRM v8 "Update Subform Data": rows without an id are added, ``{"id", "_delete": null}``
    removes one). So lines are never sent blind: the target's current lines are read first and
    only the difference goes (edit by line id, delete by line id, add the missing ones). A record
    with no id link yet may still exist from an attempt whose answer was lost: its write intent
    says so, and a header-only upsert finds it (by the unique Xero id) before any line is sent.
    Afterwards Zoho's lines and totals are read back and compared with Xero's.
    """
    snapshots = {}
    with push.transaction():
        begun, items = _read_for_invoices(push, xero_ids)
    for iid in xero_ids:
        snapshot = push.snapshots.get(push.connection_id, "invoices", iid)
        if snapshot is None:
            push.fail("invoice", iid, sync_ids, outcome, {"reason": "no fetched snapshot of this invoice"})
        elif not push.invoices_enabled:
            push.audit_stage("invoice", iid, sync_ids, stages.SKIPPED,
                             {"reason": "this Zoho edition has no Invoices module: contacts only"})
            outcome.skipped.append(iid)
        elif snapshot.payload.get("Type") != "ACCREC" and not push.config.sync_bills:
            push.audit_stage("invoice", iid, sync_ids, stages.SKIPPED, {"reason": "bills (ACCPAY) are not synced"})
            outcome.skipped.append(iid)
        else:
            snapshots[iid] = snapshot
    if not snapshots:
        return []

    account_ids = _ensure_contacts(push, {iid: invoice_contact_id(s.payload) for iid, s in snapshots.items()},
                                   contacts)
    product_ids = _ensure_products(push, [items[i] for i in snapshots if i in items])
    placeholder_id = product_ids.get(push.config.placeholder_item_code)

    prepared: dict[str, _PreparedInvoice] = {}
    # Read with the round; only those a contact push just wrote are read again.
    push.links.prefetch_missing(push.connection_id, "contact_person",
                                [primary_person_key(s.payload) for s in snapshots.values()])
    for iid, snapshot in snapshots.items():
        contact_id = invoice_contact_id(snapshot.payload)
        if contact_id not in account_ids:
            push.fail("invoice", iid, sync_ids, outcome, {
                "reason": f"its Xero contact {contact_id} is not in Zoho yet", "error_code": WAITING_FOR_CONTACT})
            continue
        try:
            record = map_invoice(snapshot.payload, product_ids=product_ids,
                                 placeholder_product_id=placeholder_id or "",
                                 allow_bills=push.config.sync_bills, status_map=push.config.invoice_status)
            totals = expected_totals(snapshot.payload)
        except DataError as exc:
            push.fail("invoice", iid, sync_ids, outcome, {"reason": str(exc), "field": exc.field})
            continue
        record["Account_Name"] = {"id": account_ids[contact_id]}
        primary = push.links.get(push.connection_id, "contact_person", primary_person_key(snapshot.payload))
        if primary is not None:
            record["Contact_Name"] = {"id": primary.zoho_id}
        record = as_written("Invoices", apply_field_overrides(record, snapshot.payload, "Invoices",
                                                              push.config.field_overrides), push.config)
        lines = record.pop("Invoiced_Items")
        push.audit_stage("invoice", iid, sync_ids, stages.MAPPED, {"lines": len(lines)})
        full_hash, lines_hash = content_hashes_with(record, "Invoiced_Items", lines)
        prepared[iid] = _PreparedInvoice(record, lines, full_hash, lines_hash, snapshot, totals)

    # Which invoices need a write, and what Zoho holds of them now.
    targets: dict[str, str | None] = {}  # xero id -> Zoho id (None: not in Zoho, to be created)
    send_lines: set[str] = set()
    for iid, invoice in prepared.items():
        link = push.links.get(push.connection_id, "invoice", iid)
        if link is not None and (newer(link, invoice.snapshot) or (link.content_hash == invoice.full_hash
                                                                   and not force)):
            outcome.skipped.append(iid)
            outcome.zoho_ids[iid] = link.zoho_id
            continue
        lines_link = push.links.get(push.connection_id, "invoice_lines", iid)
        if link is None or lines_link is None or lines_link.content_hash != invoice.lines_hash or force:
            send_lines.add(iid)
        targets[iid] = link.zoho_id if link is not None else None
    found_by_probe = _find_earlier_writes(push, [i for i, z in targets.items() if z is None and i in begun],
                                          prepared)
    targets.update(found_by_probe)
    current = _current_lines(push, [z for i, z in targets.items() if z and i in send_lines])

    writes: list[tuple[str, dict]] = []
    for iid, zoho_id in targets.items():
        invoice = prepared[iid]
        record = dict(invoice.record)
        # The mapper sends Adjustment only when Xero's total needs one; an update must also clear
        # an old one (Zoho keeps fields an update leaves out), or Grand_Total stays off.
        record.setdefault("Adjustment", Decimal("0.00"))
        if zoho_id is not None and zoho_id not in current and iid in send_lines:
            zoho_id = targets[iid] = None  # deleted in Zoho meanwhile: the upsert creates it again
        if zoho_id is None:
            record["Invoiced_Items"] = [dict(line) for line in invoice.lines]
        elif iid in send_lines:
            changes = line_changes(current[zoho_id], invoice.lines)
            if changes:
                record["Invoiced_Items"] = changes
            elif iid in found_by_probe:
                continue  # the probe wrote the header and the lines are already right
        writes.append((iid, record))
    push.links.begin_writes(push.connection_id, "invoice", [i for i, z in targets.items() if z is None])
    results = push.upsert("Invoices", [w[1] for w in writes], zf.INVOICE_XERO_ID)
    refused_new = []
    for (iid, _), result in zip(writes, results):
        if result.ok:
            targets[iid] = result.id
        else:
            if targets.pop(iid) is None:
                refused_new.append(iid)
            push.fail("invoice", iid, sync_ids, outcome, rejection(result, "Invoices"), audit=False)

    stale = _verify_and_link(push, targets, prepared, outcome, refused_new)
    push.audit_outcome("invoice", prepared, outcome, sync_ids)
    return stale


def _read_for_invoices(push: PushCore, xero_ids: list[str]) -> tuple[set[str], dict[str, list[dict]]]:
    """A round's reads: the invoices' snapshots, then every link the round looks at (their contacts,
    contact people, items, their own and their lines'); returns the ids with a write intent and each
    readable invoice's products (``invoice_items``, worked out once a round)."""
    push.snapshots.prefetch(push.connection_id, "invoices", xero_ids)
    by_id = {i: s.payload for i in xero_ids if (s := push.snapshots.get(push.connection_id, "invoices", i))}
    codes = [push.config.placeholder_item_code]
    items: dict[str, list[dict]] = {}
    for iid, payload in by_id.items():
        try:
            items[iid] = invoice_items(payload)
        except DataError:
            continue  # map_invoice reports it
        codes += [p[zf.PRODUCT_ITEM_CODE] for p in items[iid]]
    payloads = list(by_id.values())
    # Contacts before their people: a contact's links are saved together, so one read after the other
    # (each statement sees what was committed before it, on PostgreSQL too) finds the people of every
    # contact it found. A contact not found yet is pushed first (_ensure_contacts), under its lock.
    push.links.prefetch(push.connection_id, "contact", [invoice_contact_id(p) for p in payloads])
    push.links.prefetch(push.connection_id, "contact_person", [primary_person_key(p) for p in payloads])
    push.links.prefetch(push.connection_id, "item", codes)
    push.links.prefetch(push.connection_id, "invoice", xero_ids)
    push.links.prefetch(push.connection_id, "invoice_lines", xero_ids)
    return push.links.writes_begun(push.connection_id, "invoice", xero_ids), items


def _find_earlier_writes(push: PushCore, probes: list[str], prepared: Mapping[str, _PreparedInvoice]) -> dict[str, str]:
    """Zoho ids of unlinked invoices with a write intent, which an earlier, unconfirmed attempt may have
    created.

    A header-only upsert keyed on the unique Xero id updates the record if it exists and tells us
    its id; where it does not exist Zoho refuses it (Invoiced_Items is mandatory on a new invoice)
    or creates it without lines, which the line write then fills. Nothing is ever appended.
    """
    found = {}
    for iid, result in zip(probes, push.upsert("Invoices", [dict(prepared[i].record) for i in probes],
                                               zf.INVOICE_XERO_ID)):
        if result.ok:
            found[iid] = result.id
    return found


def _current_lines(push: PushCore, invoice_zoho_ids: list[str]) -> dict[str, list[dict]]:
    if not invoice_zoho_ids:
        return {}
    records = push.zoho.get_records("Invoices", invoice_zoho_ids, ["Invoiced_Items"])
    return {str(r["id"]): list(r.get("Invoiced_Items") or []) for r in records}


def _verify_and_link(push: PushCore, targets: Mapping[str, str], prepared: Mapping[str, _PreparedInvoice],
                     outcome: BatchOutcome, refused_new: list[str]) -> list[str]:
    """Read the written invoices back: lines exactly as Xero's (repaired once if not), totals to the cent.

    A totals mismatch is a failure with both figures; its link gets a hash that matches nothing, so
    the next push writes and checks it again. Returns the ids whose link save met a newer version.
    The links and the end of the write intents of invoices Zoho refused outright are one transaction.
    """
    if not targets:
        push.links.end_writes(push.connection_id, "invoice", refused_new)
        return []
    fields = ["Invoiced_Items", "Sub_Total", "Tax", "Grand_Total"]
    back = {str(r["id"]): r for r in push.zoho.get_records("Invoices", list(targets.values()), fields)}
    repairs = []
    for iid, zoho_id in targets.items():
        changes = line_changes((back.get(zoho_id) or {}).get("Invoiced_Items") or [], prepared[iid].lines)
        if changes:
            repairs.append((iid, {**prepared[iid].record, "Invoiced_Items": changes}))
    if repairs:
        log.warning("zoho.invoice_lines_repaired", extra={"invoices": [i for i, _ in repairs]})
        push.upsert("Invoices", [r for _, r in repairs], zf.INVOICE_XERO_ID)
        back.update({str(r["id"]): r for r in push.zoho.get_records(
            "Invoices", [targets[i] for i, _ in repairs], fields)})

    mismatches = {iid: totals_mismatch(back.get(zoho_id) or {}, prepared[iid].totals)
                  for iid, zoho_id in targets.items()}
    with push.transaction():
        push.links.end_writes(push.connection_id, "invoice", refused_new)
        stale = push.save_links([
            LinkWrite("invoice", iid, "Invoices", zoho_id,
                      prepared[iid].full_hash if not mismatches[iid] else f"unverified:{prepared[iid].full_hash}",
                      prepared[iid].snapshot.source_updated_at) for iid, zoho_id in targets.items()])
        # The lines' link only once the invoice's own link is saved and its totals verified.
        push.save_links([
            LinkWrite("invoice_lines", iid, "Invoices", zoho_id, prepared[iid].lines_hash,
                      prepared[iid].snapshot.source_updated_at)
            for iid, zoho_id in targets.items() if iid not in stale and not mismatches[iid]])
    for iid, zoho_id in targets.items():
        mismatch = mismatches[iid]
        outcome.zoho_ids[iid] = zoho_id
        if mismatch:
            outcome.merge_failure(iid, {"reason": "Zoho's totals differ from Xero's after the write",
                                        "zoho_id": zoho_id, "totals": mismatch})
        else:
            outcome.written.append(iid)
    return stale


def _ensure_contacts(push: PushCore, contact_of: Mapping[str, str | None], contacts: PushContacts) -> dict[str, str]:
    """Zoho Account ids of the invoices' contacts, pushing (and if need be fetching) missing ones."""
    wanted = [c for c in dict.fromkeys(contact_of.values()) if c]
    found = {}
    missing = []
    push.links.prefetch_missing(push.connection_id, "contact", wanted)  # the round read them
    for cid in wanted:
        link = push.links.get(push.connection_id, "contact", cid)
        if link is not None:
            found[cid] = link.zoho_id
        else:
            missing.append(cid)
    if missing:
        push.snapshots.prefetch(push.connection_id, "contacts", missing)
        unfetched = [c for c in missing if push.snapshots.get(push.connection_id, "contacts", c) is None]
        if unfetched and push.refresh is not None:
            push.refresh("contacts", unfetched)
        found.update(contacts(missing).zoho_ids)
    return found


def _ensure_products(push: PushCore, invoices_items: Iterable[list[dict]]) -> dict[str, str]:
    """Zoho Product ids by Xero item code, upserting new or renamed items (each invoice's ``invoice_items``;
    an unreadable invoice has none: map_invoice reports it) and the placeholder.

    Unit_Price is sent only when a product is created: a line's price is not the item's list
    price, and rewriting it per invoice would write the same product again and again.
    """
    products: dict[str, dict] = {
        push.config.placeholder_item_code: {
            "Product_Name": push.config.placeholder_product_name,
            zf.PRODUCT_ITEM_CODE: push.config.placeholder_item_code,
        }
    }
    for invoice_products in invoices_items:
        for product in invoice_products:
            products.setdefault(product[zf.PRODUCT_ITEM_CODE], as_written("Products", product, push.config))
    ids, pending = {}, []
    push.links.prefetch_missing(push.connection_id, "item", list(products))  # the round read them
    for code, product in products.items():
        identity = {k: v for k, v in product.items() if k != "Unit_Price"}
        product_hash = content_hash(identity)
        link = push.links.get(push.connection_id, "item", code)
        if link is not None and link.content_hash == product_hash:
            ids[code] = link.zoho_id
        else:
            pending.append((code, identity if link is not None else product, product_hash))
    links = []
    for (code, _, product_hash), result in zip(
        pending, push.upsert("Products", [p[1] for p in pending], zf.PRODUCT_ITEM_CODE)
    ):
        if result.ok:
            links.append(LinkWrite("item", code, "Products", result.id, product_hash))
            ids[code] = result.id
        else:
            log.warning("zoho.product_rejected", extra={"item_code": code, "code": result.code})
    push.save_links(links)
    return ids
