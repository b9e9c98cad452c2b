"""The money figures of a batch of customers, from their stored snapshots: no Xero call.

One store read for the batch (``SnapshotStore.customers_documents``), then the pure arithmetic
(mapping/money.py) per customer. Used whenever an Account is pushed: after a contact, invoice,
credit note or payment changes, and by the daily recompute for what only time changes (overdue).

``today`` is the day in UTC: Xero's due dates are calendar days in the organisation's timezone
(Organisation.Timezone), which the connector does not read; an invoice due yesterday in a timezone far
from UTC may turn overdue up to a day late or early here (UNVERIFIED how Xero's own Balances decide).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from connector.errors import DataError
from connector.mapping.contacts import map_contact
from connector.mapping.money import MONEY_DOCUMENT_KEYS, money_figures


def account_figures(snapshots, connection_id: int, contact_ids: list[str], *, today: date,
                    base_currency: str | None) -> dict[str, dict[str, Any] | DataError]:
    """Per contact: its figures, or the DataError that one of its stored documents raised."""
    documents = snapshots.customers_documents(connection_id, contact_ids, without_lines=True,
                                              only_keys=MONEY_DOCUMENT_KEYS)
    result: dict[str, dict[str, Any] | DataError] = {}
    for contact_id, stored in documents.items():
        try:
            result[contact_id] = money_figures(
                invoices=stored["invoices"], credit_notes=stored["creditnotes"], payments=stored["payments"],
                overpayments=stored["overpayments"], prepayments=stored["prepayments"],
                base_currency=base_currency, today=today)
        except DataError as exc:
            result[contact_id] = exc
    return result


def map_contact_as_pushed(snapshots, connection_id: int, contact: dict, config, *, today: date) -> dict:
    """``map_contact`` of a Xero contact with its customer's money figures, as the contacts push writes the
    Account: what a link's content hash is compared with outside a push (the Xero answer to a write-back,
    a backfill dry run). Figures a stored document makes unreadable are left out, as that push fails."""
    contact_id = str(contact.get("ContactID"))
    figures = account_figures(snapshots, connection_id, [contact_id], today=today,
                              base_currency=config.base_currency)[contact_id]
    return map_contact(contact, money=None if isinstance(figures, DataError) else figures,
                       money_fields=config.account_fields)
