"""Deals after invoices: link each pushed invoice to its deal, total the deals whose invoices changed, and
show each Xero payment on its Zoho invoice as a note.

Runs after every invoice push (pipeline/to_zoho.py ``ZohoPush.invoices``), so a payment, credit note or
invoice change reaches its deal in the same task. The decisions are pure (mapping/deals.py); this module
reads what they need from Zoho and the store, and writes the results:

- Link. Reads the Zoho invoices' deal lookup and Sales_Order (one call per 100 invoices), the sales
  orders' deals, the deals a Reference names or invoices are linked to (one call), and only for an
  invoice no other rule placed, its account's deals (GET /Accounts/{id}/Deals, one call per account). A decision is saved (store ``invoice_deals``) and audited, with its rule,
  only when it differs from the last; the lookup is written only where it is empty, so a link made or
  set by a person is never overwritten. Without the Invoices module the link lives in the store only.
- Total. A deal's figures are recomputed from all its linked invoices, read with their snapshots in one
  query (however many), and written only when they changed (a hash on the id link ``deal``): a replay
  writes nothing. A deal deleted in Zoho is forgotten: its invoices become unassigned and are listed.
- Notes. One Zoho Note per Xero payment and per credit allocation on an invoice, keyed by the Xero id
  (id link ``payment_note``): created once, edited when the payment changes (one Xero lists as DELETED is
  shown reversed), and left alone when nothing changed.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from connector.errors import DataError
from connector.mapping import deals as rules
from connector.mapping.hashing import content_hash
from connector.mapping.zoho_records import touched_by
from connector.mapping_config import SyncConfig
from connector.store import audit as stages
from connector.store.links import LinkWrite

log = logging.getLogger(__name__)

DEAL_FIELDS = ("Deal_Name", "Stage", "Account_Name")
RECORD_TYPE = "invoice_deal"  # audit trail of an invoice's deal: `audit.trail(connection, "invoice_deal", id)`
DEAL_RECORD_TYPE = "deal"
# The notes' own trail (by note key: a Xero payment id, or credit note id:invoice id), apart from the
# payment's sync trail so `replay --failed` never takes a note's key for a payment.
NOTE_RECORD_TYPE = "payment_note"
NOTE_LINK = "payment_note"
DEAL_LINK = "deal"
DELETED_DEAL = "its deal was deleted in Zoho; link it again"


@dataclass
class DealSync:
    connection_id: int
    zoho: Any
    snapshots: Any  # SnapshotStore (get_many, customers_documents)
    links: Any  # LinkStore (get_many, save_many)
    deal_links: Any  # DealLinkStore
    audit: Any  # something with record(**row): an AuditLog or a push's batch
    config: SyncConfig = field(default_factory=SyncConfig)
    # The day overdue is judged on: UTC, as the Account's figures (pipeline/account_money.py).
    today: Callable[[], date] = field(default=lambda: datetime.now(timezone.utc).date())
    invoices_module: bool = True  # False: no Zoho Invoices (Free/Standard editions): links live in the store
    org_fields: Mapping[str, frozenset[str]] | None = None
    task_id: str | None = None
    # A block whose store reads share one transaction (Store.transaction); never around a call to Zoho.
    transaction: Callable[[], AbstractContextManager] = nullcontext

    # -- the one entry point ------------------------------------------------------------------------

    def after_invoices(self, invoice_ids: Iterable[str], stored: Mapping[str, Any] | None = None) -> dict[str, int]:
        """Link, total and annotate these (pushed) invoices; returns counts of what was written. ``stored``: their
        snapshots as the push just wrote them (read if not given)."""
        # Everything the store holds that the batch's decisions and notes start from, in one transaction.
        with self.transaction():
            if stored is None:
                stored = self.snapshots.get_many(self.connection_id, "invoices", list(dict.fromkeys(invoice_ids)))
            invoices = {i: s.payload for i, s in stored.items() if s.payload.get("Type") == "ACCREC"}
            if not invoices:
                return {"linked": 0, "deals": 0, "notes": 0}
            zoho_ids = {i: link.zoho_id
                        for i, link in self.links.get_many(self.connection_id, "invoice", list(invoices)).items()}
            contacts = {i: str((inv.get("Contact") or {}).get("ContactID") or "") for i, inv in invoices.items()}
            accounts = {c: link.zoho_id for c, link in
                        self.links.get_many(self.connection_id, "contact", [c for c in contacts.values() if c]).items()}
            previous = self.deal_links.decisions(self.connection_id, list(invoices))
            notes = self._invoice_notes(invoices, zoho_ids, self._payments(contacts.values())) \
                if self.invoices_module else {}
            known, begun = self._note_links(notes)
        current, changed, moved_from = self._link(invoices, zoho_ids, contacts, accounts, previous)
        # Every deal these invoices belong to (their money may have changed), and any an invoice left.
        deals = self.total_deals({d for d in current.values() if d} | moved_from)
        return {"linked": changed, "deals": deals, "notes": self._notes(notes, known, begun)}

    def _payments(self, contact_ids: Iterable[str]) -> list[dict]:
        """The stored payments of these customers (the payments an invoice's notes may show)."""
        documents = self.snapshots.customers_documents(self.connection_id, sorted(set(contact_ids) - {""}),
                                                       ("payments",))
        return [p for docs in documents.values() for p in docs["payments"]]

    # -- link -----------------------------------------------------------------------------------

    @property
    def lookup_in_zoho(self) -> bool:
        """The invoice's deal lookup exists in Zoho (Invoices module, and the field set up)."""
        known = (self.org_fields or {}).get("Invoices")
        return self.invoices_module and (not known or self.config.invoice_deal_field in known)

    def _link(self, invoices: Mapping[str, dict], zoho_ids: Mapping[str, str], contacts: Mapping[str, str],
              accounts: Mapping[str, str], previous: Mapping[str, dict]) -> tuple[dict[str, str | None], int, set[str]]:
        """Decide each invoice's deal (``contacts``: each invoice's Xero contact, ``accounts``: their Zoho
        Accounts, ``previous``: the stored decisions); returns (invoice -> its deal now, how many decisions
        changed, the deals an invoice left)."""
        deal_field = self.config.invoice_deal_field
        lookups = self._invoice_lookups(zoho_ids)
        deals = self._named_deals(invoices, lookups, {d["deal_id"] for d in previous.values() if d.get("deal_id")})

        def decide(invoice_id: str) -> dict:
            zoho, last = lookups.get(invoice_id, {}), previous.get(invoice_id)
            if last and last.get("deal_id") and last["deal_id"] not in deals:
                last = None  # its deal is gone from Zoho: the rules decide again
            return rules.decide_deal(
                # Without the lookup in Zoho, the store is where a link is kept.
                invoices[invoice_id],
                zoho_deal=_id_of(zoho.get(deal_field)) if self.lookup_in_zoho else (last or {}).get("deal_id"),
                stored=last, account_id=accounts.get(contacts[invoice_id]), deals=deals,
                sales_order_deal=zoho.get("_sales_order_deal"), rules=self.config.deal_rules,
                reference_pattern=self.config.deal_reference_pattern, closed_stages=self.config.deal_closed_stages)

        decisions = {invoice_id: decide(invoice_id) for invoice_id in invoices}
        # Only an invoice the other rules left unplaced needs its account's deals (one Zoho read per account).
        waiting = [i for i, d in decisions.items() if d["rule"] == rules.UNASSIGNED]
        if waiting and "only_open_deal" in self.config.deal_rules:
            deals.update(self._deals_of_accounts(list(dict.fromkeys(
                a for i in waiting if (a := accounts.get(contacts[i]))))))
            decisions.update({invoice_id: decide(invoice_id) for invoice_id in waiting})
        changed, to_write, moved_from, current = {}, [], set(), {}
        for invoice_id, decision in decisions.items():
            decision["contact_id"] = contacts[invoice_id] or None
            current[invoice_id] = decision["deal_id"]
            last = previous.get(invoice_id)
            if last and last.get("deal_id") and last["deal_id"] != decision["deal_id"]:
                moved_from.add(last["deal_id"])  # moved to another deal (or unlinked): the old deal changes too
            same_deal = last is not None and last.get("deal_id") == decision["deal_id"]
            if same_deal and (last.get("rule") == decision["rule"] or decision["rule"] == "kept"):
                continue  # unchanged (a link now kept still says which rule or person made it)
            changed[invoice_id] = decision
            if invoice_id in zoho_ids and self.lookup_in_zoho and decision["rule"] != "kept" and (
                    decision["deal_id"] or decision.get("dropped")):
                deal = {"id": decision["deal_id"]} if decision["deal_id"] else None  # None empties the lookup
                to_write.append((invoice_id, {"id": zoho_ids[invoice_id], deal_field: deal}))
        failed = self._write_links(to_write, changed)
        self.deal_links.save(self.connection_id, {i: d for i, d in changed.items() if i not in failed})
        for decision in changed.values():
            decision.pop("dropped", None)
        for invoice_id, decision in changed.items():
            if invoice_id not in failed:
                self._audit(RECORD_TYPE, invoice_id, stages.WRITTEN if decision["deal_id"] else stages.SKIPPED,
                            {"deal_id": decision["deal_id"], "rule": decision["rule"], "reason": decision["reason"]})
            else:
                current[invoice_id] = (previous.get(invoice_id) or {}).get("deal_id")
        return current, len(changed) - len(failed), moved_from

    def _invoice_lookups(self, zoho_ids: Mapping[str, str]) -> dict[str, dict]:
        """Per Xero invoice id: its Zoho invoice's deal lookup and Sales_Order, and that order's deal."""
        if not self.lookup_in_zoho or not zoho_ids:
            return {}
        by_zoho = {z: i for i, z in zoho_ids.items()}
        rows = self.zoho.get_records("Invoices", list(by_zoho), [self.config.invoice_deal_field, "Sales_Order"])
        found = {by_zoho[str(r["id"])]: r for r in rows if str(r.get("id")) in by_zoho}
        orders = [o for o in (_id_of(r.get("Sales_Order")) for r in found.values()) if o]
        if orders:
            deal_of = {str(o["id"]): _id_of(o.get("Deal_Name")) for o in
                       self.zoho.get_records("Sales_Orders", orders, ["Deal_Name"])}
            for row in found.values():
                row["_sales_order_deal"] = deal_of.get(_id_of(row.get("Sales_Order")) or "")
        return found

    def _deals_of_accounts(self, accounts: list[str]) -> dict[str, dict]:
        """Every deal of these accounts, in the fewest Zoho reads: the Deals list, a page of 200 at a time
        (https://www.zoho.com/crm/developer/docs/api/v8/get-records.html), for at most half as many pages as
        there are accounts; when the list is longer, each account's related list
        (https://www.zoho.com/crm/developer/docs/api/v8/get-related-records.html), as for a single account. An
        org with up to 200 deals costs one read for a batch of invoices of many accounts, not one per account;
        a large org at most half again what reading by account costs."""
        if len(accounts) >= 2:
            wanted, found, page, more = set(accounts), {}, 1, True
            while more and page <= len(accounts) // 2:
                rows, more = self.zoho.list_records("Deals", fields=DEAL_FIELDS, page=page)
                found.update({str(d["id"]): d for d in rows if rules.account_of(d) in wanted})
                page += 1
            if not more:
                return found
        return {str(d["id"]): d for account in accounts
                for d in self.zoho.related_records("Accounts", account, "Deals", DEAL_FIELDS)}

    def _named_deals(self, invoices: Mapping[str, dict], lookups: Mapping[str, dict], linked: set[str]) -> dict[str, dict]:
        """The deals a Reference or a sales order names and those invoices are linked to now, in one read (a
        linked deal missing from the answer was deleted)."""
        deals: dict[str, dict] = {}
        named = {d for inv in invoices.values()
                 for d in rules.referenced_deal_ids(inv.get("Reference"), self.config.deal_reference_pattern)}
        named |= {row["_sales_order_deal"] for row in lookups.values() if row.get("_sales_order_deal")}
        named |= linked
        missing = sorted(d for d in named if d.isdigit())
        if missing:
            deals.update({str(d["id"]): d for d in self.zoho.get_records("Deals", missing, DEAL_FIELDS)})
        return deals

    def _write_links(self, to_write: list[tuple[str, dict]], changed: dict) -> set[str]:
        """Set the lookup on the invoices just linked; returns the invoices Zoho refused (decided again later)."""
        if not to_write:
            return set()
        failed = set()
        for (invoice_id, _), result in zip(to_write, self.zoho.update("Invoices", [r for _, r in to_write],
                                                                      trigger=self.config.trigger)):
            if not result.ok:
                failed.add(invoice_id)
                self._audit(RECORD_TYPE, invoice_id, stages.FAILED, {
                    "deal_id": changed[invoice_id]["deal_id"], "rule": changed[invoice_id]["rule"],
                    "reason": f"Zoho refused the invoice's deal lookup: {result.error_text}", "error_code": result.code})
        return failed

    def lookups_edited(self, zoho_invoice_ids: Iterable[str]) -> int:
        """Zoho invoices edited (the channel watches Invoices.edit,
        https://www.zoho.com/crm/developer/docs/api/v8/notifications/enable.html): where a person changed the
        Deal lookup, that is the manual link, as ``connector deals link`` makes it: stored (rule ``manual``;
        an emptied lookup: ``cleared_in_zoho``), audited, and both deals totalled again. A lookup equal to
        the stored decision (our own write coming back, a resent notification) changes nothing. Returns
        how many links changed."""
        if not self.lookup_in_zoho:
            return 0
        xero_of = {link.zoho_id: link.xero_id for link in
                   self.links.by_zoho_ids([self.connection_id], "Invoices", list(dict.fromkeys(zoho_invoice_ids)))}
        if not xero_of:
            return 0
        rows = self.zoho.get_records("Invoices", list(xero_of), [self.config.invoice_deal_field])
        lookups = {xero_of[str(r["id"])]: _id_of(r.get(self.config.invoice_deal_field))
                   for r in rows if str(r.get("id")) in xero_of}
        with self.transaction():
            previous = self.deal_links.decisions(self.connection_id, list(lookups))
            moved = [i for i, deal_id in lookups.items() if ((previous.get(i) or {}).get("deal_id") or None) != deal_id]
            snapshots = self.snapshots.get_many(self.connection_id, "invoices", moved)
        changed, touched = {}, set()
        for invoice_id in moved:
            deal_id, last = lookups[invoice_id], previous.get(invoice_id) or {}
            snapshot = snapshots.get(invoice_id)
            contact = (snapshot.payload.get("Contact") or {}).get("ContactID") if snapshot else None
            changed[invoice_id] = {
                "deal_id": deal_id, "rule": "manual" if deal_id else rules.CLEARED_IN_ZOHO,
                "reason": "set by a person in Zoho" if deal_id else "a person removed the link in Zoho",
                "contact_id": str(contact) if contact else None}
            touched |= {deal_id or "", last.get("deal_id") or ""}
        if not changed:
            return 0
        self.deal_links.save(self.connection_id, changed)
        for invoice_id, decision in changed.items():
            self._audit(RECORD_TYPE, invoice_id, stages.WRITTEN if decision["deal_id"] else stages.SKIPPED,
                        {k: decision[k] for k in ("deal_id", "rule", "reason")})
        self.total_deals(touched)
        return len(changed)

    # -- total ----------------------------------------------------------------------------------

    def total_deals(self, deal_ids: Iterable[str]) -> int:
        """Recompute and write the figures of these deals; returns how many Deals were written."""
        wanted = sorted(d for d in set(deal_ids) if d)
        if not wanted:
            return 0
        with self.transaction():
            documents = self.deal_links.deals_invoices(self.connection_id, wanted)
            last = self.links.get_many(self.connection_id, DEAL_LINK, wanted)
        pending = []
        for deal_id in wanted:
            try:
                figures = rules.deal_figures(documents[deal_id], base_currency=self.config.base_currency,
                                             today=self.today())
            except DataError as exc:
                self._audit(DEAL_RECORD_TYPE, deal_id, stages.FAILED, {"reason": str(exc), "field": exc.field})
                continue
            record = self._known_fields("Deals", rules.deal_record(figures, self.config.deal_fields))
            digest = content_hash(record)
            if deal_id in last and last[deal_id].content_hash == digest:
                continue  # nothing changed since we last wrote it: a replay writes nothing
            pending.append((deal_id, record, digest))
        if not pending:
            return 0
        results = self.zoho.update("Deals", [{"id": d, **r} for d, r, _ in pending], trigger=self.config.trigger)
        saved, gone = [], []
        for (deal_id, record, digest), result in zip(pending, results):
            if result.ok:
                saved.append(LinkWrite(DEAL_LINK, deal_id, "Deals", deal_id, digest))
                self._audit(DEAL_RECORD_TYPE, deal_id, stages.WRITTEN, {"figures": record})
            elif result.code == "INVALID_DATA" and (result.details or {}).get("api_name") == "id":
                gone.append(deal_id)
            else:
                self._audit(DEAL_RECORD_TYPE, deal_id, stages.FAILED,
                            {"reason": f"Zoho refused the Deal: {result.error_text}", "error_code": result.code})
        self.links.save_many(self.connection_id, saved)
        if gone:
            self._deals_deleted(gone)
        return len(saved)

    def _deals_deleted(self, deal_ids: list[str]) -> None:
        invoices = self.deal_links.forget_deals(self.connection_id, deal_ids, DELETED_DEAL)
        for deal_id in deal_ids:
            self._audit(DEAL_RECORD_TYPE, deal_id, stages.SKIPPED, {"reason": "deleted in Zoho", "invoices": invoices})
        for invoice_id in invoices:
            self._audit(RECORD_TYPE, invoice_id, stages.SKIPPED,
                        {"deal_id": None, "rule": rules.UNASSIGNED, "reason": DELETED_DEAL})

    # -- notes ----------------------------------------------------------------------------------

    def refund_notes(self, refunds: Iterable[Mapping[str, Any]], accounts: Mapping[str, str]) -> int:
        """Note each refund (a payment out of a credit note, overpayment or prepayment) on its customer's
        Account (``accounts``: Xero contact id -> Zoho Account id), keyed by the Xero payment id as an invoice's
        payment notes are: created once, edited when it changes (reversed), left alone otherwise. Returns how
        many notes were written."""
        wanted: dict[str, tuple[str, str, dict]] = {}
        for refund in refunds:
            account = accounts.get(str(touched_by("payments", refund)[1] or ""))
            try:
                notes = rules.refund_notes([refund])
            except DataError as exc:
                self._audit(NOTE_RECORD_TYPE, str(refund.get("PaymentID")), stages.FAILED,
                            {"reason": str(exc), "field": exc.field})
                continue
            for key, note in notes.items():
                if account:
                    wanted[key] = ("Accounts", account, note)
                else:  # the payment's own trail says why (its contact failed); the note comes with its next push
                    self._audit(NOTE_RECORD_TYPE, key, stages.SKIPPED, {"reason": "its customer's Account is not in Zoho"})
        with self.transaction():
            known, begun = self._note_links(wanted)
        return self._notes(wanted, known, begun)

    def _invoice_notes(self, invoices: Mapping[str, dict], zoho_ids: Mapping[str, str],
                       payments: list[dict]) -> dict[str, tuple[str, str, dict]]:
        """The notes the invoices in Zoho carry: note key -> ("Invoices", the Zoho invoice id, the note)."""
        wanted: dict[str, tuple[str, str, dict]] = {}
        for invoice_id, invoice in invoices.items():
            if invoice_id not in zoho_ids:
                continue
            try:
                notes = rules.payment_notes(invoice, payments)
            except DataError as exc:
                self._audit(NOTE_RECORD_TYPE, invoice_id, stages.FAILED, {"reason": str(exc), "field": exc.field})
                continue
            for key, note in notes.items():
                wanted[key] = ("Invoices", zoho_ids[invoice_id], note)
        return wanted

    def _note_links(self, wanted: Mapping[str, tuple[str, str, dict]]) -> tuple[dict[str, Any], set[str]]:
        """The notes' links, and of the notes without one those whose insert was begun (store reads only)."""
        if not wanted:
            return {}, set()
        known = self.links.get_many(self.connection_id, NOTE_LINK, list(wanted))
        return known, self.links.writes_begun(self.connection_id, NOTE_LINK, [k for k in wanted if k not in known])

    def _notes(self, wanted: Mapping[str, tuple[str, str, dict]], known: Mapping[str, Any], begun: set[str]) -> int:
        """Write the ``wanted`` notes (key -> (parent module, parent Zoho id, note)) that are new or changed, given
        their links (``known``) and begun inserts (``_note_links``); returns how many were written."""
        if not wanted:
            return 0
        known = {**known, **self._notes_landed(wanted, begun)}
        inserts, updates = [], []
        for key, (module, parent, note) in wanted.items():
            digest = content_hash(note)
            if key not in known:
                inserts.append((key, {**note, "Parent_Id": {"module": {"api_name": module}, "id": parent}}, digest))
            elif known[key].content_hash != digest:
                updates.append((key, {"id": known[key].zoho_id, **note}, digest))
        return self._write_notes(inserts, updates)

    def _notes_landed(self, wanted: Mapping[str, tuple[str, str, dict]], begun: set[str]) -> dict[str, Any]:
        """Notes an earlier insert created whose answer was lost (``begun``: a write intent but no link): found on
        their record by the Xero id line their content carries, so they are edited, never inserted twice."""
        found: dict[str, Any] = {}
        for module, parent in dict.fromkeys(wanted[k][:2] for k in begun):
            for note in self.zoho.related_records(module, parent, "Notes", ["Note_Title", "Note_Content"]):
                for key in begun:
                    if wanted[key][:2] == (module, parent) and rules.note_key_line(key) in (note.get("Note_Content") or ""):
                        found[key] = LinkWrite(NOTE_LINK, key, "Notes", str(note["id"]), "")  # hash "": rewrite it
        return found

    def _write_notes(self, inserts: list, updates: list) -> int:
        saved = []
        if inserts:
            # Insert, not upsert: Notes have no unique field. The id link makes a note once; a write intent,
            # noted first, lets a retry after a lost answer find the note instead of adding another.
            self.links.begin_writes(self.connection_id, NOTE_LINK, [key for key, _, _ in inserts])
            for (key, _, digest), result in zip(inserts, self.zoho.insert("Notes", [n for _, n, _ in inserts],
                                                                          trigger=self.config.trigger)):
                if result.ok:
                    saved.append(LinkWrite(NOTE_LINK, key, "Notes", result.id, digest))
                else:  # refused outright: nothing was created, no later attempt need look for it
                    self.links.end_writes(self.connection_id, NOTE_LINK, [key])
                    self._audit(NOTE_RECORD_TYPE, key, stages.FAILED, {"reason": f"Zoho refused the note: {result.error_text}"})
        if updates:
            for (key, note, digest), result in zip(updates, self.zoho.update("Notes", [n for _, n, _ in updates],
                                                                             trigger=self.config.trigger)):
                if result.ok:
                    saved.append(LinkWrite(NOTE_LINK, key, "Notes", note["id"], digest))
        self.links.save_many(self.connection_id, saved)
        for link in saved:
            self._audit(NOTE_RECORD_TYPE, link.xero_id, stages.WRITTEN, {"zoho_note": link.zoho_id})
        return len(saved)

    # -- helpers --------------------------------------------------------------------------------

    def _known_fields(self, module: str, record: dict) -> dict:
        """Leave out the fields the org lacks (``connector check`` reports them), so the rest still goes."""
        known = (self.org_fields or {}).get(module)
        return {k: v for k, v in record.items() if k in known} if known else record

    def _audit(self, record_type: str, record_id: str, stage: str, detail: dict) -> None:
        self.audit.record(connection_id=self.connection_id, record_type=record_type, record_id=record_id,
                          stage=stage, detail=detail, task_id=self.task_id)


def _id_of(value: Any) -> str | None:
    return str(value["id"]) if isinstance(value, Mapping) and value.get("id") else None
