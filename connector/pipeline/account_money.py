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
from connector.mapping.money import money_figures


def account_figures(snapshots, connection_id: int, contact_ids: list[str], *, today: date,
                    base_currency: str | None) -> dict[str, dict[str, Any] | DataError]:
    """Per contact: its figures, or the DataError that one of its stored documents raised."""
    documents = snapshots.customers_documents(connection_id, contact_ids)
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
