"""Zoho out: fetched Xero snapshots are mapped (pure) and upserted into Zoho in batches.

One ``ZohoPush`` call handles a batch of records of one resource with one upsert call per Zoho
module (≤100 records each, the client chunks), in lookup order: Accounts before Contacts, Products
before Invoices. Every upsert is keyed on a Xero id held in a unique custom field, never on a name.

- Unchanged content is skipped by the hash kept on each id link; the write ledger keeps a hash of the
  CRM-owned fields we wrote, so the Zoho notification of our own write is recognised (from_zoho.py).
- A record Zoho refuses in a 207 fails alone, audited with Zoho's error code; codes that can pass on
  a later try (``RETRYABLE_CODES``) are audited "retrying" and handed back in ``BatchOutcome.retry``; the
  task retries them alone and, after its last retry, parks them (workers/zoho_tasks.py): they wait in
  parked work and are pushed again later, never given up for a refusal Zoho calls temporary.
- An invoice whose contact is not in Zoho yet: the contact is pushed first in the same run (fetched
  from Xero when we have no snapshot of it), so invoices never wait on webhook order. A contact's
  Account link is saved with its people's links, so an invoice written while another task pushes its
  contact already carries both lookups (Account_Name, Contact_Name) and is not written again later.
- Invoice lines: Zoho keeps lines an update does not mention, so when the lines change we delete the
  old line ids (read back in one call per batch) and send the new lines; when only the header changes
  (a payment) the lines are not sent at all.
- Payments and credit notes have no Zoho module: they re-read and re-push the invoices and the contact
  they touch, whose amount paid, amount due, status and balances then change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
import dataclasses
import functools
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.errors import DataError
from connector.mapping import zoho_fields as zf
from connector.mapping.contacts import map_contact
from connector.mapping.formulas import neutralise_record
from connector.mapping.hashing import content_hash, content_hashes_with
from connector.mapping.invoices import expected_totals, invoice_items, map_invoice
from connector.mapping.overrides import apply_field_overrides
from connector.mapping_config import SyncConfig
from connector.store import audit as stages
from connector.store.links import LinkReads, LinkWrite
from connector.store.snapshots import SnapshotReads

log = logging.getLogger(__name__)

# Per-record Zoho codes worth another try; everything else is a data problem, audited "failed" at once.
RETRYABLE_CODES = frozenset({"INTERNAL_ERROR", "TOO_MANY_REQUESTS", "LOCKED_RECORD"})
WAITING_FOR_CONTACT = "WAITING_FOR_CONTACT"


@dataclass
class BatchOutcome:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, dict] = field(default_factory=dict)  # xero id -> reason, Zoho code
    retry: list[str] = field(default_factory=list)
    zoho_ids: dict[str, str] = field(default_factory=dict)  # xero id -> Zoho id of its main record

    def merge_failure(self, xero_id: str, detail: dict) -> None:
        if detail.get("error_code") in RETRYABLE_CODES or detail.get("error_code") == WAITING_FOR_CONTACT:
            if xero_id not in self.retry:
                self.retry.append(xero_id)
        self.failed[xero_id] = detail


def owned_projection(record: Mapping[str, Any], owned: Iterable[str]) -> dict[str, Any]:
    """The CRM-owned fields of a Zoho record, absent ones as None (what the write ledger hashes)."""
    return {name: record.get(name) or None for name in owned}


def _one_audit_write(method):
    """The audit rows a push makes are written together when it returns (or raises)."""

    @functools.wraps(method)
    def run(self: "ZohoPush", *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        finally:
            self._trail.flush()
    return run


@dataclass
class ZohoPush:
    connection_id: int
    snapshots: Any
    zoho: Any
    links: Any
    audit: Any
    ledger: Any
    locks: Any  # connector.record_locks.RecordLocks: one writer at a time per target record
    config: SyncConfig = field(default_factory=SyncConfig)
    invoices_enabled: bool = True  # False when the Zoho edition has no Invoices module
    # Fetches the given Xero resource ids into snapshots (returns the ids it found).
    refresh: Callable[[str, list[str]], list[str]] | None = None
    task_id: str | None = None
    org_fields: Mapping[str, frozenset[str]] | None = None  # per module, from zoho_setup.check_org
    # False: a record refused with a retryable code is audited "retrying" (the task tries it again alone,
    # then parks it). True: it is given up, audited "failed" with Zoho's code; no task sets this.
    final_attempt: bool = False
    # Makes a block whose store calls share one transaction (Store.transaction). A round's reads are one
    # transaction and the writes after each Zoho call another; never one around a call to Zoho.
    transaction: Callable[[], AbstractContextManager] = nullcontext
    # Links pushed invoices to deals, totals the deals and notes the payments (pipeline/deals.py); None: off.
    deals: Any = None

    def __post_init__(self) -> None:
        # A batch's database work, batched: links and snapshots read together (afresh under each round's
        # locks), links saved a loop at a time, audit rows written once per push.
        if not isinstance(self.links, LinkReads):
            self.links = LinkReads(self.links)
        if not isinstance(self.snapshots, SnapshotReads):
            self.snapshots = SnapshotReads(self.snapshots)
        self._trail = self.audit.batch()

    # -- contacts -------------------------------------------------------------------------------

    @_one_audit_write
    def contacts(self, xero_ids: Iterable[str], sync_ids: Mapping[str, str] | None = None) -> BatchOutcome:
        sync_ids = dict(sync_ids or {})
        outcome = BatchOutcome()
        stale: list[str] = []
        with closing(self.locks.rounds(self.connection_id, "contact", xero_ids)) as rounds:
            for ids in rounds:
                stale += self._contacts_round(ids, sync_ids, outcome, force=False)
        self._rewrite_stale(stale, lambda ids: self._contacts_round(ids, sync_ids, BatchOutcome(), force=True),
                            "contact")
        return outcome

    def _contacts_round(self, xero_ids: list[str], sync_ids: dict, outcome: BatchOutcome, *, force: bool) -> list[str]:
        """Writes one locked round; returns the ids whose link save found a newer version (see _rewrite_stale)."""
        with self.transaction():
            mapped = self._mapped("contacts", "contact", xero_ids, sync_ids, outcome, map_contact,
                                  lambda m: {"zoho_contacts": len(m["contacts"])})
            self.links.prefetch(self.connection_id, "contact", list(mapped))
        stale: list[str] = []

        pending, changed = [], set()
        for cid, (result, snapshot) in mapped.items():
            account, _ = zoho_contact_records(result, snapshot.payload, self.config)
            account_hash = content_hash(account)
            link = self.links.get(self.connection_id, "contact", cid)
            if link is not None and (_newer(link, snapshot) or (link.content_hash == account_hash and not force)):
                outcome.zoho_ids[cid] = link.zoho_id
            else:
                pending.append((cid, account, account_hash, snapshot))
        account_links, ledger = [], {}
        for (cid, account, account_hash, snapshot), result in zip(
            pending, self._upsert("Accounts", [p[1] for p in pending], zf.ACCOUNT_XERO_ID)
        ):
            if result.ok:
                account_links.append(LinkWrite("contact", cid, "Accounts", result.id, account_hash,
                                               snapshot.source_updated_at))
                outcome.zoho_ids[cid] = result.id
                changed.add(cid)
                ledger[result.id] = account
            else:
                outcome.merge_failure(cid, _rejection(result, "Accounts"))
        self._ledger("Accounts", ledger)  # at once: Zoho's notification of this write may come any moment

        candidates = []
        for cid, (result, snapshot) in mapped.items():
            if cid not in outcome.zoho_ids:
                continue
            for person in zoho_contact_records(result, snapshot.payload, self.config, outcome.zoho_ids[cid])[1]:
                candidates.append((cid, person[zf.CONTACT_PERSON_KEY], person, content_hash(person), snapshot))
        self.links.prefetch(self.connection_id, "contact_person", [c[1] for c in candidates])
        people = []
        for cid, key, person, person_hash, snapshot in candidates:
            link = self.links.get(self.connection_id, "contact_person", key)
            if link is None or not (_newer(link, snapshot) or (link.content_hash == person_hash and not force)):
                people.append((cid, key, person, person_hash, snapshot))
        links, ledger, person_of = [], {}, {}
        for (cid, key, person, person_hash, snapshot), result in zip(
            people, self._upsert("Contacts", [p[2] for p in people], zf.CONTACT_PERSON_KEY)
        ):
            if result.ok:
                links.append(LinkWrite("contact_person", key, "Contacts", result.id, person_hash,
                                       snapshot.source_updated_at))
                person_of[key] = cid
                changed.add(cid)
                ledger[result.id] = person
            else:
                detail = _rejection(result, "Contacts")
                detail["person"] = key
                outcome.merge_failure(cid, detail)
        # A contact's link is saved with its people's, in one statement: a push that finds the contact linked
        # (an invoice's, for its Account_Name) finds its people linked too (for its Contact_Name), never a
        # contact half written. Should this push stop before here, the next one upserts the Account again,
        # keyed on its Xero id: the same record, and no link to be found meanwhile.
        with self.transaction():
            not_saved = self._save_links(account_links + links)
            stale += [person_of.get(xero_id, xero_id) for xero_id in not_saved]  # a person's key: its contact
            self._ledger("Contacts", ledger)

        for cid in mapped:
            if cid in outcome.failed:
                continue
            (outcome.written if cid in changed else outcome.skipped).append(cid)
        self._audit_outcome("contact", mapped, outcome, sync_ids)
        return list(dict.fromkeys(stale))

    # -- invoices -------------------------------------------------------------------------------

    @_one_audit_write
    def invoices(self, xero_ids: Iterable[str], sync_ids: Mapping[str, str] | None = None) -> BatchOutcome:
        sync_ids = dict(sync_ids or {})
        outcome = BatchOutcome()
        stale: list[str] = []
        with closing(self.locks.rounds(self.connection_id, "invoice", xero_ids)) as rounds:
            for ids in rounds:
                stale += self._invoices_round(ids, sync_ids, outcome, force=False)
        self._rewrite_stale(stale, lambda ids: self._invoices_round(ids, sync_ids, BatchOutcome(), force=True),
                            "invoice")
        if self.deals is not None:  # its audit rows go with this push's
            dataclasses.replace(self.deals, audit=self._trail).after_invoices(
                [x for x in dict.fromkeys(xero_ids) if x not in outcome.failed])
        return outcome

    def _invoices_round(self, xero_ids: list[str], sync_ids: dict, outcome: BatchOutcome, *, force: bool) -> list[str]:
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
        with self.transaction():
            begun = self._read_for_invoices(xero_ids)
        for iid in xero_ids:
            snapshot = self.snapshots.get(self.connection_id, "invoices", iid)
            if snapshot is None:
                self._fail("invoice", iid, sync_ids, outcome, {"reason": "no fetched snapshot of this invoice"})
            elif not self.invoices_enabled:
                self._audit("invoice", iid, sync_ids, stages.SKIPPED,
                            {"reason": "this Zoho edition has no Invoices module: contacts only"})
                outcome.skipped.append(iid)
            elif snapshot.payload.get("Type") != "ACCREC" and not self.config.sync_bills:
                self._audit("invoice", iid, sync_ids, stages.SKIPPED, {"reason": "bills (ACCPAY) are not synced"})
                outcome.skipped.append(iid)
            else:
                snapshots[iid] = snapshot
        if not snapshots:
            return []

        account_ids = self._ensure_contacts({iid: _contact_id(s.payload) for iid, s in snapshots.items()})
        product_ids = self._ensure_products(s.payload for s in snapshots.values())
        placeholder_id = product_ids.get(self.config.placeholder_item_code)

        prepared: dict[str, _PreparedInvoice] = {}
        # Read with the round; only those a contact push just wrote are read again.
        self.links.prefetch_missing(self.connection_id, "contact_person",
                                    [_primary_person(s.payload) for s in snapshots.values()])
        for iid, snapshot in snapshots.items():
            contact_id = _contact_id(snapshot.payload)
            if contact_id not in account_ids:
                self._fail("invoice", iid, sync_ids, outcome, {
                    "reason": f"its Xero contact {contact_id} is not in Zoho yet", "error_code": WAITING_FOR_CONTACT})
                continue
            try:
                record = map_invoice(snapshot.payload, product_ids=product_ids,
                                     placeholder_product_id=placeholder_id or "",
                                     allow_bills=self.config.sync_bills, status_map=self.config.invoice_status)
                totals = expected_totals(snapshot.payload)
            except DataError as exc:
                self._fail("invoice", iid, sync_ids, outcome, {"reason": str(exc), "field": exc.field})
                continue
            record["Account_Name"] = {"id": account_ids[contact_id]}
            primary = self.links.get(self.connection_id, "contact_person", _primary_person(snapshot.payload))
            if primary is not None:
                record["Contact_Name"] = {"id": primary.zoho_id}
            record = as_written("Invoices", apply_field_overrides(record, snapshot.payload, "Invoices",
                                                                  self.config.field_overrides), self.config)
            lines = record.pop("Invoiced_Items")
            self._audit("invoice", iid, sync_ids, stages.MAPPED, {"lines": len(lines)})
            full_hash, lines_hash = content_hashes_with(record, "Invoiced_Items", lines)
            prepared[iid] = _PreparedInvoice(record, lines, full_hash, lines_hash, snapshot, totals)

        # Which invoices need a write, and what Zoho holds of them now.
        targets: dict[str, str | None] = {}  # xero id -> Zoho id (None: not in Zoho, to be created)
        send_lines: set[str] = set()
        for iid, invoice in prepared.items():
            link = self.links.get(self.connection_id, "invoice", iid)
            if link is not None and (_newer(link, invoice.snapshot) or (link.content_hash == invoice.full_hash
                                                                        and not force)):
                outcome.skipped.append(iid)
                outcome.zoho_ids[iid] = link.zoho_id
                continue
            lines_link = self.links.get(self.connection_id, "invoice_lines", iid)
            if link is None or lines_link is None or lines_link.content_hash != invoice.lines_hash or force:
                send_lines.add(iid)
            targets[iid] = link.zoho_id if link is not None else None
        found_by_probe = self._find_earlier_writes([i for i, z in targets.items() if z is None and i in begun],
                                                   prepared)
        targets.update(found_by_probe)
        current = self._current_lines([z for i, z in targets.items() if z and i in send_lines])

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
        self.links.begin_writes(self.connection_id, "invoice", [i for i, z in targets.items() if z is None])
        results = self._upsert("Invoices", [w[1] for w in writes], zf.INVOICE_XERO_ID)
        refused_new = []
        for (iid, _), result in zip(writes, results):
            if result.ok:
                targets[iid] = result.id
            else:
                if targets.pop(iid) is None:
                    refused_new.append(iid)
                self._fail("invoice", iid, sync_ids, outcome, _rejection(result, "Invoices"), audit=False)

        stale = self._verify_and_link(targets, prepared, outcome, refused_new)
        for iid in prepared:
            if iid in outcome.failed:
                self._audit_failure("invoice", iid, sync_ids, outcome)
            else:
                stage = stages.WRITTEN if iid in outcome.written else stages.SKIPPED
                self._audit("invoice", iid, sync_ids, stage, {"zoho_id": outcome.zoho_ids.get(iid)})
        return stale

    def _read_for_invoices(self, xero_ids: list[str]) -> set[str]:
        """A round's reads: the invoices' snapshots, then every link the round looks at (their contacts,
        contact people, items, their own and their lines'); returns the ids with a write intent."""
        self.snapshots.prefetch(self.connection_id, "invoices", xero_ids)
        payloads = [s.payload for i in xero_ids if (s := self.snapshots.get(self.connection_id, "invoices", i))]
        codes = [self.config.placeholder_item_code]
        for payload in payloads:
            try:
                codes += [p[zf.PRODUCT_ITEM_CODE] for p in invoice_items(payload)]
            except DataError:
                continue  # map_invoice reports it
        # Contacts before their people: a contact's links are saved together, so one read after the other
        # (each statement sees what was committed before it, on PostgreSQL too) finds the people of every
        # contact it found. A contact not found yet is pushed first (_ensure_contacts), under its lock.
        self.links.prefetch(self.connection_id, "contact", [_contact_id(p) for p in payloads])
        self.links.prefetch(self.connection_id, "contact_person", [_primary_person(p) for p in payloads])
        self.links.prefetch(self.connection_id, "item", codes)
        self.links.prefetch(self.connection_id, "invoice", xero_ids)
        self.links.prefetch(self.connection_id, "invoice_lines", xero_ids)
        return self.links.writes_begun(self.connection_id, "invoice", xero_ids)

    def _find_earlier_writes(self, probes: list[str], prepared: Mapping[str, "_PreparedInvoice"]) -> dict[str, str]:
        """Zoho ids of unlinked invoices with a write intent, which an earlier, unconfirmed attempt may have
        created.

        A header-only upsert keyed on the unique Xero id updates the record if it exists and tells us
        its id; where it does not exist Zoho refuses it (Invoiced_Items is mandatory on a new invoice)
        or creates it without lines, which the line write then fills. Nothing is ever appended.
        """
        found = {}
        for iid, result in zip(probes, self._upsert("Invoices", [dict(prepared[i].record) for i in probes],
                                                     zf.INVOICE_XERO_ID)):
            if result.ok:
                found[iid] = result.id
        return found

    def _current_lines(self, invoice_zoho_ids: list[str]) -> dict[str, list[dict]]:
        if not invoice_zoho_ids:
            return {}
        records = self.zoho.get_records("Invoices", invoice_zoho_ids, ["Invoiced_Items"])
        return {str(r["id"]): list(r.get("Invoiced_Items") or []) for r in records}

    def _verify_and_link(self, targets: Mapping[str, str], prepared: Mapping[str, "_PreparedInvoice"],
                         outcome: BatchOutcome, refused_new: list[str]) -> list[str]:
        """Read the written invoices back: lines exactly as Xero's (repaired once if not), totals to the cent.

        A totals mismatch is a failure with both figures; its link gets a hash that matches nothing, so
        the next push writes and checks it again. Returns the ids whose link save met a newer version.
        The links and the end of the write intents of invoices Zoho refused outright are one transaction.
        """
        if not targets:
            self.links.end_writes(self.connection_id, "invoice", refused_new)
            return []
        fields = ["Invoiced_Items", "Sub_Total", "Tax", "Grand_Total"]
        back = {str(r["id"]): r for r in self.zoho.get_records("Invoices", list(targets.values()), fields)}
        repairs = []
        for iid, zoho_id in targets.items():
            changes = line_changes((back.get(zoho_id) or {}).get("Invoiced_Items") or [], prepared[iid].lines)
            if changes:
                repairs.append((iid, {**prepared[iid].record, "Invoiced_Items": changes}))
        if repairs:
            log.warning("zoho.invoice_lines_repaired", extra={"invoices": [i for i, _ in repairs]})
            self._upsert("Invoices", [r for _, r in repairs], zf.INVOICE_XERO_ID)
            back.update({str(r["id"]): r for r in self.zoho.get_records(
                "Invoices", [targets[i] for i, _ in repairs], fields)})

        mismatches = {}
        for iid, zoho_id in targets.items():
            invoice = prepared[iid]
            zoho_totals = _zoho_totals(back.get(zoho_id) or {})
            mismatches[iid] = {name: {"zoho": zoho_totals.get(name), "xero": invoice.totals[xero_name]}
                               for name, xero_name in _TOTALS.items()
                               if zoho_totals.get(name) != invoice.totals[xero_name]}
        with self.transaction():
            self.links.end_writes(self.connection_id, "invoice", refused_new)
            stale = self._save_links([
                LinkWrite("invoice", iid, "Invoices", zoho_id,
                          prepared[iid].full_hash if not mismatches[iid] else f"unverified:{prepared[iid].full_hash}",
                          prepared[iid].snapshot.source_updated_at) for iid, zoho_id in targets.items()])
            # The lines' link only once the invoice's own link is saved and its totals verified.
            self._save_links([
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

    def _rewrite_stale(self, stale: list[str], rewrite: Callable[[list[str]], list[str]], kind: str) -> None:
        """Ids whose link save met a newer version: our write may have landed after that newer one (a
        lease ran out under a very slow write), so the newest snapshot is written again, under the lock."""
        for _ in range(3):
            if not stale:
                return
            log.warning("zoho.rewrite_newer", extra={"kind": kind, "records": stale})
            again: list[str] = []
            with closing(self.locks.rounds(self.connection_id, kind, stale)) as rounds:
                for ids in rounds:
                    again += rewrite(ids)
            stale = again

    # -- payments and credit notes --------------------------------------------------------------

    @_one_audit_write
    def related(self, resource: str, xero_ids: Iterable[str], sync_ids: Mapping[str, str] | None = None) -> BatchOutcome:
        """Payments / credit notes: re-read and re-push the invoices and contacts they change."""
        record_type = {"payments": "payment", "creditnotes": "creditnote"}[resource]
        sync_ids = dict(sync_ids or {})
        outcome = BatchOutcome()
        touches: dict[str, tuple[list[str], str | None]] = {}
        self.snapshots.prefetch(self.connection_id, resource, list(dict.fromkeys(xero_ids)))
        for xid in dict.fromkeys(xero_ids):
            snapshot = self.snapshots.get(self.connection_id, resource, xid)
            if snapshot is None:
                self._fail(record_type, xid, sync_ids, outcome, {"reason": f"no fetched snapshot of this {record_type}"})
                continue
            invoices, contact, sales = _touched(resource, snapshot.payload)
            if not sales and not self.config.sync_bills:
                self._audit(record_type, xid, sync_ids, stages.SKIPPED, {"reason": "bills (ACCPAY) are not synced"})
                outcome.skipped.append(xid)
                continue
            touches[xid] = (invoices, contact)
            self._audit(record_type, xid, sync_ids, stages.MAPPED, {"invoices": invoices, "contact": contact})
        invoice_ids = list(dict.fromkeys(i for invoices, _ in touches.values() for i in invoices))
        contact_ids = list(dict.fromkeys(c for _, c in touches.values() if c))
        if self.refresh is not None:
            # Amounts paid, due and balances are only current in a fresh read from Xero.
            self.refresh("contacts", contact_ids)
            self.refresh("invoices", invoice_ids)
        contacts = self.contacts(contact_ids) if contact_ids else BatchOutcome()
        invoices = self.invoices(invoice_ids) if invoice_ids and self.invoices_enabled else BatchOutcome()
        for xid, (touched_invoices, contact) in touches.items():
            problems = {i: invoices.failed[i] for i in touched_invoices if i in invoices.failed}
            if contact in contacts.failed:
                problems[contact] = contacts.failed[contact]
            detail = {"invoices": touched_invoices, "contact": contact}
            if problems:
                if any(p.get("error_code") in RETRYABLE_CODES | {WAITING_FOR_CONTACT} for p in problems.values()):
                    outcome.retry.append(xid)
                self._fail(record_type, xid, sync_ids, outcome, {**detail, "reason": "a related record failed",
                                                                  "related": problems})
                continue
            wrote = any(i in invoices.written for i in touched_invoices) or contact in contacts.written
            (outcome.written if wrote else outcome.skipped).append(xid)
            self._audit(record_type, xid, sync_ids, stages.WRITTEN if wrote else stages.SKIPPED, detail)
        return outcome

    # -- helpers --------------------------------------------------------------------------------

    def _mapped(self, resource, record_type, xero_ids, sync_ids, outcome, mapper, summary) -> dict:
        mapped = {}
        self.snapshots.prefetch(self.connection_id, resource, list(dict.fromkeys(xero_ids)))
        for xid in dict.fromkeys(xero_ids):
            snapshot = self.snapshots.get(self.connection_id, resource, xid)
            if snapshot is None:
                self._fail(record_type, xid, sync_ids, outcome, {"reason": f"no fetched snapshot of this {record_type}"})
                continue
            try:
                result = mapper(snapshot.payload)
            except DataError as exc:
                self._fail(record_type, xid, sync_ids, outcome, {"reason": str(exc), "field": exc.field})
                continue
            self._audit(record_type, xid, sync_ids, stages.MAPPED, summary(result))
            mapped[xid] = (result, snapshot)
        return mapped

    def _ensure_contacts(self, contact_of: Mapping[str, str | None]) -> dict[str, str]:
        """Zoho Account ids of the invoices' contacts, pushing (and if need be fetching) missing ones."""
        wanted = [c for c in dict.fromkeys(contact_of.values()) if c]
        found = {}
        missing = []
        self.links.prefetch_missing(self.connection_id, "contact", wanted)  # the round read them
        for cid in wanted:
            link = self.links.get(self.connection_id, "contact", cid)
            if link is not None:
                found[cid] = link.zoho_id
            else:
                missing.append(cid)
        if missing:
            self.snapshots.prefetch(self.connection_id, "contacts", missing)
            unfetched = [c for c in missing if self.snapshots.get(self.connection_id, "contacts", c) is None]
            if unfetched and self.refresh is not None:
                self.refresh("contacts", unfetched)
            found.update(self.contacts(missing).zoho_ids)
        return found

    def _ensure_products(self, invoices: Iterable[Mapping[str, Any]]) -> dict[str, str]:
        """Zoho Product ids by Xero item code, upserting new or renamed items and the placeholder.

        Unit_Price is sent only when a product is created: a line's price is not the item's list
        price, and rewriting it per invoice would write the same product again and again.
        """
        products: dict[str, dict] = {
            self.config.placeholder_item_code: {
                "Product_Name": self.config.placeholder_product_name,
                zf.PRODUCT_ITEM_CODE: self.config.placeholder_item_code,
            }
        }
        for invoice in invoices:
            try:
                for product in invoice_items(invoice):
                    products.setdefault(product[zf.PRODUCT_ITEM_CODE], as_written("Products", product, self.config))
            except DataError:
                continue  # map_invoice reports the same problem for that invoice
        ids, pending = {}, []
        self.links.prefetch_missing(self.connection_id, "item", list(products))  # the round read them
        for code, product in products.items():
            identity = {k: v for k, v in product.items() if k != "Unit_Price"}
            product_hash = content_hash(identity)
            link = self.links.get(self.connection_id, "item", code)
            if link is not None and link.content_hash == product_hash:
                ids[code] = link.zoho_id
            else:
                pending.append((code, identity if link is not None else product, product_hash))
        links = []
        for (code, _, product_hash), result in zip(
            pending, self._upsert("Products", [p[1] for p in pending], zf.PRODUCT_ITEM_CODE)
        ):
            if result.ok:
                links.append(LinkWrite("item", code, "Products", result.id, product_hash))
                ids[code] = result.id
            else:
                log.warning("zoho.product_rejected", extra={"item_code": code, "code": result.code})
        self._save_links(links)
        return ids

    def _upsert(self, module: str, records: list[dict], key_field: str) -> list:
        if not records:
            return []
        known = (self.org_fields or {}).get(module)
        if known:
            records = [{k: v for k, v in r.items() if k in known or k == "id"} for r in records]
        return self.zoho.upsert(module, records, duplicate_check_fields=[key_field], trigger=self.config.trigger)

    def _save_links(self, links: list[LinkWrite]) -> list[str]:
        """Save a loop's links in one statement; returns the xero ids whose link was newer (not saved)."""
        saved = self.links.save_many(self.connection_id, links)
        return list(dict.fromkeys(link.xero_id for link in links if (link.kind, link.xero_id) not in saved))

    def _ledger(self, module: str, written: Mapping[str, dict]) -> None:
        owned = self.config.owned_by_crm(module)
        if owned and written:
            self.ledger.record_many(self.connection_id, "zoho", {
                zoho_id: content_hash(owned_projection(record, owned)) for zoho_id, record in written.items()})

    def _audit_outcome(self, record_type: str, mapped: Mapping, outcome: BatchOutcome, sync_ids) -> None:
        for xid in mapped:
            if xid in outcome.failed:
                self._audit_failure(record_type, xid, sync_ids, outcome)
            else:
                stage = stages.WRITTEN if xid in outcome.written else stages.SKIPPED
                self._audit(record_type, xid, sync_ids, stage, {"zoho_id": outcome.zoho_ids.get(xid)})

    def _fail(self, record_type, xid, sync_ids, outcome: BatchOutcome, detail: dict, *, audit: bool = True) -> None:
        outcome.merge_failure(xid, detail)
        if audit:
            self._audit_failure(record_type, xid, sync_ids, outcome)

    def _audit_failure(self, record_type: str, xid: str, sync_ids: Mapping, outcome: BatchOutcome) -> None:
        detail = outcome.failed[xid]
        if xid in outcome.retry and not self.final_attempt:
            self._audit(record_type, xid, sync_ids, stages.RETRYING, detail)
        else:
            self._audit(record_type, xid, sync_ids, stages.FAILED,
                        {**detail, "dead_lettered": True} if xid in outcome.retry else detail)

    def _audit(self, record_type: str, xid: str, sync_ids: Mapping, stage: str, detail: dict) -> None:
        self._trail.record(connection_id=self.connection_id, record_type=record_type, record_id=xid,
                           sync_id=sync_ids.get(xid), stage=stage, detail=detail, task_id=self.task_id)


def zoho_contact_records(
    mapped: Mapping[str, Any], payload: Mapping[str, Any], config: SyncConfig, account_zoho_id: str | None = None
) -> tuple[dict, list[dict]]:
    """The Account and Contacts exactly as we write them (overrides applied, Account_Name lookup set)."""
    account = as_written("Accounts", apply_field_overrides(mapped["account"], payload, "Accounts",
                                                           config.field_overrides), config)
    people = [
        as_written("Contacts", apply_field_overrides({**person, "Account_Name": {"id": account_zoho_id}}, payload,
                                                     "Contacts", config.field_overrides), config)
        for person in mapped["contacts"]
    ] if account_zoho_id else []
    return account, people


def as_written(module: str, record: dict, config: SyncConfig) -> dict:
    """The last step of mapping a record for Zoho: formulas neutralised when the config asks for it."""
    return neutralise_record(module, record) if config.neutralise_formulas else record


def _rejection(result, module: str) -> dict:
    return {"reason": f"Zoho refused the {module} record: {result.error_text}", "error_code": result.code,
            "details": result.details}


def _primary_person(invoice: Mapping[str, Any]) -> str | None:
    """The id-link key of the primary contact person of an invoice's contact."""
    contact_id = _contact_id(invoice)
    return f"{contact_id}:primary" if contact_id else None


def _contact_id(invoice: Mapping[str, Any]) -> str | None:
    contact = invoice.get("Contact")
    return str(contact["ContactID"]) if isinstance(contact, Mapping) and contact.get("ContactID") else None


def _touched(resource: str, payload: Mapping[str, Any]) -> tuple[list[str], str | None, bool]:
    """(invoice ids, contact id, is it a sales document) of a payment or credit note."""
    if resource == "payments":
        invoice = payload.get("Invoice") or {}
        contact = (invoice.get("Contact") or {}).get("ContactID")
        sales = invoice.get("Type", "ACCREC") == "ACCREC"
        return ([str(invoice["InvoiceID"])] if invoice.get("InvoiceID") else []), contact, sales
    invoices = [str(a["Invoice"]["InvoiceID"]) for a in payload.get("Allocations") or []
                if (a.get("Invoice") or {}).get("InvoiceID")]
    contact = (payload.get("Contact") or {}).get("ContactID")
    return invoices, contact, payload.get("Type", "ACCRECCREDIT") == "ACCRECCREDIT"


@dataclass(frozen=True)
class _PreparedInvoice:
    record: dict  # the header as we write it (no lines)
    lines: list[dict]
    full_hash: str
    lines_hash: str
    snapshot: Any
    totals: dict[str, Decimal]  # Xero's, from mapping.expected_totals


# Zoho's invoice totals and the Xero figure each must equal (see mapping/invoices.py for the arithmetic).
_TOTALS = {"Sub_Total": "SubTotal", "Tax": "TotalTax", "Grand_Total": "Total"}
_CENT = Decimal("0.01")


def _newer(link, snapshot) -> bool:
    """The link was written from a newer version of the Xero record than this snapshot."""
    return bool(link.source_updated_at and snapshot.source_updated_at
                and link.source_updated_at > snapshot.source_updated_at)


def _number(value) -> Decimal | None:
    if type(value) is Decimal and value.is_finite():
        return value  # what Decimal(str(value)) makes: an equal Decimal (NaNs still get a copy each)
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _zoho_totals(record: Mapping[str, Any]) -> dict[str, Decimal | None]:
    totals = {}
    for name in _TOTALS:
        number = _number(record.get(name))
        totals[name] = number.quantize(_CENT) if number is not None else None
    return totals


def _line_content(line: Mapping[str, Any]) -> tuple:
    """What a line says, comparable between what we send (Decimals) and what Zoho returns (numbers)."""
    get = line.get
    product = get("Product_Name")
    product_id = str(product.get("id")) if isinstance(product, Mapping) else product
    return (product_id, _number(get("Quantity")), _number(get("List_Price")), _number(get("Discount")),
            _number(get("Tax")), get("Description") or None)


def line_changes(current: list[Mapping[str, Any]], wanted: list[Mapping[str, Any]]) -> list[dict] | None:
    """The Invoiced_Items rows that turn Zoho's ``current`` lines into ``wanted``, or None when equal.

    Position by position: a line that differs is edited through its id (every key sent, so a
    removed description is cleared), surplus lines are deleted by id, missing ones are added.
    """
    rows: list[dict] = []
    for index in range(max(len(current), len(wanted))):
        if index < len(current) and index < len(wanted):
            if _line_content(current[index]) != _line_content(wanted[index]):
                rows.append({"id": str(current[index]["id"]), "Description": None, **wanted[index]})
        elif index < len(current):
            rows.append({"id": str(current[index]["id"]), "_delete": None})
        else:
            rows.append(dict(wanted[index]))
    return rows or None
