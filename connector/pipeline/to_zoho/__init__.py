"""Zoho out: fetched Xero snapshots are mapped (pure) and upserted into Zoho in batches.

One ``ZohoPush`` call handles a batch of records of one resource with one upsert call per Zoho
module (≤100 records each, the client chunks), in lookup order: Accounts before Contacts, Products
before Invoices. Every upsert is keyed on a Xero id held in a unique custom field, never on a name.
One module per round: ``contacts``, ``invoices`` (with the read-back check of lines and totals) and
``money`` (payments and credit notes); ``core`` holds what they share. What is pure (the records as
written, line and total comparisons) lives in connector/mapping/.

- An Account's money figures (outstanding, overdue, last payment...) are computed from the customer's
  stored snapshots whenever the Account is pushed: after the contact, any of its invoices, credit notes
  or payments change, and daily for overdue (beat recompute-account-money). No contact is re-read.
- Unchanged content is skipped by the hash kept on each id link; the write ledger keeps a hash of the
  CRM-owned fields we wrote, so the Zoho notification of our own write is recognised (from_zoho.py).
- A record Zoho refuses in a 207 fails alone, audited with Zoho's error code; codes that can pass on
  a later try (``RETRYABLE_CODES``) are audited "retrying" and handed back in ``BatchOutcome.retry``; the
  task retries them alone and, after its last retry, parks them (workers/zoho_tasks.py): they wait in
  parked work and are pushed again later, never given up for a refusal Zoho calls temporary.
"""

from __future__ import annotations

import contextlib
import functools
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping

from connector.mapping.zoho_records import REFUND_TYPES, refunded_credit, touched_by
from connector.pipeline.to_zoho.contacts import push_contacts, refresh_account_figures, refresh_accounts
from connector.pipeline.to_zoho.core import (
    RETRYABLE_CODES,
    WAITING_FOR_CONTACT,
    BatchOutcome,
    PushCore,
    one_audit_write,
)
from connector.pipeline.to_zoho.invoices import push_invoices
from connector.pipeline.to_zoho.money import push_related
from connector.store import audit as stages

__all__ = ["RETRYABLE_CODES", "WAITING_FOR_CONTACT", "BatchOutcome", "ZohoPush"]


class ZohoPush(PushCore):
    """A push of one connection's records; each call writes its audit rows together when it returns.

    Within one call (and the calls it makes: an invoice's contact pushed first, a payment's invoices), each
    customer's Account is written with its figures at most once: the figures are computed under its lock
    from what is stored, and a batch's documents are all stored before it is pushed, so a second write in
    the same call could only repeat the first."""

    # Per customer, during one outermost call: "written" or "skipped", what its Account push did.
    _accounts_done: dict[str, str] | None = None
    # When set, an invoice batch hands its customers' ids here instead of writing their Accounts itself: the
    # worker gathers them in the Zoho buffer and writes each Account once a window (``account_figures``),
    # however many batches of its invoices arrive in it. None: written before the call returns.
    defer_account_figures: Callable[[list[str]], None] | None = None

    def __init__(self, *args, defer_account_figures: Callable[[list[str]], None] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.defer_account_figures = defer_account_figures

    @contextlib.contextmanager
    def _one_batch(self) -> Iterator[None]:
        outermost = self._accounts_done is None
        if outermost:
            self._accounts_done = {}
        try:
            yield
        finally:
            if outermost:
                self._accounts_done = None

    @one_audit_write
    def contacts(self, xero_ids: Iterable[str], sync_ids: Mapping[str, str] | None = None) -> BatchOutcome:
        with self._one_batch():
            outcome = push_contacts(self, xero_ids, sync_ids)
            self._accounts_done.update({**dict.fromkeys(outcome.skipped, "skipped"),
                                        **dict.fromkeys(outcome.written, "written")})
            return outcome

    @one_audit_write
    def invoices(self, xero_ids: Iterable[str], sync_ids: Mapping[str, str] | None = None) -> BatchOutcome:
        """Writes invoices, then their deals (links, figures, payment notes) and their customers' Accounts,
        whose money figures they change."""
        xero_ids = list(xero_ids)
        # Deferred only for a batch of invoices itself: a payment's push (``related``) reports its Account's outcome.
        later = self.defer_account_figures if self._accounts_done is None else None
        with self._one_batch():
            outcome = push_invoices(self, xero_ids, sync_ids, contacts=self.contacts)
            if self.deals is not None:  # the invoices' deals, their figures and payment notes; audited with this push
                pushed = [x for x in dict.fromkeys(xero_ids) if x not in outcome.failed]
                dataclasses.replace(self.deals, audit=self._trail).after_invoices(pushed, self._pushed_snapshots(pushed))
            refresh_accounts(self, "invoices", xero_ids, self._account_figures if later is None
                             else functools.partial(self._account_figures_later, later))
            return outcome

    def _pushed_snapshots(self, invoice_ids: list[str]) -> dict:
        """The invoices' snapshots this push read under their locks and wrote from (any it did not keep are read
        again, together): the deals start from what was written, without a second read of the batch."""
        with self.transaction():
            self.snapshots.prefetch_missing(self.connection_id, "invoices", invoice_ids)
            return {i: s for i in invoice_ids if (s := self.snapshots.get(self.connection_id, "invoices", i)) is not None}

    @one_audit_write
    def account_figures(self, contact_ids: Iterable[str], *, after_a_failure: bool = False) -> BatchOutcome:
        """The Accounts of these customers with their current figures, each written only if they changed: what
        an invoice batch deferred (``defer_account_figures``). A customer never fetched is left alone.
        ``after_a_failure``: this push retries one that failed, which left each customer's trail at 'retrying';
        one whose Account turns out to hold its figures already (another push wrote them meanwhile) gets a
        'skipped' row, so every trail ends settled (an unchanged Account otherwise costs no audit row)."""
        with self._one_batch():
            outcome = self._account_figures(list(dict.fromkeys(contact_ids)), skip_unfetched=True)
            if after_a_failure:
                for cid in outcome.skipped:
                    self.audit_stage("contact", cid, {}, stages.SKIPPED,
                                     {"reason": "its money figures were already in Zoho"})
            return outcome

    def _account_figures_later(self, later: Callable[[list[str]], None], contact_ids: list[str], *,
                               skip_unfetched: bool = False) -> BatchOutcome:
        """Hands on the customers whose Account this call did not already write with everything stored."""
        waiting = [c for c in contact_ids if c not in self._accounts_done]
        if waiting:
            later(waiting)
        return BatchOutcome()

    @one_audit_write
    def related(self, resource: str, xero_ids: Iterable[str], sync_ids: Mapping[str, str] | None = None) -> BatchOutcome:
        """Payments / credit notes: re-read and re-push the invoices and contacts they change."""
        with self._one_batch():
            outcome = push_related(self, resource, xero_ids, sync_ids, contacts=self._account_figures,
                                   invoices=self.invoices)
            if resource == "payments" and self.deals is not None:
                self._refund_notes(xero_ids, outcome)
            return outcome

    def _refund_notes(self, payment_ids: Iterable[str], outcome: BatchOutcome) -> None:
        """Refunds have no invoice to carry their note: it goes on the customer's Account (pipeline/deals.py)."""
        refunds = {}
        for payment_id in dict.fromkeys(payment_ids):
            snapshot = self.snapshots.get(self.connection_id, "payments", payment_id)
            if snapshot is not None and payment_id not in outcome.failed and refunded_credit(snapshot.payload) \
                    and snapshot.payload.get("PaymentType") in REFUND_TYPES:
                refunds[payment_id] = snapshot.payload
        if not refunds:
            return
        customers = [c for p in refunds.values() if (c := touched_by("payments", p)[1])]
        with self.transaction():
            accounts = {c: link.zoho_id for c, link in self.links.get_many(self.connection_id, "contact", customers).items()}
        dataclasses.replace(self.deals, audit=self._trail).refund_notes(refunds.values(), accounts)

    def _account_figures(self, contact_ids: list[str], *, skip_unfetched: bool = False) -> BatchOutcome:
        """The customers' Accounts with their current figures (refresh_account_figures), each once a call."""
        done = self._accounts_done
        outcome = refresh_account_figures(self, [c for c in contact_ids if c not in done], self.contacts,
                                          skip_unfetched=skip_unfetched)
        for cid in contact_ids:
            if cid in done:  # already pushed in this call, with the figures of everything stored
                (outcome.written if done[cid] == "written" else outcome.skipped).append(cid)
        done.update({**dict.fromkeys(outcome.skipped, "skipped"), **dict.fromkeys(outcome.written, "written")})
        return outcome
