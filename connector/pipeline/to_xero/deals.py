"""A won Zoho deal becomes ONE Xero sales invoice (opt-in: mapping.yaml ``won_deals``), never two.

A Deals edit notification (the channel watches Deals where the option is on: channels.py) brings the deal
here. Under the deal's write lock (record_locks.py), its state decides:

- Not yet invoiced and in its won stage: the account's Xero contact is its id link (an Account the
  connector synced from Xero). An Account without one WAITS: ``take_in`` returns it in ``waiting`` and the
  task parks the deal ("waiting for its account to reach Xero"), re-checked when parked work resumes. The
  lines come from the deal's sales order, else its quote, else its products, else its Amount
  (mapping/won_deals.py, pure); the create is ``PUT /Invoices`` with an ``Idempotency-Key`` made of the
  deal id, the intent and the body's hash.
- Invoiced: a duplicate notification, a replay, a channel gap's reconciliation or the deal re-entering
  its stage creates nothing. A deal moved out of its won stage is reported once (audit "failed", listed by
  `connector failures`: review in Xero); the invoice is never voided or deleted by the connector.

Nothing doubled. The deal's row (store ``won_deal_invoices``, one per deal, unique) is claimed
(``creating``) before the create and completed with the invoice after. A row still ``creating`` means an
earlier attempt's answer was never seen (a lost answer, a crash): Xero may hold the invoice. Within Xero's
idempotency window the same key returns the first result; beyond it (its length is UNVERIFIED; a body that
changed since has another key) only a look in Xero can tell, so that attempt first asks
``GET /Invoices?where=Reference=="<deal id>"`` (a filtered read Xero calls costly, made only in that rare
case, never on the usual path) and adopts the invoice it finds instead of creating one.

Xero's refusal (ValidationException: a tax type, account or item code, a locked period, an archived contact)
is a per-deal failure saying which mapping.yaml key to fix, never retried by itself: a person fixes it and
saves the deal again. Every Xero call is tagged ``won_deal_invoice`` for the day budget (call_purpose.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from connector.call_purpose import WON_DEAL_INVOICE
from connector.errors import DataError
from connector.http import call_purpose
from connector.mapping import won_deals as won
from connector.mapping_config import SyncConfig
from connector.store import audit as stages
from connector.store.won_deals import CREATED, CREATING, LEFT

log = logging.getLogger(__name__)

RECORD_TYPE = "won_deal"  # audit trail: `connector audit won_deal <deal id>`
LOCK_KIND = "won_deal"
WAITING_REASON = "waiting for its account to reach Xero"
DEAL_FIELDS = ("Deal_Name", "Stage", "Account_Name", "Amount")
OPTIONAL_DEAL_FIELDS = ("Currency", "Pipeline")  # read only where the org has them (multi-currency, pipelines)
LINE_MODULES = {won.SALES_ORDER: "Sales_Orders", won.QUOTE: "Quotes"}
# A cancelled sales order or a lost quote bills nothing (the modules' standard picklists; an org's own: UNVERIFIED).
DEAD_DOCUMENTS = {won.SALES_ORDER: ("Status", {"Cancelled"}), won.QUOTE: ("Quote_Stage", {"Closed Lost"})}
PRODUCT_FIELDS = ("Product_Name", "Unit_Price", "Description", "Xero_Item_Code")
GONE_FROM_XERO = ("DELETED", "VOIDED")


@dataclass
class WonDealOutcome:
    created: dict[str, str] = field(default_factory=dict)  # deal id -> invoice number
    waiting: dict[str, str] = field(default_factory=dict)  # deal id -> its account, not in Xero yet
    failed: list[str] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)  # left their won stage after being invoiced
    skipped: list[str] = field(default_factory=list)
    # deal id -> the deal as read, for the deals not in their won stage: whatever else a deal's stage does
    # (create_in_xero.deal_stages) takes these; a won deal's account is this path's own.
    not_won: dict[str, dict] = field(default_factory=dict)


@dataclass
class WonDealInvoices:
    connection_id: int
    zoho: Any  # ZohoClient
    xero: Any  # XeroClient (at webhook priority)
    links: Any  # LinkStore
    won_deals: Any  # WonDealInvoiceStore
    audit: Any  # AuditLog
    locks: Any  # RecordLocks
    config: SyncConfig = field(default_factory=SyncConfig)
    modules: frozenset[str] = frozenset()  # the org's Zoho modules (Quotes, Sales_Orders only where present)
    org_fields: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # account id -> its Xero ContactID, linking or creating the contact (to_xero.contacts.ensure_xero_contact,
    # forced past create_in_xero's filter); None when it cannot (a name clash waiting for a person): the deal waits.
    ensure_contact: Callable[[str], str | None] | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    task_id: str | None = None

    def take_in(self, deal_ids: Iterable[str]) -> WonDealOutcome:
        outcome = WonDealOutcome()
        wanted = [d for d in dict.fromkeys(str(i) for i in deal_ids)]
        for deal_id in [d for d in wanted if not d.isdigit()]:  # Zoho ids are digits; it goes into a where
            self._note(deal_id, stages.SKIPPED, {"reason": "not a Zoho record id"})
            outcome.skipped.append(deal_id)
        wanted = [d for d in wanted if d.isdigit()]
        if not wanted:
            return outcome
        with closing(self.locks.rounds(self.connection_id, LOCK_KIND, wanted)) as rounds:
            for taken in rounds:
                # Read under the lock: the stage and lines this round acts on are the newest.
                deals = {str(d["id"]): d for d in self.zoho.get_records("Deals", taken, self._deal_fields())}
                for deal_id in taken:
                    deal = deals.get(deal_id)
                    if deal is None:
                        self._note(deal_id, stages.SKIPPED, {"reason": "the deal is no longer in Zoho"})
                        outcome.skipped.append(deal_id)
                    else:
                        self._one(deal, outcome)
        return outcome

    # -- one deal ----------------------------------------------------------------------------------

    def _one(self, deal: dict, outcome: WonDealOutcome) -> None:
        deal_id = str(deal["id"])
        wanted_stage = won.won_stage(deal, stage=self.config.won_deal_stage, pipelines=self.config.won_deal_pipelines)
        in_stage = won.is_won(deal, stage=self.config.won_deal_stage, pipelines=self.config.won_deal_pipelines)
        if not in_stage:
            outcome.not_won[deal_id] = deal
        row = self.won_deals.get(self.connection_id, deal_id)
        if row is not None and row.state == CREATING:
            row = self._settle_unknown_attempt(deal_id) or row
        if row is not None and row.state in (CREATED, LEFT):
            self._invoiced(deal, row, in_stage, wanted_stage, outcome)
            return
        if not in_stage:
            if row is not None:  # an attempt whose invoice Xero does not hold, and the deal is no longer won
                self.won_deals.release(self.connection_id, deal_id)
            reason = (f"its pipeline {won.pipeline_of(deal)!r} is not opted in (won_deals.pipelines)"
                      if wanted_stage is None else f"stage {deal.get('Stage')!r} is not {wanted_stage!r}")
            self._note(deal_id, stages.SKIPPED, {"reason": reason})
            outcome.skipped.append(deal_id)
            return
        account_id = won.account_id_of(deal)
        contact_id = self._contact_of(account_id) if account_id else None
        if contact_id is None:
            outcome.waiting[deal_id] = account_id or ""
            return
        self._create(deal, contact_id, outcome)

    def _contact_of(self, account_id: str) -> str | None:
        """The Xero ContactID of a Zoho Account: its id link (an Account synced from Xero)."""
        for link in self.links.by_zoho_ids([self.connection_id], "Accounts", [account_id]):
            if link.kind == "contact":
                return link.xero_id
        # An Account made in Zoho: connector.pipeline.to_xero.contacts' ensure_xero_contact links or creates its
        # Xero contact, passed in as ``ensure_contact`` (workers/zoho_tasks.py); without it, the deal waits.
        return self.ensure_contact(account_id) if self.ensure_contact is not None else None

    def _invoiced(self, deal: dict, row, in_stage: bool, wanted_stage: str | None, outcome: WonDealOutcome) -> None:
        deal_id, number = str(deal["id"]), row.invoice_number or row.invoice_id
        if in_stage and row.state == LEFT:
            self.won_deals.set_state(self.connection_id, deal_id, CREATED)
            reason = f"back in {wanted_stage}; its invoice {number} was made before: no second invoice"
        elif in_stage:
            reason = f"already invoiced as {number}: nothing new (a repeated notification or a replay)"
        elif row.state == CREATED:
            self.won_deals.set_state(self.connection_id, deal_id, LEFT)
            stage = wanted_stage or self.config.won_deal_stage
            message = (f"deal {deal_id} left {stage} after its invoice {number} was created; review in Xero "
                       "(the connector never voids or deletes an invoice)")
            self._note(deal_id, stages.FAILED, {"reason": message, "error_code": "DealLeftWonStage",
                                                "invoice_id": row.invoice_id, "invoice_number": row.invoice_number,
                                                "stage": deal.get("Stage")})
            log.warning("won_deal.left_stage", extra={"connection_id": self.connection_id, "record_type": RECORD_TYPE,
                                                      "zoho_id": deal_id, "invoice_number": number})
            outcome.reported.append(deal_id)
            return
        else:
            reason = f"still out of its won stage; reported when it left (invoice {number})"
        self._note(deal_id, stages.SKIPPED, {"reason": reason, "invoice_number": number})
        outcome.skipped.append(deal_id)

    def _create(self, deal: dict, contact_id: str, outcome: WonDealOutcome) -> None:
        deal_id = str(deal["id"])
        try:
            source, lines, products = self._lines_of(deal)
            invoice = won.won_deal_invoice(
                deal, contact_id=contact_id, source=source, lines=lines, products=products,
                status=self.config.won_deal_status, item_code=self.config.won_deal_item_code,
                account_code=self.config.won_deal_account_code, tax_type=self.config.won_deal_tax_type)
        except DataError as exc:
            self._failed(deal_id, str(exc), "fix the deal in Zoho, then save it again (any edit) to retry", outcome,
                         error_code="DataError")
            return
        self.won_deals.claim(self.connection_id, deal_id)
        try:
            with call_purpose(WON_DEAL_INVOICE):
                answer = self.xero.create_invoice(invoice, idempotency_key=won.idempotency_key(
                    self.connection_id, deal_id, invoice))
        except DataError as exc:  # Xero refused it: nothing was created
            self.won_deals.release(self.connection_id, deal_id)
            self._failed(deal_id, f"Xero refused the invoice: {exc}", won.advice_for(str(exc)), outcome,
                         error_code="ValidationException")
            return
        # Any other error leaves the row "creating": the retry looks in Xero before creating again.
        number = answer.get("InvoiceNumber") or answer.get("InvoiceID")
        self.won_deals.created(self.connection_id, deal_id, invoice_id=str(answer["InvoiceID"]),
                               invoice_number=answer.get("InvoiceNumber"))
        self._note(deal_id, stages.WRITTEN, {"invoice_id": answer["InvoiceID"], "invoice_number": number,
                                             "status": answer.get("Status"), "total": answer.get("Total"),
                                             "lines_from": source, "xero_contact": contact_id})
        log.info("won_deal.invoice_created", extra={"connection_id": self.connection_id, "record_type": RECORD_TYPE,
                                                    "zoho_id": deal_id, "xero_id": answer["InvoiceID"],
                                                    "invoice_number": number, "lines_from": source})
        outcome.created[deal_id] = str(number)

    def _settle_unknown_attempt(self, deal_id: str):
        """An earlier create whose answer was never seen: adopt the invoice Xero holds for the deal, if any."""
        with call_purpose(WON_DEAL_INVOICE):
            page = self.xero.list_records("invoices", where=f'Type=="ACCREC" AND Reference=="{deal_id}"', page_size=10,
                                           order="UpdatedDateUTC ASC")
        found = next((i for i in page.items if i.get("Status") not in GONE_FROM_XERO), None)
        if found is None:
            return None
        self.won_deals.created(self.connection_id, deal_id, invoice_id=str(found["InvoiceID"]),
                               invoice_number=found.get("InvoiceNumber"))
        self._note(deal_id, stages.WRITTEN, {"invoice_id": found["InvoiceID"], "invoice_number": found.get("InvoiceNumber"),
                                             "adopted": True, "reason": "an earlier attempt's answer was lost; "
                                             "Xero holds its invoice, so none was created again"})
        return self.won_deals.get(self.connection_id, deal_id)

    # -- reads ---------------------------------------------------------------------------------------

    def _deal_fields(self) -> list[str]:
        known = self.org_fields.get("Deals") or frozenset()
        return [*DEAL_FIELDS, *(f for f in OPTIONAL_DEAL_FIELDS if f in known)]

    def _lines_of(self, deal: dict) -> tuple[str, list[dict], dict[str, dict]]:
        """(source, lines, products by id): the newest live sales order's lines, else the newest live quote's,
        else the deal's products, else none (the Amount line). One Zoho read per source tried."""
        deal_id = str(deal["id"])
        for source in (won.SALES_ORDER, won.QUOTE):
            module = LINE_MODULES[source]
            if module not in self.modules:
                continue  # Free/Standard editions have neither (metadata: GET /settings/modules)
            status_field, dead = DEAD_DOCUMENTS[source]
            items_field = won.LINE_ITEMS_FIELD[source]
            documents = self.zoho.related_records("Deals", deal_id, module, ["Subject", status_field, items_field])
            live = [d for d in documents if d.get(status_field) not in dead and d.get(items_field)]
            if live:
                newest = max(live, key=lambda d: int(d["id"]))  # Zoho ids grow with creation (UNVERIFIED)
                lines = list(newest[items_field])
                return source, lines, self._products([_product_id(line) for line in lines])
        if "Products" in self.modules:
            products = self.zoho.related_records("Deals", deal_id, "Products", self._product_fields())
            if products:
                return won.PRODUCTS, products, {}
        return won.AMOUNT, [], {}

    def _product_fields(self) -> list[str]:
        known = self.org_fields.get("Products")
        return [f for f in PRODUCT_FIELDS if not known or f in known]

    def _products(self, ids: list[str]) -> dict[str, dict]:
        wanted = [i for i in dict.fromkeys(ids) if i]
        if not wanted:
            return {}
        return {str(p["id"]): p for p in self.zoho.get_records("Products", wanted, self._product_fields())}

    # -- audit ---------------------------------------------------------------------------------------

    def _failed(self, deal_id: str, message: str, what_to_do: str, outcome: WonDealOutcome, *, error_code: str) -> None:
        """``error_code``: the failure's class, as `connector failures` and status count them."""
        self._note(deal_id, stages.FAILED, {"reason": f"{message}; {what_to_do}", "error_code": error_code,
                                            "what_to_do": what_to_do})
        log.warning("won_deal.invoice_refused", extra={"connection_id": self.connection_id, "record_type": RECORD_TYPE,
                                                       "zoho_id": deal_id, "reason": message})
        outcome.failed.append(deal_id)

    def _note(self, deal_id: str, stage: str, extra: Mapping[str, Any]) -> None:
        self.audit.record(connection_id=self.connection_id, record_type=RECORD_TYPE, record_id=deal_id,
                          direction=stages.ZOHO_TO_XERO, stage=stage, task_id=self.task_id,
                          detail={**self.detail, **extra})


def _product_id(line: Mapping[str, Any]) -> str:
    ref = line.get("Product_Name")
    return str(ref.get("id") or "") if isinstance(ref, Mapping) else ""
